"""Faults for `shipper tail` (and the whole pipeline): a broker SIGKILLed under
load with shipper and mtga running, a rotation storm, lost or corrupt state, a
broken configuration on reload, an open state folder. Real broker, real
processes; each test bounded in time. The figures (lines in, out, duplicated,
lost) are printed for the record."""

import json
import os
import re
import shutil
import signal
import stat
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import mtga_helpers
from conftest import kafkalocal, run_cli
from shipper_helpers import (ShipperProc, Writer, all_delivered, join_all, line, lines_of, read_topic, scrape, status,
                             topic_total, wait_for, write_conf)

pytestmark = pytest.mark.kafka

MARK = re.compile(rb'^\{"w":"([^"]+)","n":(\d+),')


def report(name: str, n_in: int, out: int, distinct: int, lost: int, **more) -> None:
    extra = "".join(f", {k.replace('_', ' ')} {v}" for k, v in more.items())
    print(f"\n{name}: in {n_in}, out {out} ({distinct} distinct), duplicated {out - distinct}, lost {lost}{extra}")


def topic_markers(bootstrap: str, topic: str, timeout: float = 90) -> tuple[Counter, list]:
    """Counter of (writer tag, line number) over every message of ``topic``, and
    the messages whose content is not the line its marker names."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-tests", "enable.auto.commit": False})
    seen: Counter = Counter()
    wrong = []
    try:
        parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
        high = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        done = {p: 0 for p in parts}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        deadline = time.monotonic() + timeout
        while any(done[p] < high[p] for p in parts):
            assert time.monotonic() < deadline, "timed out reading the topic back"
            for m in c.consume(num_messages=10000, timeout=1):
                assert m.error() is None, m.error()
                done[m.partition()] = m.offset() + 1
                v = m.value()
                mk = MARK.match(v)
                if mk is None:
                    wrong.append(v[:80])
                    continue
                tag, n = mk.group(1).decode(), int(mk.group(2))
                if v != line(tag, n):
                    wrong.append(v[:80])
                seen[(tag, n)] += 1
    finally:
        c.close()
    return seen, wrong


# --------------------------------------------------------------- broker killed

PER_WRITER = 37_500


@pytest.mark.slow
def test_broker_sigkill_under_load_with_shipper_and_mtga_nothing_lost(tmp_path):
    """A private one-broker cluster; two game servers write about 3,000 lines/s in
    all for about 25 s; shipper ships them, mtga turns them into LogBus lines. The broker is
    SIGKILLed, stays down 10 s and starts again (same port, same data). Every
    line must reach mtga's output; duplicates (same #uuid) are counted. The
    servers write on until the broker is back, however long the start took."""
    cl = kafkalocal.Cluster(tmp_path / "k")
    bootstrap = cl.start(brokers=1).bootstrap
    sh = m = None
    writers = []
    back = threading.Event()  # the broker started again: the writers may finish
    app_id = 31
    topic = f"mulog_clean_{app_id}"
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=30)
        del admin  # its client would complain on stderr through the outage
        logs = tmp_path / "logs"
        logs.mkdir()
        state = tmp_path / "state"
        port = kafkalocal.free_port()
        conf = write_conf(tmp_path / "shipper.yml", bootstrap=bootstrap, state=state,
                          metrics={"enabled": True, "port": port}, inputs=[
            {"paths": [str(logs / "*.log")], "topic": topic, "app_id": app_id, "log_name": "log_item"}])
        mdir = tmp_path / "mtga"
        mdir.mkdir()
        mtga_helpers.write_settings(mdir / "settings", apps=(app_id,))
        mconf = mtga_helpers.write_conf(mdir, bootstrap, topic, f"g-{topic}", checkpoint={"interval_s": 2},
                                        retry={"initial_backoff_s": 0.5, "max_backoff_s": 2})
        out = mdir / "out"
        sh = ShipperProc(conf, tmp_path / "shipper.log").start()
        m = mtga_helpers.Mtga(mconf).start()
        sh.wait_log("watching ")  # inotify is on
        # two servers, about 1,500 lines/s each, for about 25 s
        writers = [Writer(logs / f"log_k{i}.log", f"k{i}", PER_WRITER, burst=30, pause=0.02, until=back)
                   for i in range(2)]
        for w in writers:
            w.start()
        wait_for(lambda: mtga_helpers.count_lines(out) > 3000, 60, "lines through the whole pipeline")

        cl.stop_node(1, signal.SIGKILL)
        t_kill = time.monotonic()
        written_at_kill = sum(w.written for w in writers)
        sh.wait_log("Kafka unreachable", timeout=30)
        # the metrics show the outage: Kafka down, lines waiting, bytes behind growing
        down = wait_for(lambda: (x := scrape(port))[("shipper_kafka_up", ())] == 0
                        and x[("shipper_producer_queue_lines", ())] > 0 and x, 8, "the outage in the metrics")
        behind = [down[("shipper_bytes_behind", ())]]
        while time.monotonic() - t_kill < 10:  # the outage: both programs must stay up meanwhile
            assert sh.alive(), sh.log()[-3000:]
            assert m.alive(), (mdir / "mtga.log").read_text()[-3000:]
            time.sleep(0.2)
        behind.append(scrape(port)[("shipper_bytes_behind", ())])
        assert behind[-1] > behind[0] > 0, behind
        written_during = sum(w.written for w in writers) - written_at_kill
        cl.start_node(1)
        back.set()
        assert cl.bootstrap() == bootstrap
        t_up = time.monotonic()
        sh.wait_log("Kafka reachable again", timeout=60)
        join_all(writers, timeout=120)
        total = sum(w.count for w in writers)

        def in_output():
            return len({json.loads(x)["#uuid"] for x in mtga_helpers.output_lines(out, running=True)}) >= total

        wait_for(lambda: all_delivered(state, [w.path for w in writers]), 120, "every line in Kafka")
        in_kafka = time.monotonic() - t_up
        after = wait_for(lambda: (x := scrape(port))[("shipper_bytes_behind", ())] == 0 and x, 30, "0 bytes behind")
        assert after[("shipper_kafka_up", ())] == 1 and after[("shipper_producer_queue_lines", ())] == 0
        assert after[("shipper_lines_acked_total", ())] >= total
        wait_for(in_output, 120, "every line in mtga's output", every=1)
        through = time.monotonic() - t_up
        assert sh.stop() == 0
        assert m.term() == 0
        msgs = read_topic(bootstrap, topic)
        fq = mtga_helpers.failure_count(mdir / "state")
    finally:
        back.set()
        for w in writers:
            w.join(1)
        if sh is not None:
            sh.kill_if_alive()
        if m is not None and m.alive():
            m.kill()
        cl.stop()

    # Kafka: every line of each file, by (file, offset)
    by_pos = Counter((mm.headers["file"], int(mm.headers["offset"])) for mm in msgs)
    kafka_marks = Counter(tuple(MARK.match(mm.value).groups()) for mm in msgs)
    assert all(w.count >= PER_WRITER for w in writers)
    want = {(w.tag.encode(), str(n).encode()) for w in writers for n in range(w.count)}
    assert set(kafka_marks) == want, f"{len(want - set(kafka_marks))} lines lost on the way to Kafka"
    # mtga output: every line, a duplicate always with the same #uuid as its original
    rows = [json.loads(x) for x in mtga_helpers.output_lines(out)]
    uuids = Counter(r["#uuid"] for r in rows)
    marker_of = {}
    for r in rows:
        mk = (r["properties"]["w"], r["properties"]["n"])
        assert marker_of.setdefault(r["#uuid"], mk) == mk, "one #uuid for two different lines"
    marks = set(marker_of.values())
    lost = total - len(marks & {(w.tag, n) for w in writers for n in range(w.count)})
    assert fq == 0, f"{fq} events in mtga's failure queue"
    assert len(uuids) == len(marks) == total
    assert lost == 0
    log = sh.log()
    assert "Traceback" not in log
    report("broker SIGKILL 10 s (shipper -> Kafka)", total, len(msgs), len(by_pos), total - len(kafka_marks),
           lines_written_while_down=written_during, bytes_behind_at_restart=int(behind[-1]), s_from_restart_to_all_in_kafka=round(in_kafka, 1))
    report("broker SIGKILL 10 s (Kafka -> mtga output)", total, len(rows), len(uuids), lost,
           failure_queue=fq, s_from_restart_to_all_in_output=round(through, 1))


# --------------------------------------------------------------- rotation storm


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


# ------------------------------------------------------------- state removed


def test_state_removed_while_stopped_rereads_from_the_beginning_and_says_so(kafka, topic_factory, tmp_path):
    """Decision: without its position store the shipper reads existing files from
    their beginning (start_at: beginning, as Filebeat and Vector do), with a
    warning at start that says so. The lines sent again carry the same host, file
    and offset headers, so mtga gives them the same #uuid."""
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    f = logs / "log_r.log"
    f.write_bytes(b"".join(line("r", n) + b"\n" for n in range(500)))
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_r"}])
    sh = ShipperProc(conf, tmp_path / "shipper1.log").start()
    try:
        wait_for(lambda: all_delivered(state, [f]), 30, "the file delivered")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    size1 = f.stat().st_size
    # a restart with the store in place repeats nothing and warns of nothing
    sh = ShipperProc(conf, tmp_path / "shipper2.log").start()
    try:
        sh.wait_log("resuming")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    assert "new position store" not in sh.log()
    shutil.rmtree(state)
    with open(f, "ab") as fh:
        fh.write(b"".join(line("r", n) + b"\n" for n in range(500, 600)))
    sh = ShipperProc(conf, tmp_path / "shipper3.log").start()
    try:
        wait_for(lambda: all_delivered(state, [f]), 30, "the file delivered again")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    warn = [ln for ln in sh.log().splitlines() if "WARNING" in ln and "new position store" in ln]
    assert len(warn) == 1, sh.log()
    assert f"new position store at {state / 'db'} (first start, or the state folder was removed)" in warn[0]
    assert f"1 existing file(s) with content ({f})" in warn[0]
    assert f"1 read from their beginning ({f.stat().st_size} bytes;" in warn[0] and "same #uuid" in warn[0]
    assert "new position store" in (tmp_path / "shipper1.log").read_text()  # the first start said it too
    assert stat.S_IMODE(state.stat().st_mode) == 0o700

    msgs = read_topic(kafka, topic)
    pos = Counter((m.headers["host"], m.headers["file"], int(m.headers["offset"])) for m in msgs)
    marks = Counter(MARK.match(m.value).groups() for m in msgs)
    assert set(marks) == {(b"r", str(n).encode()) for n in range(600)}, "lines lost"
    assert len(pos) == 600, "a line sent again under other headers (it would get another #uuid)"
    again = sorted(off for (_, _, off), k in pos.items() if k == 2)
    assert len(again) == 500 and max(again) < size1 and max(pos.values()) == 2  # exactly the old lines, once more
    report("state folder removed while stopped", 600, len(msgs), len(pos), 600 - len(marks),
           re_read_with_the_same_uuid=len(again))


def test_state_corrupted_while_stopped_refuses_to_start_in_one_line(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    f = logs / "log_c.log"
    f.write_bytes(b"".join(line("c", n) + b"\n" for n in range(100)))
    state = tmp_path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_c"}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        wait_for(lambda: all_delivered(state, [f]), 30, "the file delivered")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    for damage in ("CURRENT", "MANIFEST"):
        broken = tmp_path / f"state_{damage}"
        shutil.copytree(state, broken)
        db = broken / "db"
        if damage == "CURRENT":
            (db / "CURRENT").write_text("MANIFEST-999999\n")
        else:
            (db / (db / "CURRENT").read_text().strip()).write_bytes(b"\x00garbage" * 10)
        before = {p.name: p.read_bytes() for p in db.iterdir() if p.is_file() and not p.name.startswith("LOG")}
        r = run_cli("shipper", "tail", "-c", str(conf), "--state-dir", str(broken), timeout=60)
        assert r.returncode == 1, r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith(f"shipper: cannot open the shipper state at {db}: "), r.stderr
        assert "Move the folder aside to start with empty state." in r.stderr
        after = {p.name: p.read_bytes() for p in db.iterdir() if p.is_file() and not p.name.startswith("LOG")}
        assert after == before, f"{damage}: the damaged store was changed"
        print(f"\nstate {damage} damaged: exit {r.returncode}: {r.stderr.strip()}")
    assert topic_total(kafka, topic) == 100  # nothing was sent by the refused starts


# ------------------------------------------------------------- config reload


def test_config_syntax_error_on_reload_keeps_the_last_good_one(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    f = logs / "log_y.log"
    f.write_bytes(line("y", 0) + b"\n")
    inputs = [{"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_y"}]
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=inputs)
    good = conf.read_text()
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        wait_for(lambda: topic_total(kafka, topic) == 1, 30, "the first line")
        conf.write_text("inputs:\n  - paths: [unclosed\n    topic: x\n")
        sh.wait_log("configuration not reloaded")
        with open(f, "ab") as fh:
            fh.write(line("y", 1) + b"\n")
        wait_for(lambda: topic_total(kafka, topic) == 2, 30, "a line shipped under the last good configuration")
        conf.write_text(good.replace('"log_y"', '"log_y2"'))
        sh.wait_log("configuration reloaded")
        with open(f, "ab") as fh:
            fh.write(line("y", 2) + b"\n")
        wait_for(lambda: topic_total(kafka, topic) == 3, 30, "a line under the repaired configuration")
        assert sh.alive()
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    err = [ln for ln in sh.log().splitlines() if "configuration not reloaded" in ln]
    assert len(err) == 1 and "ERROR" in err[0], err
    assert f"keeping the running one: {conf}: YAML syntax error at line " in err[0], err[0]
    names = [m.headers["log_name"] for m in read_topic(kafka, topic)]
    assert names == ["log_y", "log_y", "log_y2"]


# ------------------------------------------------------------------ security


def test_open_state_folder_is_made_private_and_said(kafka, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[
        {"paths": [str(logs / "*.log")], "topic": "t_private", "app_id": 24, "log_name": "x"}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        sh.wait_log("watching ")  # inotify is on
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "db").stat().st_mode) == 0o700
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    notes = [ln for ln in sh.log().splitlines() if "was open to other users" in ln]
    assert notes == [notes[0]] and f"WARNING shipper: {state}: mode 0755 was open to other users; set to 0700" \
        in notes[0], sh.log()


def test_state_folder_of_another_user_is_refused(kafka, tmp_path):
    """Needs root (as on the CI machines, like the disk-full tests) to give the folder away."""
    assert os.getuid() == 0, "this test gives a folder to another user: run the suite as root"
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 4321, 4321)
    r = run_cli("shipper", "tail", "--path", str(tmp_path / "*.log"), "--topic", "t", "--app-id", "1",
                "--log-name", "x", "--state-dir", str(state), "--bootstrap-servers", kafka)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert f"{state}: owned by uid 4321, not by this user (0); refusing to use it" in r.stderr
    assert not (state / "db").exists()


def test_shell_syntax_in_file_names_lines_and_config_is_only_data(kafka, topic_factory, tmp_path):
    """File names, lines and configuration values with shell syntax travel as
    bytes: nothing is run (tests/test_no_shell.py checks the code for shell use)."""
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    mark = f"pwned_{os.getpid()}"
    name = f"a$(touch {mark}_name);`touch {mark}_tick`.log"
    f = logs / name
    payload = b'{"cmd":"$(touch %s_line); rm -rf /nonexistent | sh"}' % mark.encode()
    f.write_bytes(payload + b"\n")
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=tmp_path / "state", inputs=[
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": f"$(touch {mark}_conf)"}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        wait_for(lambda: all_delivered(tmp_path / "state", [f]), 30, "the line delivered")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    (m,) = read_topic(kafka, topic)
    assert m.value == payload and m.headers["path"] == str(f) and m.headers["log_name"] == f"$(touch {mark}_conf)"
    for folder in (tmp_path, logs, Path.cwd(), Path("/")):
        assert not list(folder.glob(f"{mark}*")), f"a command ran in {folder}"


def test_state_disk_full_keeps_shipping_and_saves_again_when_space_returns(kafka, topic_factory, tmp_path,
                                                                           small_disk):
    """The position store on a nearly full disk: when a save fails the shipper goes
    on shipping (positions are only a bookmark), says so, and saves them again once
    there is space. (The store is created on an almost full disk, so RocksDB cannot
    set space aside for its log beforehand.)"""
    topic = topic_factory(partitions=1)
    disk = small_disk("statefs", "4m")
    filler = disk.path / "filler"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * (4 * 1024 * 1024 - 192 * 1024))  # leave about 192 KiB
    logs = tmp_path / "logs"
    logs.mkdir()
    state = disk.path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, checkpoint_interval_s=0.05,
                      inputs=[{"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_d"}])
    files = [logs / f"log_d{i}.log" for i in range(20)]
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        n = 0
        # many files and frequent saves fill what is left, while lines keep coming
        while "positions not saved" not in sh.log():
            assert n < 200_000, "the store never ran out of space"
            for f in files:
                with open(f, "ab") as fh:
                    fh.write(b"".join(line("d", n + k) + b"\n" for k in range(50)))
                n += 50
            wait_for(lambda: topic_total(kafka, topic) >= n or "positions not saved" in sh.log(), 30,
                     "the lines in Kafka")
        wait_for(lambda: topic_total(kafka, topic) >= n, 30, "every line in Kafka while the store is full")
        assert sh.alive()
        filler.unlink()
        sh.wait_log("positions saved again", timeout=30)
        wait_for(lambda: all_delivered(state, files), 30, "the positions saved after space returned")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    msgs = read_topic(kafka, topic)
    marks = Counter(MARK.match(m.value).groups() for m in msgs)
    assert set(marks) == {(b"d", str(k).encode()) for k in range(n)}
    assert "Traceback" not in sh.log()
    report("position store on a full disk", n, len(msgs), len(marks), n - len(marks))
