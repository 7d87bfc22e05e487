"""Measured child processes: CPU and memory of a whole process tree, read from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from .common import POLL_S, BenchError

def _children(pid: int) -> list[int]:
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


TICK = os.sysconf("SC_CLK_TCK")


def _mem(pid: int) -> tuple[int, int]:
    """(resident bytes now, peak resident bytes since exec) of one process."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for ln in f:
                if ln.startswith(b"VmHWM:"):
                    hwm = int(ln.split()[1]) * 1024
                elif ln.startswith(b"VmRSS:"):
                    rss = int(ln.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


def proc_cpu(pid: int) -> float | None:
    """User + system seconds of one process (its own, not its children's)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            rest = f.read().rsplit(b") ", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / TICK
    except (OSError, ValueError, IndexError):
        return None


class ProcMonitor(threading.Thread):
    """Polls a process tree (the process and all its descendants) every ``every`` s.

    Memory: the peak is the larger of the tree's summed VmRSS at any sample and
    the largest VmHWM (the kernel's exact high-water mark since exec) of any one
    of its processes. (getrusage's ru_maxrss is no use here: it keeps the
    forking parent's high-water mark across exec.)
    CPU: the last user + system seconds seen of every process of the tree.
    """

    def __init__(self, pid: int, every: float = POLL_S):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak = 0
        self.cpu: dict[int, float] = {}
        self.done = threading.Event()

    def sample(self) -> None:
        total, top, todo, seen = 0, 0, [self.pid], set()
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            rss, hwm = _mem(p)
            total += rss
            top = max(top, hwm)
            c = proc_cpu(p)
            if c is not None:
                self.cpu[p] = max(c, self.cpu.get(p, 0.0))
            todo.extend(_children(p))
        self.peak = max(self.peak, total, top)

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.every)


class Proc:
    """A measured child process: reaped with wait4 for its own resource usage."""

    def __init__(self, cmd: list, log: Path | None = None, stdout=None, env: dict | None = None,
                 cwd: Path | None = None):
        self.cmd = [str(c) for c in cmd]
        self.log = log
        out = stdout if stdout is not None else open(log, "ab") if log else subprocess.DEVNULL
        self.t0 = time.monotonic()
        try:
            self.p = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=env, cwd=cwd, start_new_session=True)
        except OSError as e:
            raise BenchError(f"cannot run {self.cmd[0]}: {e.strerror}") from None
        finally:
            if stdout is None and log:
                out.close()
        self.pid = self.p.pid
        self.rc: int | None = None
        self.ended: float | None = None
        self.rusage = None
        self.mon = ProcMonitor(self.pid)
        self.mon.start()
        LIVE.add(self)

    def alive(self) -> bool:
        if self.rc is not None:
            return False
        pid, status, ru = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self._reaped(status, ru)
        return False

    def _reaped(self, status: int, ru) -> None:
        self.ended = time.monotonic()
        self.rc = os.waitstatus_to_exitcode(status)
        self.p.returncode = self.rc
        self.rusage = ru
        self.mon.done.set()
        LIVE.discard(self)

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.cmd, timeout)
            time.sleep(0.01)
        return self.rc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.wait(10)
        return self.rc

    @property
    def peak_rss_mb(self) -> float:
        return round(self.mon.peak / 2**20, 1)

    @property
    def cpu_s(self) -> float | None:
        """CPU seconds of the tree: the larger of two lower bounds, wait4's (the process and the
        descendants it reaped) and the polled sum (every process seen, up to its last sample)."""
        polled = sum(self.mon.cpu.values())
        waited = self.rusage.ru_utime + self.rusage.ru_stime if self.rusage is not None else 0.0
        return round(max(polled, waited), 3)

    def log_tail(self, n: int = 15) -> str:
        if not self.log or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])



LIVE: set[Proc] = set()  # the processes not reaped yet: killed at the end of the run


def kill_live() -> None:
    for p in list(LIVE):
        p.stop(signal.SIGKILL, 10)
