"""Prospector: which files are followed, from where, and what becomes of them.

It owns the table of tailers (device + inode -> Tailer) and turns the watcher's
typed events into tailer changes (each made by ``Tailer.to``):

    Created  open the file at its start position (below); when it was renamed away
             before anything saw it (``at``), read it to its end (DRAINING)
    Moved    to a name an input wants: the same tailer goes on under it; to a name
             none wants: rotated, read to its end (DRAINING)
    Seen     a DRAINING or RETIRING file wanted again goes back to ACTIVE; an IDLE
             file that grew is opened again; a changed beginning is a truncation
    Gone     still at its path but no input wants it: RETIRING; renamed away or
             deleted: DRAINING (CLOSED when its descriptor was closed already)

The EOF policy (``at_eof``): a DRAINING file is closed once it has had no new
bytes for rotate_wait_s *and* every chunk sent is acknowledged (a refused chunk
is read again from the descriptor, whatever the file is called by then); an
ACTIVE file with nothing pending is closed after close_inactive_s (IDLE), an
ACTIVE copy after rotate_wait_s.

Open descriptors: shipper/files/room.py (``Room``).

Start positions (``_open``): a stored position applies when the file's
fingerprint matches it (shipper/files/identity.py); otherwise the file is judged
first (``_judge``, shipper/files/copies.py: a copy of a generation that ended is read
on from where that generation's reading ended, under its identity), then read
from its beginning; for a ``start_at: end`` input, files its first scan finds
whose path was never shipped are read from their last complete line. A
truncation (``_truncated``) starts a new generation of the file; the one that
ended waits for its copy, looked for at once in the file's folder. A new
generation is stored before any of its lines is sent (``save_now``).

Rotation is recovered three ways, all ending the same: the file, opened under its
new name, is read to its end, its lines carrying the name they were written
under. A rename seen by a scan or by inotify (Moved); a rename before anything
saw the file (Created with ``at``, from the rename event naming both paths); a
rename while the shipper was stopped (``resume_rotated_while_stopped``: at
start, a stored file no longer at its path is looked for by inode in its folder).
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Iterable

from mulog.files import last_line_end

from shipper.files import starting
from shipper.files.copies import Copies
from shipper.files.copy_rules import CopyRules
from shipper.files.globs import log_name_of, owner
from shipper.files.identity import FINGERPRINT_BYTES, Key, fingerprint, key_of, stored_start
from shipper.files.room import Room
from shipper.files.tailer import ACTIVE, CLOSED, DRAINING, IDLE, RETIRING, Tailer
from shipper.files.watcher import Created, Gone, Moved, Seen

if TYPE_CHECKING:
    from offsets import FilePosition, FilePositions

    from shipper.config import Input
    from mulog.runtime.instrument import Instruments
    from shipper.files.watcher import Event, Watcher

log = logging.getLogger("shipper")

ROTATED = "rotated: %s (%s) was renamed or deleted; reading it to its end"


class Prospector:
    def __init__(self, positions: "FilePositions", stored: list["FilePosition"], watcher: "Watcher", host: str,
                 counters: "Instruments", new_store: bool):
        self.tailers: dict[Key, Tailer] = {}
        self.positions = positions
        self.watcher = watcher
        self.host = host
        self.counters = counters
        self.inputs: list["Input"] = []
        self.fresh: set[int] = set()  # inputs whose first scan is still to come
        self.known_paths = {p.path for p in stored}  # paths shipped before (start_at: end leaves them alone)
        self.warned: set[str] = set()
        self.rotate_wait_s = 5.0
        self.close_inactive_s = 300.0
        # a new store (first start, or the state folder was removed): files that already
        # have content are listed at the first scan, so that the re-read (or skip) is said
        self.new_store: list[tuple[str, int, int]] | None = [] if new_store else None
        self.copies = Copies(positions)
        self.save_now = lambda: None  # store the positions now (the loop sets it)
        self.room = Room(self.tailers, self.apply)  # the bound on open descriptors (shipper/files/room.py)
        # truncations, ended generations and their copies, new files judged (shipper/files/copy_rules.py)
        self.copy_rules = CopyRules(self.tailers, self.copies, self.warned, counters, self._open,
                                    lambda: self.save_now())

    def configure(self, inputs: list["Input"], added: Iterable["Input"], rotate_wait_s: float,
                  close_inactive_s: float, max_open: int = 0) -> None:
        self.room.configure(max_open, close_inactive_s)
        self.inputs = self.copy_rules.inputs = inputs
        self.fresh |= {id(i) for i in added}
        self.rotate_wait_s = rotate_wait_s
        self.close_inactive_s = close_inactive_s

    # ------------------------------------------------------------ events
    def followed(self, key: Key) -> str | None:
        t = self.tailers.get(key)
        return t.path if t is not None and t.state != CLOSED else None

    def scan(self) -> None:
        """A full scan of the globs, its differences applied."""
        followed = {k: t.path for k, t in self.tailers.items() if t.state != CLOSED}
        fresh, self.fresh = self.fresh, set()
        self.counters.scans.value += 1
        tailers = self.tailers

        def unchanged(key: Key, path: str, inp: "Input", st: os.stat_result) -> bool:
            t = tailers[key]  # a quiet file as it was: nothing to do (the common case, by far)
            return t.cold and st.st_size == t.read_pos and path == t.path and inp is t.input

        events, seen = self.watcher.scan(self.inputs, followed, unchanged)
        for ev in events:
            self.apply(ev, initial=type(ev) is Created and id(ev.input) in fresh)
        skipped = self.copy_rules.skipped
        for key in [k for k in skipped if k not in seen]:
            del skipped[key]

    def on_inotify(self) -> None:
        for ev in self.watcher.events(self.inputs, self.followed):
            self.apply(ev)

    def apply(self, ev: "Event", initial: bool = False) -> None:
        kind = type(ev)
        if kind is Seen:
            self._seen(ev)
        elif kind is Created:
            self._created(ev, initial)
        elif kind is Moved:
            self._moved(ev)
        elif kind is Gone:
            self._gone(ev)
        else:
            raise TypeError(f"not a watcher event: {ev!r}")

    def _log_name(self, inp: "Input", path: str) -> str | None:
        ln = log_name_of(inp, path)
        if ln is None and path not in self.warned:
            self.warned.add(path)
            self.counters.files_not_shipped("not shipped: the file name of %s does not match log_name_pattern %r", path,
                                      inp.log_name_pattern)
        return ln

    def _created(self, ev: Created, initial: bool) -> None:
        key = key_of(ev.st)
        if self.copy_rules.skipped.get(key) == ev.st.st_size:
            return  # not a log, and unchanged
        if ev.at is None and key not in self.tailers and not self.room.take():
            if initial:  # found by an input's first scan: opened later as found then
                self.room.waiting_initial.setdefault(key, ev.st.st_size)
            self.room.waiting[key] = ev  # opened by the next sweep that makes room
            return
        stored = None
        t = self.tailers.get(key)
        if t is not None:
            if t.state != CLOSED or not t.finished:
                return  # followed already (events raced), or closing: the next scan sees it
            stored = t.position(time.time())  # its last position, if not saved yet
            del self.tailers[key]
        ln = log_name_of(ev.input, ev.path)  # None: said once it is judged no copy (a copy takes its original's)
        t = self._open(key, ev.path, ev.input, ln, initial, at=ev.at, stored=stored)
        if t is not None and ev.at is not None:
            t.to(DRAINING, "rotated before it was found: %s was renamed to %s; reading it to its end", ev.path,
                 ev.at)

    def _moved(self, ev: Moved) -> None:
        key = key_of(ev.st)
        t = self.tailers.get(key)
        if t is None or t.state == CLOSED:
            if ev.input is not None:
                self._created(Created(ev.new, ev.input, ev.st), initial=False)
            return
        ln = self._ln(t, ev.input, ev.new)
        if t.judging:
            if ev.input is not None:
                t.set_path(ev.new)
            elif t.state == ACTIVE:  # renamed out of the globs: its lines keep the name they were written under
                t.to(DRAINING, ROTATED, ev.old, t.identity)
            return
        if ln is not None:  # still wanted, under its new name
            t.set_path(ev.new)
            t.set_input(ev.input, ln)
            self._wanted(t, ev.new, ev.st)
        elif t.state == ACTIVE:
            t.to(DRAINING, ROTATED, t.path, t.identity)
        elif t.state == IDLE:
            self._idle_away(t, ev.new, ev.st)

    def _seen(self, ev: Seen) -> None:
        t = self.tailers.get(key_of(ev.st))
        if t is None or t.judging:
            return
        if t.cold and ev.st.st_size != t.read_pos:
            t.warm()
        ln = self._ln(t, ev.input, ev.path) or self._log_name(ev.input, ev.path)
        if ln is None:
            return
        t.set_input(ev.input, ln)
        self._wanted(t, ev.path, ev.st)
        if t.fd >= 0 and t.src is None and t.content_changed():
            self.copy_rules.truncated(t, ev.st.st_size)

    def _ln(self, t: Tailer, inp: "Input | None", path: str) -> str | None:
        """The log_name of ``t`` at ``path`` (a copy keeps its original's wherever an input wants it)."""
        if inp is None:
            return None
        return t.log_name if t.src is not None else log_name_of(inp, path)

    def _gone(self, ev: Gone) -> None:
        t = self.tailers.get(ev.key)
        if t is None or t.state in (CLOSED, DRAINING, RETIRING):
            return
        try:
            still_there = key_of(os.stat(t.path)) == ev.key
        except OSError:
            still_there = False
        if still_there:
            t.to(RETIRING, "no input wants %s any more; stopping it at offset %d", t.path, t.read_pos)
        elif t.fd >= 0:
            t.to(DRAINING, ROTATED, t.path, t.identity)
        else:
            t.to(CLOSED, "let go of %s (%s): renamed or deleted while idle, at offset %d", t.path, t.identity,
                 t.read_pos)

    def _wanted(self, t: Tailer, path: str, st: os.stat_result) -> None:
        """``t`` is at ``path``, which an input wants."""
        if t.state in (DRAINING, RETIRING):
            if t.fd >= 0:
                t.to(ACTIVE, "following %s (%s) again at offset %d", path, t.identity, t.read_pos)
            else:
                t.reopen(path, ACTIVE, "following %s (%s) again at offset %d", path, t.identity, t.read_pos)
        elif t.state == IDLE and (st.st_size > t.read_pos or (st.st_size < t.read_pos and t.src is None)):
            if not self.room.take():
                self.room.waiting[(t.dev, t.ino)] = Seen(path, t.input, st)
                return
            if t.reopen(path, ACTIVE, "reopening %s at offset %d: it changed", path, t.read_pos,
                        level=logging.DEBUG if t.quiet_closed else logging.INFO):
                self.counters.files_opened.value += 1
            else:  # not the same file any more
                del self.tailers[(t.dev, t.ino)]
                self._created(Created(path, t.input, st), initial=False)

    def _idle_away(self, t: Tailer, new: str, st: os.stat_result) -> None:
        """An IDLE file renamed to a name no input wants: read what it gains until it
        has been quiet for rotate_wait_s (the writer may not have reopened its log yet)."""
        if t.reopen(new, DRAINING, ROTATED, t.path, t.identity):
            self.counters.files_opened.value += 1
        else:
            t.to(CLOSED, "let go of %s (%s): renamed or deleted while idle, at offset %d", t.path, t.identity,
                 t.read_pos)

    # ------------------------------------------------------------ end of file
    def at_eof(self, t: Tailer, now: float) -> bool:
        """A read found nothing new: True when there is more to do at once (a truncation)."""
        if t.at_eof() == "truncated":
            self.copy_rules.truncated(t, t.size_seen)
            return True
        idle = now - t.last_data
        if t.state == DRAINING:
            if idle >= self.rotate_wait_s and t.acks.idle:
                if any(j.judging and j.waits_on == (t.dev, t.ino) for j in self.tailers.values()):
                    self.copy_rules.ended(t.generation(), find=False)  # a file judged its copy waits for it
                t.to(CLOSED, "finished %s (%s, rotated or deleted) at offset %d", t.path, t.identity, t.read_pos)
                self.counters.files_finished.value += 1
        elif t.state == ACTIVE and t.src is not None and idle >= self.rotate_wait_s and t.acks.idle:
            t.to(IDLE, "finished the copy %s (%s) at offset %d; closing it (reopened if it grows)", t.path,
                 t.identity, t.read_pos)
        elif t.state == ACTIVE and idle >= self.close_inactive_s and t.acks.idle:
            t.to(IDLE, "closing %s after %.0fs without new lines (reopened when it grows)", t.path, idle)
        return False

    def unreadable(self, t: Tailer, now: float) -> None:
        """A tailer not read from: a judged one is looked at again; a retiring one
        closes once nothing is pending."""
        if t.judging and t.fd >= 0:
            self.copy_rules.judge(t, now)
        elif t.state == RETIRING and t.acks.idle:
            t.to(CLOSED, "stopped %s at offset %d", t.path, t.read_pos)

    # ------------------------------------------------------------ opening
    def _open(self, key: Key, path: str, inp: "Input", log_name: str, initial: bool, at: str | None = None,
              stored: "FilePosition | None" = None) -> Tailer | None:
        """Open the file found at ``path`` (at ``at`` when it was renamed since) from its start position."""
        try:
            fd = os.open(at or path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.watcher.want_rescan()  # renamed or deleted since: its rename, or the next scan, says where
            return None
        except OSError as e:
            if path not in self.warned:
                self.warned.add(path)
                self.counters.open_errors("cannot open %s: %s", path, e)
            return None
        st = os.fstat(fd)
        if key_of(st) != key:
            os.close(fd)  # replaced between the scan and now: the next scan sees the new one
            self.watcher.want_rescan()
            return None
        size = size_then = st.st_size
        waiting_initial = self.room.waiting_initial
        if waiting_initial and key in waiting_initial:
            initial, size_then = True, min(size, waiting_initial.pop(key))
        if stored is None and self.positions is not None:
            stored = self.positions.get(*key)
        start, how = stored_start(stored, fd, size)
        judging, src = False, None
        if start is not None:
            fp, gen, src = (stored.fp_len, stored.fp_crc), stored.gen, stored.src
            if src is not None:
                log_name = log_name_of(owner(self.inputs, src.path) or inp, src.path) or log_name
        else:
            gen = stored.gen + 1 if stored is not None else self._next_gen(key)
            if stored is not None and stored.src is None:
                self.copy_rules.ended_stored(stored)
            if initial and inp.start_at == "end" and path not in self.known_paths:
                start = last_line_end(fd, size_then)
                fp = fingerprint(fd, min(start, FINGERPRINT_BYTES))
                how = "start_at=end"
            else:  # judged first: a copy, or a file of its own
                start, fp, judging = 0, fingerprint(fd, 0), True
                how = how or "new file"
        if log_name is None and not judging:
            os.close(fd)
            self._log_name(inp, path)  # says it is not shipped
            return None
        if initial and stored is None and size > 0 and self.new_store is not None:
            self.new_store.append((path, size, start))
        os.lseek(fd, start, os.SEEK_SET)
        t = Tailer(key[0], key[1], path, fd, inp, log_name, start, fp, self.host, self.counters, size=size, gen=gen,
                   src=src, judging=judging)
        t.how = how
        self.tailers[key] = t
        self.known_paths.add(path)
        self.counters.files_opened.value += 1
        if not judging:
            log.info("reading %s (%s, %s) from offset %d of %d -> topic %s, log_name %s", path, t.identity, how,
                     start, size, inp.topic, log_name)
            if gen and (stored is None or gen != stored.gen):
                self.save_now()  # a new generation is stored before any of its lines is sent
        return t

    def _next_gen(self, key: Key) -> int:
        return self.positions.next_gen(*key) if self.positions is not None else 0

    # ------------------------------------------------------------ start, copies, room
    def resume_rotated_while_stopped(self, stored: list["FilePosition"]) -> None:
        """At start: files rotated while the shipper was stopped (shipper/files/starting.py),
        then the copies of the generations that ended before."""
        starting.resume_rotated_while_stopped(stored, self.tailers, self.inputs, self._open)
        self.copy_rules.look_for_copies(list(self.copies.origins.values()))

    def report_new_store(self, db_path) -> None:
        found, self.new_store = self.new_store, None
        starting.report_new_store(found, db_path)

    def look_for_copies(self) -> None:
        self.copy_rules.look_for_copies()

    def drop_finished(self, candidates: Iterable[Tailer]) -> None:
        """Forget the tailers that are done with, once their last position is saved
        (``candidates``: the tailers that may be, the warm ones: a closed one is never cold)."""
        for t in [t for t in candidates if t.finished and t.saved_now]:
            key = (t.dev, t.ino)
            if self.tailers.get(key) is t:
                del self.tailers[key]

    def close_all(self) -> None:
        for t in self.tailers.values():
            t.close()
