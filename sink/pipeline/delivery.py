"""The deliver stage: a transformed batch (a batch.Outcome) to the output and
the failure queue, in that stage's one order.

1. The property types the batch taught the type guard are stored.
2. The transform's failures are queued (RocksDB).
3. The lines are written: one write per app to the LogBus files
   (sink/pipeline/writer.py), whose failed apps' events go to the failure queue
   too; or, with a Kafka output (sink/pipeline/topic_writer.py), produced in
   one transaction that also commits the batch's consumer offsets: all or
   nothing. A transaction that does not commit is aborted and raises
   SinkError: the caller rewinds the batch, and the failures it queued are
   marked handled (sink/pipeline/marks.py) so they are not queued again.

A store or a failure queue that cannot take the batch raises before any line
is written, so the rewind repeats nothing.
"""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING, Callable

from offsets import FailedEvent, FailureQueue, PropertyTypes, StateError, reason_code

from sink.pipeline.writer import SinkError
from sink.ta.uuids import source_key, source_of

if TYPE_CHECKING:
    from mulog.runtime.instrument import Instruments

    from sink.pipeline.marks import Marks
    from sink.ta.batch import Outcome
    from sink.ta.typeguard import TypeGuard

log = logging.getLogger("mtga")


class Delivery:
    def __init__(self, writer, fq: FailureQueue, guard: "TypeGuard", types: PropertyTypes, marks: "Marks",
                 inst: "Instruments", queued: Callable[[], None], group_metadata: Callable[[], object]):
        self.writer = writer  # LogBusWriter, or TopicWriter (``transactional``)
        self.fq = fq
        self.guard, self.types = guard, types
        self.marks = marks
        self.queued = queued  # the failure queue took entries: the next checkpoint syncs the store
        self.group_metadata = group_metadata  # the consumer's, for the offsets committed in a transaction
        self.written, self.filtered, self.failed = inst.events_written, inst.events_filtered, inst.events_failed
        self.fixed: collections.Counter = collections.Counter()  # rule -> events fixed as their app's settings say
        self.failed_by: collections.Counter = collections.Counter()  # reason code -> events queued

    def deliver(self, items, out: "Outcome") -> None:
        self.store_types()
        for code, n in out.fixed.items():
            self.fixed[code] += n
        failures = [failed(items[i], reason) for i, _app, reason in out.failures]
        if failures:
            self.fq.push_many(failures)
            self.queued()
        if getattr(self.writer, "transactional", False):
            written, unwritten = self._transaction(items, out, failures), []
        else:
            written, unwritten = self._files(items, out)
        if unwritten:
            self.fq.push_many(unwritten)
            self.queued()
        self.written.value += written
        self.filtered.value += out.filtered
        self.failed.value += len(failures) + len(unwritten)
        self.failed_by.update(reason_code(f.reason) for f in failures)
        self.failed_by.update(reason_code(f.reason) for f in unwritten)

    def _files(self, items, out: "Outcome") -> tuple[int, list]:
        written = 0
        unwritten = []
        for app, (blob, n, idx) in out.apps.items():
            try:
                self.writer.write_blob(app, blob, n)
                written += n
            except SinkError as e:
                log.error("%s; %d event(s) go to the failure queue", e.reason, n)
                unwritten += [failed(items[i], e.reason) for i in idx]
        return written, unwritten

    def _transaction(self, items, out: "Outcome", failures: list) -> int:
        """The batch's lines and its consumer offsets in one transaction."""
        offsets: dict = {}
        for it in items:
            offsets[(it.topic, it.partition)] = it.offset + 1
        w = self.writer
        try:
            w.begin()
            written = 0
            for app, (blob, n, _idx) in out.apps.items():
                w.write_blob(app, blob, n)
                written += n
            w.commit(offsets, self.group_metadata())
        except SinkError:
            w.abort()
            for f in failures:  # queued already: skipped when the batch comes again
                stream, pos = source_of(f.headers, f.topic, f.partition, f.offset)
                self.marks.handled(source_key(stream), pos)
            raise
        return written

    def store_types(self) -> None:
        """Keep what the type guard learned (in the same store as the offsets)."""
        learned = self.guard.take_learned()
        if learned:
            try:
                self.types.put_many(learned)
            except StateError:
                self.guard.learned[:0] = learned  # stored with the next batch
                raise
            log.info("learned the type of %d propert%s: %s", len(learned), "y" if len(learned) == 1 else "ies",
                     ", ".join(f"app {a} {n}: {k}" for a, n, k in learned[:5]) + (", ..." if len(learned) > 5 else ""))


def failed(it, reason: str) -> FailedEvent:
    return FailedEvent(it.payload, reason, it.topic, it.partition, it.offset, it.headers)
