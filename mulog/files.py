"""File helpers both programs use."""

from __future__ import annotations

import os


def signature(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """(inode, size, mtime in ns) of ``path``, which changes when the file is
    written or replaced; None when it cannot be looked at."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def last_line_end(fd: int, size: int) -> int:
    """Offset just after the last newline before ``size`` (0 when there is none)."""
    pos = size
    while pos > 0:
        n = min(pos, 65536)
        data = os.pread(fd, n, pos - n)
        i = data.rfind(b"\n")
        if i >= 0:
            return pos - n + i + 1
        pos -= n
    return 0


SYNC_FILE_RANGE_WRITE = 2  # from <fcntl.h>: start writing the dirty pages out, without waiting
_sync_file_range = None  # libc's sync_file_range, looked up at the first call (False: there is none)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing ``length`` bytes from ``offset`` to the disk now,
    without waiting for it (as RocksDB's ``bytes_per_sync`` does): the fsync that
    makes them durable later finds them written, or on their way, instead of
    writing them all then. Nothing where the call does not exist (not Linux); an
    error shows at that fsync."""
    global _sync_file_range
    fn = _sync_file_range
    if fn is None:
        import ctypes

        try:
            fn = ctypes.CDLL(None).sync_file_range  # the process's own symbols: libc's, without a search
            fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
            fn.restype = ctypes.c_int
        except (OSError, AttributeError):
            fn = False
        _sync_file_range = fn
    if fn:
        fn(fd, offset, length, SYNC_FILE_RANGE_WRITE)
