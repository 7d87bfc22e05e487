"""Waiting on a consumer's output: its first bytes, its exit; counting what it wrote."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

from .common import BenchError
from .procs import Proc


def poll(p: Proc, deadline: float, done: Callable[[], bool], died: Callable[[], str], late: Callable[[], str],
         every: float) -> float:
    """Calls ``done()`` every ``every`` s until it says true: the time it did. BenchError with
    ``died()`` if ``p`` exits first, with ``late()`` once past ``deadline``."""
    while True:
        if not p.alive():
            raise BenchError(died())
        if time.monotonic() > deadline:
            raise BenchError(late())
        if done():
            return time.monotonic()
        time.sleep(every)


def first_output(b, p: Proc, out: Path, deadline: float, what: str) -> float:
    """Wait for the first non-empty file under ``out``; its time."""
    while True:
        if any_bytes(out):
            return time.monotonic()
        if not p.alive():
            if any_bytes(out):
                return p.ended
            raise BenchError(f"{what} exited with {p.rc} before writing anything: {p.log_tail(8)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what} wrote nothing in {b.timeout(b.n_events):.0f}s: {p.log_tail(8)}")
        time.sleep(0.02)


def until_exit(b, p: Proc, name: str, d: Path, out: Path, n: int) -> tuple:
    """A consumer that exits by itself after ``n`` events: (its first output, the
    lines written in ``out``); ``d`` is removed."""
    deadline = time.monotonic() + b.timeout(n)
    try:
        t_first = first_output(b, p, out, deadline, name)
        rc = p.wait(max(1.0, deadline - time.monotonic()) + 10)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{name} did not finish in time") from None
    finally:
        p.stop(signal.SIGKILL)
    if rc != 0:
        raise BenchError(f"{name} exited with {rc}: {p.log_tail(8)}")
    got = count_lines(out)
    shutil.rmtree(d, ignore_errors=True)
    return t_first, got


def any_bytes(folder: Path) -> bool:
    try:
        for e in os.scandir(folder):
            if e.is_dir(follow_symlinks=False):
                if any_bytes(Path(e.path)):
                    return True
            elif e.stat(follow_symlinks=False).st_size > 0:
                return True
    except OSError:
        pass
    return False


def count_lines(folder: Path) -> int:
    n = 0
    for f in folder.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    n += block.count(b"\n")
    return n


def tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""
