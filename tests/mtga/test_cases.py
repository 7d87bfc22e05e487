"""mtga paths the other tests do not take. Real broker, real ``mtga``
processes, real signals; delivery counted line by line by #uuid."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from mulog import sample
from support.mtga import (MTGA, Mtga, output_lines, pid_gone, produce, stored_offsets, uuid_counts, uuid_of, wait_for,
                          write_conf, write_settings)

pytestmark = pytest.mark.kafka

APPS = (24, 25, 26)
# a host that leaves or joins is noticed within seconds, not the default 30 s
FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


def mtga(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([MTGA, *args], capture_output=True, text=True, timeout=timeout)


def cli_json(conf: Path, *args: str):
    """``mtga ARGS -c CONF --json`` -> (parsed stdout, stderr); a failed command fails the test."""
    r = mtga(*args, "-c", str(conf), "--json")
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return json.loads(r.stdout), r.stderr


def produce_rr(bootstrap: str, topic: str, payloads: list, partitions: int) -> list:
    """Produce round robin over ``partitions`` (each gets its share) and wait;
    returns (partition, offset) of each payload in order."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    out: list = [None] * len(payloads)

    def dr(i):
        def cb(err, msg):
            assert err is None, err
            out[i] = (msg.partition(), msg.offset())
        return cb

    for i, pl in enumerate(payloads):
        p.produce(topic, pl, partition=i % partitions, on_delivery=dr(i))
        p.poll(0)
    assert p.flush(60) == 0 and None not in out
    return out


def ends_of(topic: str, where) -> dict:
    """{(topic, partition): end offset} of the produced (partition, offset) pairs."""
    ends: dict = {}
    for p, o in where:
        ends[(topic, p)] = max(ends.get((topic, p), 0), o + 1)
    return ends


@pytest.fixture
def named_topics(kafka):
    """``make({name: partitions})`` creates topics with exactly these names; deleted at the end."""
    admin = AdminClient({"bootstrap.servers": kafka})
    made: list = []

    def make(spec: dict) -> None:
        futs = admin.create_topics([NewTopic(n, num_partitions=k, replication_factor=1) for n, k in spec.items()])
        for n, f in futs.items():
            f.result(timeout=30)
            made.append(n)

    yield make
    if made:
        for f in admin.delete_topics(made).values():
            try:
                f.result(timeout=30)
            except Exception:
                pass


# ----------------------------------------------------------------------------- kafka.topic_pattern


def test_topic_pattern_consumes_the_matching_topics_only_and_the_queries_list_only_them(kafka, named_topics,
                                                                                          tmp_path):
    """The subscription to ``mp_<r>_[0-9]+`` is anchored at the start: it takes
    mp_<r>_1 and mp_<r>_2 but not zz_mp_<r>_1 (which the pattern matches only
    unanchored). Every event of the two is written once, none of the third;
    offset-checker and kafka-lag list exactly the two topics' partitions, from
    the running daemon (over its socket) and from the store after it stopped."""
    r = uuid.uuid4().hex[:8]
    t1, t2, other = f"mp_{r}_1", f"mp_{r}_2", f"zz_mp_{r}_1"
    named_topics({t1: 2, t2: 3, other: 2})
    pattern = rf"mp_{r}_[0-9]+"
    assert re.search(pattern, other) and not re.match(pattern, other)
    where = {t: produce_rr(kafka, t, list(sample.envelopes(n, app_ids=APPS, seed=s)), k)
             for t, n, s, k in ((t1, 600, 1, 2), (t2, 900, 2, 3), (other, 500, 3, 2))}
    want = {uuid_of(t, p, o) for t in (t1, t2) for p, o in where[t]}
    foreign = {uuid_of(other, p, o) for p, o in where[other]}
    parts = sorted([(t1, p) for p in range(2)] + [(t2, p) for p in range(3)])
    ends = {**ends_of(t1, where[t1]), **ends_of(t2, where[t2])}
    assert sorted(ends) == parts

    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, t1, f"g-{r}", checkpoint={"interval_s": 1},
                      kafka={"topics": [], "topic_pattern": pattern})
    m = Mtga(conf).start()
    try:
        wait_for(lambda: set(uuid_counts(tmp_path / "out", running=True)) >= want, 60,
                 "every event of the two matching topics written")
        wait_for(lambda: stored_offsets(tmp_path / "state") == ends, 30, "the end of every partition stored")
        # answered by the daemon over its socket (no "not running" note)
        rows, err = cli_json(conf, "offset-checker")
        assert "not running" not in err, err
        assert sorted((x["topic"], x["partition"]) for x in rows) == parts, rows
        assert all(x["current"] == x["high"] == ends[(x["topic"], x["partition"])] and x["lag"] == 0
                   for x in rows), rows
        lag, err = cli_json(conf, "kafka-lag")
        assert lag == {"lag": 0} and "not running" not in err, (lag, err)
        st, _ = cli_json(conf, "status")
        assert st["partitions"] == [f"{t}[{p}]" for t, p in parts]
    finally:
        assert m.term() == 0, m.output()

    counts = uuid_counts(tmp_path / "out")
    assert set(counts) == want and max(counts.values()) == 1, "lost, repeated or foreign events"
    assert not foreign & set(counts)
    log = (tmp_path / "mtga.log").read_text()
    assert f"consuming ^{pattern} as group g-{r}" in log
    assert sorted(set(re.findall(r"assigned (\S+)\[(\d+)\]", log))) == [(t, str(p)) for t, p in parts]
    assert other not in log

    # stopped: the same questions answered from the store (and Kafka), with a backlog of 7 on t1
    produce(kafka, t1, list(sample.envelopes(7, app_ids=APPS, seed=4)))
    rows, err = cli_json(conf, "offset-checker")
    assert "mtga is not running" in err, err
    assert sorted((x["topic"], x["partition"]) for x in rows) == parts, rows
    assert all(x["current"] == ends[(x["topic"], x["partition"])] and x["source"] == "local" for x in rows), rows
    assert sum(x["high"] - x["current"] for x in rows) == 7
    lag, err = cli_json(conf, "kafka-lag")
    assert lag == {"lag": 7} and "mtga is not running" in err, (lag, err)


def test_a_topic_pattern_means_the_same_to_the_consumer_and_to_the_queries(kafka, named_topics, tmp_path):
    """conf/mtga.yml's own example of a pattern, '^mulog_clean_\\d+$', written for
    these topics: mtga either refuses it at start, or consumes the partitions
    that offset-checker lists for it (the queries match with Python's ``re``,
    the consumer with librdkafka's regular expressions)."""
    r = uuid.uuid4().hex[:8]
    topic = f"mp_{r}_1"
    named_topics({topic: 2})
    where = produce_rr(kafka, topic, list(sample.envelopes(50, app_ids=APPS)), 2)
    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, topic, f"g-{r}", checkpoint={"interval_s": 1},
                      kafka={"topics": [], "topic_pattern": rf"^mp_{r}_\d+$"})
    m = Mtga(conf).start()
    seen = {"listed": None, "consumed": None}

    def settled():
        if not m.alive():
            return True
        st = mtga("status", "-c", str(conf), "--json")
        if st.returncode != 0:
            return False  # not answering yet
        rows, _ = cli_json(conf, "offset-checker")
        seen["listed"] = [f"{x['topic']}[{x['partition']}]" for x in rows]
        seen["consumed"] = json.loads(st.stdout)["partitions"]
        return seen["listed"] and seen["listed"] == seen["consumed"]

    try:
        try:
            wait_for(settled, 60, "mtga to consume what offset-checker lists", every=0.5)
        except AssertionError as e:
            if "timed out" not in str(e):
                raise  # else said below, with what each side showed
        if not m.alive():
            out = m.output()
            assert m.proc.returncode != 0 and "topic_pattern" in out, out
            return
        assert seen["listed"] == [f"{topic}[0]", f"{topic}[1]"], seen
        assert seen["consumed"] == seen["listed"], (
            f"offset-checker lists {seen['listed']} for the pattern; the consumer took {seen['consumed']}")
        want = {uuid_of(topic, p, o) for p, o in where}
        wait_for(lambda: set(uuid_counts(tmp_path / "out", running=True)) == want, 30, "the 50 events written")
    finally:
        if m.alive():
            assert m.term() == 0


# ----------------------------------------------------------------------------- eager assignment


class Host:
    """One ``mtga start`` with its own configuration, state and output folders."""

    def __init__(self, root: Path, bootstrap: str, topic: str, group: str, **over):
        self.name, self.root = root.name, root
        root.mkdir(parents=True)
        write_settings(root / "settings", APPS)
        self.conf = write_conf(root, bootstrap, topic, group, workers=1, **over)
        self.m = Mtga(self.conf)

    @property
    def out(self) -> Path:
        return self.root / "out"

    def log(self) -> str:
        p = self.root / "mtga.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def partitions(self):
        """Partitions assigned now, from ``mtga status --json`` (None when it does not answer)."""
        r = mtga("status", "-c", str(self.conf), "--json")
        if r.returncode != 0:
            return None
        return {int(re.fullmatch(r".*\[(\d+)\]", p).group(1)) for p in json.loads(r.stdout)["partitions"]}

    def stop_if_alive(self) -> None:
        if self.m.alive():
            self.m.kill()


class Feeder(threading.Thread):
    """Produces ``payloads`` round robin over the partitions at about ``rate``/s."""

    def __init__(self, bootstrap: str, topic: str, payloads: list, partitions: int, rate: int):
        super().__init__(daemon=True)
        self.args = (bootstrap, topic, payloads, partitions, rate)
        self.where: list = []
        self.error = None

    def run(self) -> None:
        bootstrap, topic, payloads, partitions, rate = self.args
        try:
            step = max(1, rate // 10)
            for i in range(0, len(payloads), step):
                t0 = time.monotonic()
                self.where += produce_rr(bootstrap, topic, payloads[i:i + step], partitions)
                time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))  # pacing the load, not synchronising
        except Exception as e:  # reported by finish()
            self.error = e

    def finish(self) -> list:
        self.join(60)
        assert not self.is_alive() and self.error is None, self.error
        return self.where


def revoked(log: str, topic: str) -> list[set[int]]:
    """The partitions of each "revoked" line of a log, in order."""
    return [{int(p) for p in re.findall(rf"{re.escape(topic)}\[(\d+)\]", ln)}
            for ln in log.splitlines() if " revoked " in ln]


def test_eager_assignment_two_hosts_every_event_once_across_join_and_leaves(kafka, topic_factory, tmp_path):
    """partition.assignment.strategy: range (not cooperative): the consumer is
    given whole assignments (assign, not incremental_assign) and a rebalance
    revokes every partition of every member first. A joins, B joins while
    events flow, A stops (SIGTERM) while events flow, B stops: every event is
    written once across the two outputs."""
    topic = topic_factory(partitions=4)
    group = f"g-{topic}"
    eager = {"consumer": {**FAST_GROUP, "partition.assignment.strategy": "range"}}
    a = Host(tmp_path / "host-a", kafka, topic, group, kafka=eager, checkpoint={"interval_s": 1})
    b = Host(tmp_path / "host-b", kafka, topic, group, kafka=eager, checkpoint={"interval_s": 1})
    where: list = []
    t0 = time.monotonic()

    def written(*hosts):
        got: Counter = Counter()
        for h in hosts:
            got.update(uuid_counts(h.out, running=True))
        return set(got) >= {uuid_of(topic, p, o) for p, o in where}

    try:
        where += produce_rr(kafka, topic, list(sample.envelopes(2000, app_ids=APPS, seed=61)), 4)
        a.m.start()
        wait_for(lambda: written(a), 60, "host a to write the first 2000 events")
        wait_for(lambda: a.partitions() == {0, 1, 2, 3}, 30, "host a to hold the 4 partitions", every=0.5)

        feed = Feeder(kafka, topic, list(sample.envelopes(3000, app_ids=APPS, seed=62)), 4, rate=1500)
        feed.start()
        b.m.start()  # joins while events flow: a gives up all four, then each gets two
        pa, pb = wait_for(lambda: (x := (a.partitions(), b.partitions())) and x[0] and x[1]
                          and x[0] | x[1] == {0, 1, 2, 3} and not x[0] & x[1] and x, 60,
                          "the 4 partitions split between a and b", every=0.5)
        where += feed.finish()
        wait_for(lambda: written(a, b), 60, "every event so far written by a or b")
        assert revoked(a.log(), topic)[0] == {0, 1, 2, 3}, a.log()  # eager: all of them, not the two b takes

        feed = Feeder(kafka, topic, list(sample.envelopes(3000, app_ids=APPS, seed=63)), 4, rate=1500)
        feed.start()
        wait_for(lambda: len(feed.where) > 500, 30, "the third feed under way")
        b_revoked = len(revoked(b.log(), topic))
        assert a.m.term() == 0, a.m.output()
        a_final = {p: o for (t, p), o in stored_offsets(a.root / "state").items() if p in pa}
        wait_for(lambda: b.partitions() == {0, 1, 2, 3}, 60, "host b to take a's partitions", every=0.5)
        assert revoked(b.log(), topic)[b_revoked:][:1] == [pb], b.log()  # b gave up its own two first
        where += feed.finish()
        wait_for(lambda: written(a, b), 60, "every event written by a or b")
        assert b.m.term() == 0, b.m.output()
    finally:
        a.stop_if_alive()
        b.stop_if_alive()

    want = {uuid_of(topic, p, o) for p, o in where}
    ca, cb = uuid_counts(a.out), uuid_counts(b.out)
    both = ca + cb
    repeated = {u: c for u, c in both.items() if c > 1}
    print(f"\neager: a {sorted(pa)}, b {sorted(pb)}; {len(want)} events, a wrote {sum(ca.values())}, "
          f"b {sum(cb.values())}, {len(repeated)} repeated; {time.monotonic() - t0:.1f}s")
    assert len(want) == 8000 and set(both) == want and not repeated
    assert ca and cb  # both hosts wrote
    # b went on with a's partitions where a's final checkpoint left them
    resumed = {int(p): int(o) for p, o in re.findall(rf"assigned {re.escape(topic)}\[(\d+)\] from group offset (\d+)",
                                                       b.log()) if int(p) in pa}
    assert resumed == a_final, (resumed, a_final)


# ----------------------------------------------------------------------------- SIGHUP

HUP_LINE = "SIGHUP: every app's settings are checked again before the next batch"


def metadata(prefix: str) -> str:
    return json.dumps({"event_name": {"prefix": prefix}, "account_id": "role_id",
                       "time": {"field": "mtime", "unit": "s", "time_zone": "+08:00"}})


def test_sighup_rechecks_settings_before_the_next_batch_and_mtga_keeps_running(kafka, topic_factory, tmp_path):
    """SIGHUP (whose default action ends a process) is caught: mtga logs it,
    goes on, and the next batch is transformed with the settings on disk.

    Settings are also checked again on their own, at most every 2 s per app.
    Each round therefore uses an app nothing has used before: its event A loads
    its settings (the app's last check, after the round began), its metadata
    changes, SIGHUP, and its event B must show the change. A round over in
    under 2 s rules the 2 s check out: B's new settings came from the signal."""
    topic = topic_factory(partitions=1)
    settings = write_settings(tmp_path / "settings", (24,))
    log = tmp_path / "mtga.log"
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", workers=1)
    producer = Producer({"bootstrap.servers": kafka, "linger.ms": 0})

    def send(app: int) -> str:
        got = []
        producer.produce(topic, next(sample.envelopes(1, app_ids=(app,))), partition=0,
                         on_delivery=lambda err, msg: got.append((err, msg.offset())))
        assert producer.flush(30) == 0 and got[0][0] is None, got
        return uuid_of(topic, 0, got[0][1])

    def line(u: str) -> dict:
        def find():
            for ln in output_lines(tmp_path / "out", running=True):
                d = json.loads(ln)
                if d["#uuid"] == u:
                    return d
        return wait_for(find, 30, f"the line of event {u}", every=0.02)

    def hup_lines() -> int:
        return log.read_text().count(HUP_LINE) if log.exists() else 0

    m = Mtga(conf).start()
    try:
        assert line(send(24))["#event_name"] == "t_log_item"  # running: its signal handlers are set
        rounds = []
        for k in range(8):
            app = 900 + k
            meta = settings / f"metadata.{app}.json"
            meta.write_text(metadata("old_"))
            t0 = time.monotonic()
            assert line(send(app))["#event_name"] == "old_log_item"
            tmp = settings / f".metadata.{app}.json.new"
            tmp.write_text(metadata(f"hup{k}_"))
            os.replace(tmp, meta)
            os.kill(m.proc.pid, signal.SIGHUP)
            wait_for(lambda: hup_lines() == k + 1 or not m.alive(), 30, f"the SIGHUP line number {k + 1}",
                     every=0.02)
            assert m.alive(), f"SIGHUP ended mtga (exit {m.proc.wait(30)}): {m.output()}"
            assert line(send(app))["#event_name"] == f"hup{k}_log_item"
            rounds.append(round(time.monotonic() - t0, 2))
            if sum(t < 2.0 for t in rounds) >= 2:
                break
        print(f"\nSIGHUP rounds (seconds from the app's first load to its changed line): {rounds}")
        assert sum(t < 2.0 for t in rounds) >= 2, rounds
        assert m.alive()
    finally:
        rc = m.term()
    assert rc == 0, m.output()  # ended by SIGTERM, cleanly: no SIGHUP ended it
    assert hup_lines() == len(rounds)
    assert "Traceback" not in log.read_text()


# ----------------------------------------------------------------------------- daemon file modes


def test_daemon_writes_files_0640_in_folders_0750_and_keeps_state_0700(kafka, topic_factory, tmp_path):
    """``mtga start --daemon`` sets umask 0027: output files (opened 0644) are
    0640, the folders it creates 0750, whatever the umask of whoever started
    it (here 0022, the usual one); the state folder stays 0700."""
    topic = topic_factory(partitions=2)
    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}")
    before = os.umask(0o022)
    try:
        r = mtga("start", "--daemon", "-c", str(conf))
    finally:
        os.umask(before)
    assert r.returncode == 0, r.stderr
    pid = int(re.search(r"pid (\d+)", r.stdout).group(1))
    state, out = tmp_path / "state", tmp_path / "out"
    try:
        where = produce(kafka, topic, list(sample.envelopes(300, app_ids=APPS)))
        want = {uuid_of(topic, p, o) for p, o in where}
        wait_for(lambda: set(uuid_counts(out, running=True)) == want, 60, "the 300 events written")

        def mode(p: Path) -> str:
            return oct(p.stat().st_mode & 0o777)

        files = sorted(out.rglob("log.*"))
        assert sorted(f.parent.name for f in files) == ["24", "25", "26"]
        assert {str(f.relative_to(out)): mode(f) for f in files} == \
            {str(f.relative_to(out)): "0o640" for f in files}
        assert {d.name: mode(d) for d in out.iterdir()} == {a: "0o750" for a in ("24", "25", "26")}
        assert mode(out) == "0o750"
        assert mode(state) == "0o700"
    finally:
        sp = mtga("stop", "-c", str(conf), timeout=90)
    assert sp.returncode == 0 and f"mtga stopped (pid {pid})" in sp.stdout, sp.stdout + sp.stderr
    assert pid_gone(pid)
    assert mode(state) == "0o700"
    assert max(uuid_counts(out).values()) == 1
