"""`shipper tail` end to end against the real broker, as a real process:
20 files written at once, graceful and hard stops, status, reload, flags."""

import json
import os
import signal
import socket
import threading
import time
from collections import Counter, defaultdict

import pytest

from offsets import FilePositions, StateDB
from support.cli import run_cli
from support.shipper import (ShipperProc, Writer, all_delivered, by_writer, fds_on, join_all, line, lines_of, parse,
                             read_topic, same_inode_file, status, topic_total, wait_for, write_conf)

PATTERN = r'^(?P<log_name>[a-z][a-z0-9_]*?)(?:[.-]\d[\d-]*)?\.log$'

pytestmark = pytest.mark.kafka


def test_twenty_files_written_concurrently_arrive_exactly_once_in_order(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=3)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[
        {"paths": [str(logs / "*.log")], "exclude": ["*.gz"], "topic": topic, "app_id": 24,
         "log_name_pattern": PATTERN}])
    # half the files exist before the start, half appear while it runs
    names = [f"log_g{i:02d}.log" for i in range(20)]
    for name in names[:10]:
        (logs / name).write_bytes(b"".join(line(name, n) + b"\n" for n in range(100)))
    (logs / "old.log.gz").write_bytes(b"not a log line\n")
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        sh.wait_log("watching ")  # inotify is on
        writers = [Writer(logs / name, name, 3000 if i < 10 else 3100, start_at=100 if i < 10 else 0, burst=40,
                          pause=0.003) for i, name in enumerate(names)]
        t0 = time.monotonic()
        for w in writers:
            w.start()
        join_all(writers)
        files = [logs / n for n in names]
        wait_for(lambda: all_delivered(state, files), 60, "every file delivered (shipper status)")
        took = time.monotonic() - t0
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    log = sh.log()
    assert "Traceback" not in log
    assert "old.log.gz" not in log  # excluded

    msgs = read_topic(kafka, topic)
    per_path = defaultdict(list)
    for m in msgs:
        per_path[m.headers["path"]].append(m)
    assert set(per_path) == {str(f) for f in files}
    total = 0
    for f in files:
        want = lines_of(f)
        got = per_path[str(f)]
        # in Kafka order, exactly the file's lines at exactly their offsets
        assert [(int(m.headers["offset"]), m.value) for m in got] == want, f
        assert len({m.partition for m in got}) == 1  # one file, one partition
        assert {m.headers["file"] for m in got} == {got[0].headers["file"]}  # a stable identity
        for m in got:
            h = m.headers
            assert (h["app_id"], h["log_name"], h["host"]) == ("24", f.name.split(".")[0], socket.gethostname())
        total += len(want)
    assert total == 20 * 3100 == len(msgs)
    print(f"\n20 files, {total} lines written concurrently and shipped in {took:.1f}s; "
          f"{len(msgs)} messages in Kafka, each line exactly once, in order")


def _three_writers(logs, count, pause, until):
    return [Writer(logs / f"log_s{i}.log", f"s{i}", count, burst=20, pause=pause, until=until) for i in range(3)]


def _positions(state):
    with StateDB(state / "db", "shipper", read_only=True) as db:
        return {p.path: p.offset for p in FilePositions(db).all()}


def test_sigterm_mid_stream_then_restart_loses_and_repeats_nothing(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=3)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_item"}])
    stopped = threading.Event()
    writers = _three_writers(logs, 6000, 0.01, until=stopped)  # about 3 s, and on until the stop
    for w in writers:
        w.start()
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        wait_for(lambda: topic_total(kafka, topic) > 2000, 30, "lines reaching Kafka")
        assert any(w.is_alive() for w in writers), "writers finished too early for a mid-stream stop"
        assert sh.stop(signal.SIGTERM) == 0
        stopped.set()
        stopped_at = _positions(state)
        in_kafka = topic_total(kafka, topic)
        sh2 = ShipperProc(conf, tmp_path / "shipper2.log").start()
        join_all(writers)
        files = [w.path for w in writers]
        wait_for(lambda: all_delivered(state, files), 60, "every file delivered after the restart")
        assert sh2.stop() == 0
    finally:
        stopped.set()
        sh.kill_if_alive()
        sh2.kill_if_alive() if "sh2" in locals() else None
    assert "resuming" in sh2.log()
    assert "stopped:" in sh.log()
    got = by_writer(read_topic(kafka, topic))
    for w in writers:
        assert w.count >= 6000 and got[w.tag] == list(range(w.count)), f"{w.tag}: lost or repeated lines"
    print(f"\nSIGTERM with {in_kafka} lines in Kafka (positions {sorted(stopped_at.values())}); after the restart "
          f"{sum(len(v) for v in got.values())} lines, none lost, none repeated")


def test_sigkill_mid_stream_repeats_only_the_unacknowledged_window(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=3)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_item"}],
        checkpoint_interval_s=1)
    killed = threading.Event()
    writers = _three_writers(logs, 8000, 0.008, until=killed)  # about 3 s, and on until the kill
    for w in writers:
        w.start()
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        # positions saved for every file, and the files still growing
        wait_for(lambda: os.path.exists(state / "db" / "CURRENT") and len(_positions(state)) == 3
                 and min(_positions(state).values()) > 0, 30, "positions saved for the three files")
        wait_for(lambda: topic_total(kafka, topic) > 3000, 30, "lines reaching Kafka")
        assert all(w.is_alive() for w in writers), "writers finished too early for a mid-stream kill"
        assert sh.stop(signal.SIGKILL) == -signal.SIGKILL
        killed.set()
        stored = _positions(state)  # what the killed process had saved
        sh2 = ShipperProc(conf, tmp_path / "shipper2.log").start()
        join_all(writers)
        files = [w.path for w in writers]
        wait_for(lambda: all_delivered(state, files), 60, "every file delivered after the restart")
        assert sh2.stop() == 0
    finally:
        killed.set()
        sh.kill_if_alive()
        sh2.kill_if_alive() if "sh2" in locals() else None
    msgs = read_topic(kafka, topic)
    dups_total = 0
    for w in writers:
        mine = [m for m in msgs if m.headers["path"] == str(w.path)]
        offsets = [int(m.headers["offset"]) for m in mine]
        count = Counter(offsets)
        want = [off for off, _ in lines_of(w.path)]
        assert set(count) == set(want), f"{w.tag}: lines lost"
        dups = sorted(off for off, k in count.items() if k > 1)
        assert all(k <= 2 for k in count.values()), f"{w.tag}: a line came more than twice"
        # a repeated line lies at or after the position saved before the kill
        start = stored.get(str(w.path), 0)
        assert all(off >= start for off in dups), f"{w.tag}: a line before the saved position {start} repeated"
        # and the repeats are one window, right after the saved position
        if dups:
            assert dups == [off for off in want if dups[0] <= off <= dups[-1]]
            assert dups[0] == min(off for off in want if off >= start)
        # the content is the file's, line by line
        assert sorted(set(zip(offsets, (m.value for m in mine)))) == lines_of(w.path)
        dups_total += len(dups)
        print(f"\n{w.tag}: saved position at the kill {start}, {len(want)} lines, {len(dups)} repeated")
    print(f"SIGKILL: {len(msgs)} messages for {sum(len(lines_of(w.path)) for w in writers)} lines; "
          f"{dups_total} duplicates, all from the unacknowledged window after the saved positions")


def test_status_reads_the_positions_while_tail_runs(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    f = logs / "log_login.log"
    f.write_bytes(b"".join(line("st", n) + b"\n" for n in range(500)))
    r = run_cli("shipper", "status", "--state-dir", str(state))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no shipper state" in r.stderr, r.stderr
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 7, "log_name_pattern": PATTERN}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        wait_for(lambda: all_delivered(state, [f]), 30, "the file delivered")
        (row,) = status(state)
        size = f.stat().st_size
        assert row["path"] == str(f) and row["delivered"] == size and row["size"] == size
        assert row["percent"] == 100.0 and time.time() - row["updated_at"] < 60
        msgs = read_topic(kafka, topic)
        assert row["identity"] == msgs[0].headers["file"]
        with open(f, "ab") as fh:
            fh.write(line("st", 500) + b"\n" + b'{"partial": ')  # an incomplete last line stays behind
        wait_for(lambda: status(state)[0]["delivered"] == size + len(line("st", 500)) + 1, 30, "the new line")
        (row,) = status(state)
        assert row["size"] == row["delivered"] + len(b'{"partial": ') and row["percent"] < 100
        table = run_cli("shipper", "status", "-c", str(conf))
        assert table.returncode == 0 and str(f) in table.stdout and row["identity"] in table.stdout
        assert table.stdout.startswith("shipper is running (pid ") and f"Kafka at {kafka} reachable" in table.stdout
        assert sh.stop() == 0
        stopped = run_cli("shipper", "status", "-c", str(conf))
        assert stopped.returncode == 1 and stopped.stdout.startswith("shipper is not running (stopped at ")
    finally:
        sh.kill_if_alive()
    assert topic_total(kafka, topic) == 501


def test_reload_adds_and_removes_inputs_and_keeps_the_last_good_config(kafka, topic_factory, tmp_path):
    ta, tb = topic_factory(partitions=1), topic_factory(partitions=1)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    state = tmp_path / "state"
    inp_a = {"paths": [str(a / "*.log")], "topic": ta, "app_id": 1, "log_name": "la"}
    inp_b = {"paths": [str(b / "*.log")], "topic": tb, "app_id": 2, "log_name": "lb"}
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[inp_a])
    (a / "x.log").write_bytes(line("a", 0) + b"\n")
    (b / "y.log").write_bytes(line("b", 0) + b"\n")
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        wait_for(lambda: topic_total(kafka, ta) == 1, 30, "a's first line")
        # add input b by editing the file: picked up without a restart
        write_conf(conf, bootstrap=kafka, state=state, inputs=[inp_a, inp_b])
        wait_for(lambda: topic_total(kafka, tb) == 1, 30, "b's first line after the reload")
        assert "configuration reloaded: 2 input(s), 1 added, 0 removed" in sh.log()
        # a broken file is refused, the running configuration stays
        conf.write_text("inputs: [{paths: [], topic: 'bad topic'}]\n")
        sh.wait_log("configuration not reloaded")
        with open(b / "y.log", "ab") as fh:
            fh.write(line("b", 1) + b"\n")
        wait_for(lambda: topic_total(kafka, tb) == 2, 30, "b still shipped under the last good config")
        # remove input a, by SIGHUP this time
        write_conf(conf, bootstrap=kafka, state=state, inputs=[inp_b])
        sh.proc.send_signal(signal.SIGHUP)
        sh.wait_log("no input wants")
        with open(a / "x.log", "ab") as fh:
            fh.write(line("a", 1) + b"\n")
        with open(b / "y.log", "ab") as fh:
            fh.write(line("b", 2) + b"\n")
        wait_for(lambda: topic_total(kafka, tb) == 3, 30, "b's third line")
        wait_for(lambda: all_delivered(state, [b / "y.log"]), 30, "b's position saved")
        assert sh.alive()
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    assert topic_total(kafka, ta) == 1, "a line of a removed input was shipped"
    log = sh.log()
    assert "configuration not reloaded, keeping the running one: " in log and "inputs[0]" in log


def test_start_at_end_and_long_lines(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    old = logs / "old.log"
    old.write_bytes(b"".join(line("old", n) + b"\n" for n in range(100)) + b'{"half":')
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_x", "start_at": "end",
         "max_line_bytes": 1000}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        sh.wait_log("start_at=end")
        long_line = b'{"long": "' + b"z" * 5000 + b'"}'
        with open(old, "ab") as fh:  # completes the half line, then more
            fh.write(b' 1}\n' + long_line + b"\n" + line("old", 100) + b"\n")
        new = logs / "new.log"  # appears later: read from its beginning
        new.write_bytes(line("new", 0) + b"\n")
        wait_for(lambda: topic_total(kafka, topic) == 4, 30, "4 lines")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    msgs = read_topic(kafka, topic)
    vals = sorted(m.value for m in msgs)
    assert vals == sorted([b'{"half": 1}', long_line[:1000], line("old", 100), line("new", 0)])
    cut = next(m for m in msgs if m.value == long_line[:1000])
    base = old.stat().st_size - len(long_line) - 1 - len(line("old", 100)) - 1
    assert int(cut.headers["offset"]) == base
    assert f"line cut: {old} at offset {base} is {len(long_line)} bytes" in sh.log()


def test_cli_mistakes_are_one_line(tmp_path, kafka):
    r = run_cli("shipper", "tail", "--path", str(tmp_path / "*.log"), "--topic", "t",
                env={"KAFKA_BOOTSTRAP_SERVERS": None})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--app-id, --log-name" in r.stderr, r.stderr
    r = run_cli("shipper", "tail", "-c", str(tmp_path / "missing.yml"))
    assert r.returncode == 2 and "file not found" in r.stderr and "Traceback" not in r.stderr
    state = tmp_path / "st"
    args = ("tail", "--path", str(tmp_path / "*.log"), "--topic", "t", "--app-id", "1", "--log-name", "x",
            "--state-dir", str(state), "--bootstrap-servers", kafka)
    import subprocess

    from support.shipper import EXE
    first_log = tmp_path / "first.log"
    with open(first_log, "wb") as err:
        first = subprocess.Popen([str(EXE), *args], stderr=err)
    try:
        wait_for(lambda: (state / "db" / "CURRENT").exists(), 30, "the first shipper's state")
        # and running, its signal handlers set (they come after the state is opened: a SIGTERM before would end it)
        wait_for(lambda: "shipper starting" in first_log.read_text() or first.poll() is not None, 30,
                 "the first shipper running")
        r = run_cli("shipper", *args)
        assert r.returncode == 1 and "in use by another process" in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert oct(state.stat().st_mode & 0o777) == "0o700"
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0


def test_a_line_kafka_refuses_stops_the_shipper_cleanly_and_loses_nothing(kafka, tmp_path):
    """A line bigger than the topic's max.message.bytes is refused by the broker.
    The shipper stops with exit code 1 and one clear error line (no traceback),
    its position stays before the refused line; once max_line_bytes is lowered,
    a restart ships the rest, the long line cut, nothing lost."""
    import base64
    import uuid

    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"small_{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka})
    # max.message.bytes bounds a (compressed) record batch
    admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "20000"})])[topic].result(30)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    f = logs / "log_big.log"
    big = base64.b64encode(os.urandom(45000))  # 60 KB that snappy cannot shrink below 20000 bytes
    f.write_bytes(b"".join(b'{"n": %d}\n' % n for n in range(50)) + big + b"\n"
                  + b"".join(b'{"n": %d}\n' % n for n in range(50, 100)))
    big_at = f.read_bytes().index(big)
    inp = {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 1, "log_name": "big"}
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[inp])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        assert sh.proc.wait(60) == 1
    finally:
        sh.kill_if_alive()
    log = sh.log()
    assert "Traceback" not in log
    fatal = [ln for ln in log.splitlines() if "ERROR shipper.publisher: fatal Kafka producer error" in ln]
    assert len(fatal) == 1 and "too large" in fatal[0], log
    (row,) = status(state)  # saved at the stop
    assert row["path"] == str(f) and row["delivered"] <= big_at  # never past the refused line

    inp["max_line_bytes"] = 4000
    write_conf(conf, bootstrap=kafka, state=state, inputs=[inp])
    sh2 = ShipperProc(conf, tmp_path / "shipper2.log").start()
    try:
        wait_for(lambda: all_delivered(state, [f]), 30, "the file delivered after the restart")
        assert sh2.stop() == 0
    finally:
        sh2.kill_if_alive()
    vals = [m.value for m in read_topic(kafka, topic)]
    assert big[:4000] in vals and big not in vals
    numbered = Counter(json.loads(v)["n"] for v in vals if v.startswith(b'{"n"'))
    assert set(numbered) == set(range(100))
    # repeats only of lines at or after the position saved before the refusal
    first_after = f.read_bytes()[:row["delivered"]].count(b"\n")  # lines before the saved position
    assert all(n >= first_after for n, k in numbered.items() if k > 1)
    print(f"\nrefused line: shipper stopped with exit 1 at position {row['delivered']} (refused line at {big_at}); "
          f"after the fix {len(vals)} messages, {sum(k - 1 for k in numbered.values())} repeated")


def test_a_new_file_is_read_within_a_second_by_inotify(kafka, topic_factory, tmp_path):
    """With the periodic rescan 30 s away, only the inotify watch can find new
    files: in the watched folder, and (with `**`) in a sub-folder made later."""
    from datetime import datetime

    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, rescan_interval_s=30, inputs=[
        {"paths": [str(logs / "**" / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_new"}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    delays = []
    try:
        sh.wait_log("watching ")  # inotify is on
        targets = [logs / "a.log", logs / "b.log", logs / "day1" / "c.log", logs / "day1" / "deeper" / "d.log"]
        for i, f in enumerate(targets):
            f.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.time()
            f.write_bytes(line("new", i) + b"\n")
            wait_for(lambda: topic_total(kafka, topic) == i + 1, 30, f"the line of {f.name}")
            in_kafka = time.time() - t0
            stamp = next(ln for ln in sh.log().splitlines() if f"reading {f} (" in ln)[:23]
            read_after = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp() - t0
            delays.append((f.name, round(read_after, 3), round(in_kafka, 3)))
            assert read_after < 1.0, delays
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    print(f"\nnew files (name, s until read, s until in Kafka): {delays}")


def test_a_full_producer_queue_waits_for_room_and_loses_nothing(kafka, topic_factory, tmp_path, refused_port):
    """librdkafka's own queue (queue.buffering.max.messages: 50) far below a read
    chunk (about 1,600 lines): produce() raises BufferError in the middle of every
    chunk. First with no broker to drain it: the shipper waits, a SIGTERM stops it
    cleanly (exit 0, nothing acknowledged, nothing saved past that). Then with the
    broker: the line that met the full queue is produced again, each file arrives
    exactly once, in order, and the waits are logged and counted."""
    import kafkalocal
    from support.shipper import scrape

    topic = topic_factory(partitions=3)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    files = [logs / f"log_q{i}.log" for i in range(3)]
    for i, f in enumerate(files):
        f.write_bytes(b"".join(line(f"q{i}", n) + b"\n" for n in range(4000)))
    inp = [{"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_q"}]
    small = {"queue.buffering.max.messages": 50, "linger.ms": 5}
    nowhere = f"127.0.0.1:{refused_port}"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=nowhere, state=state, shutdown_timeout_s=1,
                      kafka={"bootstrap_servers": nowhere, "producer": small}, inputs=inp)
    sh = ShipperProc(conf, tmp_path / "shipper1.log").start()
    try:
        sh.wait_log("producer queue full (")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    assert all(r["delivered"] == 0 for r in status(state))

    port = kafkalocal.free_port()
    write_conf(conf, bootstrap=kafka, state=state, kafka={"bootstrap_servers": kafka, "producer": small},
               metrics={"enabled": True, "port": port}, inputs=inp)
    sh = ShipperProc(conf, tmp_path / "shipper2.log").start()
    try:
        wait_for(lambda: all_delivered(state, files), 60, "every file delivered through a 50-line queue")
        m = wait_for(lambda: (x := scrape(port))[("shipper_lines_acked_total", ())] == 12000 and x, 30,
                     "12000 lines acknowledged (metrics)")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    full = m[("shipper_producer_queue_full_total", ())]
    assert full > 0 and "producer queue full (" in sh.log()
    msgs = read_topic(kafka, topic)
    for f in files:
        got = [(int(x.headers["offset"]), x.value) for x in msgs if x.headers["path"] == str(f)]
        assert got == lines_of(f), f"{f.name}: lost, repeated or out of order"
    assert len(msgs) == 12000
    print(f"\nproducer queue of 50 lines: 12000 lines in Kafka, each once and in order; {full:.0f} waits for room")



def test_a_private_file_system_gives_a_freed_inode_to_the_next_file(private_fs):
    """What same_inode_file counts on, checked on its own: on the private_fs
    file system, a file made after another was deleted gets the deleted file's
    inode, every time; while the deleted file is still open, it does not."""
    logs = private_fs("logs").path
    for i in range(50):
        a = logs / f"a{i}.log"
        a.write_bytes(b"x" * 1000)
        ino = a.stat().st_ino
        a.unlink()
        b = same_inode_file(logs, ino, b"y\n", f"b{i}.log")
        assert b.stat().st_ino == ino
        b.unlink()
    a = logs / "held.log"
    a.write_bytes(b"x\n")
    ino = a.stat().st_ino
    with open(a, "rb"):
        a.unlink()
        with pytest.raises(AssertionError, match=f"not {ino}"):
            same_inode_file(logs, ino, b"y\n", "b.log")
    assert same_inode_file(logs, ino, b"y\n", "b.log").stat().st_ino == ino


def test_a_new_file_on_a_reused_inode_is_read_from_its_beginning(kafka, topic_factory, tmp_path, private_fs):
    """A file's position is stored; the file is deleted and a new file, other
    content and longer than that position, gets the same inode. The stored position
    belongs to the old content: the new file is read from offset 0. Once while the
    shipper is stopped, once while it runs (the old file's position still stored).
    The logs are on a file system of their own, where the new file surely gets the
    old one's inode (on a shared one, another process may take it first)."""
    import kafkalocal
    from support.shipper import scrape

    topic = topic_factory(partitions=1)
    logs = private_fs("logs").path
    state = tmp_path / "state"
    port = kafkalocal.free_port()
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, rotate_wait_s=0.5,
                      metrics={"enabled": True, "port": port},
                      inputs=[{"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_i"}])
    a = logs / "a.log"
    a.write_bytes(b"".join(line("a", n) + b"\n" for n in range(300)))
    ino = a.stat().st_ino
    sh = ShipperProc(conf, tmp_path / "shipper1.log").start()
    try:
        wait_for(lambda: all_delivered(state, [a]), 30, "a.log delivered")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    (row,) = status(state)
    a.unlink()
    b = same_inode_file(logs, ino, b"".join(line("b", n) + b"\n" for n in range(600)), "b.log")
    assert b.stat().st_size > row["delivered"] > 0

    sh = ShipperProc(conf, tmp_path / "shipper2.log").start()
    try:
        wait_for(lambda: all_delivered(state, [b]), 30, "b.log delivered")
        assert f"reading {b} (" in sh.log() and "new file (its inode held another file before)) from offset 0" \
            in sh.log(), sh.log()
        b.unlink()  # read to its end, closed, dropped; its position stays stored
        wait_for(lambda: (x := scrape(port))[("shipper_files_tracked", ())] == 0 and x, 30, "b.log let go")
        wait_for(lambda: not fds_on(sh.proc.pid, b), 30, "b.log closed (its inode free again)")
        assert [r["path"] for r in status(state)] == [str(b)]
        c = same_inode_file(logs, ino, b"".join(line("c", n) + b"\n" for n in range(900)), "c.log")
        wait_for(lambda: all_delivered(state, [c]), 30, "c.log delivered")
        assert sh.log().count("new file (its inode held another file before)) from offset 0") == 2, sh.log()
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    msgs = read_topic(kafka, topic)
    for tag, n in (("a", 300), ("b", 600), ("c", 900)):
        got = [parse(m.value)[1] for m in msgs if parse(m.value)[0] == tag]
        assert got == list(range(n)), f"{tag}: lost, repeated or out of order"
    print(f"\nreused inode {ino}: a.log (300 lines), then b.log (600) and c.log (900) on the same inode, "
          f"each read from offset 0; {len(msgs)} messages, each line once")
