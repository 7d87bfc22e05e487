"""What mtga's loop publishes for other threads (status, metrics, health)."""

from __future__ import annotations

from typing import Optional

import msgspec


class MtgaSnapshot(msgspec.Struct, frozen=True):
    """What the loop last published for other threads (status, metrics)."""

    pid: int
    started: float
    taken: float
    events_per_s: float
    partitions: tuple
    lags: dict
    local_offsets: dict  # every offset the store holds (the checkpoint replaces it, never mutates it)
    last_checkpoint: Optional[float]
    failure_queue: int
    stalled: Optional[str]
    checkpoint_error: Optional[str]
    retry_error: Optional[str]
    sink_error: Optional[str]
    sink_bytes: int
    sink_errors: int
    workers: int
    worker_restarts: int
    counters: dict
    fixed: dict  # rule -> events fixed
    failed_by: dict  # reason code -> events sent to the failure queue
    kafka_contacted: bool = False  # the group assigned partitions (maybe none) once: a broker answered
    kafka_down_since: Optional[float] = None  # time.time() of "all brokers down", until one answers again
    kafka_down_errors: int = 0  # Kafka client errors since kafka_down_since
    kafka_denied: Optional[str] = None  # what to fix while Kafka turns mtga away (mulog/access.py)
    stopping: bool = False
    schema: dict = {}  # app -> {cap: (names held, the app's cap)}: events, event_properties, user_properties
