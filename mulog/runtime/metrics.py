"""Prometheus metrics over HTTP for both programs (prometheus-client).

Each program gives a function that returns its current samples; a collector
turns them into metric families at scrape time, so the hot paths only bump
plain counters. ``/health`` and ``/ready`` (mulog/runtime/health.py) are served
beside ``/metrics`` when the program gives their checks. The HTTP server is the
standard library's WSGI server, one thread per request, that logs nothing of
its own."""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from typing import Callable, Iterable, Optional
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

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


class _Quiet(WSGIRequestHandler):
    """No access log on standard error: a scrape every few seconds is not news."""

    def log_message(self, format, *args):  # noqa: A002 - the standard library's name
        pass


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _family(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The address family of ``host`` (an IPv6 address or name binds IPv6) and the address to bind."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _type, _proto, _name, sockaddr = infos[0]
    return family, sockaddr[0]


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
    """Serve ``/metrics`` from ``source`` and ``health`` ({path: checks}, see mulog/runtime/health.py)."""
    from mulog.runtime import health as _health

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(source))
    family, addr = _family(host, port)
    server_class = type("MetricsHTTPServer", (_Server,), {"address_family": family})
    app = _health.wsgi(make_wsgi_app(reg), health or {})
    server = make_server(addr, port, app, server_class, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    log.info("metrics at http://%s:%d/metrics%s", host, server.server_address[1],
             " (and /health, /ready)" if health else "")
    return MetricsServer(server, thread)
