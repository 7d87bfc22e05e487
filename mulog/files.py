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
