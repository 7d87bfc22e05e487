"""The failure-queue retry loop: due entries are transformed again (with the
settings as they are now) and written; those that still fail wait longer.

A round takes at most ``retry.batch`` due entries (found through the queue's
due-time index: nothing else is read), writes the lines, makes them durable
(fsync) and only then removes the entries; one that fails again is put back
with its attempts counted and its next try ``initial_backoff_s`` doubled per
attempt, up to ``max_backoff_s``. A store that cannot be read or written now
(a full disk) skips the round; it never stops the daemon. An entry refused for a
type conflict teaches the type guard nothing of that property when it is retried.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Callable

from mulog.backoff import delay
from offsets import FailureQueue, StateError

from sink.ta.batch import FILTERED, OK, Item
from sink.pipeline.writer import SinkError
from sink.ta.uuids import source_key, source_of

if TYPE_CHECKING:
    from mulog.runtime.instrument import Instruments

    from sink.config import RetryConf
    from sink.pipeline.workers import Pool
    from sink.pipeline.writer import LogBusWriter

log = logging.getLogger("mtga")

_CONFLICT = re.compile(r"type_conflict: (?:\w+ on )?'([^']+)'")  # the property a type conflict names


class Retrier:
    def __init__(self, fq: FailureQueue, pool: "Pool", writer: "LogBusWriter", conf: "RetryConf",
                 inst: "Instruments", changed: Callable[[], None], store_types: Callable[[], None] = lambda: None):
        self.fq = fq
        self.pool = pool
        self.writer = writer
        self.conf = conf
        self.changed = changed  # the queue changed: the next checkpoint syncs the store
        self.store_types = store_types  # property types learned, kept before their lines are written
        self.error: str | None = None
        self.ok = inst.events_retried_ok
        self.again = inst.events_retried_failed
        self.errors = inst.retry_errors

    def backoff(self, attempts: int) -> float:
        return delay(attempts, self.conf.initial_backoff_s, self.conf.max_backoff_s)

    def round(self, now: float | None = None) -> int:
        """Re-process due entries; returns how many left the queue."""
        try:
            n = self._round(time.time() if now is None else now)
        except (StateError, SinkError, OSError) as e:
            abort = getattr(self.writer, "abort", None)  # the Kafka output: its open transaction goes
            if abort is not None:
                abort()
            self.error = str(e)
            self.errors("retry round skipped: %s", e)
            return 0
        self.error = None
        return n

    def _round(self, now: float) -> int:
        if getattr(self.writer, "transactional", False) and self.fq.round() is not None:
            finish_round(self.fq, self.writer)  # before any other round (raises while Kafka is away)
        if self.fq.size == 0:
            return 0
        due = self.fq.due(now, self.conf.batch)
        if not due:
            return 0
        # an event refused for a type conflict teaches no type to the property it conflicted on: after
        # `mtga schema forget`, a new event teaches its type, not the old value that conflicted with it
        groups: dict = {}
        for i, e in enumerate(due):
            m = _CONFLICT.match(e.reason)
            groups.setdefault(m.group(1).lower() if m else None, []).append(i)
        results: list = [None] * len(due)
        recheck = True
        for name, idx in groups.items():
            items = [Item(due[i].payload, due[i].headers, due[i].topic, due[i].partition, due[i].offset) for i in idx]
            for i, r in zip(idx, self.pool.run(items, recheck=recheck, again=True, frozen={name} if name else ())):
                results[i] = r
            recheck = False
        self.store_types()
        per_app: dict[str, tuple[list, list]] = {}
        done, again = [], []
        for e, (kind, app, value) in zip(due, results):
            if kind == OK:
                lines, entries = per_app.setdefault(app, ([], []))
                lines.append(value)
                entries.append(e)
            elif kind == FILTERED:
                done.append(e)
            else:
                again.append((e, value))
        txn = getattr(self.writer, "transactional", False) and bool(per_app)
        if txn:  # what a restart reads back if a crash comes between the commit and the removal
            self.fq.put_round([e.seq for _lines, es in per_app.values() for e in es],
                              self.writer.ends([self.writer.topic(a) for a in per_app]))
        for app, (lines, entries) in per_app.items():
            try:
                self.writer.write(app, lines)
                done.extend(entries)
            except SinkError as err:
                if txn:
                    raise  # one transaction: none of it
                again.extend((e, err.reason) for e in entries)
        self.writer.flush()  # durable (committed) before the entries leave the queue
        if txn:
            self.fq.end_round([e.seq for e in done])
        else:
            self.fq.ack([e.seq for e in done])
        for e, reason in again:
            self.fq.requeue(e, reason, not_before=now + self.backoff(e.attempts + 1))
        self.changed()
        self.ok.add(len(done))
        self.again.add(len(again))
        log.info("retry: %d event(s) processed from the failure queue, %d still failing (%d queued)",
                 len(done), len(again), self.fq.size)
        return len(done)


def finish_round(fq: FailureQueue, writer) -> int:
    """At a start, with the Kafka output: a retry round a crash interrupted is
    looked up in the output (read_committed, past where it ended before the
    round): its entries found written are removed, not written again."""
    r = fq.round()
    if r is None:
        return 0
    seqs, ends = r
    writer.prepare()  # a transaction the previous run left open is aborted first
    found = writer.written_since(ends)
    want = set(seqs)
    written = []
    for e in fq:
        if e.seq in want:
            stream, pos = source_of(e.headers, e.topic, e.partition, e.offset)
            if (source_key(stream), pos) in found:
                written.append(e.seq)
    n = fq.end_round(written)
    log.warning("a failure-queue retry round was interrupted: %d of its %d entries were written to the output "
                "(read back) and are removed; the others are retried", n, len(seqs))
    return n
