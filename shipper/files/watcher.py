"""Watcher: turns inotify events and scans into typed file events.

    Created(path, input, st, at)  a file an input wants that is not followed yet
                                  (``at``: its name now, when it was renamed away
                                  from ``path`` before anything saw it there)
    Moved(old, new, input, st)    a followed file now at another name (``input``:
                                  the one that wants the new name; None: no input
                                  does, it was rotated away)
    Seen(path, input, st)         a followed file a scan found at its path
    Gone(key, path)               a followed file a scan no longer finds at its path

What is *followed* (device + inode -> path) is the prospector's to say; the
watcher only compares what it sees with it. A watchdog Observer watches the
folder of each glob (the whole subtree only where a folder part of the glob has
a wildcard, as with ``**``); its thread only queues raw records and wakes the
loop, which turns them into events (``events``): a created or renamed file is
judged by its name (shipper/files/globs.py) and a stat, without globbing anything.
A deletion, or a folder created, moved or deleted, asks for a rescan instead;
rescans are debounced (``rescan_due``): a burst of inotify events globs every
input at most once per DEBOUNCE_S. The loop also scans every
``rescan_interval_s`` to catch what events miss (NFS, an overflowed queue,
folders that appear later).

Writes are watched too (``touched``): the loop reads only the files that had
data lately, and a modify record is what tells it that a quiet file has grown (or
was truncated). Its thread only adds the path to a queue (the kernel folds
repeated modifies of one file that were not read yet); the loop turns each
distinct path into a Seen event once per turn, without waking for it.
"""

from __future__ import annotations

import glob
import logging
import os
import stat
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Collection, Iterable, Iterator, Mapping, Union

from watchdog.events import (DirCreatedEvent, DirDeletedEvent, DirMovedEvent, FileCreatedEvent,
                             FileDeletedEvent, FileModifiedEvent, FileMovedEvent, FileSystemEventHandler)
from watchdog.observers import Observer

from shipper.files.globs import excluded, owner, watch_root
from shipper.files.identity import Key, key_of

if TYPE_CHECKING:
    from shipper.config import Input

log = logging.getLogger("shipper.watcher")

EVENTS = [FileCreatedEvent, FileMovedEvent, FileDeletedEvent, FileModifiedEvent, DirCreatedEvent, DirMovedEvent,
          DirDeletedEvent]
DEBOUNCE_S = 0.2  # at most one rescan asked for by events per this many seconds
MAX_RAW = 10_000  # raw records kept between two drains; beyond that, a rescan instead


@dataclass(frozen=True)
class Created:
    path: str
    input: "Input"
    st: os.stat_result
    at: str | None = None


@dataclass(frozen=True)
class Moved:
    old: str
    new: str
    input: "Input | None"
    st: os.stat_result


@dataclass(frozen=True)
class Seen:
    path: str
    input: "Input"
    st: os.stat_result


@dataclass(frozen=True)
class Gone:
    key: Key
    path: str


Event = Union[Created, Moved, Seen, Gone]


Found = tuple  # (path, input, stat result) of a file a scan found


def scan(inputs: Iterable["Input"]) -> dict[Key, Found]:
    """Every regular file matched by an input, by (device, inode), as (path, input,
    stat result); a file matched by several inputs belongs to the first. (Run every
    rescan_interval_s over every file: kept lean.)"""
    found: dict[Key, Found] = {}
    stat_of, is_reg = os.stat, stat.S_ISREG
    for inp in inputs:
        exclude = inp.exclude
        for pattern in inp.paths:
            for path in sorted(glob.glob(pattern, recursive=True)):
                if exclude and excluded(inp, path):
                    continue
                try:
                    st = stat_of(path)
                except OSError:
                    continue
                if not is_reg(st.st_mode):
                    continue
                key = (st.st_dev, st.st_ino)  # key_of
                if key not in found:
                    found[key] = (path, inp, st)
    return found


def _regular(path: str) -> os.stat_result | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: "Watcher"):
        self.watcher = watcher

    def on_any_event(self, event) -> None:
        w = self.watcher
        if type(event) is FileModifiedEvent:
            if len(w.touched) < MAX_RAW:
                w.touched.append(event.src_path)
            else:
                w.rescan_wanted = True
            return  # read within the loop's turn; no wake-up for each write
        if isinstance(event, (FileCreatedEvent, FileMovedEvent)) and len(w.raw) < MAX_RAW:
            dest = os.fsdecode(event.dest_path) if isinstance(event, FileMovedEvent) else None
            w.raw.append((os.fsdecode(event.src_path), dest))
        else:  # deleted, a folder, or too many records: the next scan tells
            w.rescan_wanted = True
        w.wake.set()


class Watcher:
    """inotify watches for the inputs' globs, and scans; see the module doc."""

    def __init__(self, wake: threading.Event):
        self.wake = wake
        self.observer = Observer()
        self.observer.daemon = True
        self.handler = _Handler(self)
        self.watches: dict[tuple[str, bool], object] = {}
        self.started = False
        self.raw: deque[tuple[str, str | None]] = deque()  # (path, None) created; (old, new) moved
        self.touched: deque[str | bytes] = deque()  # paths written to (or truncated)
        self.rescan_wanted = False
        self.last_scan = 0.0

    # ------------------------------------------------------------ events
    def want_rescan(self) -> None:
        self.rescan_wanted = True

    def rescan_due(self, now: float) -> bool:
        return self.rescan_wanted and now >= self.last_scan + DEBOUNCE_S

    def pending(self) -> bool:
        return bool(self.raw) or bool(self.touched)

    def sees_writes(self, path: str) -> bool:
        """A write to ``path`` is reported: its folder is watched."""
        if not self.started:
            return False
        d = os.path.dirname(path)
        for root, recursive in self.watches:
            if d == root or (recursive and d.startswith(root.rstrip("/") + "/")):
                return True
        return False

    def events(self, inputs: list["Input"], followed: Callable[[Key], str | None]) -> Iterator[Event]:
        """The inotify records queued so far, as events (``followed(key)``: the
        path a file is followed at, looked up as each event is made, so that the
        events already handled count)."""
        raw = self.raw
        while raw:
            src, dest = raw.popleft()
            st = _regular(dest or src)
            if st is None:
                continue  # gone again, or not a file: nothing to read
            key = key_of(st)
            now_at = dest or src
            inp = owner(inputs, now_at)
            was = followed(key)
            if was is not None:
                if was == now_at:
                    if inp is not None:
                        yield Seen(now_at, inp, st)
                else:
                    yield Moved(was, now_at, inp, st)
            elif inp is not None:
                yield Created(now_at, inp, st)
            elif dest is not None:
                first = owner(inputs, src)  # renamed away from a wanted name before anything saw it there
                if first is not None:
                    yield Created(src, first, st, at=dest)
        touched = self.touched
        if touched:
            paths = set()
            while touched:
                paths.add(touched.popleft())
            for p in paths:
                path = os.fsdecode(p)
                st = _regular(path)
                if st is None:
                    continue
                inp = owner(inputs, path)
                if inp is not None and followed(key_of(st)) == path:
                    yield Seen(path, inp, st)

    def scan(self, inputs: list["Input"], followed: Mapping[Key, str],
             unchanged: Callable[[Key, str, "Input", os.stat_result], bool] | None = None
             ) -> tuple[list[Event], Collection[Key]]:
        """A full scan of the inputs' globs, compared with what is followed: its events,
        and the keys of every file found. A followed file at its path for which
        ``unchanged(key, path, input, st)`` is true gives no event (a quiet file as it was)."""
        self.rescan_wanted = False
        self.last_scan = time.monotonic()
        found = scan(inputs)
        out: list[Event] = []
        for key, (path, inp, st) in found.items():
            was = followed.get(key)
            if was is None:
                out.append(Created(path, inp, st))
            elif was != path:
                out.append(Moved(was, path, inp, st))
            elif unchanged is None or not unchanged(key, path, inp, st):
                out.append(Seen(path, inp, st))
        out.extend(Gone(key, path) for key, path in followed.items() if key not in found)
        return out, found.keys()

    # ------------------------------------------------------------ watches
    def plan(self, inputs: Iterable["Input"]) -> None:
        """Watch what the inputs need now (folders that appeared, inputs changed)."""
        want: set[tuple[str, bool]] = set()
        for inp in inputs:
            for pattern in inp.paths:
                root, recursive = watch_root(pattern)
                p = Path(root)
                while not p.is_dir() and p != p.parent:  # watch the nearest folder that exists
                    p, recursive = p.parent, False
                want.add((str(p), recursive))
        # a recursive watch covers plain watches below it
        rec = [r for r, recursive in want if recursive]
        want = {(r, recursive) for r, recursive in want
                if recursive or not any(r == x or r.startswith(x.rstrip("/") + "/") for x in rec)}
        for key in list(self.watches):
            if key not in want:
                try:
                    self.observer.unschedule(self.watches.pop(key))
                except (KeyError, ValueError, OSError):
                    pass
        for key in want - set(self.watches):
            root, recursive = key
            try:
                self.watches[key] = self.observer.schedule(self.handler, root, recursive=recursive,
                                                           event_filter=EVENTS)
                log.info("watching %s%s", root, " and its sub-folders" if recursive else "")
            except OSError as e:
                log.warning("cannot watch %s (%s); the periodic rescan still finds its files", root, e)
        if not self.started:
            self.observer.start()
            self.started = True

    def stop(self) -> None:
        if self.started:
            self.observer.stop()
            self.observer.join(timeout=5)
            self.started = False
