"""The shipper's cases: `shipper tail` delivering a file, and following many quiet files."""

from __future__ import annotations

import json
import os
import signal
import time

from ..harness.bench import Bench
from ..harness.common import POLL_S, BenchError
from ..harness.procs import Proc, proc_cpu
from ..harness.registry import case
from ..harness.state import shipper_delivered
from ..harness.waits import poll, tail

IDLE_WINDOW_S = 20.0  # shipper_idle_*: the idle window measured
IDLE_PROBES = 10  # shipper_idle_*: lines appended one by one to random files, each awaited in Kafka


@case("shipper", order=22, reference="shipper_kcat", also="shipper_kcat_headers", code=True,
      about="`shipper tail` process on the N-line file (fresh state, from the beginning, fresh 3-partition "
            "topic): from spawn until its position store (read-only, checkpoint every 0.2 s) says "
            "delivered offset == file size")
def shipper(b: Bench) -> dict:
    return _shipper(b, "shipper")


@case("shipper_fleet_off", order=29, reference="shipper", code=True,
      about="as shipper with fleet.enabled: false (no heartbeat producer): ratio = what the heartbeats cost "
            "(above 1: they cost)")
def shipper_fleet_off(b: Bench) -> dict:
    return _shipper(b, "shipper_fleet_off", fleet=False)


def _shipper(b: Bench, name: str, fleet: bool = True) -> dict:
    path, n = b.lines, b.n_lines
    size = path.stat().st_size
    topic = b.kafka.topic("shipper", 3)
    d = b.tmp(name)
    conf = {
        "kafka": {"bootstrap_servers": b.kafka.bootstrap},
        "state_dir": str(d / "state"),
        "inputs": [{"paths": [str(path)], "topic": topic, "app_id": 24, "log_name": "log_item",
                    "start_at": "beginning"}],
        "checkpoint_interval_s": 0.2,
        "stats_interval_s": 5,
        "log": {"file": str(d / "shipper.log"), "level": "info"},
    }
    if not fleet:
        conf["fleet"] = {"enabled": False}
    (d / "shipper.yml").write_text(json.dumps(conf, indent=1))
    cmd = [*b.program("shipper"), "tail", "-c", d / "shipper.yml"]
    cmd = b.profiled(name, cmd)
    p = Proc(cmd, log=d / "stdout.log", env=b.code_env)
    db = d / "state" / "db"
    t_kafka = None
    next_wm = 0.0

    def delivered() -> bool:  # and the first time every line is in Kafka, read every 0.1 s
        nonlocal t_kafka, next_wm
        now = time.monotonic()
        if t_kafka is None and now >= next_wm:
            if b.kafka.total(topic) >= n:
                t_kafka = time.monotonic()
            next_wm = now + 0.1
        return shipper_delivered(db) >= size

    deadline = time.monotonic() + b.timeout(n)
    try:
        t_done = poll(p, deadline, delivered,
                      died=lambda: f"shipper exited with {p.rc}:\n{tail(d / 'shipper.log')}{p.log_tail(5)}",
                      late=lambda: f"shipper did not deliver the file in {b.timeout(n):.0f}s", every=POLL_S)
    finally:
        p.stop(signal.SIGTERM, 30)
    if t_kafka is None and b.kafka.total(topic) >= n:
        t_kafka = t_done
    if fleet:
        b.shipped_topics[b.code.side] = topic  # read by mtga_shipped
    return {"items": n, "seconds": t_done - p.t0, "peak_rss_mb": p.peak_rss_mb, "cpu_s": p.cpu_s,
            "bytes": size, "seconds_in_kafka": None if t_kafka is None else round(t_kafka - p.t0, 3),
            "check": b.check_topic(topic, n)}


@case("shipper_idle_1000", order=25, code=True,
      about="`shipper tail` following 1,000 files of one line each, once all are in Kafka: its CPU over "
            "IDLE_WINDOW_S seconds with nothing written (items = files; per CPU s = files kept per CPU second), "
            "open descriptors, and the time from appending a line to a random file to that line in Kafka "
            "(IDLE_PROBES appends)")
def shipper_idle_1000(b: Bench) -> dict:
    return _shipper_idle(b, 1000)


@case("shipper_idle_10000", order=26, code=True, about="as shipper_idle_1000 with 10,000 files")
def shipper_idle_10000(b: Bench) -> dict:
    return _shipper_idle(b, 10_000)


@case("shipper_burst_10000", order=28, code=True,
      about="`shipper tail` following 10,000 files of one line each in 20 folders (glob logs/*/*.log), once all "
            "are in Kafka and it has been quiet: its CPU over IDLE_WINDOW_S seconds (core_pct_idle), then one line "
            "appended to every file at once; seconds = from the last append until all 10,000 lines are in Kafka "
            "(items = lines; open descriptors sampled through the burst)")
def shipper_burst_10000(b: Bench) -> dict:
    return _shipper_idle(b, 10_000, folders=20, burst=True)


def _shipper_idle(b: Bench, n: int, folders: int = 1, burst: bool = False) -> dict:
    import random

    window, settle, probes = IDLE_WINDOW_S, 5.0, IDLE_PROBES
    if b.args.quick:  # the shape of the report, in seconds
        n, window, settle, probes = n // 10, 3.0, 1.0, 3
    d = b.tmp(f"shipper_{'burst' if burst else 'idle'}_{n}")
    logs = d / "logs"
    with open(b.lines, "rb") as f:
        line = f.readline()
    files = [logs / f"d{i % folders:02d}" / f"f{i:05d}.log" if folders > 1 else logs / f"f{i:05d}.log"
             for i in range(n)]
    for sub in {f.parent for f in files}:
        sub.mkdir(parents=True)
    for f in files:
        f.write_bytes(line)
    topic = b.kafka.topic(f"idle{n}", 3)
    glob = str(logs / "*" / "*.log") if folders > 1 else str(logs / "*.log")
    conf = {
        "kafka": {"bootstrap_servers": b.kafka.bootstrap},
        "state_dir": str(d / "state"),
        "inputs": [{"paths": [glob], "topic": topic, "app_id": 24, "log_name": "log_item"}],
        "stats_interval_s": 30,
        "log": {"file": str(d / "shipper.log"), "level": "info"},
    }
    (d / "shipper.yml").write_text(json.dumps(conf, indent=1))
    p = Proc([*b.program("shipper"), "tail", "-c", d / "shipper.yml"], log=d / "stdout.log", env=b.code_env)
    deadline = time.monotonic() + b.timeout(n * 20)

    def died() -> str:
        return f"shipper exited with {p.rc}:\n{tail(d / 'shipper.log')}{p.log_tail(5)}"

    def in_kafka(want: int, within: float, what: str, every: float = 0.2) -> None:
        end = time.monotonic() + within
        while b.kafka.total(topic) < want:
            if not p.alive():
                raise BenchError(died())
            if time.monotonic() > end:
                raise BenchError(f"{what}: {b.kafka.total(topic)} of {want} lines in Kafka after {within:.0f}s")
            time.sleep(every)

    fds_max = 0
    try:
        in_kafka(n, deadline - time.monotonic(), f"the {n} files' first lines")
        t_all = time.monotonic() - p.t0
        time.sleep(settle)  # what follows the start (checkpoints, closings) is not the idle cost
        c0, t0 = proc_cpu(p.pid), time.monotonic()
        time.sleep(window)
        c1, t1 = proc_cpu(p.pid), time.monotonic()
        fds = len(os.listdir(f"/proc/{p.pid}/fd"))
        extra: dict = {}
        if burst:
            c2 = proc_cpu(p.pid)
            t_first = time.monotonic()
            for f in files:
                with open(f, "ab") as fh:
                    fh.write(line)
            t_last = time.monotonic()
            end = t_last + 120
            while b.kafka.total(topic) < 2 * n:
                fds_max = max(fds_max, len(os.listdir(f"/proc/{p.pid}/fd")))
                if not p.alive():
                    raise BenchError(died())
                if time.monotonic() > end:
                    raise BenchError(f"the burst: {b.kafka.total(topic) - n} of {n} lines in Kafka after 120s")
                time.sleep(0.01)
            t_done = time.monotonic()
            extra = {"burst_s": round(t_done - t_last, 3), "burst_from_first_append_s": round(t_done - t_first, 3),
                     "append_s": round(t_last - t_first, 3), "burst_cpu_s": round(proc_cpu(p.pid) - c2, 3),
                     "open_fds_burst_max": fds_max}
            probes = 0
        lat = []
        rnd = random.Random(n)
        for k in range(probes):
            before = b.kafka.total(topic)
            with open(files[rnd.randrange(n)], "ab") as f:
                f.write(line)
            t = time.monotonic()
            in_kafka(before + 1, 30, f"probe {k + 1}", every=0.01)
            lat.append(time.monotonic() - t)
    finally:
        p.stop(signal.SIGTERM, 60)
    if p.rc != 0:
        raise BenchError(f"shipper exited with {p.rc} at its stop:\n{tail(d / 'shipper.log')}")
    cpu = c1 - c0
    idle = {"core_pct_idle": round(100 * cpu / (t1 - t0), 2), "idle_cpu_s": round(cpu, 3), "open_fds": fds,
            "seconds_to_all_in_kafka": round(t_all, 2), "peak_rss_mb": p.peak_rss_mb}
    if burst:
        return {"items": n, "seconds": extra["burst_s"], "cpu_s": extra["burst_cpu_s"], **idle, **extra,
                "folders": folders, "check": b.check_topic(topic, 2 * n)}
    lat.sort()
    return {"items": n, "seconds": t1 - t0, "cpu_s": round(cpu, 3), **idle,
            "latency_median_s": round(lat[len(lat) // 2], 3), "latency_max_s": round(lat[-1], 3),
            "check": b.check_topic(topic, n + probes)}
