"""Durable local state on RocksDB (rocksdict): nothing else opens RocksDB."""

from .db import Batch, StateDB, StateError, StateLocked, StateMissing, StateWriteError, ensure_private_dir
from .failures import Entry, FailedEvent, FailureQueue, reason_code
from .files import Ended, FilePosition, FilePositions, CopiedFrom
from .marks import Recovery, SourceMarks
from .partitions import PartitionOffsets
from .types import PropertyTypes

__all__ = [
    "Batch", "StateDB", "StateError", "StateLocked", "StateMissing", "StateWriteError", "ensure_private_dir",
    "Entry", "FailedEvent", "FailureQueue", "reason_code",
    "Ended", "FilePosition", "FilePositions", "CopiedFrom", "Recovery", "SourceMarks",
    "PartitionOffsets", "PropertyTypes",
]
