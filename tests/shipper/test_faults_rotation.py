"""Rotation faults for `shipper tail`: a rotation storm, files renamed away before
any scan found them, a rotation while the shipper is dead, rotated files refused
by a new cluster; and the glob matching they rest on. Real broker, real
processes; each test bounded in time. The figures (lines in, out, duplicated,
lost) are printed for the record."""


import os
import re
import signal
import threading
import time
import zlib
from collections import Counter

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

import kafkalocal
from support.shipper import (MARK, ShipperProc, Writer, all_delivered, join_all, line, lines_of, read_topic, report,
                             scrape, status, topic_markers, topic_total, wait_for, write_conf)

pytestmark = pytest.mark.kafka



class StormWriter(threading.Thread):
    """``rate`` lines/s into ``path`` for ``seconds``; ``rotations`` times, evenly
    spread over the lines (every ``seconds / (rotations + 1)`` s at that rate),
    the file is renamed to ``<path>.<k>`` (outside the glob), a few more lines go
    into the renamed file (the server has not reopened yet), then a new file is
    created. The rotations are counted in lines, not in seconds, so a writer
    held up for a moment (a busy machine) makes them all the same, sooner after
    one another."""

    def __init__(self, path, tag, rate, seconds, rotations):
        super().__init__(daemon=True)
        self.path, self.tag, self.rate, self.seconds = path, tag, rate, seconds
        self.total = rate * seconds
        self.at = [self.total * k // (rotations + 1) for k in range(1, rotations + 1)]  # lines before each
        self.n = 0
        self.rotations = 0
        self.error = None
        self.late = 0

    def run(self):
        try:
            f = open(self.path, "ab", buffering=0)
            t0 = time.monotonic()
            while self.n < self.total:
                due = min(self.total, int((time.monotonic() - t0) * self.rate))
                if self.rotations < len(self.at):
                    due = min(due, max(self.n, self.at[self.rotations]))
                if due > self.n:
                    f.write(b"".join(line(self.tag, i) + b"\n" for i in range(self.n, due)))
                    self.n = due
                if self.rotations < len(self.at) and self.n >= self.at[self.rotations]:
                    self.rotations += 1
                    os.rename(self.path, f"{self.path}.{self.rotations}")
                    late = min(self.total, self.n + 20)  # written after the rename, before the reopen
                    f.write(b"".join(line(self.tag, i) + b"\n" for i in range(self.n, late)))
                    self.late += late - self.n
                    self.n = late
                    f.close()
                    f = open(self.path, "ab", buffering=0)
                    continue  # more may be due already
                time.sleep(0.005)
            f.close()
        except BaseException as e:
            self.error = e
            raise



@pytest.mark.slow
def test_rotation_storm_100_per_minute_at_5000_lines_per_second(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=3)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, rotate_wait_s=1, inputs=[
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_storm"}])
    w = StormWriter(logs / "storm.log", "storm", rate=5000, seconds=60, rotations=100)  # 100 in the minute
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        sh.wait_log("watching ")  # inotify is on
        t0 = time.monotonic()
        w.start()
        w.join(120)
        assert not w.is_alive() and w.error is None, w.error
        took = time.monotonic() - t0
        # every rotated file read to its end and closed, the current one delivered
        sh.wait_log("rotated or deleted) at offset", count=w.rotations, timeout=60)
        wait_for(lambda: all_delivered(state, [w.path]), 60, "the current file delivered")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    seen, wrong = topic_markers(kafka, topic)
    assert not wrong, f"{len(wrong)} messages are not a line as written: {wrong[:3]}"
    missing = sorted(n for n in range(w.total) if ("storm", n) not in seen)
    assert set(seen) <= {("storm", n) for n in range(w.total)}
    out = sum(seen.values())
    report(f"rotation storm ({w.rotations} rotations in {took:.0f}s, {w.late} lines written after a rename)",
           w.total, out, len(seen), len(missing))
    assert w.rotations == 100 and w.total == 300_000
    assert not missing, f"{len(missing)} lines lost, first {missing[:10]}"
    log = sh.log()
    assert log.count("rotated: ") >= w.rotations and "Traceback" not in log



def test_files_renamed_away_before_any_scan_found_them_are_read(kafka, topic_factory, tmp_path):
    """Rotations within milliseconds of a file's creation: the file is renamed to
    a name outside the glob before the shipper ever saw it at its matching name.
    The rename event names both paths, so the shipper still reads it."""
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, rotate_wait_s=1,
                      rescan_interval_s=30, inputs=[
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_fast"}])
    p = logs / "fast.log"
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    n = 0
    try:
        sh.wait_log(f"watching {logs}")  # inotify is on: what follows is seen by its events alone
        for k in range(60):  # 60 files of 10 lines, each renamed away at once or after 5 ms
            with open(p, "ab") as f:
                f.write(b"".join(line("fast", i) + b"\n" for i in range(n, n + 10)))
            n += 10
            if k % 2:
                time.sleep(0.005)
            os.rename(p, logs / f"fast.log.{k}")
        wait_for(lambda: topic_total(kafka, topic) >= n, 30, f"{n} lines in Kafka")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    msgs = read_topic(kafka, topic)
    seen = Counter(int(MARK.match(m.value).group(2)) for m in msgs)
    lost = n - len(set(seen) & set(range(n)))
    report("files renamed away before a scan found them (60 files)", n, len(msgs), len(seen), lost,
           found_by_their_rename=sh.log().count("rotated before it was found"))
    assert lost == 0 and len(msgs) == n
    assert {m.headers["path"] for m in msgs} == {str(p)}  # the lines carry the name they were written under



def test_rotation_while_the_shipper_is_dead_loses_nothing(kafka, topic_factory, tmp_path):
    """SIGKILL under load; while the shipper is down the server writes on, the file
    is rotated (renamed outside the glob) and a new one started. At the restart the
    renamed file is found by its inode next to its old name and read from its
    saved position: every line arrives, repeats only from the unsaved window."""
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_dead"}])
    p = logs / "dead.log"
    killed = threading.Event()
    w = Writer(p, "dead", 3000, burst=20, pause=0.02, until=killed)  # about 3 s, and on until the kill
    sh = ShipperProc(conf, tmp_path / "shipper1.log").start()
    try:
        sh.wait_log("watching ")  # inotify is on
        w.start()
        wait_for(lambda: (r := status(state)) and r[0]["delivered"] > 0, 30, "a position saved")
        assert w.is_alive(), "the writer finished before the kill"
        assert sh.stop(signal.SIGKILL) == -signal.SIGKILL
        killed.set()
        (saved,) = status(state)
        join_all([w])
        n = w.count
        with open(p, "ab") as f:  # still written while the shipper is dead
            f.write(b"".join(line("dead", k) + b"\n" for k in range(n, n + 500)))
        os.rename(p, logs / "dead.log.1")
        p.write_bytes(b"".join(line("dead", k) + b"\n" for k in range(n + 500, n + 800)))
        total = n + 800
        sh = ShipperProc(conf, tmp_path / "shipper2.log").start()
        sh.wait_log("rotated or deleted) at offset")
        wait_for(lambda: all_delivered(state, [p]), 30, "the new file delivered")
        assert sh.stop() == 0
    finally:
        killed.set()
        sh.kill_if_alive()
    log = sh.log()
    assert f"rotated while stopped: {p} is now {logs / 'dead.log.1'}; reading it from offset " in log, log
    msgs = read_topic(kafka, topic)
    seen = Counter(int(MARK.match(m.value).group(2)) for m in msgs)
    lost = total - len(set(seen) & set(range(total)))
    report("rotation while the shipper was dead (SIGKILL)", total, len(msgs), len(seen), lost,
           saved_position_at_the_kill=saved["delivered"])
    assert lost == 0 and set(seen) == set(range(total)) and total >= 3800
    assert f"from offset {saved['delivered']} to its end" in log
    # repeats: only lines of the old file after its saved position (sent before the kill, not yet saved)
    old_lines = {int(MARK.match(v).group(2)): off for off, v in lines_of(logs / "dead.log.1")}
    dups = [n for n, k in seen.items() if k > 1]
    assert max(seen.values()) <= 2 and all(old_lines[n] >= saved["delivered"] for n in dups)



def test_lines_of_a_rotated_file_refused_by_a_new_cluster_are_sent_again(tmp_path):
    """Kafka goes away; meanwhile d.log is written and rotated to names outside
    the glob (d.log.1, d.log.2, ...), and a.log, still at its path, grows too.
    Kafka comes back as a NEW cluster on the same port: the topic is created
    again, with 3 partitions instead of 24, and what was queued for the partitions
    that are gone is refused (Local: Unknown partition). Every refused line is
    sent again until Kafka takes it, whatever happened to its file's name: each
    line written during the outage is in Kafka, counted line by line (repeats are
    allowed by at least once, and counted)."""
    port = kafkalocal.free_port()
    first = kafkalocal.Cluster(tmp_path / "k1")
    second = kafkalocal.Cluster(tmp_path / "k2")
    bootstrap = first.start(brokers=1, port=port).bootstrap
    topic = "refused_rotated"
    sh = None
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=24, replication_factor=1)])[topic].result(timeout=30)
        del admin  # its client would complain on stderr through the outage
        logs = tmp_path / "logs"
        logs.mkdir()
        state = tmp_path / "state"
        mport = kafkalocal.free_port()
        conf = write_conf(tmp_path / "shipper.yml", bootstrap=bootstrap, state=state, rotate_wait_s=1,
                          metrics={"enabled": True, "port": mport},
                          inputs=[{"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_d"}])
        a = logs / "a.log"
        a.write_bytes(b"".join(line("a", n) + b"\n" for n in range(100)))
        sh = ShipperProc(conf, tmp_path / "shipper.log").start()
        wait_for(lambda: topic_total(bootstrap, topic) == 100, 30, "a.log's first lines in Kafka")

        first.stop()
        sh.wait_log("Kafka unreachable", timeout=30)
        d = logs / "d.log"
        gens = refused_gens = 0
        a_n = 100
        # generations of 1,000 lines, each renamed out of the glob, until three of them are on
        # partitions the new cluster will not have (the key, the file identity, picks the
        # partition: crc32 % partitions, librdkafka's consistent_random)
        while refused_gens < 3:
            assert gens < 12, "no file identity fell on a partition above 2"
            d.write_bytes(b"".join(line("d", n) + b"\n" for n in range(gens * 1000, gens * 1000 + 1000)))
            with open(a, "ab") as f:
                f.write(b"".join(line("a", n) + b"\n" for n in range(a_n, a_n + 100)))
            a_n += 100
            wait_for(lambda: scrape(mport)[("shipper_producer_queue_lines", ())] >= (gens + 1) * 1100, 30,
                     f"generation {gens} of d.log read and queued")
            ident = re.findall(rf"reading {re.escape(str(d))} \((\S+), new file\)", sh.log())[gens]
            refused_gens += zlib.crc32(ident.encode()) % 24 >= 3
            gens += 1
            os.rename(d, logs / f"d.log.{gens}")
            sh.wait_log("was renamed or deleted; reading it to its end", count=gens)
        t_renamed = time.monotonic()
        while time.monotonic() - t_renamed < 4:  # the outage goes on past rotate_wait_s (1 s)
            assert sh.alive(), sh.log()[-3000:]
            time.sleep(0.2)

        second.start(brokers=1, port=port)  # a new cluster: the topic is created again when asked for
        sh.wait_log(f"Kafka refused lines of {d} (", timeout=90)
        # the shipper's own view: nothing behind, nothing waiting for Kafka
        wait_for(lambda: (x := scrape(mport))[("shipper_bytes_behind", ())] == 0
                 and x[("shipper_producer_queue_lines", ())] == 0, 120, "0 bytes behind, 0 lines waiting")
        seen, wrong = topic_markers(bootstrap, topic)
        assert sh.stop() == 0
    finally:
        if sh is not None:
            sh.kill_if_alive()
        first.stop()
        second.stop()
    assert not wrong, wrong[:3]
    d_lines = {n for (tag, n) in seen if tag == "d"}
    a_lines = {n for (tag, n) in seen if tag == "a"}
    total = gens * 1000 + a_n - 100  # written during the outage; a.log's first 100 went to the old cluster
    out = sum(seen.values())
    report(f"rotated files refused by a new cluster ({gens} generations of d.log, {refused_gens} refused)", total,
           out, len(seen), total - len(seen), lines_of_d_in_kafka=len(d_lines), lines_of_a_in_kafka=len(a_lines))
    assert len(d_lines) == gens * 1000, f"{gens * 1000 - len(d_lines)} of the {gens * 1000} lines of d.log never " \
                                        f"reached Kafka"
    assert d_lines == set(range(gens * 1000)) and a_lines >= set(range(100, a_n))
    log = sh.log()
    assert "Traceback" not in log



def test_glob_match_agrees_with_glob(tmp_path):
    import glob as globmod

    from shipper.files.globs import glob_match

    for rel in ("a.log", "b.txt", ".hidden.log", "d1/x.log", "d1/d2/y.log", "d1/.h/z.log", "e/f.log.1"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x\n")
    files = [str(q) for q in tmp_path.rglob("*") if q.is_file()]
    patterns = ["*.log", "**/*.log", "d1/**/*.log", "*/*.log", "d1/d?/[xy].log", "e/*.log*", "**", ".*.log",
                "d1/**", "a.log"]
    for pat in patterns:
        full = str(tmp_path / pat)
        want = {f for f in globmod.glob(full, recursive=True) if os.path.isfile(f)}
        got = {f for f in files if glob_match(full, f)}
        assert got == want, pat
