"""The programs' RocksDB state, read-only through the project's ``offsets`` package."""

from __future__ import annotations

from pathlib import Path


def shipper_delivered(db: Path) -> int:
    from offsets import FilePositions, StateDB, StateError

    if not (db / "CURRENT").exists():
        return 0
    try:
        with StateDB(db, "shipper", read_only=True) as s:
            return sum(p.offset for p in FilePositions(s).all())
    except StateError:
        return 0


def mtga_stored(db: Path, topic: str) -> dict[int, int]:
    from offsets import PartitionOffsets, StateDB, StateError

    if not (db / "CURRENT").exists():
        return {}
    try:
        with StateDB(db, "mtga", read_only=True) as s:
            return {p: o for (t, p), o in PartitionOffsets(s).all().items() if t == topic}
    except StateError:
        return {}


def mtga_failures(db: Path) -> int:
    from offsets import FailureQueue, StateDB, StateError

    try:
        with StateDB(db, "mtga", read_only=True) as s:
            return FailureQueue(s).count()
    except StateError:
        return -1
