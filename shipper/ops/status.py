"""``shipper status``: whether ``shipper tail`` runs and reaches Kafka, and the
stored positions next to the files as they are now.

The running shipper writes its status file (``shipper.status.json`` in its state
folder, 0600) every second from its loop and once more at its stop: pid, start,
Kafka reachable or since when not (mulog/kafka_state.py), lines sent and
acknowledged. ``shipper status`` reads it: a file of a live pid updated within
STALE_S means it runs; an older one, that its loop is stuck; a dead pid without a
stop record, that it ended without a clean stop. No port, no socket: it works
whatever ``metrics`` says.

The positions come from the position store opened read-only, so they show what
was saved up to the last checkpoint (at most checkpoint_interval_s old).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import msgspec

from mulog import version
from mulog.exitcodes import Exit
from mulog.runtime import pids
from mulog.kafka_state import describe, exit_code, reach
from offsets import FilePositions, StateDB

from shipper.config import db_path
from shipper.files.identity import file_identity, identity_crc


@dataclass
class FileStatus:
    path: str
    identity: str
    delivered: int
    size: int | None  # None: no longer at that path (rotated away or deleted)
    percent: float | None
    updated_at: float

    def as_json(self) -> dict:
        return asdict(self)


def _identity(p, crc: int | None) -> str:
    """The identity the lines of the file carry (its original's, for a copy)."""
    s = p.src
    if s is not None:
        return file_identity(s.dev, s.ino, s.ident if s.ident is not None else crc if crc is not None else p.fp_crc,
                             s.gen)
    return file_identity(p.dev, p.ino, crc if crc is not None else p.fp_crc, p.gen)


def _current(p) -> tuple[int | None, str]:
    """(size, identity) of the file the position belongs to, if it is still at its path."""
    stored = _identity(p, p.ident)
    try:
        fd = os.open(p.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None, stored
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (p.dev, p.ino):
            return None, stored
        crc = identity_crc(fd)
        return st.st_size, _identity(p, p.ident if p.ident is not None else crc)
    finally:
        os.close(fd)


def read_status(state_dir: Path) -> list[FileStatus]:
    db = StateDB(db_path(state_dir), "shipper", read_only=True)  # StateMissing says so in one line
    try:
        positions = FilePositions(db).all()
    finally:
        db.close()
    out = []
    for p in positions:
        size, ident = _current(p)
        if size is None:
            pct = None
        elif size == 0:
            pct = 100.0
        else:
            pct = min(100.0, 100.0 * p.offset / size)
        out.append(FileStatus(p.path, ident, p.offset, size, pct, p.updated_at))
    out.sort(key=lambda s: s.path)
    return out


# ------------------------------------------------------------------ the status file

STATUS_FILE = "shipper.status.json"
WRITE_S = 1.0  # how often the running shipper writes it
STALE_S = 10.0  # a file of a live pid older than this: its loop is stuck


class Live(msgspec.Struct):
    """What the status file holds."""

    pid: int
    host: str
    started: float
    updated: float
    state: str  # "running" | "stopped"
    kafka: dict  # mulog/kafka_state.py's reach()
    lines_sent: int
    lines_acked: int
    lines_waiting: int
    files: int
    files_open: int
    bytes_behind: int
    version: str = ""


def live_of(snap, started: float, host: str, bootstrap: str, stopped: bool = False) -> Live:
    """The status file's record, from the loop's snapshot (shipper/stats.py)."""
    c = snap.counters
    return Live(os.getpid(), host, started, time.time(), "stopped" if stopped else "running",
                reach(bootstrap, snap.kafka_contacted, snap.kafka_down_since, snap.kafka_down_errors,
                      denied=snap.kafka_denied),
                c["lines_sent"], c["lines_acked"], snap.queue_lines, len(snap.files), snap.files_open,
                snap.bytes_behind, version())


def write_live(state_dir: Path, live: Live) -> None:
    """Replace the status file (no fsync: it says how things are now, and is rewritten every second)."""
    path = Path(state_dir) / STATUS_FILE
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(msgspec.json.encode(live))
    os.replace(tmp, path)


def read_live(state_dir: Path) -> Live | None:
    try:
        return msgspec.json.decode(Path(state_dir, STATUS_FILE).read_bytes(), type=Live)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def judge(state_dir: Path, live: Live | None, now: float | None = None) -> tuple[str, Exit, dict]:
    """(the first line of ``shipper status``, its exit code, the JSON fields) from the status file."""
    now = time.time() if now is None else now
    if live is None:
        return (f"shipper is not running (no status file in {state_dir})", Exit.CONDITION,
                {"running": False})
    fields = {"running": False, "version": live.version, "pid": live.pid, "host": live.host, "started": live.started,
              "updated": live.updated, "kafka": live.kafka, "lines_sent": live.lines_sent,
              "lines_acked": live.lines_acked, "lines_waiting": live.lines_waiting}
    if live.state == "stopped":
        return f"shipper is not running (stopped at {_when(live.updated)})", Exit.CONDITION, fields
    if not pids.alive(live.pid):
        return (f"shipper is not running (pid {live.pid} ended without a clean stop; last seen "
                f"{_when(live.updated)})", Exit.CONDITION, fields)
    fields["running"] = True
    age = now - live.updated
    if age > STALE_S:
        return (f"shipper (pid {live.pid}) has not written its status for {age:.0f}s: its loop is stuck",
                Exit.UNREACHABLE, fields)
    up = int(now - live.started)
    k = live.kafka
    sent = (f"{live.lines_sent} lines sent, {live.lines_acked} acknowledged by Kafka, {live.lines_waiting} "
            f"waiting for it")
    sep = " but " if k.get("reachable") is False else "; "
    return (f"shipper is running (pid {live.pid}, up {up // 3600}:{up // 60 % 60:02d}:{up % 60:02d}"
            f"{', version ' + live.version if live.version else ''}){sep}"
            f"{describe(k)}; {sent}", exit_code(k), fields)
