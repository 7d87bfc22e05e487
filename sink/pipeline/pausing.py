"""Back-pressure by partition: when neither the output files nor the failure
queue can take a batch (a full disk, say), only that batch's partitions stop.

``hold`` pauses each partition of the failed batch and seeks it back to the
batch's first offset of it, so its events come again; the partitions of the
batches consumed after it (dropped unwritten, to keep each partition in order)
are only sought back. A held partition is resumed once its wait is over (1 s,
doubling to 30 s while it keeps failing; back to 1 s after a batch of it is
stored). Everything else goes on meanwhile: other partitions, rebalance
callbacks, checkpoints and the control socket.

A seek can fail (the partition's fetcher not ready yet): the partition then
stays paused and the seek is tried again at every ``tick``. Until it works,
a message of that partition at or past the rewind point that was fetched
before the pause is skipped on arrival (counted); it comes again after the seek.
Nothing below the rewind point is ever skipped.

With the Kafka output a batch's commit can fail without saying whether it took
(a timeout): ``resolve`` then gives, once any transaction left pending has
ended, the offsets the group holds, and a partition goes back there rather
than to the batch's first offset (a batch that did commit is not written again).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from confluent_kafka import KafkaException

from mulog.backoff import Backoff

if TYPE_CHECKING:
    from mulog.runtime.instrument import Instruments

    from sink.pipeline.intake import Intake

log = logging.getLogger("mtga")

TP = tuple  # (topic, partition)
FIRST_WAIT_S, MAX_WAIT_S = 1.0, 30.0


class Pausing:
    def __init__(self, intake: "Intake", inst: "Instruments", resolve=None):
        self.intake = intake
        self.resolve = resolve  # keys -> {key: the group's offset} (the Kafka output), or None
        self.rewind: dict[TP, int] = {}  # seeks still to make (a failed seek is tried again)
        self.paused: dict[TP, float] = {}  # held partitions -> monotonic time to resume them
        self.backoffs: dict[TP, Backoff] = {}
        self.stalls = inst.stalls
        self.seek_failures = inst.seek_failures
        self.skipped = inst.skipped_past_rewind

    @property
    def active(self) -> bool:
        return bool(self.paused or self.rewind)

    def hold(self, failed: dict[TP, int], later: dict[TP, int], why: str) -> None:
        """``failed``: first offset per partition of the batch nobody could take;
        ``later``: the same for the batches dropped after it."""
        now = time.monotonic()
        waits = []
        for key in failed:
            b = self.backoffs.get(key)
            if b is None:
                b = self.backoffs[key] = Backoff(FIRST_WAIT_S, MAX_WAIT_S)
            wait = b.next()
            waits.append(wait)
            self.paused[key] = now + wait
        for first in (failed, later):
            for key, off in first.items():
                cur = self.rewind.get(key)
                if cur is None or off < cur:  # an earlier rewind not yet done goes further back
                    self.rewind[key] = off
        self.stalls("%s; pausing %d partition(s) for %.0fs and rewinding %d", why, len(failed), max(waits),
                    len(self.rewind))
        self._pause(list(failed))
        self._seek()

    def admits(self, key: TP, offset: int) -> bool:
        """False for a message past the rewind point of a partition whose seek has
        not worked yet (only called while ``rewind`` is not empty)."""
        off = self.rewind.get(key)
        if off is None or offset < off:
            return True
        self.skipped.value += 1
        return False

    def tick(self) -> None:
        """Seeks that failed are tried again; partitions whose wait is over resume."""
        if self.rewind:
            self._seek()
        if self.paused:
            now = time.monotonic()
            due = [k for k, t in self.paused.items() if t <= now and k not in self.rewind]
            if due:
                for k in due:
                    del self.paused[k]
                try:
                    self.intake.resume([k for k in due if k in self.intake.assigned])
                except KafkaException as e:
                    log.warning("resuming %d partition(s) failed: %s", len(due), e)
                log.info("resuming %s after a stall", ", ".join(f"{t}[{p}]" for t, p in due))

    def stored(self, keys) -> None:
        """A batch of these partitions was stored: their next stall waits 1 s again."""
        for k in keys:
            self.backoffs.pop(k, None)

    def forget(self, keys) -> None:
        """Partitions revoked: their next owner starts from the stored offset."""
        for k in keys:
            self.rewind.pop(k, None)
            self.paused.pop(k, None)
            self.backoffs.pop(k, None)

    def _pause(self, keys) -> None:
        try:
            self.intake.pause([k for k in keys if k in self.intake.assigned])
        except KafkaException as e:  # the seek back still makes their events come again
            log.warning("pausing %d partition(s) failed: %s", len(keys), e)

    def _seek(self) -> None:
        assigned = self.intake.assigned
        group: dict = {}
        if self.resolve is not None and self.rewind:
            try:
                group = self.resolve([k for k in self.rewind if k in assigned])
            except Exception as e:  # noqa: BLE001 - Kafka away: every seek waits, as a failed seek does
                for key in self.rewind:
                    if key not in self.paused:
                        self.paused[key] = time.monotonic()
                        self._pause([key])
                self.seek_failures("where the group is cannot be read (%s); %d partition(s) stay paused", e,
                                   len(self.rewind))
                return
        for key, off in list(self.rewind.items()):
            if key not in assigned:
                del self.rewind[key]
                continue
            off = group.get(key, off)
            try:
                self.intake.seek(key, off)
            except KafkaException as e:
                if key not in self.paused:  # held still until the seek works
                    self.paused[key] = time.monotonic()
                    self._pause([key])
                self.seek_failures("seek %s[%d] back to %d failed (%s); it stays paused until a seek works",
                                   key[0], key[1], off, e)
                continue
            del self.rewind[key]
