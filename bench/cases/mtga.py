"""mtga's cases: `mtga start` on the events (one and two workers) and on what the shipper sent,
and the naive consumer beside it (bench/naive.py)."""

from __future__ import annotations

import shutil
import signal
import sys
import time
import uuid

from ..harness.bench import Bench
from ..harness.common import BENCH, BenchError, say
from ..harness.procs import Proc
from ..harness.registry import case
from ..harness.state import mtga_failures, mtga_stored
from ..harness.waits import count_lines, first_output, poll, tail, until_exit
from .shipper import shipper


def _shipped_topic(b: Bench) -> str:
    """The topic the last `shipper` run of this code side filled (the N lines in that code's
    wire form; app 24, log_name log_item); a `shipper` run first if there was none."""
    if b.code.side not in b.shipped_topics:
        say("mtga_shipped: running shipper once for its topic")
        r = shipper(b)
        if r["check"] != "ok":
            raise BenchError(f"the shipper run for mtga_shipped failed its check: {r['check']}")
    return b.shipped_topics[b.code.side]


def _mtga(b: Bench, workers: int, profile_name: str, shipped: bool = False, kafka_output: bool = False,
          interval_s: float = 0.5, until_written: bool = False, fleet: bool = True) -> dict:
    if shipped:
        topic, n = _shipped_topic(b), b.n_lines
        highs = b.kafka.highs(topic)
    else:
        topic, n = b.event_topic, b.n_events
        highs = b.event_highs
    d = b.tmp(profile_name)
    import yaml

    conf = {
        "kafka": {"bootstrap_servers": b.kafka.bootstrap, "group_id": f"bench-{uuid.uuid4().hex[:8]}",
                  "topics": [topic], "auto_offset_reset": "earliest"},
        "state_dir": str(d / "state"),
        "settings_dir": str(b.settings),
        "output": {"dir": str(d / "out")},
        "checkpoint": {"interval_s": interval_s},
        "workers": workers,
        "log": {"file": str(d / "mtga.log"), "level": "info"},
    }
    if not fleet:
        conf["fleet"] = {"enabled": False}
    out_topic = b.kafka.topic("ta_lines") if kafka_output else None
    if out_topic is not None:
        conf["output"]["kafka"] = {"topic": out_topic}
    for path, value in b.args.mtga_set:
        node = conf
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = yaml.safe_load(value)
    (d / "mtga.yml").write_text(yaml.safe_dump(conf))
    cmd = b.profiled(profile_name, [*b.program("mtga"), "start", "-c", d / "mtga.yml"])
    p = Proc(cmd, log=d / "stdout.log", env=b.code_env)
    deadline = time.monotonic() + b.timeout(n)
    try:
        if out_topic is None:
            t_first = first_output(b, p, d / "out", deadline, "mtga")
        else:
            t_first = poll(p, deadline, lambda: b.kafka.total(out_topic) > 0,
                           died=lambda: f"mtga exited with {p.rc}:\n{tail(d / 'mtga.log')}",
                           late=lambda: "mtga wrote nothing to its output topic", every=0.02)
        wall_first = time.time() - (time.monotonic() - t_first)

        def stored_all() -> bool:
            stored = mtga_stored(d / "state" / "db", topic)
            return all(stored.get(part, 0) >= hi for part, hi in highs.items())

        t_done = poll(p, deadline, stored_all, died=lambda: f"mtga exited with {p.rc}:\n{tail(d / 'mtga.log')}",
                      late=lambda: f"mtga did not store all offsets in {b.timeout(n):.0f}s "
                                   f"(stored {mtga_stored(d / 'state' / 'db', topic)})", every=0.1)
    finally:
        p.stop(signal.SIGTERM, 60)
    # after it stopped: the last write (max mtime), what was written, what failed
    last_write = max((f.stat().st_mtime for f in (d / "out").rglob("log.*")), default=wall_first)
    got = count_lines(d / "out") if out_topic is None else b.kafka.committed(out_topic)
    failed = mtga_failures(d / "state" / "db")
    check = "ok"
    if got != n or failed:
        check = f"{got} lines written, {failed} failed, expected {n} lines"
    if p.rc != 0:
        check = f"mtga exited with {p.rc} after SIGTERM; " + check
    to_last = max(0.0, last_write - wall_first)
    r = {"items": n, "seconds": to_last if until_written else t_done - t_first, "seconds_total": round(t_done - p.t0, 3),
         "seconds_to_last_write": round(to_last, 3),
         "peak_rss_mb": p.peak_rss_mb, "cpu_s": p.cpu_s, "workers": workers, "check": check}
    if not b.args.keep_work:
        shutil.rmtree(d / "out", ignore_errors=True)
    return r


@case("mtga", order=31, reference="mtga_kcat_consume", code=True,
      about="`mtga start` (workers=1, checkpoint.interval_s=0.5, batch_size 5000) on the pre-produced topic "
            "(3 partitions), fresh group and state: from the first output line until every partition's offset "
            "stored in RocksDB (read-only) equals its high watermark")
def mtga(b: Bench) -> dict:
    return _mtga(b, 1, "mtga")


@case("mtga_2_workers", order=32, reference="mtga", code=True,
      about="as mtga with workers=2 (ratio = scaling factor)")
def mtga_2_workers(b: Bench) -> dict:
    return _mtga(b, 2, "mtga_2_workers")


@case("mtga_shipped", order=33, reference="mtga", code=True,
      about="as mtga on the topic the shipper case filled: the N log lines in that code's wire form "
            "(app 24, log_name log_item), as mtga meets them behind shipper (ratio = per-event cost of "
            "that format against envelopes)")
def mtga_shipped(b: Bench) -> dict:
    return _mtga(b, 1, "mtga_shipped", shipped=True)


@case("mtga_kafka_output", order=38, reference="mtga",
      about="as mtga with output.kafka.topic (this tree's code only: a baseline may not have it): each batch's lines and offsets in one Kafka transaction (fresh "
            "3-partition output topic), from the first message in it until every offset is stored; the check "
            "reads the output back with isolation.level=read_committed")
def mtga_kafka_output(b: Bench) -> dict:
    return _mtga(b, 1, "mtga_kafka_output", kafka_output=True)


@case("mtga_checkpoint_10s", order=39, reference="mtga",
      about="as mtga with checkpoint.interval_s=10 (the default) instead of 0.5, timed from the first output "
            "line to the last (not to the last checkpoint, up to 10 s later): what checkpointing 20 times more "
            "often costs")
def mtga_checkpoint_10s(b: Bench) -> dict:
    return _mtga(b, 1, "mtga_checkpoint_10s", interval_s=10.0, until_written=True)


@case("mtga_fleet_off", order=40, reference="mtga", code=True,
      about="as mtga with fleet.enabled: false (no heartbeat producer): ratio = what the heartbeats cost "
            "(above 1: they cost)")
def mtga_fleet_off(b: Bench) -> dict:
    return _mtga(b, 1, "mtga_fleet_off", fleet=False)


@case("mtga_naive", order=34, reference="mtga_kcat_consume",
      about="bench/naive.py: confluent-kafka consume(5000), json.loads, track dict, uuid5, json.dumps, "
            "buffered write per app: from the first output byte until it exits after N events")
def mtga_naive(b: Bench) -> dict:
    topic, n = b.event_topic, b.n_events
    d = b.tmp("mtga_naive")
    out = d / "out"
    cmd = [sys.executable, BENCH / "naive.py", "--bootstrap", b.kafka.bootstrap, "--topic", topic,
           "--group", f"bench-naive-{uuid.uuid4().hex[:8]}", "--count", str(n), "--out", out,
           "--timeout", str(b.timeout(n))]
    p = Proc(cmd, log=d / "naive.log", env=b.env)
    t_first, got = until_exit(b, p, "the naive consumer", d, out, n)
    return {"items": n, "seconds": p.ended - t_first, "seconds_total": round(p.ended - p.t0, 3),
            "peak_rss_mb": p.peak_rss_mb, "cpu_s": p.cpu_s,
            "check": "ok" if got == n else f"{got} lines written, expected {n}"}
