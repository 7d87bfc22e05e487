"""offsets/: the RocksDB-backed stores, on real files, with real processes."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from offsets import (FailedEvent, FailureQueue, FilePosition, FilePositions, PartitionOffsets, StateDB, StateError,
                     StateLocked, StateMissing)
from shipper.files.identity import file_identity, fingerprint
from support.cli import SCRIPTS



def test_partition_offsets_roundtrip_and_batch(tmp_path):
    with StateDB(tmp_path / "s", "mtga") as db:
        po = PartitionOffsets(db)
        assert po.get("a", 0) is None
        po.put_many({("a", 0): 10, ("a", 1): 20, ("b.c", 0): 2**40})
        po.put("a", 0, 11)
        assert po.all() == {("a", 0): 11, ("a", 1): 20, ("b.c", 0): 2**40}
        po.forget([("a", 1)])
        assert po.get("a", 1) is None
    with StateDB(tmp_path / "s", "mtga") as db:
        assert PartitionOffsets(db).all() == {("a", 0): 11, ("b.c", 0): 2**40}


def test_file_positions(tmp_path):
    f = tmp_path / "x.log"
    f.write_bytes(b"hello\n" * 100)
    st = f.stat()
    n, crc = fingerprint(str(f))
    assert n == 600
    with StateDB(tmp_path / "s", "shipper") as db:
        fp = FilePositions(db)
        p = FilePosition(st.st_dev, st.st_ino, n, crc, str(f), 300, time.time())
        fp.put(p)
        got = fp.get(st.st_dev, st.st_ino)
        assert got == p
        assert file_identity(got.dev, got.ino, got.fp_crc).endswith(f"{crc:08x}")
        assert fp.all() == [p]
        fp.forget(st.st_dev, st.st_ino)
        assert fp.get(st.st_dev, st.st_ino) is None


def test_file_positions_keep_a_file_name_that_is_not_utf8(tmp_path):
    f = tmp_path / os.fsdecode(b"bad_\xff\xfe.log")
    f.write_bytes(b"hello\n")
    st = f.stat()
    with StateDB(tmp_path / "s", "shipper") as db:
        fp = FilePositions(db)
        p = FilePosition(st.st_dev, st.st_ino, 6, 0, str(f), 6, time.time())
        fp.put(p)
        assert fp.get(st.st_dev, st.st_ino) == p and fp.all() == [p]
        assert os.stat(fp.all()[0].path).st_ino == st.st_ino  # the same file, found by its stored name


def test_fingerprint_tells_a_reused_inode_apart(tmp_path):
    a = tmp_path / "a"
    a.write_bytes(b"first file\n")
    b = tmp_path / "b"
    b.write_bytes(b"other file\n")
    assert fingerprint(str(a)) != fingerprint(str(b))
    # same prefix over the stored length: same file grown
    n, crc = fingerprint(str(a))
    with open(a, "ab") as fh:
        fh.write(b"more\n")
    assert fingerprint(str(a), n) == (n, crc)


def test_failure_queue_fifo_ack_requeue_clear(tmp_path):
    with StateDB(tmp_path / "s", "mtga") as db:
        fq = FailureQueue(db)
        for i in range(10):
            fq.push(FailedEvent(b"payload-%d" % i, f"{'bad_json' if i % 2 else 'no_settings'}: case {i}",
                                "topic", i % 3, 100 + i, headers=[("app_id", b"24")]))
        assert fq.count() == 10
        head = fq.peek(3)
        assert [e.payload for e in head] == [b"payload-0", b"payload-1", b"payload-2"]
        assert head[0].headers == [("app_id", b"24")]
        assert (head[0].topic, head[0].partition, head[0].offset, head[0].attempts) == ("topic", 0, 100, 0)
        assert fq.count_by_reason() == {"bad_json": 5, "no_settings": 5}
        fq.ack([head[0].seq, head[1].seq])
        assert fq.count() == 8
        seq = fq.requeue(head[2], "sink_write: disk full", not_before=time.time() + 5)
        assert fq.count() == 8
        tail = list(fq)[-1]
        assert (tail.seq, tail.attempts, tail.payload, tail.reason) == (seq, 1, b"payload-2", "sink_write: disk full")
        assert tail.first_failed <= tail.last_failed
        assert fq.clear(reason="bad_json") == 4
        assert fq.count() == 4
        assert fq.count_by_reason() == {"no_settings": 3, "sink_write": 1}
    with StateDB(tmp_path / "s", "mtga") as db:
        fq = FailureQueue(db)
        assert fq.count() == 4 == len(list(fq))
        assert fq.clear() == 4
        assert fq.count() == 0 and list(fq) == []


def test_payload_is_snappy_compressed_on_disk(tmp_path):
    import snappy

    with StateDB(tmp_path / "s", "mtga") as db:
        fq = FailureQueue(db)
        big = b'{"field": "' + b"a" * 100_000 + b'"}'
        fq.push(FailedEvent(big, "x: y"))
        raw = [v for k, v in db.scan(b"fq/e/")][0]
        assert len(raw) < 10_000
        assert big not in raw and snappy.compress(big) in raw  # the payload field on disk is snappy's
        assert fq.peek(1)[0].payload == big


def test_second_writer_gets_a_clear_error_and_readers_work(tmp_path):
    path = tmp_path / "s"
    writer = subprocess.Popen([sys.executable, str(SCRIPTS / "state_writer.py"), str(path), "1"],
                              stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(50):
            writer.stdout.readline()
        with pytest.raises(StateLocked) as ei:
            StateDB(path, "mtga")
        assert "in use by another process" in str(ei.value)
        ro = StateDB(path, "mtga", read_only=True)
        assert FailureQueue(ro).count() > 0
        assert PartitionOffsets(ro).get("t", 0) is not None
        ro.close()
    finally:
        writer.kill()
        writer.wait()


def test_read_only_open_of_missing_state(tmp_path):
    with pytest.raises(StateMissing):
        StateDB(tmp_path / "none", "mtga", read_only=True)


def test_role_mismatch_is_refused(tmp_path):
    StateDB(tmp_path / "s", "shipper").close()
    with pytest.raises(StateError) as ei:
        StateDB(tmp_path / "s", "mtga")
    assert "holds shipper state" in str(ei.value)


def test_state_folder_is_private(tmp_path):
    parent = tmp_path / "state"
    parent.mkdir(mode=0o755)
    os.chmod(parent, 0o755)
    db = StateDB(parent / "db", "mtga")
    assert (parent.stat().st_mode & 0o777) == 0o700
    assert ((parent / "db").stat().st_mode & 0o777) == 0o700
    assert any("0700" in n for n in db.notes)
    db.close()


def test_sigkill_writer_loses_nothing_and_duplicates_nothing(tmp_path):
    """Kill the writer with SIGKILL at random moments, 15 times; after each
    reopen every returned push is there (minus returned acks), none twice, the
    O(1) count matches the entries, and partition offsets moved atomically."""
    path = tmp_path / "s"
    rnd = random.Random(7)
    pushed, acked, ack_intents = set(), set(), set()
    last_offsets = -1
    for run in range(15):
        start = (run + 1) * 1_000_000
        p = subprocess.Popen([sys.executable, str(SCRIPTS / "state_writer.py"), str(path), str(start)],
                             stdout=subprocess.PIPE, text=True)
        lines = []
        want = rnd.randint(20, 2000)
        for _ in range(want):
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
        os.kill(p.pid, signal.SIGKILL)
        rest = p.stdout.read()  # whatever it printed before dying
        p.wait()
        for line in lines + rest.splitlines(keepends=True):
            if not line.endswith("\n"):
                continue  # a half-printed line: the operation may or may not have returned
            kind, n = line.split()
            if kind == "P":
                pushed.add(int(n))
            elif kind == "A":
                acked.add(int(n))
            elif kind == "a":
                ack_intents.add(int(n))
            elif kind == "O":
                last_offsets = max(last_offsets, int(n))
        with StateDB(path, "mtga") as db:
            fq = FailureQueue(db)
            entries = list(fq)
            ids = [e.offset for e in entries]
            assert len(ids) == len(set(ids)), "an entry is there twice"
            present = set(ids)
            missing = (pushed - acked) - present - ack_intents
            assert not missing, f"run {run}: {len(missing)} returned pushes lost"
            assert not (present & acked), "an acknowledged removal came back"
            assert fq.count() == len(entries)
            offs = PartitionOffsets(db).all()
            if last_offsets >= 0:
                vals = {offs[("t", p)] for p in range(3)}
                assert len(vals) == 1, f"partition offsets not updated atomically: {offs}"
                assert vals.pop() >= last_offsets
            # entries the writer pushed but did not live to report are allowed
            unreported = present - pushed
            pushed |= unreported
    assert len(pushed) > 1000


def test_store_recovers_after_disk_full(small_disk):
    """RocksDB refuses every write after its log could not be appended, even when
    space returns; the store reopens itself and goes on, with nothing lost."""
    from offsets import StateWriteError

    disk = small_disk("fs", "2m")
    db = StateDB(disk.path / "db", "mtga")
    fq = FailureQueue(db)
    po = PartitionOffsets(db)
    pushed = 0
    with pytest.raises(StateWriteError) as ei:
        while True:
            fq.push(FailedEvent(os.urandom(2000), "x: y"))
            pushed += 1
    assert "No space left on device" in str(ei.value)
    with pytest.raises(StateWriteError):
        po.put("t", 0, 1)
    disk.resize("64m")
    po.put("t", 0, 1)
    fq.push(FailedEvent(b"after", "x: y"))
    assert fq.count() == pushed + 1 == len(list(fq))
    db.close()
    with StateDB(disk.path / "db", "mtga") as db2:
        assert FailureQueue(db2).count() == pushed + 1
        assert PartitionOffsets(db2).get("t", 0) == 1


def test_failure_queue_keeps_headers_without_a_value(tmp_path):
    """Kafka allows a header with no value; such an event must come back from the queue."""
    with StateDB(tmp_path / "s", "mtga") as db:
        fq = FailureQueue(db)
        fq.push(FailedEvent(b"{broken", "invalid_json: x", "t", 0, 1, headers=[("trace", None), ("app_id", b"24")]))
        (e,) = list(fq)
        assert e.headers == [("trace", None), ("app_id", b"24")]
        assert fq.count_by_reason() == {"invalid_json": 1}
        assert fq.clear(reason="invalid_json") == 1


def test_due_entries_are_found_by_their_due_time_without_reading_the_others(tmp_path, monkeypatch):
    import offsets.failures as failures

    with StateDB(tmp_path / "s", "mtga") as db:
        fq = FailureQueue(db)
        fq.push_many([FailedEvent(b"later %d" % i, "x: y") for i in range(500)], now=2000.0)
        fq.push_many([FailedEvent(b"soon %d" % i, "x: y") for i in range(3)], now=1000.0)
        read = []
        real = failures.snappy.decompress
        monkeypatch.setattr(failures.snappy, "decompress", lambda b: read.append(1) or real(b))
        due = fq.due(1500.0, limit=10)
        assert [e.payload for e in due] == [b"soon 0", b"soon 1", b"soon 2"]
        assert len(read) == 3  # the 500 entries not due were not decompressed
        fq.requeue(due[0], "x: again", not_before=3000.0)
        fq.ack([due[1].seq])
        assert [e.payload for e in fq.due(1500.0, 10)] == [b"soon 2"]
        assert [e.payload for e in fq.due(2500.0, 2)] == [b"soon 2", b"later 0"]
        assert fq.due(5000.0, 1000)[-1].payload == b"soon 0" and len(fq.due(5000.0, 1000)) == 502
        assert fq.clear(reason="x") == 502 and fq.due(5000.0, 10) == []
        assert [k for k, _ in db.scan(b"fq/d/")] == []  # no index key left behind


def test_a_queue_written_before_the_due_index_gets_one(tmp_path):
    from offsets import Batch

    with StateDB(tmp_path / "s", "mtga") as db:
        fq = FailureQueue(db)
        fq.push_many([FailedEvent(b"e%d" % i, "x: y") for i in range(5)], now=100.0)
        b = Batch()  # as an older version left it: entries, no index
        for k, _ in list(db.scan(b"fq/d/")):
            b.delete(k)
        b.delete(b"fq/m/due-index")
        db.write(b)
        assert fq.due(200.0, 10) == []  # without the index nothing is found...
    with StateDB(tmp_path / "s", "mtga") as db:
        assert [e.payload for e in FailureQueue(db).due(200.0, 10)] == [b"e%d" % i for i in range(5)]
