"""Watcher: finds the files the inputs want.

A watchdog (inotify) Observer watches the folder of each glob (the whole subtree
only where a folder part of the glob has a wildcard, as with ``**``) for files
created, moved and deleted; each such event wakes the shipper, which then scans.
A full scan also runs every ``rescan_interval_s`` to catch what events miss (NFS,
an overflowed inotify queue, folders that appear later). Renames are also kept
as (old, new) names: a file renamed away from a matching name before any scan saw
it (a rotation within milliseconds of the file's creation) is then found under its
new name.

Writes to files are not watched: the shipper reads its open files in a loop
anyway, and a busy log written in small pieces would otherwise flood the process
with one modify event per write.
"""

from __future__ import annotations

import glob
import logging
import os
import stat
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from watchdog.events import (DirCreatedEvent, DirDeletedEvent, DirMovedEvent, FileCreatedEvent,
                             FileDeletedEvent, FileMovedEvent, FileSystemEventHandler)
from watchdog.observers import Observer

from .globs import excluded, watch_root

if TYPE_CHECKING:
    from shipper.config import Input

log = logging.getLogger("shipper.watcher")

EVENTS = [FileCreatedEvent, FileMovedEvent, FileDeletedEvent, DirCreatedEvent, DirMovedEvent, DirDeletedEvent]


@dataclass
class Found:
    path: str
    input: "Input"
    st: os.stat_result


def scan(inputs: Iterable["Input"]) -> dict[tuple[int, int], Found]:
    """Every regular file matched by an input, by (device, inode); a file matched
    by several inputs belongs to the first."""
    found: dict[tuple[int, int], Found] = {}
    for inp in inputs:
        for pattern in inp.paths:
            for path in sorted(glob.glob(pattern, recursive=True)):
                if excluded(inp, path):
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                key = (st.st_dev, st.st_ino)
                if key not in found:
                    found[key] = Found(path, inp, st)
    return found


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: "Watcher"):
        self.watcher = watcher

    def on_any_event(self, event) -> None:
        if isinstance(event, FileMovedEvent) and event.dest_path:
            self.watcher.moves.append((os.fsdecode(event.src_path), os.fsdecode(event.dest_path)))
        self.watcher.changed.set()
        self.watcher.wake.set()


class Watcher:
    """Schedules inotify watches for the inputs' globs; ``changed`` is set by events."""

    def __init__(self, wake: threading.Event):
        self.wake = wake
        self.changed = threading.Event()
        self.observer = Observer()
        self.observer.daemon = True
        self.handler = _Handler(self)
        self.watches: dict[tuple[str, bool], object] = {}
        self.started = False
        # (old, new) names of renamed files, for the loop: a file renamed away before
        # a scan found it is still read (appended here by the observer thread)
        self.moves: deque[tuple[str, str]] = deque(maxlen=10_000)

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
