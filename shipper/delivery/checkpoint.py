"""PositionCheckpoint: delivered positions -> offsets.FilePositions.

Only what Kafka acknowledged is stored: a tailer's delivered offset, which only
the acknowledgement path moves (shipper/files/acks.py). Positions are saved every
checkpoint_interval_s and at the stop (synced). A store that cannot be written
(a full disk) is a storage error, not a bug: the old positions stay, lines after
them would be sent again after a crash, and the save is tried again at the next
checkpoint (the store reopens itself when it can). Stored positions of files gone
for longer than forget_after_s are forgotten; the generation a new file on that
inode starts at is kept, so that no identity is ever used twice. The ended
generations waiting for a copy (shipper/files/copies.py) are stored in the same write
as the positions, and one claimed by a copy is removed in the write that stores
the copy's position.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Iterable

from offsets import Batch, StateError

from shipper.files.identity import key_of

if TYPE_CHECKING:
    from offsets import FilePositions, StateDB

    from shipper.files.copies import Copies
    from mulog.runtime.instrument import Instruments
    from shipper.files.tailer import Tailer

log = logging.getLogger("shipper")


class PositionCheckpoint:
    def __init__(self, db: "StateDB", positions: "FilePositions", counters: "Instruments"):
        self.db = db
        self.positions = positions
        self.failures = counters.positions_not_saved
        self.errors = 0  # saves in a row that failed

    def save(self, tailers: Iterable["Tailer"], copies: "Copies | None" = None, sync: bool = False) -> int:
        """Store the positions that changed; returns how many (0 when the store refused)."""
        now = time.time()
        todo = []
        for t in tailers:
            if t.cold_saved:
                continue  # cold, and stored since (shipper/files/tailer.py)
            p = t.position(now)
            if p is not None:
                todo.append((t, p))
            elif t.cold:
                t.cold_saved = True
        ended, gone = copies.to_save(now) if copies is not None else ([], [])
        try:
            if todo or ended or gone:
                b = Batch()
                self.positions.put_many([p for _, p in todo], batch=b)
                self.positions.put_ended(ended, gone, batch=b)
                self.db.write(b, sync=sync)
            if sync:
                self.db.flush()
        except StateError as e:
            self.errors += 1
            self.failures("positions not saved (%d time(s) so far; the store reopens itself when it can): %s",
                          self.errors, e)
            return 0
        if self.errors:
            log.info("positions saved again after %d failed attempt(s)", self.errors)
            self.errors = 0
            self.failures.throttle.reset()
        for t, p in todo:
            t.mark_saved(p)
            t.cold_saved = t.cold
        if copies is not None:
            copies.mark_saved(ended, gone)
        return len(todo)

    def forget_vanished(self, followed: set, forget_after_s: float) -> list[str]:
        """Forget stored positions of files not ``followed`` (device + inode) and gone
        from their path for longer than forget_after_s; returns their paths."""
        cutoff = time.time() - forget_after_s
        gone = []
        for p in self.positions.all():
            key = (p.dev, p.ino)
            if key in followed or p.updated_at > cutoff:
                continue
            try:
                if key_of(os.stat(p.path)) == key:
                    continue
            except OSError:
                pass
            gone.append(p)
        try:
            for p in gone:
                self.positions.forget(p.dev, p.ino, next_gen=p.gen + 1)
        except StateError as e:  # tried again at the next look
            self.failures("stored positions of vanished files not forgotten yet: %s", e)
            return []
        if gone:
            log.info("forgot the positions of %d files gone for more than %.0fs", len(gone), forget_after_s)
        return [p.path for p in gone]
