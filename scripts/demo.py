"""`make demo`: sample game logs -> shipper -> local Kafka -> mtga -> LogBus files.

Starts the local broker (kafkalocal), then runs the stages in
``STAGES`` in order. Each stage is a function taking the shared ``Demo``
context; add a stage by writing a function and appending it to ``STAGES``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import kafkalocal
from mulog import sample

REPO = Path(__file__).resolve().parent.parent

BIN = Path(sys.executable).parent
DEMO = REPO / "demo"
SHIPPER_CONF = REPO / "conf" / "shipper.yml"


@dataclass
class Demo:
    """What the stages share."""

    bootstrap: str
    logs: Path = DEMO / "logs"
    written: dict[str, int] = field(default_factory=dict)  # file name -> lines written
    output_dir: Path = DEMO / "output"  # where mtga wrote, once it ran

    def __post_init__(self):
        self.env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=self.bootstrap)


def say(msg: str) -> None:
    print(f"demo: {msg}", flush=True)


class DemoError(Exception):
    pass


# ------------------------------------------------------------------ stage: logs


def write_logs(folder: Path, per_file: int = 2000) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.log"):
        old.unlink()
    counts = {}
    for i, ln in enumerate(sample.LOG_NAMES + sample.MODEL_LOG_NAMES):
        path = folder / f"{ln}.log"
        with open(path, "wb") as f:
            for line in sample.bare_lines(per_file, seed=i + 1, log_name=ln):
                f.write(line + b"\n")
        counts[path.name] = per_file
    return counts


def stage_logs(d: Demo) -> None:
    d.written = write_logs(d.logs)
    say(f"wrote {sum(d.written.values())} sample lines into {len(d.written)} files under {d.logs.relative_to(REPO)}")


# --------------------------------------------------------------- stage: shipper


def shipper_status(d: Demo) -> list[dict]:
    r = subprocess.run([str(BIN / "shipper"), "status", "-c", str(SHIPPER_CONF), "--json"], capture_output=True,
                       text=True, env=d.env, timeout=60)
    return json.loads(r.stdout)["files"] if r.stdout.strip() else []


def topic_watermarks(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "mulog-demo"})
    try:
        out = {}
        md = c.list_topics(timeout=10)
        for t in topics:
            if t in md.topics:
                for p in md.topics[t].partitions:
                    out[(t, p)] = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
        return out
    finally:
        c.close()


def count_new(bootstrap: str, before: dict, after: dict) -> dict[tuple[str, str], int]:
    """Messages between the two watermarks, per (topic, log_name header)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "mulog-demo", "enable.auto.commit": False})
    counts: Counter = Counter()
    try:
        todo = {tp: hi for tp, hi in after.items() if hi > before.get(tp, 0)}
        c.assign([TopicPartition(t, p, before.get((t, p), 0)) for (t, p) in todo])
        seen: Counter = Counter()
        deadline = time.monotonic() + 60
        while any(seen[tp] < hi - before.get(tp, 0) for tp, hi in todo.items()) and time.monotonic() < deadline:
            for m in c.consume(num_messages=5000, timeout=1):
                if m.error():
                    continue
                tp = (m.topic(), m.partition())
                if m.offset() >= todo.get(tp, 0):
                    continue
                seen[tp] += 1
                h = dict(m.headers() or [])
                counts[(m.topic(), h.get("log_name", b"?").decode())] += 1
    finally:
        c.close()
    return dict(counts)


def stage_shipper(d: Demo) -> None:
    from shipper import config

    conf = config.load(SHIPPER_CONF)
    topics = sorted({i.topic for i in conf.inputs})
    shutil.rmtree(conf.state_dir, ignore_errors=True)  # a fresh start: ship what this run wrote
    before = topic_watermarks(d.bootstrap, topics)
    log_path = DEMO / "shipper.log"
    say(f"starting: shipper tail -c {SHIPPER_CONF.relative_to(REPO)} (KAFKA_BOOTSTRAP_SERVERS={d.bootstrap}; "
        f"log in {log_path.relative_to(REPO)})")
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen([str(BIN / "shipper"), "tail", "-c", str(SHIPPER_CONF)], stdout=logf,
                                stderr=subprocess.STDOUT, env=d.env)
    try:
        t0 = time.monotonic()
        want = {str(d.logs / name) for name in d.written}
        while True:
            if proc.poll() is not None:
                raise DemoError(f"shipper exited with {proc.returncode}; see {log_path}")
            rows = {r["path"]: r for r in shipper_status(d) if r["size"] is not None}
            if want <= rows.keys() and all(rows[p]["delivered"] == rows[p]["size"] for p in want):
                break
            if time.monotonic() - t0 > 120:
                raise DemoError(f"not everything was delivered within 120 s; see {log_path}")
            time.sleep(0.5)
        say(f"every line delivered in {time.monotonic() - t0:.1f}s (shipper status: "
            f"{sum(rows[p]['delivered'] for p in want):,} bytes of {len(want)} files at 100%)")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        if rc != 0:
            raise DemoError(f"shipper stopped with exit code {rc}; see {log_path}")
        say("shipper stopped (SIGTERM), positions saved")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    after = topic_watermarks(d.bootstrap, topics)
    per = count_new(d.bootstrap, before, after)
    for t in topics:
        n = sum(after.get(tp, 0) - before.get(tp, 0) for tp in after if tp[0] == t)
        total = sum(v for tp, v in after.items() if tp[0] == t)
        parts = ", ".join(f"{ln} {c}" for (tt, ln), c in sorted(per.items()) if tt == t)
        say(f"topic {t}: {n} lines arrived in this run ({parts}); {total} in the topic in all")
    written = sum(d.written.values())
    arrived = sum(per.values())
    if arrived != written:
        raise DemoError(f"{written} lines written but {arrived} arrived")


# ------------------------------------------------------------------ stage: mtga

MTGA_CONF = REPO / "conf" / "mtga.yml"


def mtga(d: Demo, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "mtga"), *args, "-c", str(MTGA_CONF)], capture_output=True, text=True,
                          env=d.env, timeout=timeout)


def stage_mtga(d: Demo) -> None:
    from sink import config

    from mulog.connection import Connection
    from sink.ops import queries
    from sink.ta.uuids import parse

    conf = config.load(MTGA_CONF)
    shutil.rmtree(conf.state_dir, ignore_errors=True)
    shutil.rmtree(conf.output_dir, ignore_errors=True)
    # without local state mtga resumes from the group's committed offsets (or the earliest)
    k = conf.conf.kafka
    admin = queries.admin_client(Connection(d.bootstrap))
    deadline = time.monotonic() + 30
    tps = queries.partitions(admin, list(k.topics), k.topic_pattern, deadline)
    wm = queries.watermarks(admin, tps, deadline)
    group = queries.group_offsets(admin, k.group_id, tps, deadline)
    expected = sum(wm[tp][1] - group.get(tp, wm[tp][0]) for tp in tps)
    r = mtga(d, "start", "--daemon")
    if r.returncode != 0:
        raise DemoError(f"mtga did not start: {r.stderr.strip()}")
    say(f"started: mtga start --daemon -c {MTGA_CONF.relative_to(REPO)} ({r.stdout.strip()})")
    try:
        t0 = time.monotonic()
        while True:
            r = mtga(d, "offset-checker", "--json")
            rows = json.loads(r.stdout) if r.returncode == 0 else []
            if queries.caught_up(rows):
                break
            if time.monotonic() - t0 > 120:
                raise DemoError(f"mtga did not catch up within 120 s; see {conf.log_file}")
            time.sleep(1)
        say(f"mtga consumed everything and stored its offsets ({time.monotonic() - t0:.1f}s, "
            f"checkpoints every {conf.conf.checkpoint.interval_s:g}s):")
        print(mtga(d, "offset-checker").stdout.rstrip())
        print(mtga(d, "status").stdout.rstrip())
    finally:
        r = mtga(d, "stop")
        say(r.stdout.strip() or r.stderr.strip())
    written = 0
    types: Counter = Counter()
    say(f"output folder {conf.output_dir.relative_to(REPO)} (read by ThinkingData's LogBus):")
    for f in sorted(conf.output_dir.rglob("*")):
        if f.is_file():
            lines = f.read_bytes().splitlines()
            for line in lines:
                d_ = json.loads(line)
                types[d_["#type"] + (" (first event)" if "#first_check_id" in d_ else "")] += 1
                written += parse(d_["#uuid"]) is not None  # an event's last line: one per event
            print(f"  {f.relative_to(conf.output_dir)}  {len(lines)} lines, {f.stat().st_size:,} bytes")
    say("lines by #type: " + ", ".join(f"{t} {n}" for t, n in sorted(types.items())))
    first = next(f for f in sorted(conf.output_dir.rglob("log.*")) if f.is_file())
    say(f"the first two lines of {first.relative_to(REPO)}:")
    with open(first, "rb") as fh:
        for _ in range(2):
            line = fh.readline()
            print("  " + json.dumps(json.loads(line), ensure_ascii=False)[:400] + " ...")
    fq = mtga(d, "failure-queue-count").stdout.strip()
    say(f"{written} events written in {sum(types.values())} lines (this run's {sum(d.written.values())} events plus "
        f"{expected - sum(d.written.values())} left unconsumed in the topic by earlier runs); failure queue: {fq}")
    if written != expected or fq != "0":
        raise DemoError(f"{expected} events to consume but {written} written, failure queue {fq}")
    d.output_dir = conf.output_dir


def stage_check(d: Demo) -> None:
    """What was written, checked against ThinkingData's data rules by mtga check-output."""
    out = d.output_dir.relative_to(REPO)
    r = subprocess.run([str(BIN / "mtga"), "check-output", str(out)], capture_output=True, text=True, cwd=REPO,
                       env=d.env, timeout=120)
    say(f"mtga check-output {out}:")
    print("  " + "\n  ".join(r.stdout.rstrip().splitlines()))
    if r.returncode != 0:
        raise DemoError(f"lines in {out} break ThinkingData's rules (exit code {r.returncode}): {r.stderr.strip()}")


# ------------------------------------------------------------------------- main

STAGES: list[Callable[[Demo], None]] = [stage_logs, stage_shipper, stage_mtga, stage_check]


def main() -> int:
    try:
        st = kafkalocal.Cluster(REPO / ".kafka-local").start()
    except kafkalocal.KafkaLocalError as e:
        print(f"demo: cannot start Kafka: {e}", file=sys.stderr)
        return 1
    say(f"Kafka runs at {st.bootstrap} (scripts/kafka-local stop to stop it)")
    d = Demo(st.bootstrap)
    try:
        for stage in STAGES:
            stage(d)
    except DemoError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
