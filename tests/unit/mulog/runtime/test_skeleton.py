"""The skeleton both daemons run on (mulog/runtime): the loop's timers, the
signals, counters declared in one class, and the metrics and health server,
over real HTTP and real signals (no broker)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import urllib.request

import pytest

from mulog.common_conf import FleetConf, MetricsConf
from mulog.connection import Connection
from mulog.runtime import signals
from mulog.runtime.instrument import Instruments, counter, event
from mulog.runtime.skeleton import DEFAULT_METRICS_PORTS, Skeleton
from mulog.runtime.timers import Every


def test_a_timer_is_due_once_per_interval_and_never_twice_for_being_late():
    t = Every(10.0, now=100.0)
    assert not t.due(109.9)
    assert t.due(110.0)
    assert not t.due(110.0)  # once
    assert t.due(150.0)  # late: due once...
    assert not t.due(155.0)  # ...and the next one an interval after that
    assert t.due(160.0)


def test_a_timer_can_be_due_at_once_and_take_a_new_interval():
    t = Every(2.0, now=0.0, first=0.0)
    assert t.due(0.0)
    t.interval = 5.0  # a reload: the next due time keeps its place
    assert t.due(2.0) and not t.due(6.9) and t.due(7.0)


class _Declared:
    lines = counter("Lines read")
    cut = event("Lines cut", "test.skeleton", logging.ERROR, first=2, every=3)


def test_counters_are_declared_in_one_class_and_exported_by_name(caplog):
    inst = Instruments.declared("prog", _Declared)
    inst.lines.value += 5
    with caplog.at_level(logging.ERROR, logger="test.skeleton"):
        said = [inst.cut("cut %d", i) for i in range(7)]
    assert said == [True, True, True, False, False, True, False]  # the first 2, then every 3rd
    assert [r.getMessage() for r in caplog.records] == ["cut 0", "cut 1", "cut 2", "cut 5"]
    assert inst.values() == {"lines": 5, "cut": 7}
    names = {s[0]: s for s in inst.samples()}
    assert names["prog_lines"][2] == "Lines read" and names["prog_lines"][4] == [((), 5)]
    assert names["prog_cut"][4] == [((), 7)]
    with pytest.raises(AttributeError, match="prog declares no counter 'nope'"):
        inst.nope  # noqa: B018


def test_both_programs_declare_every_counter_they_use():
    from shipper.stats import counters as shipper_counters
    from sink.counters import counters as mtga_counters

    s, m = shipper_counters(), mtga_counters()
    assert s.prefix == "shipper" and m.prefix == "mtga"
    assert {"lines_sent", "lines_acked", "producer_queue_full", "positions_not_saved"} <= set(s.values())
    assert {"events_consumed", "checkpoints", "stalls", "events_duplicate", "retry_errors"} <= set(m.values())


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_the_skeleton_serves_metrics_and_health_and_stops_them():
    inst = Instruments.declared("prog", _Declared)
    inst.lines.value = 3
    healthy = {"ok": True}
    routes = {"/health": lambda: [("loop", healthy["ok"], "ticks")]}
    sk = Skeleton("mtga", Connection("127.0.0.1:9"), "host-a")
    conf = MetricsConf(enabled=True, host="127.0.0.1", port=_free_port())
    sk.serve_metrics(conf, inst.samples, routes)
    port = sk.metrics.port
    status, body = _get(port, "/metrics")
    assert status == 200 and "prog_lines_total 3.0" in body
    assert _get(port, "/health")[0] == 200
    healthy["ok"] = False
    assert _get(port, "/health")[0] == 503
    sk.close(clean=True)
    assert sk.metrics is None
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_metrics_off_and_fleet_off_start_nothing():
    sk = Skeleton("shipper", Connection("127.0.0.1:9"), "host-a")
    sk.serve_metrics(MetricsConf(enabled=False), lambda: [], {})
    assert sk.beat(FleetConf(enabled=False), dict) is None
    assert sk.metrics is None and sk.heartbeat is None
    sk.close(clean=False)


def test_the_default_metrics_ports_are_the_programs_own():
    assert DEFAULT_METRICS_PORTS == {"shipper": 9465, "mtga": 9464}
    assert Skeleton("shipper", Connection(""), "h").metrics_port(MetricsConf()) == 9465
    assert Skeleton("mtga", Connection(""), "h").metrics_port(MetricsConf(port=1234)) == 1234


def test_a_port_in_use_is_one_line_and_an_error(caplog):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        sk = Skeleton("mtga", Connection(""), "h")
        with caplog.at_level(logging.ERROR, logger="mtga"), pytest.raises(OSError):
            sk.serve_metrics(MetricsConf(enabled=True, port=port), lambda: [], {})
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot serve metrics on 127.0.0.1:{port}: Address already in use"]


def test_the_signals_reach_the_loops_handlers():
    got = []
    stop, reload = threading.Event(), threading.Event()
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        signals.handle(lambda *_: (got.append("stop"), stop.set()), lambda *_: (got.append("reload"), reload.set()))
        os.kill(os.getpid(), signal.SIGHUP)
        assert reload.wait(5)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
        os.kill(os.getpid(), signal.SIGINT)
        assert got == ["reload", "stop", "stop"]
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
