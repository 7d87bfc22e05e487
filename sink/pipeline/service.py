"""The mtga pipeline: Kafka -> transform -> LogBus files | failure queue, with
offsets checkpointed to RocksDB and mirrored to the Kafka group.

The stages, each the one owner of its state:

    intake      sink/pipeline/intake.py      the consumer, the partitions assigned, rebalance callbacks
    transform   sink/pipeline/workers.py     worker processes, batches in order (sink/ta/transform.py:
                                             no I/O; its type guard learns from the batches)
    deliver     sink/pipeline/delivery.py    one write per app to the files (sink/pipeline/writer.py) or one
                                             transaction (sink/pipeline/topic_writer.py); failures to the
                                             failure queue (offsets.FailureQueue)
    checkpoint  sink/pipeline/checkpoint.py  next / stored / committed offsets: flush -> store -> commit
    pausing     sink/pipeline/pausing.py     partitions held back after a batch nobody could take
    retry       sink/pipeline/retry.py       failure-queue entries due again

One thread runs them all (it owns the consumer, the writer and the state
database); sink/ops/runtime.py adds signals, the control socket and metrics, which
read the ``snapshot`` this loop publishes, never live state. A batch is
consumed, transformed (up to MAX_INFLIGHT in the workers while the next is
consumed), and delivered in order; only then may its offsets move. A storage
error (a full disk) pauses and rewinds the batch's partitions; anything else
is a bug: it propagates, the offsets stored stay those of delivered batches,
and the process ends non-zero.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from typing import Optional

from confluent_kafka import KafkaError

from mulog.fleet import host_name
from mulog.wire import CARRIER
from mulog.runtime.sdnotify import Notifier
from mulog.runtime.timers import Every
from offsets import Batch, FailureQueue, PropertyTypes, Recovery, StateDB, StateError

from sink.ta.batch import Item, first_offsets
from sink.pipeline.checkpoint import OffsetCheckpoint
from sink.pipeline.delivery import Delivery
from sink.pipeline.marks import Marks
from sink.pipeline.recovery import recover, starting_point
from sink.config import MtgaConfig
from sink.counters import counters
from sink.pipeline.pausing import Pausing
from sink.pipeline.retry import Retrier
from sink.pipeline.snapshot import MtgaSnapshot
from sink.pipeline.intake import Intake
from sink.ta.model import schema_sizes
from sink.ta.typeguard import TypeGuard
from sink.pipeline.workers import Pool
from sink.pipeline.writer import LogBusWriter, SinkError

log = logging.getLogger("mtga")

KEY_FORM = b"2\x1f"
STORAGE_ERRORS = (SinkError, StateError, OSError)  # what stalls a batch; anything else is a bug
SNAPSHOT_S = 0.2  # how often the snapshot other threads read is renewed
LAG_S = 2.0  # how often the partitions' lag is looked at (and a broker probed while Kafka is down)
RETRY_S = 1.0  # how often the failure queue is looked at for entries due again


class Service:
    MAX_INFLIGHT = 2  # batches in the workers while the next one is consumed

    def __init__(self, s: MtgaConfig):
        self.s = s
        c = s.conf
        self.db = StateDB(s.state_dir / "db", "mtga")
        for note in self.db.notes:
            log.warning("%s", note)
        if self.db.created:
            earlier = s.output_dir.exists() and any(s.output_dir.glob("*/*log.*"))
            (log.warning if earlier else log.info)(
                "new state store at %s%s: each partition resumes from the consumer group's committed offset "
                "where it has one, else from auto_offset_reset=%s", s.state_dir / "db",
                " while the output folder already holds files (was the state folder removed?)" if earlier else "",
                c.kafka.auto_offset_reset)
        self.inst = inst = counters()
        self.consumed = inst.events_consumed
        self.fq = FailureQueue(self.db)
        self.types = PropertyTypes(self.db)
        self.guard = TypeGuard(self.types.all())
        self.writer = output_writer(s)
        self.recovered: dict = {}  # what recover() found after an unclean stop
        self.marks = Marks(self.db, c.exactly_once.forget_after_s, inst)
        rec = self.marks.store.recovery()
        if rec is not None and not self.marks.store.clean():
            self.recovered = recover(self.marks, self.fq, s.output_dir, rec)
        starting_point(self.db, self.marks, self.fq, s.output_dir)
        self.marks.store.set_clean(False)  # until a stop's last checkpoint says otherwise
        self.pool = Pool(s.settings_dir, s.workers, uuid=c.transform.uuid, keep_dir=s.state_dir / "settings-kept",
                         guard=self.guard, marks=self.marks.marks, done=self.marks.done)
        self.checkpoint = OffsetCheckpoint(self.db, self.writer.flush, c.checkpoint.sync, inst)
        self.checkpoint.extras += [self.marks.write, self._recovery_record]
        self.intake = Intake(s, self.checkpoint, inst, self._give_up)
        self.delivery = Delivery(self.writer, self.fq, self.guard, self.types, self.marks, inst,
                                 self.checkpoint.failures_queued, lambda: self.intake.consumer.consumer_group_metadata())
        self.pausing = Pausing(self.intake, inst, self._resolve if getattr(self.writer, "transactional", False)
                               else None)
        self.retry = Retrier(self.fq, self.pool, self.writer, c.retry, inst, self.checkpoint.failures_queued,
                             self.delivery.store_types)
        self.inflight: collections.deque = collections.deque()  # (items, workers.Pending), in consumed order
        self.commands: queue.Queue = queue.Queue()
        self.stop_event = threading.Event()
        self.stopping = False
        self.stalled: Optional[str] = None  # why the last batch could not be stored anywhere durable
        self.recheck_settings = False
        self._hup = False
        self.started = time.time()
        self._rate: collections.deque = collections.deque(maxlen=61)  # (monotonic s, consumed): last minute
        self._schema_for: tuple = (-1, {})  # (the guard's changes, schema sizes) for the snapshot
        self.lags: dict = {}
        self.notify = Notifier()  # systemd (Type=notify): READY=1, WATCHDOG=1, STOPPING=1
        self.topics: list[str] = []  # the subscription, once open
        self.snapshot = self._take_snapshot()

    # ------------------------------------------------------------------ loop
    def open(self) -> None:
        """Create the consumer and subscribe (a setting the Kafka client refuses: ConfigError)."""
        self.topics = self.intake.open()

    def run(self) -> None:
        """The loop, until ``request_stop``; the final checkpoint however it ends."""
        c = self.s.conf
        clean = False
        try:
            if not self.topics:
                self.open()
            topics = self.topics
            log.info("consuming %s as group %s from %s; output %s; %d worker(s)", ", ".join(topics),
                     c.kafka.group_id, self.s.bootstrap_servers, self.s.output_dir, self.pool.workers)
            now = time.monotonic()
            ckpt, retry = Every(c.checkpoint.interval_s, now), Every(RETRY_S, now)
            stats, lag, snap = Every(c.stats_interval_s, now), Every(LAG_S, now, first=now), Every(SNAPSHOT_S, now,
                                                                                                  first=now)
            batch = c.kafka.batch_size
            while not self.stop_event.is_set():
                if self.pausing.active:
                    self.pausing.tick()
                # with batches in the workers, poll briefly so their results are written promptly
                msgs = self.intake.consume(batch, 0.02 if self.inflight else 0.2)
                if msgs:
                    self.submit(msgs)
                self._drain()
                self._run_commands()
                if self._hup:
                    self._hup = False
                    self.recheck_settings = True
                    log.info("SIGHUP: every app's settings are checked again before the next batch")
                now = time.monotonic()
                self.notify.watchdog(now)
                if self.intake.contacted and not self.notify.is_ready:
                    self.notify.ready(f"consuming {', '.join(topics)} as group {c.kafka.group_id}")
                if lag.due(now):
                    self.lags = self.intake.lags(self.checkpoint.next)
                    self.intake.probe_if_down()
                if ckpt.due(now):
                    self._drain(everything=True)
                    self.save()
                if retry.due(now):
                    self.retry.round()
                if stats.due(now):
                    self._stats_line()
                if snap.due(now):
                    self._sample(now)
                    self.snapshot = self._take_snapshot()
            clean = True
        finally:
            self.shutdown(clean)

    def request_stop(self, *_) -> None:
        self.stop_event.set()

    def request_recheck(self, *_) -> None:
        self._hup = True  # a signal handler: the loop says it and acts on it

    def shutdown(self, clean: bool = True) -> None:
        """Final checkpoint. After a bug (``clean`` False) the batches in flight
        are dropped unwritten, so the code that failed does not run again; their
        offsets were never stored, so they come again at the next start."""
        log.info("stopping: final checkpoint")
        self.notify.stopping()
        self.stopping = True
        self.snapshot = self._take_snapshot()  # /ready says it stops
        saved = False
        try:
            if not clean:
                self._drop_inflight()
            if self.intake.consumer is not None:
                self._drain(everything=True)
                saved = self.save(sync_commit=True)
                self.intake.close()  # leaves the group; revocation checkpoints again (no-op)
                saved = saved and not self.inflight and self.checkpoint.error is None
            if saved:
                self.marks.store.set_clean(True)  # what was written is all behind the last checkpoint
        finally:
            self._drop_inflight()
            self.pool.close()
            self.writer.close()
            self._stats_line()
            self.db.close()
            self.notify.close()
        log.info("stopped")

    def _recovery_record(self, batch: Batch) -> None:
        """What an unclean stop's next start needs to find what came after this checkpoint."""
        self.marks.store.put_recovery(Recovery(self.writer.lengths(), self.fq.next_seq, time.time_ns()), batch)

    def save(self, sync_commit: bool = False, commit: bool = True) -> bool:
        """A checkpoint (see sink/pipeline/checkpoint.py); with the Kafka output the
        offsets went to the group in each batch's transaction."""
        commit = commit and self.intake.consumer is not None and not getattr(self.writer, "transactional", False)
        return self.checkpoint.save(self.intake.commit if commit else None, sync_commit)

    def _resolve(self, keys) -> dict:
        """The Kafka output after a batch's transaction failed: once the one it may
        have left pending has ended (a new producer), where the group is."""
        self.writer.prepare()
        return self.intake.committed(keys)

    def _give_up(self, keys: list, lost: bool) -> None:
        """Partitions revoked (or lost): everything consumed of them is delivered
        and stored first (committed too, unless the group took them already)."""
        self._drain(everything=True)
        self.save(sync_commit=True, commit=not lost)
        self.checkpoint.forget(keys)
        self.pausing.forget(keys)

    # ------------------------------------------------------------------ batches
    def submit(self, msgs) -> None:
        """Hand a consumed batch to the transform (in order behind those in flight)."""
        items = []
        append = items.append
        pausing = self.pausing
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self.intake.error(err)
                continue
            if pausing.rewind and not pausing.admits((m.topic(), m.partition()), m.offset()):
                continue
            h = m.headers()
            if h is None:
                k = m.key()
                if k is not None and k[:2] == KEY_FORM:  # a shipper line's key form (mulog/wire.py)
                    h = [(CARRIER, k)]
            append(Item(m.value() or b"", h, m.topic(), m.partition(), m.offset()))
        if not items:
            return
        recheck = self.recheck_settings
        self.recheck_settings = False
        self.inflight.append((items, self.pool.submit(items, recheck=recheck)))

    def _drain(self, everything: bool = False) -> None:
        """Deliver transformed batches in order: those ready, one more if too many
        are in flight, or all of them."""
        q = self.inflight
        while q and (everything or q[0][1].ready() or len(q) > self.MAX_INFLIGHT):
            items, pending = q.popleft()
            try:
                self._apply(items, pending)
            finally:
                pending.release()

    def _drop_inflight(self) -> list:
        dropped = []
        while self.inflight:
            items, pending = self.inflight.popleft()
            dropped += items
            pending.discard()  # still collect the workers' replies, in order
        return dropped

    def _apply(self, items, pending) -> None:
        try:
            out = pending.get()
            self.delivery.deliver(items, out)
        except STORAGE_ERRORS as e:  # neither the files nor the failure queue took the batch
            later = self._drop_inflight()  # their events come again after the rewind
            self.stalled = f"cannot store a batch anywhere durable: {e}"
            self.pausing.hold(first_offsets(items), first_offsets(later), self.stalled)
            self.pool.reset_marks()  # the cached marks passed events that come again now
            return
        self.stalled = None
        self.marks.advance(out.sources)
        self.marks.duplicates.value += out.duplicates
        self.checkpoint.advance(items, self.intake.assigned)
        if self.pausing.backoffs:
            self.pausing.stored(first_offsets(items))
        self.consumed.value += len(items)

    # ------------------------------------------------------------------ other threads
    def call(self, fn, timeout: float):
        """Run ``fn`` on the loop's thread (which owns the state database) and wait."""
        fut: Future = Future()
        self.commands.put((fn, fut))
        try:
            return fut.result(timeout=timeout)
        except TimeoutError:
            fut.cancel()  # not run later behind the caller's back
            raise

    def _run_commands(self) -> None:
        while True:
            try:
                fn, fut = self.commands.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except Exception as e:
                fut.set_exception(e)

    # ------------------------------------------------------------------ reporting
    def _sample(self, now: float) -> None:
        if not self._rate or now - self._rate[-1][0] >= 1.0:
            self._rate.append((now, self.consumed.value))

    def _events_per_s(self) -> float:
        if len(self._rate) < 2:
            return 0.0
        (t0, c0), (t1, c1) = self._rate[0], self._rate[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0

    def _take_snapshot(self) -> MtgaSnapshot:
        ck = self.checkpoint
        return MtgaSnapshot(
            pid=os.getpid(), started=self.started, taken=time.time(), events_per_s=round(self._events_per_s(), 1),
            partitions=tuple(sorted(self.intake.assigned)), lags=dict(self.lags), local_offsets=ck.local_offsets,
            last_checkpoint=ck.last or None,
            failure_queue=self.fq.size, stalled=self.stalled, checkpoint_error=ck.error,
            retry_error=self.retry.error, sink_error=self.writer.last_error, sink_bytes=self.writer.bytes_written,
            sink_errors=self.writer.errors, workers=self.pool.live, worker_restarts=self.pool.restarts,
            counters=self.inst.values(), fixed=dict(self.delivery.fixed), failed_by=dict(self.delivery.failed_by),
            kafka_contacted=self.intake.contacted, kafka_down_since=self.intake.down_since,
            kafka_down_errors=self.intake.down_errors, kafka_denied=self.intake.denied, stopping=self.stopping,
            schema=self._schema())

    def _schema(self) -> dict:
        """The names each app holds against its caps, made again when the guard changed."""
        if self._schema_for[0] != self.guard.changes:
            self._schema_for = (self.guard.changes, schema_sizes(self.guard, self.pool.store.get))
        return self._schema_for[1]

    def _stats_line(self) -> None:
        v = self.inst.values()
        fields = {"consumed": v["events_consumed"], "per_s": round(self._events_per_s(), 1),
                  "written": v["events_written"], "filtered": v["events_filtered"], "failed": v["events_failed"],
                  "failure_queue": self.fq.size, "partitions": len(self.intake.assigned), "stalled": self.stalled}
        log.info("events: consumed %d (%.0f/s last minute), written %d, filtered %d, failed %d, "
                 "failure queue %d, partitions %d%s", *list(fields.values())[:7],
                 f", STALLED: {self.stalled}" if self.stalled else "", extra=fields)


def output_writer(s: MtgaConfig):
    """The LogBus files, or the Kafka output (``output.kafka.topic``)."""
    o = s.conf.output
    if o.kafka.topic is None:
        return LogBusWriter(s.output_dir, o.prefix, o.rotation, o.max_bytes, fsync=o.fsync == "checkpoint")
    from sink.pipeline.topic_writer import TopicWriter

    tid = o.kafka.transactional_id or "mtga-%s-%s-%s" % (
        s.conf.kafka.group_id, host_name(s.conf.host), hashlib.sha1(str(s.state_dir).encode()).hexdigest()[:8])
    return TopicWriter(s.connection, o.kafka.topic, dict(o.kafka.producer), tid, o.kafka.timeout_s)
