"""What both daemons run beside their loop, wired the same way.

    skeleton = Skeleton("mtga", conn, host)                        # conn: mulog/connection.py
    signals.handle(loop.request_stop, loop.request_reload)       # mulog/runtime/signals.py
    skeleton.serve_metrics(conf.metrics, samples, routes)         # /metrics, /health, /ready
    skeleton.beat(conf.fleet, figures, watch=True)                # the fleet record (mulog/fleet.py)
    ... the loop runs, its timers are mulog/runtime/timers.py's Every ...
    skeleton.close(clean)                                         # "stopped", or silent after a failure

The metrics server and the heartbeat read only what the loop publishes (its
snapshot): the functions given here are called from their own threads.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Optional

from mulog.common_conf import FleetConf, MetricsConf
from mulog.connection import Connection
from mulog.fleet import Heartbeat
from mulog.runtime.metrics import MetricsServer, Sample, serve

DEFAULT_METRICS_PORTS = {"shipper": 9465, "mtga": 9464}


class Skeleton:
    def __init__(self, role: str, conn: Connection, host: str):
        self.role, self.conn, self.host = role, conn, host
        self.metrics: Optional[MetricsServer] = None
        self.heartbeat: Optional[Heartbeat] = None
        self.log = logging.getLogger(role)

    def metrics_port(self, conf: MetricsConf) -> int:
        """The configured port, or the program's default for ``port: 0``."""
        return conf.port or DEFAULT_METRICS_PORTS[self.role]

    def serve_metrics(self, conf: MetricsConf, samples: Callable[[], Iterable[Sample]],
                      routes: dict) -> None:
        """``/metrics`` from ``samples`` and the health ``routes`` (mulog/runtime/health.py),
        when ``metrics.enabled``. An address that cannot be bound raises OSError,
        said once here in one line."""
        if not conf.enabled:
            return
        try:
            self.metrics = serve(samples, conf.host, self.metrics_port(conf), routes)
        except OSError as e:
            self.log.error("cannot serve metrics on %s:%d: %s", conf.host, self.metrics_port(conf), e.strerror or e)
            raise

    def beat(self, conf: FleetConf, figures: Callable[[], dict], watch: bool = False) -> Optional[Heartbeat]:
        """This process's record in the fleet topic every ``fleet.interval_s`` (when
        ``fleet.enabled``); ``watch`` also reads the others' for the silent-hosts gauge."""
        if conf.enabled:
            self.heartbeat = Heartbeat(self.conn, conf.topic, self.host, self.role, conf.interval_s, figures,
                                       watch=watch).start()
        return self.heartbeat

    def close(self, clean: bool) -> None:
        """Stop what runs beside the loop: a clean stop says "stopped" in the fleet;
        after a failure the record goes silent, as if the process were killed."""
        if self.heartbeat is not None:
            self.heartbeat.stop() if clean else self.heartbeat.abandon()
            self.heartbeat = None
        if self.metrics is not None:
            self.metrics.shutdown()
            self.metrics = None
