"""Process management for mtga: pid file with a lock, detaching, stopping.

The pid file is held with an exclusive ``flock`` for the life of the process:
a lock that can be taken means nobody runs (a stale pid file is harmless),
and two daemons on one state folder are impossible.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from mulog.runtime import pids


class AlreadyRunning(Exception):
    def __init__(self, pid: Optional[int], path: Path):
        super().__init__(f"mtga already runs (pid {pid if pid else '?'}, pid file {path})")
        self.pid = pid


class PidFile:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: Optional[int] = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise AlreadyRunning(read_pid(self.path), self.path) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = None


def read_pid(path: Path) -> Optional[int]:
    try:
        text = Path(path).read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def running_pid(path: Path) -> Optional[int]:
    """The pid of the process holding ``path``'s lock, or None when nobody does."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return read_pid(path) or -1
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def stop(path: Path, timeout: float) -> tuple[Optional[int], bool]:
    """SIGTERM the running process and wait. -> (pid or None, stopped in time)."""
    pid = running_pid(path)
    if pid is None:
        return None, True
    if pid > 0:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return pid, True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid(path) is None and not pids.alive(pid):
            return pid, True
        time.sleep(0.1)
    return pid, False


def detach(log_file: Path, child: Callable[..., int], wait_s: float = 120) -> tuple[bool, str, int]:
    """Run ``child(ready)`` as a daemon (double fork, setsid); in the caller,
    wait until it calls ``ready(None)`` (started) or ``ready(message, exit_code)``
    (failed), or exits.

    Returns (ok, pid or message, exit code) in the caller; never returns in the daemon.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        chunks = []
        deadline = time.monotonic() + wait_s
        import select

        while time.monotonic() < deadline:
            ready, _, _ = select.select([r], [], [], 0.5)
            if ready:
                data = os.read(r, 65536)
                if not data:
                    break
                chunks.append(data)
        os.close(r)
        os.waitpid(pid, 0)
        msg = b"".join(chunks).decode(errors="replace")
        if msg.startswith("ok "):
            return True, msg[3:].strip(), 0
        code, _, text = msg.partition(" ")
        return False, text.strip() or f"the daemon exited during start-up; see {log_file}", int(code or 1)

    # first child
    os.close(r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    # the daemon
    os.chdir("/")
    os.umask(0o027)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    errfd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(errfd, 2)  # anything unexpected on stderr lands in the log
    os.close(devnull)
    os.close(errfd)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)

    sent = [False]

    def ready(err: Optional[str], code: int = 1) -> None:
        if sent[0]:
            return
        sent[0] = True
        msg = f"ok {os.getpid()}" if err is None else f"{code} {err}"
        try:
            os.write(w, msg.encode())
        finally:
            os.close(w)

    code = 1
    try:
        code = child(ready)
    except BaseException as e:  # noqa: BLE001 - report, log, exit
        if not sent[0]:
            ready(str(e) or type(e).__name__)
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        if not sent[0]:
            ready("the daemon stopped during start-up")
        os._exit(code)
