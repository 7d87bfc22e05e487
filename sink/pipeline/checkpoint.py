"""The checkpoint owner: per assigned partition, the next offset to process, the
offset RocksDB holds and the one the consumer group holds.

Only this object changes them, in one order:

1. ``advance``: a batch is durable (written to the output files or the failure
   queue); each partition's next offset moves past its last event. Offsets only
   move forward: a batch whose offsets are below a partition's next offset (the
   consumer itself went back: the broker reset an offset it no longer has, a
   topic deleted and created again) leaves the offset where it is, and says so.
2. ``save``: flush the output files (fsync), then store every changed offset in
   one RocksDB batch, then commit the stored offsets to the group (mirrored so
   standard Kafka tools see them and another host can take a partition over).
   A step that fails leaves the later ones undone; the next save tries again.

``local_offsets`` (all stored offsets, of every partition this store knows) is
read by other threads: it is replaced, never mutated.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Callable, Optional

from confluent_kafka import KafkaException

from offsets import Batch, PartitionOffsets, StateDB, StateError

from sink.pipeline.writer import SinkError

if TYPE_CHECKING:
    from mulog.runtime.instrument import Instruments

log = logging.getLogger("mtga")

TP = tuple  # (topic, partition)


class OffsetCheckpoint:
    def __init__(self, db: StateDB, flush: Callable[[], None], sync: bool, inst: "Instruments"):
        self.db = db
        self.po = PartitionOffsets(db)
        self.flush = flush  # makes the output files durable; raises SinkError
        self.sync = sync  # fsync RocksDB's log at each save
        self.next: dict[TP, int] = {}  # next offset to process, per assigned partition with a known start
        self.stored: dict[TP, int] = {}  # what RocksDB holds
        self.committed: dict[TP, int] = {}  # what the group holds (its last acknowledged commit)
        self.local_offsets: dict[TP, int] = self.po.all()
        self.queued = False  # failure-queue entries written since the last save (the store must be synced)
        # what else goes into the checkpoint's batch: each adds its writes and returns what to do once written
        self.extras: list[Callable[[Batch], Optional[Callable[[], None]]]] = []
        self.error: Optional[str] = None
        self.last: float = 0.0  # time of the last save that stored something
        self.saves = inst.checkpoints
        self.failures = inst.checkpoint_failures
        self.went_back = inst.offsets_went_back
        self.commit_failures = inst.commit_failures

    # ------------------------------------------------------------ assignment
    def local(self, key: TP) -> Optional[int]:
        """The locally stored offset of a partition (None when there is none, or
        the store cannot be read now: the group's offset or the reset policy then decides)."""
        try:
            return self.po.get(*key)
        except StateError as e:
            log.error("local offset of %s[%d] unreadable (%s); using the group's", key[0], key[1], e)
            return None

    def start(self, key: TP, offset: Optional[int], local: Optional[int], group: Optional[int]) -> None:
        """A partition was assigned and resumes at ``offset`` (None: the reset policy)."""
        self.committed.pop(key, None)
        self.stored.pop(key, None)
        self.next.pop(key, None)
        if group is not None:
            self.committed[key] = group
        if offset is not None:
            self.next[key] = offset
            if local is not None:
                self.stored[key] = local

    def forget(self, keys) -> None:
        for k in keys:
            self.next.pop(k, None)
            self.stored.pop(k, None)
            self.committed.pop(k, None)

    # ------------------------------------------------------------ progress
    def advance(self, items, assigned) -> None:
        """``items`` (in consumed order) are durable: move each assigned
        partition's next offset past its last one. A late item of a partition no
        longer assigned never moves anything."""
        last: dict = {}
        for it in items:
            last[(it.topic, it.partition)] = it.offset
        nxt = self.next
        for key, off in last.items():
            if key not in assigned:
                continue
            cur = nxt.get(key)
            if cur is not None and off < cur:
                self.went_back("%s[%d]: consumed offset %d is below the next offset %d (the consumer was reset: "
                               "the topic deleted and created again?); the offset stays at %d", key[0], key[1],
                               off, cur, cur)
                continue
            nxt[key] = off + 1

    def failures_queued(self) -> None:
        self.queued = True

    # ------------------------------------------------------------ saving
    def save(self, commit: Optional[Callable[[dict, bool], object]] = None, sync_commit: bool = False) -> bool:
        """Flush the output, store changed offsets, then commit them with
        ``commit`` (None: store only). False when the flush or the store failed."""
        changed = {k: v for k, v in self.next.items() if self.stored.get(k) != v}
        if changed or self.queued:
            try:
                self.flush()
            except SinkError as e:
                self.error = e.reason
                self.failures("checkpoint skipped, output not flushed: %s", e.reason)
                return False
            try:
                b = Batch()
                self.po.put_many(changed, batch=b)
                for extra in self.extras:
                    done = extra(b)
                    if done is not None:
                        b.on_commit(done)
                if b.wb.len():
                    self.db.write(b, sync=self.sync)
                else:
                    if self.sync:
                        self.db.flush()  # the failure queue's writes, made durable
                    for done in b.after:
                        done()
            except StateError as e:
                self.error = f"cannot store offsets: {e}"
                self.failures("checkpoint failed: %s", self.error)
                return False
            self.queued = False
            self.stored.update(changed)
            if changed:
                self.local_offsets = {**self.local_offsets, **changed}
            self.error = None
            self.saves.add()
            self.last = time.time()
            log.debug("checkpoint: %d partition(s) stored", len(changed))
        if commit is not None:
            self._mirror(commit, sync_commit)
        return True

    def _mirror(self, commit: Callable[[dict, bool], object], sync: bool) -> None:
        """Commit to the group every stored offset it does not hold yet: those of
        this checkpoint, and any whose earlier commit failed."""
        todo = {k: o for k, o in self.stored.items() if self.committed.get(k) != o}
        if not todo:
            return
        try:
            res = commit(todo, sync)
        except KafkaException as e:  # the group is rebalancing, the coordinator moved, ...
            self.commit_failures("offsets stored locally; mirroring them to the group failed (made again at the "
                                 "next checkpoint): %s", e)
            return
        if sync:
            self.on_commit(None, res)

    def on_commit(self, err, parts) -> None:
        """The group's answer to a commit: remember what it holds, so a failed
        commit is made again at the next checkpoint."""
        if err is not None:
            self.commit_failures("mirroring offsets to the group failed (%s); made again at the next checkpoint", err)
            return
        refused = []
        for tp in parts or ():
            key = (tp.topic, tp.partition)
            if tp.error is not None:
                refused.append(f"{tp.topic}[{tp.partition}]: {tp.error}")
            elif tp.offset >= 0 and key in self.next:
                self.committed[key] = tp.offset
        if refused:
            self.commit_failures("the group refused offsets of %s; made again at the next checkpoint",
                                 ", ".join(refused))
