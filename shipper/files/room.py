"""Room: how many files the shipper holds open, and which it reads in a turn.

Open descriptors (``sweep``, about once a second): cold files (shipper/files/tailer.py)
are closed after close_inactive_s; with more than max_open_files open, the
quietest files at their end with nothing pending are closed at once (IDLE), and
files to open (new, or closed ones that grew) wait for the next sweep, which makes
room for them. A file is closed only with nothing pending, and reopened by
identity when a write to it is reported; files being rotated (DRAINING) always
get their descriptor. ``Split`` keeps the warm tailers (read in every turn) apart
from the cold ones, listed again only when a tailer was made or changed side.
"""

from __future__ import annotations

import logging
import resource
from typing import TYPE_CHECKING, Callable

from shipper.files.tailer import ACTIVE, IDLE, Tailer

if TYPE_CHECKING:
    from shipper.files.identity import Key
    from shipper.stats import FileView
    from shipper.files.watcher import Created, Seen

log = logging.getLogger("shipper")

QUIET_SAY_S = 60.0  # closings for room are said at most this often (a count)


def room_for_files(max_open: int) -> None:
    """Raise the soft limit of open files towards the hard one, so that
    max_open_files descriptors (and the rest the process holds) fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max_open + 256  # the state store, sockets, the metrics server
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            new = soft
        if new < want:
            log.warning("open files are limited to %d (ulimit -n); max_open_files=%d needs %d: lower it, or raise "
                        "the limit (LimitNOFILE= in the systemd unit)", new, max_open, want)


class Split:
    """The tailers of a table, warm and cold, made again only when they changed."""

    def __init__(self, tailers: dict):
        self.tailers = tailers
        self.key = None
        self.warm: list[Tailer] = []
        self.cold: list[Tailer] = []
        self.cold_views: tuple = ()
        self.cold_open = 0
        self.cold_behind = 0
        self.cold_unsaved: list[Tailer] | None = None  # cold tailers whose position may not be stored yet

    def refresh(self) -> None:
        key = (Tailer.changes, len(self.tailers))
        if key != self.key:
            self.key = key
            self.warm = [t for t in self.tailers.values() if not t.cold]
            self.cold = [t for t in self.tailers.values() if t.cold]
            self.cold_views = None
            self.cold_unsaved = None

    def to_save(self) -> list[Tailer]:
        """The tailers whose position may have changed since it was stored: the warm
        ones, and the cold ones not stored since they went cold (a checkpoint of
        thousands of quiet files looks at none of them)."""
        self.refresh()
        self.cold_unsaved = [t for t in (self.cold if self.cold_unsaved is None else self.cold_unsaved)
                             if not t.cold_saved]
        return self.warm + self.cold_unsaved

    def views(self, view: Callable[[Tailer], "FileView"]) -> tuple[tuple, int, int]:
        """(FileView of every tailer, how many hold a descriptor, bytes behind in all);
        a cold tailer's view is taken once, while it stays cold."""
        self.refresh()
        if self.cold_views is None:
            for t in self.cold:
                if t.view is None:
                    t.view = view(t)
            self.cold_views = tuple(t.view for t in self.cold)
            self.cold_open = sum(1 for t in self.cold if t.fd >= 0)
            self.cold_behind = sum(v.behind for v in self.cold_views)
        warm = [view(t) for t in self.warm]
        return (self.cold_views + tuple(warm), self.cold_open + sum(1 for t in self.warm if t.fd >= 0),
                self.cold_behind + sum(v.behind for v in warm))


class Room:
    """The bound on the prospector's open descriptors (module doc). It reads the
    prospector's table of tailers, closes quiet ones, and hands the files that
    waited for room back to the prospector's ``apply``."""

    def __init__(self, tailers: dict, apply: Callable):
        self.tailers = tailers
        self.apply = apply
        self.max_open = 0  # max_open_files (0: no bound)
        self.close_inactive_s = 300.0
        self.free = 1 << 30  # descriptors that may still be opened before the next sweep
        self.waiting: dict["Key", "Created | Seen"] = {}  # files to open (or reopen) once there is room
        self.waiting_initial: dict["Key", int] = {}  # found by a first scan, not opened yet: size then
        self.closed_quiet = 0  # files closed for room, not said yet
        self.said_quiet = -1e9

    def configure(self, max_open: int, close_inactive_s: float) -> None:
        self.max_open = max_open
        self.free = max_open - sum(1 for t in self.tailers.values() if t.fd >= 0) if max_open else 1 << 30
        self.close_inactive_s = close_inactive_s

    def take(self) -> bool:
        """A descriptor may be opened now (False: it waits for the next sweep)."""
        if self.max_open and self.free <= 0:
            return False
        self.free -= 1
        return True

    def sweep(self, now: float) -> None:
        """Close cold files after close_inactive_s, and the quietest files when more
        than max_open_files are open (module doc); then open what waited for room."""
        n_open, quiet = 0, []
        for t in self.tailers.values():
            if t.fd < 0:
                continue
            if t.cold and now - t.last_data >= self.close_inactive_s:
                t.to(IDLE, "closing %s after %.0fs without new lines (reopened when it grows)", t.path,
                     now - t.last_data)
                continue
            n_open += 1
            if t.eof and t.state == ACTIVE and not t.judging and t.acks.idle:
                quiet.append(t)
        if not self.max_open:
            return
        target = self.max_open - min(len(self.waiting), self.max_open)  # room for what waits
        if n_open > target and quiet:
            quiet.sort(key=lambda t: t.last_data)
            for t in quiet[:n_open - target]:
                if t.size_now() != t.read_pos:
                    continue  # written since its last read: read it first (its write was reported while open)
                t.quiet_closed = True
                t.to(IDLE, "closing %s (quiet) to keep open files within max_open_files=%d", t.path,
                     self.max_open, level=logging.DEBUG)
                n_open -= 1
                self.closed_quiet += 1
        if self.closed_quiet and now - self.said_quiet >= QUIET_SAY_S:
            log.info("closed %d quiet file(s) to keep open files within max_open_files=%d (%d open now); each is "
                     "reopened when it grows", self.closed_quiet, self.max_open, n_open)
            self.closed_quiet, self.said_quiet = 0, now
        self.free = self.max_open - n_open
        while self.waiting and self.free > 0:
            ev = self.waiting.pop(next(iter(self.waiting)))
            self.apply(ev)  # a file gone or replaced since is looked for again by a rescan (_open)
