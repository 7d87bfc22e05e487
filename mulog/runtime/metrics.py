"""Prometheus metrics over HTTP for both programs (prometheus-client).

Each program gives a function that returns its current samples; a collector
turns them into metric families at scrape time, so the hot paths only bump
plain counters. ``/health`` and ``/ready`` (mulog/health.py) are served beside
``/metrics`` when the program gives their checks."""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable, Optional

from prometheus_client import make_wsgi_app
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger("metrics")

# (name, kind "counter"|"gauge", help, labels, [(label values, value), ...])
Sample = tuple[str, str, str, tuple, list]


class _Collector:
    def __init__(self, source: Callable[[], Iterable[Sample]]):
        self.source = source

    def collect(self):
        for name, kind, help_, labels, values in self.source():
            fam = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, help_, labels=list(labels))
            for lv, v in values:
                fam.add_metric(list(lv), v)
            yield fam


class MetricsServer:
    def __init__(self, server, thread):
        self.server, self.thread = server, thread

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(source: Callable[[], Iterable[Sample]], host: str, port: int,
          health: Optional[dict] = None) -> MetricsServer:
    """Serve ``/metrics`` from ``source`` and ``health`` ({path: checks}, see mulog/health.py)."""
    from wsgiref.simple_server import make_server

    from prometheus_client.exposition import ThreadingWSGIServer, _get_best_family, _SilentHandler

    from mulog.runtime import health as _health

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(source))

    class Server(ThreadingWSGIServer):
        pass

    Server.address_family, addr = _get_best_family(host, port)
    app = _health.wsgi(make_wsgi_app(reg), health or {})
    server = make_server(addr, port, app, Server, handler_class=_SilentHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    log.info("metrics at http://%s:%d/metrics%s", host, server.server_address[1],
             " (and /health, /ready)" if health else "")
    return MetricsServer(server, thread)
