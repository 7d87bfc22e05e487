"""The mtga consumer loop: Kafka -> transform -> LogBus files | failure queue,
with offsets checkpointed to RocksDB (and mirrored to the Kafka group).

One thread owns the consumer, the writer and the state database. Each batch
is consumed, transformed (in worker processes when configured), written with
one write call per output file, and its failures pushed to the failure
queue; only then does the batch count as processed. A checkpoint (every
``checkpoint.interval_s``, on partition revocation and on SIGTERM/SIGINT)
flushes the output files and then stores the next offset of every partition
in one RocksDB batch, and commits the same offsets to the consumer group.

If neither the output nor the failure queue can take a batch (a full disk,
say), the consumer seeks back to the batch's first offsets (a partition whose
seek fails has its messages held back until a later seek works) and the loop backs
off: nothing past what is durable is ever stored.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Optional

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from mulog.backoff import Backoff, delay
from offsets import FailedEvent, FailureQueue, PartitionOffsets, StateDB, StateError

from .config import MtgaSettings
from .queries import resume_point
from .transform import FILTERED, OK
from .workers import Pool
from .writer import LogBusWriter, SinkError

log = logging.getLogger("mtga")

TP = tuple  # (topic, partition)


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    consumed: int = 0
    written: int = 0
    filtered: int = 0
    failed: int = 0
    retried_ok: int = 0
    retry_failed: int = 0
    checkpoints: int = 0
    last_checkpoint: float = 0.0
    stalls: int = 0
    kafka_errors: int = 0
    retry_errors: int = 0
    failed_seeks: int = 0
    # (monotonic second, consumed so far): events/s over the last minute
    samples: collections.deque = field(default_factory=lambda: collections.deque(maxlen=61))

    def sample(self) -> None:
        now = time.monotonic()
        if not self.samples or now - self.samples[-1][0] >= 1.0:
            self.samples.append((now, self.consumed))

    def rate(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, c0), (t1, c1) = self.samples[0], self.samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


class Service:
    def __init__(self, s: MtgaSettings):
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
        self.po = PartitionOffsets(self.db)
        self.fq = FailureQueue(self.db)
        self.writer = LogBusWriter(s.output_dir, c.output.prefix, c.output.rotation, c.output.max_bytes)
        self.pool = Pool(s.settings_dir, s.workers, uuid=c.transform.uuid, keep_dir=s.state_dir / "settings-kept")
        self.stats = Stats()
        self.next: dict[TP, int] = {}  # next offset to process, per assigned partition
        self.stored: dict[TP, int] = {}  # what RocksDB holds
        self.committed: dict[TP, int] = {}  # what the consumer group holds (its last acknowledged commit)
        self.origin: dict[TP, str] = {}  # where the start offset came from: local, group, reset
        # the partitions the group gave this host, consumed from or not yet (replaced, never mutated)
        self.assigned: frozenset = frozenset()
        self.consumer: Optional[Consumer] = None
        self.stop_event = threading.Event()
        self.stalled: Optional[str] = None  # why batches cannot be stored anywhere durable
        self.checkpoint_error: Optional[str] = None
        self.retry_error: Optional[str] = None
        self.assigned: set = set()
        self._fq_dirty = False
        self._recheck_settings = False
        self._stall_backoff = Backoff(1.0, 30.0)
        # read by other threads (control socket, metrics): replaced, never mutated
        self.local_offsets: dict[TP, int] = self.po.all()
        self.lags: dict[TP, int] = {}
        self.commands: queue.Queue = queue.Queue()
        self.inflight: collections.deque = collections.deque()  # (items, workers.Pending)
        self.rewind: dict[TP, int] = {}  # partitions to seek back to these offsets (after a stall)

    # ------------------------------------------------------------------ kafka
    def _consumer(self) -> Consumer:
        s = self.s
        conf = dict(s.consumer)
        conf.update({
            "bootstrap.servers": s.bootstrap_servers,
            "group.id": s.conf.kafka.group_id,
            "auto.offset.reset": s.conf.kafka.auto_offset_reset,
            "error_cb": self._on_error,
            "on_commit": self._on_commit,
            "logger": logging.getLogger("mtga.kafka"),
        })
        return Consumer(conf)

    def _on_error(self, err: KafkaError) -> None:
        self.stats.kafka_errors += 1
        if self.stats.kafka_errors < 10 or self.stats.kafka_errors % 100 == 0:
            log.warning("kafka: %s (%d errors so far)", err, self.stats.kafka_errors)

    def _on_commit(self, err, parts) -> None:
        """The group's answer to a commit: remember what it holds, so a failed
        commit (during a rebalance, say) is made again at the next checkpoint."""
        if err is not None:
            log.warning("mirroring offsets to the group failed (%s); retried at the next checkpoint", err)
            return
        for tp in parts or ():
            key = (tp.topic, tp.partition)
            if tp.error is None and tp.offset >= 0 and key in self.assigned:
                self.committed[key] = tp.offset

    @property
    def cooperative(self) -> bool:
        return "cooperative" in str(self.s.consumer.get("partition.assignment.strategy", ""))

    def _on_assign(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        group = {}
        try:
            for tp in consumer.committed(parts, timeout=10):
                if tp.error is None and tp.offset >= 0:
                    group[(tp.topic, tp.partition)] = tp.offset
        except KafkaException as e:
            log.warning("could not read the group's committed offsets (%s); using local offsets only", e)
        chosen = []
        for tp in parts:
            key = (tp.topic, tp.partition)
            try:
                local = self.po.get(*key)
            except StateError as e:  # the store cannot be read now: the group's offset (or the reset policy)
                log.error("local offset of %s[%d] unreadable (%s); using the group's", tp.topic, tp.partition, e)
                local = None
            g = group.get(key)
            self.assigned.add(key)
            off, origin = resume_point(local, g)
            if off is None:
                off, origin = OFFSET_INVALID, "reset"
            self.origin[key] = origin
            if g is not None:
                self.committed[key] = g
            else:
                self.committed.pop(key, None)
            if off >= 0:
                self.next[key] = off
                if local is not None:
                    self.stored[key] = local
            chosen.append(TopicPartition(tp.topic, tp.partition, off))
            log.info("assigned %s[%d] from %s offset %s%s", tp.topic, tp.partition, origin,
                     off if off >= 0 else self.s.conf.kafka.auto_offset_reset,
                     f" (local {local}, group {g})" if origin == "group" and local is not None else "")
        self.assigned = self.assigned | {(tp.topic, tp.partition) for tp in parts}
        if self.cooperative:
            consumer.incremental_assign(chosen)
        else:
            consumer.assign(chosen)

    def _on_revoke(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in parts]
        log.info("revoked %s; storing their offsets first", ", ".join(f"{t}[{p}]" for t, p in keys))
        self._drain(everything=True)
        self.checkpoint(sync_commit=True)
        self._forget(keys)

    def _on_lost(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in parts]
        log.warning("lost %s without revocation; stored locally, not committed to the group",
                    ", ".join(f"{t}[{p}]" for t, p in keys))
        self._drain(everything=True)
        self.checkpoint(commit=False)
        self._forget(keys)

    def _forget(self, keys) -> None:
        self.assigned = self.assigned - set(keys)
        for k in keys:
            self.next.pop(k, None)
            self.stored.pop(k, None)
            self.committed.pop(k, None)
            self.origin.pop(k, None)
            self.rewind.pop(k, None)

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        c = self.s.conf
        self.consumer = self._consumer()
        topics = list(c.kafka.topics) if c.kafka.topics else [
            c.kafka.topic_pattern if c.kafka.topic_pattern.startswith("^") else "^" + c.kafka.topic_pattern]
        self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        log.info("consuming %s as group %s from %s; output %s; %d worker(s)", ", ".join(topics),
                 c.kafka.group_id, self.s.bootstrap_servers, self.s.output_dir, self.pool.workers)
        interval = c.checkpoint.interval_s
        next_ckpt = time.monotonic() + interval
        next_retry = time.monotonic() + 1.0
        next_stats = time.monotonic() + 30.0
        next_lag = time.monotonic()
        batch = c.kafka.batch_size
        try:
            while not self.stop_event.is_set():
                if self.rewind:
                    self._seek_back()
                # with batches in the workers, poll briefly so their results are written promptly
                msgs = self.consumer.consume(batch, 0.02 if self.inflight else 0.2)
                if msgs:
                    self.submit(msgs)
                self._drain()
                self._run_commands()
                now = time.monotonic()
                self.stats.sample()
                if now >= next_lag:
                    self._update_lags()
                    next_lag = now + 2.0
                if now >= next_ckpt:
                    self._drain(everything=True)
                    self.checkpoint()
                    next_ckpt = now + interval
                if now >= next_retry:
                    self.retry_round()
                    next_retry = now + 1.0
                if now >= next_stats:
                    self._stats_line()
                    next_stats = now + 30.0
        finally:
            self.shutdown()

    def request_stop(self, *_):
        self.stop_event.set()

    def request_recheck(self, *_):
        self._recheck_settings = True

    def shutdown(self) -> None:
        log.info("stopping: final checkpoint")
        try:
            if self.consumer is not None:
                self._drain(everything=True)
                self.checkpoint(sync_commit=True)
                self.consumer.close()  # leaves the group; revocation checkpoints again (no-op)
                self.consumer = None
        finally:
            self.pool.close()
            self.writer.close()
            self._stats_line()
            self.db.close()
        log.info("stopped")

    # ------------------------------------------------------------------ batches
    MAX_INFLIGHT = 2  # batches in the workers while the next one is consumed

    def submit(self, msgs) -> None:
        """Hand a consumed batch to the transform (in order behind those in flight)."""
        items = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self._on_error(err)
                continue
            if self.rewind and (m.topic(), m.partition()) in self.rewind:
                continue  # past the rewind point of a partition whose seek back has not worked yet
            items.append((m.value() or b"", m.headers(), m.topic(), m.partition(), m.offset()))
        if not items:
            return
        recheck = self._recheck_settings
        self._recheck_settings = False
        self.inflight.append((items, self.pool.submit(items, recheck=recheck)))

    def _drain(self, everything: bool = False) -> None:
        """Deliver transformed batches in order: those ready, one more if too many
        are in flight, or all of them."""
        q = self.inflight
        while q and (everything or q[0][1].ready() or len(q) > self.MAX_INFLIGHT):
            items, pending = q.popleft()
            self._apply(items, pending)
            pending.release()

    def _apply(self, items, pending) -> None:
        try:
            self._deliver(items, pending.get())
        except Exception as e:  # neither the files nor the failure queue took the batch
            later = []
            while self.inflight:  # their events come again after the rewind
                batch, pending = self.inflight.popleft()
                later += batch
                pending.discard()  # still collect the workers' replies, in order
            self._stall(items + later, e)
            return
        self.stalled = None
        self._stall_backoff.reset()
        nxt = self.next
        assigned = self.assigned
        for it in items:
            key = (it[2], it[3])
            if key in assigned:  # a late message of a revoked partition never moves its offset
                nxt[key] = it[4] + 1
        self.stats.consumed += len(items)

    def _deliver(self, items, out) -> None:
        """Write a transformed batch (a workers.Outcome): one write per app; events
        the transform failed, or whose app's write failed, go to the failure queue.

        The transform's failures are queued before any line is written, so a
        failure queue that cannot take them stalls the batch with nothing written
        (a rewind then repeats nothing)."""
        failures = [FailedEvent(items[i][0], reason, items[i][2], items[i][3], items[i][4], items[i][1])
                    for i, _app, reason in out.failures]
        if failures:
            self.fq.push_many(failures)
            self._fq_dirty = True
        written = 0
        unwritten = []
        for app, (blob, n, idx) in out.apps.items():
            try:
                self.writer.write_blob(app, blob, n)
                written += n
            except SinkError as e:
                log.error("%s; %d event(s) go to the failure queue", e.reason, n)
                for i in idx:
                    it = items[i]
                    unwritten.append(FailedEvent(it[0], e.reason, it[2], it[3], it[4], it[1]))
        if unwritten:
            self.fq.push_many(unwritten)
            self._fq_dirty = True
        self.stats.written += written
        self.stats.filtered += out.filtered
        self.stats.failed += len(failures) + len(unwritten)

    def _stall(self, items, err: Exception) -> None:
        first: dict[TP, int] = {}
        for it in items:
            first.setdefault((it[2], it[3]), it[4])
        self.stalled = f"cannot store a batch anywhere durable: {err}"
        self.stats.stalls += 1
        wait = self._stall_backoff.next()
        log.error("%s; rewinding %d partition(s) and retrying in %.0fs", self.stalled, len(first), wait)
        for key, off in first.items():
            self.rewind.setdefault(key, off)  # an earlier rewind not yet done goes further back
        self._seek_back()
        end = time.monotonic() + wait
        while not self.stop_event.is_set() and time.monotonic() < end:
            self._run_commands()  # stay responsive to the control socket while backing off
            self.stop_event.wait(0.2)

    def _seek_back(self) -> None:
        """Seek the partitions in ``rewind`` back; one whose seek fails stays there,
        is tried again before each poll, and its messages are dropped until then
        (they come again after the seek: never written past the rewind point)."""
        for (t, p), off in list(self.rewind.items()):
            if (t, p) not in self.assigned:
                del self.rewind[(t, p)]  # revoked: its next owner starts from the stored offset
                continue
            try:
                self.consumer.seek(TopicPartition(t, p, off))
            except KafkaException as e:
                self.stats.failed_seeks += 1
                if self.stats.failed_seeks < 10 or self.stats.failed_seeks % 100 == 0:
                    log.warning("seek %s[%d] back to %d failed (%s); its messages are held back until it works",
                                t, p, off, e)
                continue
            del self.rewind[(t, p)]

    # ------------------------------------------------------------------ checkpoint
    def checkpoint(self, sync_commit: bool = False, commit: bool = True) -> bool:
        changed = {k: v for k, v in self.next.items() if self.stored.get(k) != v}
        if not changed and not self._fq_dirty:
            if commit:
                self._mirror(sync_commit)
            return True
        try:
            self.writer.flush(fsync=self.s.conf.output.fsync == "checkpoint")
        except SinkError as e:
            self.checkpoint_error = e.reason
            log.error("checkpoint skipped, output not flushed: %s", e.reason)
            return False
        try:
            self.po.put_many(changed, sync=self.s.conf.checkpoint.sync)
            if not changed and self.s.conf.checkpoint.sync:
                self.db.flush()
        except Exception as e:
            self.checkpoint_error = f"cannot store offsets: {e}"
            log.error("checkpoint failed: %s", self.checkpoint_error)
            return False
        self._fq_dirty = False
        self.stored.update(changed)
        if changed:
            lo = dict(self.local_offsets)
            lo.update(changed)
            self.local_offsets = lo
        self.checkpoint_error = None
        self.stats.checkpoints += 1
        self.stats.last_checkpoint = time.time()
        if commit:
            self._mirror(sync_commit)
        log.debug("checkpoint: %d partition(s) stored", len(changed))
        return True

    def _mirror(self, sync: bool) -> None:
        """Commit to the group every stored offset it does not hold yet: those of
        this checkpoint, and any whose earlier commit failed."""
        if self.consumer is None:
            return
        tps = [TopicPartition(t, p, o) for (t, p), o in self.stored.items() if self.committed.get((t, p)) != o]
        if not tps:
            return
        try:
            res = self.consumer.commit(offsets=tps, asynchronous=not sync)
            if sync:
                self._on_commit(None, res)
        except KafkaException as e:
            log.warning("offsets stored locally; mirroring them to the group failed: %s", e)

    # ------------------------------------------------------------------ retries
    def backoff(self, attempts: int) -> float:
        r = self.s.conf.retry
        return delay(attempts, r.initial_backoff_s, r.max_backoff_s)

    def retry_round(self) -> int:
        """Re-process due failure-queue entries; returns how many left the queue.
        A store that cannot be read or written now (a full disk) is tried again
        at the next round; it never stops the daemon."""
        try:
            n = self._retry_round()
            self.retry_error = None
            return n
        except Exception as e:
            self.retry_error = str(e)
            if self.stats.retry_errors % 60 == 0:
                log.error("retry round skipped: %s", e)
            self.stats.retry_errors += 1
            return 0

    def _retry_round(self) -> int:
        if self.fq.count() == 0:
            return 0
        limit = self.s.conf.retry.batch
        now = time.time()
        due = []
        scanned = 0
        for e in self.fq:
            scanned += 1
            if e.not_before <= now:
                due.append(e)
                if len(due) >= limit:
                    break
            if scanned >= limit * 10:
                break
        if not due:
            return 0
        items = [(e.payload, e.headers, e.topic, e.partition, e.offset) for e in due]
        results = self.pool.run(items, recheck=True)
        per_app: dict[str, tuple[list, list]] = {}
        done, again = [], []
        for e, r in zip(due, results):
            if r[0] == OK:
                b = per_app.setdefault(r[1], ([], []))
                b[0].append(r[2])
                b[1].append(e)
            elif r[0] == FILTERED:
                done.append(e)
            else:
                again.append((e, r[2]))
        for app, (lines, entries) in per_app.items():
            try:
                self.writer.write(app, lines)
                done.extend(entries)
            except SinkError as err:
                again.extend((e, err.reason) for e in entries)
        try:
            self.writer.flush(fsync=True)  # durable before the entries leave the queue
        except SinkError as err:
            log.error("retry: %s; entries stay queued", err.reason)
            return 0
        try:
            self.fq.ack([e.seq for e in done])
            for e, reason in again:
                self.fq.requeue(e, reason, not_before=now + self.backoff(e.attempts + 1))
        except Exception as err:
            log.error("retry: failure queue update failed: %s", err)
            return 0
        self._fq_dirty = True
        self.stats.retried_ok += len(done)
        self.stats.retry_failed += len(again)
        if done or again:
            log.info("retry: %d event(s) processed from the failure queue, %d still failing (%d queued)",
                     len(done), len(again), self.fq.count())
        return len(done)

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

    def _update_lags(self) -> None:
        if self.consumer is None:
            return
        lags = {}
        nexts = self.next
        earliest = self.s.conf.kafka.auto_offset_reset == "earliest"
        for t, p in self.assigned:
            try:
                low, high = self.consumer.get_watermark_offsets(TopicPartition(t, p), cached=True)
            except KafkaException:
                continue
            if high < 0:
                continue  # no fetch answered for it yet
            nxt = nexts.get((t, p))
            if nxt is None:  # nothing consumed nor stored: it starts where the reset policy says
                nxt = low if earliest else high
            lags[(t, p)] = max(0, high - max(nxt, low))
        self.lags = lags

    def status(self) -> dict:
        st = self.stats
        return {
            "pid": os.getpid(),
            "started": st.started,
            "uptime_s": round(time.time() - st.started, 1),
            "events_per_s": round(st.rate(), 1),
            "consumed": st.consumed,
            "written": st.written,
            "filtered": st.filtered,
            "failed": st.failed,
            "retried_ok": st.retried_ok,
            "partitions": sorted(f"{t}[{p}]" for t, p in self.assigned),
            "last_checkpoint": st.last_checkpoint or None,
            "failure_queue": self.fq._count,
            "stalled": self.stalled,
            "checkpoint_error": self.checkpoint_error,
            "retry_error": self.retry_error,
            "sink_error": self.writer.last_error,
            "sink_bytes": self.writer.bytes_written,
            "workers": self.pool.live,
            "worker_restarts": self.pool.restarts,
            "group": self.s.conf.kafka.group_id,
        }

    # ------------------------------------------------------------------ reporting
    def _stats_line(self) -> None:
        st = self.stats
        log.info("events: consumed %d (%.0f/s last minute), written %d, filtered %d, failed %d, "
                 "failure queue %d, partitions %d%s", st.consumed, st.rate(), st.written, st.filtered,
                 st.failed, self.fq.count() if self.db.db is not None else -1, len(self.next),
                 f", STALLED: {self.stalled}" if self.stalled else "")


def control_handlers(svc: Service) -> dict:
    """The control socket's commands (run on the socket's threads)."""
    from . import queries

    s = svc.s
    admin = []
    timeout = max(1.0, s.conf.control.timeout_s - 2.0)

    def offsets(req):
        if not admin:
            admin.append(queries.admin_client(s.bootstrap_servers))
        k = s.conf.kafka
        rows = queries.offset_rows(s.bootstrap_servers, k.group_id, list(k.topics), k.topic_pattern,
                                   svc.local_offsets, timeout, admin=admin[0])
        return {"rows": rows, "source": "daemon"}

    def fq_count(req):
        if req.get("by_reason"):
            return {"count": svc.fq._count, "by_reason": svc.call(svc.fq.count_by_reason, timeout)}
        return {"count": svc.fq._count}

    def fq_clear(req):
        if req.get("confirm") is not True:
            raise ValueError('clearing the failure queue needs "confirm": true')
        reason = req.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ValueError("reason must be a string")
        n = svc.call(lambda: svc.fq.clear(reason=reason), timeout)
        log.warning("failure queue: %d entr%s removed over the control socket%s", n, "y" if n == 1 else "ies",
                    f" (reason {reason})" if reason else "")
        return {"removed": n}

    return {
        "ping": lambda req: "pong",
        "status": lambda req: svc.status(),
        "offsets": offsets,
        "lag": lambda req: {"lag": sum(r["lag"] for r in offsets(req)["rows"])},
        "fq_count": fq_count,
        "fq_clear": fq_clear,
    }


def run_foreground(s: MtgaSettings, ready=None) -> int:
    """Run until SIGTERM/SIGINT. ``ready(error_or_None)`` is called once started."""
    from .control import ControlServer

    try:
        svc = Service(s)
        server = ControlServer(s.socket_path, control_handlers(svc))
    except Exception as e:
        if ready:
            ready(str(e))
        raise
    signal.signal(signal.SIGTERM, svc.request_stop)
    signal.signal(signal.SIGINT, svc.request_stop)
    signal.signal(signal.SIGHUP, svc.request_recheck)
    server.start()
    metrics = None
    if s.conf.metrics.enabled:
        from .metrics import serve

        metrics = serve(svc, s.conf.metrics.host, s.conf.metrics.port or 9464)
    if ready:
        ready(None)
    try:
        svc.run()
    finally:
        server.stop()
        if metrics is not None:
            metrics.shutdown()
    return 0
