"""Acknowledgements: what Kafka has taken of each file, beside the publisher.

One ``Chunk`` per read chunk handed to the producer; the delivery report of its
last line resolves it. The producer is idempotent, keeps a partition's messages
in order and is gap-less (``enable.gapless.guarantee``), and every line of a
file goes to one partition (same key, fixed partitioner): when the last line of
a chunk is acknowledged, so are those before it.

``FileAcks`` is one file's queue of chunks, in the order they were sent, and the
one place where the file's delivered offset moves: only over a prefix of
acknowledged chunks. One ``FileAcks`` holds one generation of a file: a
truncation gives the tailer a new one, and the old one (its chunks still
pending) goes with the ended generation, to the file's copy when one is found
(shipper/files/copies.py); its reports never move the new generation. A refused
chunk holds the position; once every chunk sent has its report and the back-off
has passed, ``rewind`` gives the offset to read the file again from. A chunk
purged at the stop (never sent) holds the position too: it is read again at the
next start. Nothing here knows the Kafka client: the publisher reads the
delivery report and calls ``acked``, ``refuse`` or ``dropped``. The tailer keeps its descriptor while anything is pending here, so
that what Kafka refused can always be read again, whatever happened to the
file's name meanwhile.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from mulog.backoff import Backoff

# what became of a chunk (the publisher tells which, from the delivery report)
SENT, ACKED, REFUSED, DROPPED = 0, 1, 2, 3


class Chunk:
    """One read chunk handed to the producer; called as the delivery callback of
    its last line."""

    __slots__ = ("acks", "end", "n", "nbytes", "outcome", "report")

    def __init__(self, acks: "FileAcks", end: int, n: int, nbytes: int,
                 report: Callable[["Chunk", Any], None] | None):
        self.acks = acks
        self.end = end  # the file offset the position may move to once the chunk is acknowledged
        self.n = n  # lines
        self.nbytes = nbytes  # what it holds in the producer's queue (with per-line overhead)
        self.outcome = SENT
        self.report = report  # the publisher's handler of delivery reports

    def __call__(self, err, msg) -> None:
        self.report(self, err)


class FileAcks:
    """One file's chunks waiting for Kafka and its delivered offset (see the module doc)."""

    __slots__ = ("owner", "pending", "delivered", "refused", "retry_at", "backoff")

    def __init__(self, start: int, owner: Any = None):
        self.owner = owner  # the file's tailer, named in log lines
        self.pending: deque[Chunk] = deque()
        self.delivered = start
        self.refused: str | None = None  # why the first refused chunk was refused, until the rewind
        self.retry_at = 0.0  # when the rewind is due (0: not yet settled)
        self.backoff = Backoff(1.0, 60.0)

    # ------------------------------------------------------------ sending
    def chunk(self, end: int, n: int, nbytes: int, report: Callable) -> Chunk:
        c = Chunk(self, end, n, nbytes, report)
        self.pending.append(c)
        return c

    def nothing_to_send(self, end: int) -> None:
        """A chunk of empty lines only: the position moves over it in its turn."""
        c = Chunk(self, end, 0, 0, None)
        c.outcome = ACKED
        self.pending.append(c)
        self._advance()

    # ------------------------------------------------------------ reports
    def acked(self, c: Chunk) -> None:
        c.outcome = ACKED
        self._advance()
        if self.backoff.attempts and self.refused is None:
            self.backoff.reset()

    def refuse(self, c: Chunk, why: str) -> bool:
        """Mark ``c`` refused; True for the first refusal since the last rewind."""
        c.outcome = REFUSED
        if self.refused is None:
            self.refused = why
            return True
        return False

    def dropped(self, c: Chunk) -> None:
        c.outcome = DROPPED

    def _advance(self) -> None:
        p = self.pending
        while p and p[0].outcome == ACKED:
            self.delivered = p.popleft().end

    # ------------------------------------------------------------ queries
    @property
    def idle(self) -> bool:
        """Every chunk sent was acknowledged (nothing pending, no refusal to resend)."""
        return not self.pending and self.refused is None

    @property
    def settled(self) -> bool:
        """Every chunk sent has its report."""
        return all(c.outcome != SENT for c in self.pending)

    # ------------------------------------------------------------ changes
    def rewind(self, now: float) -> int | None:
        """After a refusal: the offset to read the file again from, once every chunk
        sent has its report and the back-off has passed; None until then."""
        if self.refused is None:
            return None
        if not self.retry_at:
            if not self.settled:
                return None
            for c in self.pending:  # the position moves over what was acknowledged before the first refusal
                if c.outcome != ACKED:
                    break
                self.delivered = c.end
            self.pending.clear()  # chunks acknowledged after a refused one are sent again (at least once)
            self.retry_at = now + self.backoff.next()
            return None
        if now < self.retry_at:
            return None
        self.retry_at = 0.0
        self.refused = None
        return self.delivered


__all__ = ["ACKED", "DROPPED", "REFUSED", "SENT", "Chunk", "FileAcks"]
