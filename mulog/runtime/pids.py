"""Whether a process id stands for a live process (the pid files' readers)."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while ``pid`` runs: it exists and is not a zombie that has exited."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's: it exists
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
