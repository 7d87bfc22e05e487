"""The one place that opens RocksDB (through rocksdict).

A process role (``shipper`` or ``mtga``) owns one database folder. Typed stores
(the shipper's FilePositions; mtga's PartitionOffsets, FailureQueue,
SourceMarks and PropertyTypes) share it under distinct key prefixes, so one
write batch can update several of them atomically.

On-disk format: raw bytes keys and values (no pickling). The key ``\\0meta/format``
holds the format version (an unknown version is refused rather than misread),
``\\0meta/role`` the role that created the folder (the other program's folder
is refused).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable

from rocksdict import AccessType, Options, Rdict, WriteBatch, WriteOptions

FORMAT_VERSION = b"1"
_META_FORMAT = b"\x00meta/format"
_META_ROLE = b"\x00meta/role"


class StateError(Exception):
    """A state store problem, with a message for the operator."""


class StateLocked(StateError):
    """Another process holds the database for writing."""


class StateMissing(StateError):
    """No database at the path (read-only open of a store never written)."""


class StateWriteError(StateError):
    """A write failed (a full disk, say); the database reopens itself on the next write."""


def ensure_private_dir(path: Path) -> list[str]:
    """Create ``path`` (and parents) as 0700; tighten it if it is looser.

    Returns a list of human-readable notes about modes it fixed.
    """
    notes = []
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_uid != os.getuid():
        raise StateError(f"{path}: owned by uid {st.st_uid}, not by this user ({os.getuid()}); refusing to use it")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        os.chmod(path, 0o700)
        notes.append(f"{path}: mode {mode:04o} was open to other users; set to 0700")
    return notes


class Batch:
    """An atomic group of writes across stores; applied by ``StateDB.write``."""

    __slots__ = ("wb", "after")

    def __init__(self) -> None:
        self.wb = WriteBatch(raw_mode=True)
        self.after: list[Callable[[], None]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.wb.put(key, value)

    def delete(self, key: bytes) -> None:
        self.wb.delete(key)

    def on_commit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the batch is durably written (in-memory bookkeeping)."""
        self.after.append(fn)


class StateDB:
    """A RocksDB database folder owned by one process role.

    ``read_only=True`` opens a consistent view while another process writes
    (the CLI reading a running daemon's state); it sees what was written up to
    the moment it was opened.
    """

    def __init__(self, path: str | os.PathLike, role: str, *, read_only: bool = False, sync: bool = False):
        self.path = Path(path)
        self.role = role
        self.read_only = read_only
        self.notes: list[str] = []
        self._wo = WriteOptions()
        self._wo.sync = sync
        self._sync_wo = WriteOptions()
        self._sync_wo.sync = True
        self._broken: str | None = None
        self.db = None
        self.created = False
        self._open(first=True)

    def _open(self, first: bool = False) -> None:
        role = self.role
        read_only = self.read_only
        opts = Options(raw_mode=True)
        if read_only:
            if not (self.path / "CURRENT").exists():
                raise StateMissing(f"no {role} state at {self.path} (nothing has been stored there yet)")
            try:
                self.db = Rdict(str(self.path), opts, access_type=AccessType.read_only())
            except Exception as e:  # rocksdict raises plain Exception
                raise StateError(f"cannot read the {role} state at {self.path}: {e}") from None
        else:
            if first:
                self.notes += ensure_private_dir(self.path.parent)
            fresh = not (self.path / "CURRENT").exists()
            if first:
                self.created = fresh  # a new, empty store (first start, or the folder was removed)
            opts.create_if_missing(True)
            try:
                self.db = Rdict(str(self.path), opts)
            except Exception as e:
                msg = str(e)
                if "lock" in msg.lower():
                    raise StateLocked(
                        f"the {role} state at {self.path} is in use by another process "
                        f"(only one {role} may run per state folder)"
                    ) from None
                raise StateError(
                    f"cannot open the {role} state at {self.path}: {msg.rstrip('. ')}. "
                    f"Move the folder aside to start with empty state."
                ) from None
            try:
                os.chmod(self.path, 0o700)
            except OSError:
                pass
            if fresh:
                b = Batch()
                b.put(_META_FORMAT, FORMAT_VERSION)
                b.put(_META_ROLE, role.encode())
                self.write(b, sync=True)
        fmt = self.db.get(_META_FORMAT)
        if fmt is not None and fmt != FORMAT_VERSION:
            self.close()
            raise StateError(f"{self.path}: state format {fmt!r} is not supported by this version (expects {FORMAT_VERSION!r})")
        owner = self.db.get(_META_ROLE)
        if owner is not None and owner.decode() != role:
            self.close()
            raise StateError(f"{self.path}: this folder holds {owner.decode()} state, not {role} state")

    # -- access used by the typed stores ---------------------------------------
    def get(self, key: bytes) -> bytes | None:
        if self.db is None:
            self._reopen()
        return self.db.get(key)

    def scan(self, prefix: bytes, start: bytes | None = None):
        """Yield (key, value) for keys starting with ``prefix``, in key order."""
        if self.db is None:
            self._reopen()
        it = self.db.iter()
        it.seek(start if start is not None else prefix)
        while it.valid():
            k = it.key()
            if not k.startswith(prefix):
                break
            yield k, it.value()
            it.next()

    def write(self, batch: Batch, sync: bool = False) -> None:
        """Apply ``batch`` atomically. After a failed write (RocksDB keeps refusing
        writes once its log could not be appended, even when space returns) the
        database is closed and opened again before the next write."""
        if self.read_only:
            raise StateError(f"{self.path} is open read-only")
        if self._broken is not None:
            self._reopen()
        if batch.wb.len():
            try:
                self.db.write(batch.wb, self._sync_wo if sync else self._wo)
            except Exception as e:
                self._broken = str(e)
                raise StateWriteError(f"cannot write the {self.role} state at {self.path}: {e}") from None
        for fn in batch.after:
            fn()

    def _reopen(self) -> None:
        old, self.db = self.db, None
        if old is not None:
            try:
                old.close()
            except Exception:
                pass  # the handle is released even when close reports the earlier error
        try:
            self._open()
        except StateError as e:
            raise StateWriteError(f"{self.path} is still not writable: {e}") from None
        self._broken = None

    def flush(self) -> None:
        """Persist the write-ahead log to disk (fsync)."""
        if not self.read_only:
            if self._broken is not None or self.db is None:
                self._reopen()
            try:
                self.db.flush_wal(True)
            except Exception as e:
                self._broken = str(e)
                raise StateWriteError(f"cannot sync the {self.role} state at {self.path}: {e}") from None

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            self.db = None
            try:
                db.close()
            except Exception:
                if self._broken is None:
                    raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
