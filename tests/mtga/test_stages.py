import pytest

"""mtga's stages one at a time, in this process, against the real broker and
real RocksDB files: the checkpoint's order, pausing by partition, the retry
back-off, and what a bug (not a full disk) does."""

import errno
import logging
import os
import signal
import threading

from confluent_kafka import Consumer, TopicPartition

from mulog import sample
from offsets import FailedEvent, FailureQueue, StateDB
from sink.counters import counters
from support.mtga import produce, stored_offsets, wait_for, write_conf, write_settings

pytestmark = pytest.mark.kafka

APPS = (24, 25, 26)


def service(tmp_path, kafka, topic, **over):
    from sink import config
    from sink.pipeline.service import Service

    write_settings(tmp_path / "settings", APPS)
    return Service(config.load(write_conf(tmp_path, kafka, topic, f"g-{topic}", workers=1, **over)))


def run_until(svc, cond, timeout, what):
    """Run the loop in this (main) thread until ``cond()`` or the timeout; a
    watcher thread stops it."""
    done = threading.Event()

    def watch():
        try:
            wait_for(lambda: cond() or done.is_set(), timeout, what)
        finally:
            svc.request_stop()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        svc.run()
    finally:
        done.set()
        t.join(timeout + 5)


def test_a_bug_while_delivering_ends_mtga_non_zero_with_one_traceback(kafka, topic_factory, tmp_path, caplog,
                                                                     monkeypatch):
    """Not a full disk: an unexpected exception is not retried for ever as a
    stall. It is logged once with its traceback, the process's exit code is 1,
    and no offset moved past what was written before it."""
    from sink import config
    from sink.ops import runtime
    from sink.pipeline.writer import LogBusWriter

    topic = topic_factory(partitions=1)
    produce(kafka, topic, list(sample.envelopes(50, app_ids=APPS)))
    write_settings(tmp_path / "settings", APPS)
    s = config.load(write_conf(tmp_path, kafka, topic, f"g-{topic}", workers=1))

    def broken(self, app, bufs, n):
        raise TypeError("a bug in the writer")

    monkeypatch.setattr(LogBusWriter, "write_blob", broken)
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    # a stall that never ends would hang here: SIGTERM after 60 s makes it return 0 instead of 1
    timer = threading.Timer(60, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        with caplog.at_level(logging.INFO):
            rc = runtime.run_foreground(s)
    finally:
        timer.cancel()
        for sig, h in old.items():
            signal.signal(sig, h)
    assert rc == 1
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "a bug in the writer" in str(tracebacks[0].exc_info[1])
    assert "cannot store a batch anywhere durable" not in caplog.text
    assert stored_offsets(tmp_path / "state") == {}


def test_a_full_disk_is_not_a_bug_it_stalls_and_goes_on(kafka, topic_factory, tmp_path, monkeypatch):
    """The other side of the rule: a storage error (ENOSPC from the output and
    the failure queue both) pauses and rewinds; once space returns every event
    is written, once."""
    from sink.pipeline.writer import LogBusWriter

    topic = topic_factory(partitions=2)
    where = produce(kafka, topic, list(sample.envelopes(400, app_ids=APPS)))
    svc = service(tmp_path, kafka, topic, checkpoint={"interval_s": 0.2})
    real_write, real_push = LogBusWriter.write_blob, FailureQueue.push_many
    full = {"on": True, "refused": 0}

    def write(self, app, bufs, n):
        if full["on"]:
            full["refused"] += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, app, bufs, n)

    def push(self, events, *a, **k):
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_push(self, events, *a, **k)

    monkeypatch.setattr(LogBusWriter, "write_blob", write)
    monkeypatch.setattr(FailureQueue, "push_many", push)

    def progress():
        if full["on"] and svc.pausing.stalls.value >= 2:
            full["on"] = False  # space returns
        return not full["on"] and stored_offsets(tmp_path / "state") == {
            (topic, p): max(o for q, o in where if q == p) + 1 for p in (0, 1)}

    run_until(svc, progress, 90, "every offset stored after the disk came back")
    assert svc.pausing.stalls.value >= 2 and full["refused"] >= 2
    lines = [line for f in (tmp_path / "out").rglob("log.*") for line in f.read_bytes().splitlines()]
    assert len(lines) == 400 and len(set(lines)) == 400


def test_a_stall_pauses_only_the_batchs_partitions(kafka, topic_factory, tmp_path):
    """Pausing holds the failed batch's partitions back and seeks them to the
    batch's first offsets; a partition of a later batch is only sought back;
    the others go on being consumed, and a held partition resumes from its
    rewind point once its wait is over."""
    topic = topic_factory(partitions=2)
    for p in (0, 1):
        _produce_to(kafka, topic, p, 20)
    svc = service(tmp_path, kafka, topic)
    src = svc.intake
    try:
        src.open()
        got = wait_for(lambda: [m for m in src.consume(100, 0.5) if m.error() is None] or None, 30, "first messages")
        wait_for(lambda: len(src.assigned) == 2, 30, "both partitions assigned")
        got += _drain(src)
        assert {m.partition() for m in got} == {0, 1}
        svc.pausing.hold({(topic, 0): 3}, {(topic, 1): 7}, "No space left on device")
        assert set(svc.pausing.paused) == {(topic, 0)} and not svc.pausing.rewind
        after = wait_for(lambda: _drain(src) or None, 30, "partition 1 again")
        assert {m.partition() for m in after} == {1} and after[0].offset() == 7  # sought back, not paused
        assert len(after) == 13

        def resumed():
            svc.pausing.tick()
            return [m for m in _drain(src) if m.partition() == 0] or None

        again = wait_for(resumed, 30, "partition 0 after its wait")
        assert again[0].offset() == 3 and not svc.pausing.paused
    finally:
        src.close()
        svc.pool.close()
        svc.db.close()


def _produce_to(kafka, topic, partition, n):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": kafka})
    for i in range(n):
        p.produce(topic, b"p%d-%d" % (partition, i), partition=partition)
    assert p.flush(30) == 0


def _drain(src):
    out = []
    while True:
        msgs = [m for m in src.consume(100, 0.5) if m.error() is None]
        if not msgs:
            return out
        out += msgs


def test_a_failed_group_commit_is_made_again_at_the_next_checkpoint(kafka, topic_factory, tmp_path):
    """The group refuses a commit from outside it while it has a member (a real
    refusal by the broker): the offsets stay stored locally, the commit is made
    again at each checkpoint, and goes through once the group takes it."""
    from sink.pipeline.checkpoint import OffsetCheckpoint
    from sink.pipeline.intake import Intake

    topic = topic_factory(partitions=1)
    group = f"g-{topic}"
    from sink import config

    write_settings(tmp_path / "settings", APPS)
    s = config.load(write_conf(tmp_path, kafka, topic, group))
    member = Consumer({"bootstrap.servers": kafka, "group.id": group, "session.timeout.ms": 6000})
    member.subscribe([topic])
    wait_for(lambda: (member.poll(0.2), member.assignment())[1], 30, "the member's assignment")
    with StateDB(tmp_path / "db", "mtga") as db:
        inst = counters()
        ck = OffsetCheckpoint(db, lambda: None, True, inst)
        src = Intake(s, ck, inst, lambda keys, lost: None)
        src.consumer = src.new_consumer()
        key = (topic, 0)
        src.assigned = frozenset({key})
        ck.start(key, 0, None, None)
        ck.advance([_It(topic, 0, 41)], src.assigned)
        try:
            assert ck.save(src.commit, sync_commit=True)
            assert ck.stored == {key: 42} and ck.committed == {} and ck.commit_failures.value == 1
            assert ck.save(src.commit, sync_commit=True)  # nothing new stored: the commit is made again
            assert ck.committed == {} and ck.commit_failures.value == 2
            member.close()  # the group is empty now: it takes commits from outside
            wait_for(lambda: ck.save(src.commit, sync_commit=True) and ck.committed == {key: 42}, 60,
                     "the commit made again to go through")
            got = src.consumer.committed([TopicPartition(topic, 0)], timeout=10)
            assert got[0].offset == 42
        finally:
            src.close()


class _It:
    def __init__(self, topic, partition, offset):
        self.topic, self.partition, self.offset = topic, partition, offset


def test_checkpoint_order_flush_then_store_then_commit(tmp_path):
    """A flush that fails stores and commits nothing; a store that fails commits
    nothing; offsets only move forward."""
    from sink.pipeline.checkpoint import OffsetCheckpoint
    from sink.pipeline.writer import SinkError

    with StateDB(tmp_path / "db", "mtga") as db:
        steps = []
        fail = {"flush": True}

        def flush():
            steps.append("flush")
            if fail["flush"]:
                raise SinkError("sink_write: fsync failed (EIO)")

        def commit(offsets, sync):
            steps.append(("commit", dict(offsets)))
            return []

        ck = OffsetCheckpoint(db, flush, True, counters())
        key = ("t", 0)
        ck.start(key, 10, None, None)
        ck.advance([_It("t", 0, 10), _It("t", 0, 19)], {key})
        assert not ck.save(commit) and steps == ["flush"] and ck.po.get("t", 0) is None
        fail["flush"] = False
        assert ck.save(commit) and steps[1:] == ["flush", ("commit", {key: 20})]
        assert ck.po.get("t", 0) == 20 and ck.local_offsets == {key: 20}
        ck.advance([_It("t", 0, 5)], {key})  # the consumer went back: the offset stays
        assert ck.next == {key: 20} and ck.went_back.value == 1
        ck.advance([_It("t", 1, 5)], {key})  # not assigned: nothing moves
        assert ck.next == {key: 20}


def test_output_fsync_never_stores_offsets_without_fsyncing(kafka, topic_factory, tmp_path, monkeypatch):
    """``output.fsync: never`` leaves the files to the operating system: a
    checkpoint stores offsets without one fsync of an output file (here every
    fsync of one fails, which would stop checkpoints with ``checkpoint``)."""
    import sink.pipeline.writer

    topic = topic_factory(partitions=1)
    where = produce(kafka, topic, list(sample.envelopes(100, app_ids=APPS)))
    calls = []

    def no_fsync(fd):
        calls.append(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(sink.pipeline.writer.os, "fsync", no_fsync)
    svc = service(tmp_path, kafka, topic, output={"fsync": "never"}, checkpoint={"interval_s": 0.2})
    run_until(svc, lambda: stored_offsets(tmp_path / "state").get((topic, 0)) == where[-1][1] + 1, 60,
              "the offsets stored")
    assert calls == [] and svc.writer.fsync_error is None
    assert sum(f.read_bytes().count(b"\n") for f in (tmp_path / "out").rglob("log.*")) == 100


def test_retry_back_off_doubles_per_attempt_up_to_the_cap(tmp_path):
    from sink.config import RetryConf
    from sink.pipeline.retry import Retrier
    from sink.pipeline.workers import Pool
    from sink.pipeline.writer import LogBusWriter

    write_settings(tmp_path / "settings", APPS)
    with StateDB(tmp_path / "db", "mtga") as db:
        fq = FailureQueue(db)
        fq.push(FailedEvent(b'{"headers": {"app_id": 99, "log_name": "x"}, "logs": {}}', "no_settings: x"),
                sync=True)
        pool = Pool(tmp_path / "settings", 1)
        r = Retrier(fq, pool, LogBusWriter(tmp_path / "out"), RetryConf(initial_backoff_s=5, max_backoff_s=30, batch=10),
                    counters(), lambda: None)
        now = fq.peek(1)[0].not_before
        waits = []
        try:
            for _ in range(5):
                assert r.round(now) == 0 and r.again.value == len(waits) + 1
                e = fq.peek(1)[0]
                waits.append(e.not_before - now)
                assert fq.due(now, 10) == []  # not due again before its wait is over
                now = e.not_before
        finally:
            pool.close()
        assert waits == [5, 10, 20, 30, 30] and e.attempts == 5 and e.reason.startswith("no_settings")


def test_status_on_the_control_thread_during_an_assignment(kafka, topic_factory, tmp_path):
    """The control socket's threads answer from the snapshot the loop publishes:
    a status taken while a large assignment is being applied on the loop's
    thread never sees (nor trips over) a set changing under it."""
    from sink.ops import runtime

    topic = topic_factory(partitions=1)
    svc = service(tmp_path, kafka, topic)
    status = runtime.control_handlers(svc)["status"]
    errors, answers = [], []
    done = threading.Event()

    def ask():
        while not done.is_set():
            try:
                answers.append(status({}))
            except Exception as e:  # noqa: BLE001 - what the test is about
                errors.append(repr(e))

    t = threading.Thread(target=ask)
    try:
        svc.intake.consumer = svc.intake.new_consumer()
        t.start()
        parts = [TopicPartition(topic, p) for p in range(10000)]
        svc.intake._on_assign(svc.intake.consumer, parts)
        svc.snapshot = svc._take_snapshot()
        wait_for(lambda: len(answers[-1]["partitions"]) == 10000 if answers else False, 30, "the new snapshot")
    finally:
        done.set()
        t.join(30)
        svc.intake.close()
        svc.pool.close()
        svc.db.close()
    assert errors == [] and len(answers) > 10
