"""LogBus-ready output files, as ThinkingData's own SDK logging consumer writes them.

One folder per app id under the output folder; files named
``[<prefix>.]log.YYYY-MM-DD`` (daily) or ``[<prefix>.]log.YYYY-MM-DD-HH``
(hourly) by local processing time; with a size limit, ``_0``, ``_1``, ... are
appended and a file that would grow past the limit is closed for the next.
One JSON object per line. Each call to ``write`` is one ``write(2)`` per file;
a failed write is cut back to where it began, so a file never holds half a
line, and the error is raised for the caller to route the lines elsewhere.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mulog.files import last_line_end, start_writeback

log = logging.getLogger("mtga.writer")


class SinkError(Exception):
    """Lines could not be written; ``reason`` is for the failure queue."""

    def __init__(self, reason: str, err: int = 0):
        super().__init__(reason)
        self.reason = reason
        self.errno = err


@dataclass
class _Open:
    name: str
    path: Path
    fd: int
    size: int
    dirty: bool = False


class LogBusWriter:
    def __init__(self, root: Path, prefix: str = "", rotation: str = "daily", max_bytes: int = 0,
                 clock: Callable[[], float] = time.time, fsync: bool = True):
        self.root = Path(root)
        self.prefix = f"{prefix}.log." if prefix else "log."
        self.fmt = "%Y-%m-%d" if rotation == "daily" else "%Y-%m-%d-%H"
        self.max_bytes = max_bytes
        self.clock = clock
        self.fsync = fsync  # False (output.fsync: never): durability is left to the operating system
        self._open: dict[str, _Open] = {}
        self._index: dict[tuple[str, str], int] = {}  # (app, period name) -> split index
        self.bytes_written = 0
        self.errors = 0
        self.last_error: str | None = None
        self.fsync_error: str | None = None  # sticky: see _fsync_failed

    def _period(self) -> str:
        return self.prefix + time.strftime(self.fmt, time.localtime(self.clock()))

    def _first_index(self, folder: Path, base: str) -> int:
        """Continue the highest existing ``base_N`` after a restart."""
        best = 0
        try:
            for p in folder.iterdir():
                n = p.name
                if n.startswith(base + "_") and n[len(base) + 1:].isdigit():
                    best = max(best, int(n[len(base) + 1:]))
        except FileNotFoundError:
            pass
        return best

    def _target(self, app: str, incoming: int) -> _Open:
        base = self._period()
        cur = self._open.get(app)
        name = base
        if self.max_bytes > 0:
            key = (app, base)
            idx = self._index.get(key)
            if idx is None:
                idx = self._first_index(self.root / app, base)
            name = f"{base}_{idx}"
            if cur is not None and cur.name == name and cur.size > 0 and cur.size + incoming > self.max_bytes:
                idx += 1
                name = f"{base}_{idx}"
            self._index[key] = idx
        if cur is not None and cur.name == name:
            return cur
        if cur is not None:
            self._retire(app)
        folder = self.root / app
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except OSError as e:
            self._error(e, f"cannot open {folder / name}")
        size = os.fstat(fd).st_size
        if size:
            size = self._cut_partial_line(fd, path, size)
        o = self._open[app] = _Open(name, path, fd, size)
        if self.max_bytes > 0 and size > 0 and size + incoming > self.max_bytes:
            # the file we resumed is full already: move on to the next index
            self._index[(app, base)] = int(name.rsplit("_", 1)[1]) + 1
            return self._target(app, incoming)
        return o

    def _cut_partial_line(self, fd: int, path: Path, size: int) -> int:
        """A process killed in the middle of a write can leave half a line at the
        end of a file; its events were not checkpointed and come again, so the
        fragment is cut off before anything is appended after it."""
        keep = last_line_end(fd, size)
        if keep == size:
            return size
        os.ftruncate(fd, keep)
        log.warning("%s ended with %d bytes of a line cut short by an interrupted write; removed them "
                    "(the events come again from Kafka)", path, size - keep)
        return keep

    def _retire(self, app: str) -> None:
        o = self._open.pop(app)
        if o.dirty and self.fsync:
            try:
                os.fsync(o.fd)
            except OSError as e:
                self._fsync_failed(o.path, e)
        os.close(o.fd)

    def _error(self, e: OSError, what: str):
        self.errors += 1
        name = errno.errorcode.get(e.errno, str(e.errno))
        self.last_error = f"{what}: {e.strerror} ({name})"
        raise SinkError(f"sink_write: {what}: {e.strerror} ({name})", e.errno or 0) from None

    def write(self, app: str, lines: list[bytes]) -> int:
        """Append ``lines`` (each without newline) for ``app`` with one write call."""
        if not lines:
            return 0
        return self.write_blob(app, [b"\n".join(lines) + b"\n"], len(lines))

    def write_blob(self, app: str, bufs: list, nlines: int) -> int:
        """Append ``nlines`` newline-terminated lines, held in ``bufs`` in order,
        with one write call (writev)."""
        total = sum(len(b) for b in bufs)
        o = self._target(app, total)
        start = o.size
        try:
            done = os.writev(o.fd, bufs) if len(bufs) > 1 else os.write(o.fd, bufs[0])
            if done < total:  # a short write: the rest, from where it stopped
                rest = memoryview(b"".join(bufs))
                while done < total:
                    done += os.write(o.fd, rest[done:])
        except OSError as e:
            try:
                os.ftruncate(o.fd, start)  # no half line left behind
            except OSError:
                log.error("could not cut %s back to %d bytes after a failed write", o.path, start)
            self._error(e, f"cannot write {o.path}")
        o.size = start + total
        o.dirty = True
        if self.fsync:
            start_writeback(o.fd, start, total)  # the checkpoint's fsync then waits for little
        self.bytes_written += total
        self.last_error = None
        return total

    def _fsync_failed(self, path: Path, e: OSError) -> None:
        # After a failed fsync the kernel may have dropped the dirty pages, and a
        # second fsync can succeed without them: the failure is kept, and no
        # checkpoint passes until mtga restarts from the offsets it stored before.
        name = errno.errorcode.get(e.errno, str(e.errno))
        self.fsync_error = f"fsync of {path} failed: {e.strerror} ({name})"
        log.error("%s; no offsets are stored from now on: restart mtga to write the lines since the last "
                  "checkpoint again", self.fsync_error)

    def flush(self) -> None:
        """Make what was written durable (fsync), before offsets covering it are
        stored or failure-queue entries it holds are removed (nothing to do with
        ``fsync`` off)."""
        if not self.fsync:
            return
        for o in self._open.values():
            if o.dirty and self.fsync_error is None:
                try:
                    os.fsync(o.fd)
                except OSError as e:
                    self._fsync_failed(o.path, e)
                o.dirty = False
        if self.fsync_error is not None:
            raise SinkError(f"sink_write: {self.fsync_error}; restart mtga to write the lines since the last "
                            f"checkpoint again")

    def lengths(self) -> dict[str, int]:
        """The length of every open output file (relative to the output folder)."""
        return {str(o.path.relative_to(self.root)): o.size for o in self._open.values()}

    def close(self) -> None:
        for app in list(self._open):
            self._retire(app)
