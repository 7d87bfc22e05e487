"""Prometheus metrics over HTTP for both programs (prometheus-client).

Each program gives a function that returns its current samples; a collector
turns them into metric families at scrape time, so the hot paths only bump
plain counters."""

from __future__ import annotations

import logging
from typing import Callable, Iterable

from prometheus_client import start_http_server
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


def serve(source: Callable[[], Iterable[Sample]], host: str, port: int) -> MetricsServer:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(source))
    server, thread = start_http_server(port, addr=host, registry=reg)
    log.info("metrics at http://%s:%d/metrics", host, server.server_address[1])
    return MetricsServer(server, thread)
