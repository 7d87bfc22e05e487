import pytest

"""mtga end to end: real broker, real processes, real files."""

import json
import random
import re
import subprocess
import threading
import time
from collections import Counter

from mulog import sample
from support.mtga import (MTGA, Mtga, count_lines, failure_count, failure_entries, output_lines, pid_gone, produce,
                          stored_offsets, uuid_counts, uuid_of, wait_for, write_conf, write_settings)
from support.ta_rules import violations

pytestmark = pytest.mark.kafka

APPS = (24, 25, 26)

INVALID = [
    (b"{this is not json", "invalid_json"),
    (b'{"headers": {"app_id": 24, "log_name": "log_item"}, "logs": {"mtime": 1608184243}}', "identity"),
    (b'{"role_id": 5}', "no_app_id"),
    (b'{"headers": {"app_id": 24, "log_name": "log_item"}, "logs": {"role_id": 1, "bad key": 2}}', "property_name"),
    (b'{"headers": {"app_id": 77, "log_name": "log_item"}, "logs": {"role_id": 1}}', "no_settings"),
    (b"[1, 2, 3]", "not_object"),
]


def mixed_events(n: int, invalid_share: float, seed: int = 3):
    """n payloads over 3 apps with ``invalid_share`` invalid ones; -> (payloads, expected reason or None)."""
    rnd = random.Random(seed)
    valid = sample.envelopes(n, app_ids=APPS, seed=seed)
    payloads, kinds = [], []
    for v in valid:
        if rnd.random() < invalid_share:
            bad, code = rnd.choice(INVALID)
            payloads.append(bad)
            kinds.append(code)
        else:
            payloads.append(v)
            kinds.append(None)
    return payloads, kinds


def test_200k_events_three_apps_exactly_once_after_clean_stop(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=3)
    write_settings(tmp_path / "settings", APPS)
    payloads, kinds = mixed_events(200_000, 0.02)
    where = produce(kafka, topic, payloads)
    n_valid = kinds.count(None)
    n_invalid = len(kinds) - n_valid
    assert n_invalid > 3000

    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}")
    m = Mtga(conf).start()
    try:
        wait_for(lambda: count_lines(tmp_path / "out") >= n_valid and failure_count(tmp_path / "state") >= n_invalid,
                 180, "all events to be written or queued")
    finally:
        assert m.term() == 0, m.output()

    lines = output_lines(tmp_path / "out")
    assert len(lines) == n_valid
    # every valid event exactly once, identified by its deterministic #uuid
    want = {uuid_of(topic, p, o) for (p, o), k in zip(where, kinds) if k is None}
    got = Counter(json.loads(line)["#uuid"] for line in lines)
    assert len(got) == len(lines), "a #uuid appears twice"
    assert set(got) == want
    # ThinkingData's rules hold for every line
    bad = [(line, v) for line in lines if (v := violations(line))]
    assert not bad, bad[:3]
    # one folder per app id
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["24", "25", "26"]
    # every invalid event is in the failure queue with its reason
    entries = failure_entries(tmp_path / "state")
    assert len(entries) == n_invalid
    expect = {(p, o): k for (p, o), k in zip(where, kinds) if k is not None}
    for e in entries:
        assert e.code == expect[(e.partition, e.offset)], (e.reason, expect[(e.partition, e.offset)])
        assert e.topic == topic and e.payload in {b for b, _ in INVALID}
    # the stored offsets are the end of each partition
    ends = {}
    for p, o in where:
        ends[p] = max(ends.get(p, 0), o + 1)
    assert stored_offsets(tmp_path / "state") == {(topic, p): e for p, e in ends.items()}


class Feeder(threading.Thread):
    """Produces valid events at a steady rate while mtga is being killed.
    ``hold=(i, event)``: event ``i`` and those after it wait until ``event`` is
    set (then the steady rate goes on)."""

    def __init__(self, kafka, topic, total, rate, hold=None):
        super().__init__(daemon=True)
        self.kafka, self.topic, self.total, self.rate, self.hold = kafka, topic, total, rate, hold
        self.where = []
        self.error = None

    def run(self):
        from confluent_kafka import Producer

        try:
            events = list(sample.envelopes(self.total, app_ids=APPS, seed=11))
            where: list = [None] * len(events)
            p = Producer({"bootstrap.servers": self.kafka, "linger.ms": 20, "enable.idempotence": True})

            def report(i):
                def cb(err, msg):
                    if err is None:
                        where[i] = (msg.partition(), msg.offset())
                    else:
                        self.error = err
                return cb

            step = max(1, self.rate // 10)
            start = time.monotonic()
            for i in range(0, len(events), step):
                if self.hold is not None and i >= self.hold[0] and not self.hold[1].is_set():
                    p.flush(60)
                    assert self.hold[1].wait(300), "the feeder was held for 300 s"
                    start = time.monotonic() - i / self.rate
                for j in range(i, min(i + step, len(events))):
                    p.produce(self.topic, events[j], on_delivery=report(j))
                p.poll(0)
                # the steady rate: the next step is due at start + (i / rate) seconds
                time.sleep(max(0.0, start + (i + step) / self.rate - time.monotonic()))
            assert p.flush(60) == 0, "events not acknowledged"
            self.where = where
        except Exception as e:  # reported by the test
            self.error = e


def test_sigkill_five_times_loses_nothing_and_writes_nothing_twice(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=3)
    write_settings(tmp_path / "settings", APPS)
    # a SIGKILLed member holds its partitions until its session times out: 6 s (the broker's least), not 30 s
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", checkpoint={"interval_s": 2},
                      kafka={"consumer": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}})
    feeder = Feeder(kafka, topic, total=60_000, rate=1500)  # fed for longer than the five runs last
    feeder.start()
    rnd = random.Random(5)
    windows = []  # per kill: stored offsets after the kill
    held = [0]  # per kill: output lines at the kill
    for k in range(5):
        m = Mtga(conf).start()
        wait_for(lambda: count_lines(tmp_path / "out") > held[-1], 60, "this run of mtga to write lines")
        time.sleep(rnd.uniform(0.5, 3.0))  # a random moment to kill at, not a synchronisation
        m.kill()
        held.append(count_lines(tmp_path / "out"))
        stored = {p: o for (t, p), o in stored_offsets(tmp_path / "state").items()}
        windows.append(stored)
    assert all(b > a for a, b in zip(held, held[1:])), f"each run wrote before its kill: {held}"
    feeder.join(120)
    assert feeder.error is None, feeder.error
    index = {uuid_of(topic, p, o): (p, o) for p, o in feeder.where}
    m = Mtga(conf).start()
    try:
        wait_for(lambda: len(uuid_counts(tmp_path / "out", running=True)) >= len(index), 120, "every event in the output")
    finally:
        assert m.term() == 0
    counts = uuid_counts(tmp_path / "out")
    assert set(counts) == set(index), "lost or unknown events"
    dups = {u: c for u, c in counts.items() if c > 1}
    lines = count_lines(tmp_path / "out")
    # the kills landed after a checkpoint's stored offsets: events past them were read again, and skipped
    behind = [held[k + 1] - sum(w.values()) for k, w in enumerate(windows)]
    print(f"\nSIGKILL x5: {len(index)} events in, {lines} lines out, {len(dups)} written twice, 0 lost; "
          f"lines written past the stored offsets at each kill: {behind}")
    assert any(b > 0 for b in behind), "no kill landed past a checkpoint: nothing was at stake"
    assert not dups, f"{len(dups)} events written more than once, e.g. {sorted(dups.items())[:3]}"
    assert lines == len(index)


def test_sigterm_then_restart_no_duplicates(kafka, topic_factory, tmp_path):
    """SIGTERM while events come in, then a restart: every event once. The second
    half of the events is held back until the stop, so that some surely come
    after it, however long mtga took to start."""
    topic = topic_factory(partitions=3)
    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}")
    stopped = threading.Event()
    feeder = Feeder(kafka, topic, total=20_000, rate=5000, hold=(10_000, stopped))
    feeder.start()
    m = Mtga(conf).start()
    try:
        wait_for(lambda: count_lines(tmp_path / "out") > 2000, 60, "mtga to be mid-stream")
        assert m.term() == 0
    finally:
        stopped.set()
        if m.alive():
            m.kill()
    mid = count_lines(tmp_path / "out")
    feeder.join(120)
    assert feeder.error is None
    m = Mtga(conf).start()
    try:
        wait_for(lambda: count_lines(tmp_path / "out") >= 20_000, 120, "every event in the output")
    finally:
        assert m.term() == 0
    counts = uuid_counts(tmp_path / "out")
    assert len(counts) == 20_000
    assert max(counts.values()) == 1, "an event was written twice across a graceful stop"
    assert 2000 < mid < 20_000


def test_broken_settings_fail_then_drain_when_fixed(kafka, topic_factory, tmp_path):
    """A settings file broken while mtga runs (at start it is refused: check-config's
    checks): its app's events go to the failure queue and drain once it is fixed."""
    topic = topic_factory(partitions=3)
    settings = write_settings(tmp_path / "settings", (24, 26))
    payloads = list(sample.envelopes(3000, app_ids=APPS, seed=9))
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", retry={"initial_backoff_s": 0.5, "max_backoff_s": 1})
    m = Mtga(conf).start()
    try:
        wait_for(m.answers, 60, "mtga to answer")
        (settings / "metadata.25.json").write_text('{"account_id": "role_id", "time": {"unit": "hours"}}')
        produce(kafka, topic, payloads)
        wait_for(lambda: count_lines(tmp_path / "out") == 2000 and failure_count(tmp_path / "state") == 1000,
                 60, "apps 24 and 26 written, app 25 queued")
        entries = failure_entries(tmp_path / "state")
        assert {e.code for e in entries} == {"bad_settings"}
        assert "metadata.25.json: time.unit: expected one of s, ms, string; got 'hours'" in entries[0].reason
        (settings / "metadata.25.json").write_text((settings / "metadata.24.json").read_text())
        wait_for(lambda: count_lines(tmp_path / "out") == 3000, 60, "the retry loop to drain app 25")
        wait_for(lambda: failure_count(tmp_path / "state") == 0, 30, "the failure queue to be empty")
    finally:
        assert m.term() == 0
    assert len(uuid_counts(tmp_path / "out")) == 3000
    assert count_lines(tmp_path / "out" / "25") == 1000


def test_daemon_start_refuse_twice_status_stop(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=1)
    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}")
    r = subprocess.run([MTGA, "start", "--daemon", "-c", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    pid = int(re.search(r"pid (\d+)", r.stdout).group(1))
    try:
        assert (tmp_path / "state" / "mtga.pid").read_text().strip() == str(pid)
        r2 = subprocess.run([MTGA, "start", "--daemon", "-c", str(conf)], capture_output=True, text=True, timeout=60)
        assert r2.returncode == 1
        assert f"mtga already runs (pid {pid}" in r2.stderr and "Traceback" not in r2.stderr
        st = subprocess.run([MTGA, "status", "-c", str(conf)], capture_output=True, text=True, timeout=30)
        assert st.returncode == 0 and f"pid {pid}" in st.stdout
        produce(kafka, topic, list(sample.envelopes(100, app_ids=APPS)))
        wait_for(lambda: count_lines(tmp_path / "out") == 100, 60, "the daemon to write")
        assert (tmp_path / "mtga.log").stat().st_mode & 0o777 == 0o600
    finally:
        sp = subprocess.run([MTGA, "stop", "-c", str(conf)], capture_output=True, text=True, timeout=90)
    assert sp.returncode == 0 and f"mtga stopped (pid {pid})" in sp.stdout
    assert pid_gone(pid)
    assert not (tmp_path / "state" / "mtga.pid").exists()
    st = subprocess.run([MTGA, "status", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert st.returncode == 1 and "not running" in st.stdout
    sp = subprocess.run([MTGA, "stop", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert sp.returncode == 0 and "not running" in sp.stdout


def test_daemon_start_failure_is_reported(tmp_path, kafka):
    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, "x", "g")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "db").write_text("not a database folder")
    r = subprocess.run([MTGA, "start", "--daemon", "-c", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.startswith("mtga: mtga did not start: ") and "Traceback" not in r.stderr


def test_restart_keeps_the_flags_of_the_last_start(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=1)
    write_settings(tmp_path / "settings", APPS)
    state = tmp_path / "state"
    r = subprocess.run([MTGA, "start", "--daemon", "--topic", topic, "--group-id", f"g-{topic}",
                        "--settings-dir", "settings", "--output-dir", "out", "--state-dir", "state",
                        "--bootstrap-servers", kafka], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    first = int(re.search(r"pid (\d+)", r.stdout).group(1))
    try:
        r = subprocess.run([MTGA, "restart", "--state-dir", str(state)], capture_output=True, text=True,
                           timeout=120, cwd="/")
        assert r.returncode == 0, r.stderr
        assert f"mtga stopped (pid {first})" in r.stdout and "mtga started (pid" in r.stdout
        produce(kafka, topic, list(sample.envelopes(50, app_ids=APPS)))
        wait_for(lambda: count_lines(tmp_path / "out") == 50, 60, "the restarted daemon to write (same flags)")
        st = json.loads(subprocess.run([MTGA, "status", "--state-dir", str(state), "--json"], capture_output=True,
                                       text=True, timeout=30).stdout)
        assert st["pid"] != first and st["group"] == f"g-{topic}" and st["partitions"] == [f"{topic}[0]"]
    finally:
        subprocess.run([MTGA, "stop", "--state-dir", str(state)], capture_output=True, timeout=90)
