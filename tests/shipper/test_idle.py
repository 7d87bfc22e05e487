"""Many quiet files: `shipper tail` keeps at most max_open_files of them open,
reads a quiet file only when inotify reports a write to it, and reopens a closed
one by identity when it grows or is rotated away. Real broker, real process;
open descriptors counted in /proc. (What idle files cost in CPU is measured by
bench/run.py's shipper_idle_* cases, not here.)"""

import os
import random
import re
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, TopicPartition

from support.shipper import ShipperProc, line, read_topic, topic_total, wait_for, write_conf

pytestmark = pytest.mark.kafka

MARK = re.compile(rb'^\{"w":"([^"]+)","n":(\d+),')


def open_files_in(pid: int, folder) -> set[str]:
    """The files of ``folder`` process ``pid`` holds open."""
    out = set()
    prefix = str(folder) + os.sep
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(prefix):
            out.add(target)
    return out


def test_quiet_files_beyond_max_open_files_are_closed_and_reopened_when_they_grow(kafka, topic_factory, tmp_path):
    n_files, limit, probes = 60, 10, 20
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(n_files):
        (logs / f"f{i:02d}.log").write_bytes(line(f"f{i:02d}", 0) + b"\n")
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=tmp_path / "state", rescan_interval_s=30,
                      max_open_files=limit, inputs=[
                          {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_idle"}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    c = Consumer({"bootstrap.servers": kafka, "group.id": "idle-tests", "enable.auto.commit": False})
    expected = {(f"f{i:02d}", 0) for i in range(n_files)}
    latencies, most_open = [], 0
    try:
        wait_for(lambda: topic_total(kafka, topic) >= n_files, 60, "every file's first line in Kafka")
        pid = sh.proc.pid
        wait_for(lambda: len(open_files_in(pid, logs)) <= limit, 30, f"at most {limit} files open")
        high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
        c.assign([TopicPartition(topic, 0, high)])
        rnd = random.Random(7)
        nth = Counter()

        def appended_arrives(tag: str, n: int, t0: float) -> float:
            deadline = t0 + 30
            while time.monotonic() < deadline:
                for m in c.consume(num_messages=100, timeout=0.05):
                    assert m.error() is None, m.error()
                    mk = MARK.match(m.value())
                    if mk and (mk.group(1).decode(), int(mk.group(2))) == (tag, n):
                        return time.monotonic() - t0
            raise AssertionError(f"{tag} line {n} not in Kafka within 30s:\n{sh.log()[-3000:]}")

        for _ in range(probes):  # one line appended to a random quiet file at a time
            tag = f"f{rnd.randrange(n_files):02d}"
            nth[tag] += 1
            with open(logs / f"{tag}.log", "ab") as f:
                f.write(line(tag, nth[tag]) + b"\n")
            latencies.append(appended_arrives(tag, nth[tag], time.monotonic()))
            expected.add((tag, nth[tag]))
            most_open = max(most_open, len(open_files_in(pid, logs)))

        # a closed file rotated away by rename while its writer still holds it: what the
        # writer adds after the rename is read from the new name
        held = open_files_in(pid, logs)
        tag = next(f"f{i:02d}" for i in range(n_files) if f"{logs}/f{i:02d}.log" not in held)
        with open(logs / f"{tag}.log", "ab") as f:
            os.rename(logs / f"{tag}.log", logs / f"{tag}.log.1")
            f.write(line(tag, 99) + b"\n")
            f.flush()
            latencies.append(appended_arrives(tag, 99, time.monotonic()))
        expected.add((tag, 99))
        assert sh.stop() == 0
    finally:
        c.close()
        sh.kill_if_alive()
    seen = Counter()
    for m in read_topic(kafka, topic):
        mk = MARK.match(m.value)
        assert mk is not None, m.value[:80]
        seen[(mk.group(1).decode(), int(mk.group(2)))] += 1
    lost = expected - set(seen)
    twice = {k: v for k, v in seen.items() if v > 1}
    print(f"\n{n_files} files, max_open_files={limit}: {len(expected)} lines in, {sum(seen.values())} out, "
          f"lost {len(lost)}, duplicated {len(twice)}; at most {most_open} open while lines were appended; "
          f"appended line in Kafka after {sorted(latencies)[len(latencies) // 2]:.2f}s (median), "
          f"{max(latencies):.2f}s (max)")
    assert not lost and not twice and set(seen) == expected
    assert most_open <= limit
    assert "to keep open files within max_open_files=10" in sh.log()
    assert max(latencies) < 5, latencies
