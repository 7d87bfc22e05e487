"""What the shipper counts, and the snapshot other threads read.

``ShipperCounters``: every counter of the program, declared in one place and
built as one mulog.runtime.instrument.Instruments by ``counters()``. An event worth
knowing (a cut line, a truncation, a refused chunk, a full producer queue, a
Kafka error, positions that could not be saved) is one call that logs it
(rate-limited), counts it and is exported to Prometheus; the hot path only adds
to plain counters. Every counter is exported, so nothing is counted unseen.

``ShipperSnapshot``: what the loop last published (every SNAPSHOT_S and before each
stats line): the counters, the producer's queue, Kafka up or down, and per file
its path, identity, size and delivered offset. The metrics server's thread and
the stats line read it, never the live tailers.
"""

from __future__ import annotations

import logging
import time

import msgspec

from mulog.runtime.instrument import Instruments, counter, event

SNAPSHOT_S = 0.25  # how often the loop publishes a snapshot


class ShipperCounters:
    """Every counter of ``shipper tail``, exported as ``shipper_<name>_total``."""

    lines_read = counter("Lines framed from files (empty lines included; they are not sent)")
    lines_sent = counter("Lines handed to the Kafka producer (a re-sent line counts again)")
    lines_acked = counter("Lines Kafka acknowledged")
    bytes_sent = counter("File bytes (newlines included) of the lines handed to the producer")
    lines_empty = counter("Empty lines skipped")
    lines_cut = event("Lines longer than max_line_bytes, cut", "shipper.publisher")
    truncations = event("Files found truncated (copytruncate) and read again from 0", "shipper.tailer")
    chunk_errors = event("Read chunks Kafka refused (sent again)", "shipper.tailer", logging.ERROR)
    producer_queue_full = event("Times produce() met a full producer queue and waited for room", "shipper.publisher")
    kafka_errors = event("Errors the Kafka producer reported (not fatal)", "shipper.publisher")
    kafka_unreachable = event("Times Kafka became unreachable", "shipper.publisher")
    positions_not_saved = event("Checkpoints whose positions could not be stored (tried again)", "shipper",
                                logging.ERROR, first=1, every=100)
    open_errors = event("Files an input wants that could not be opened (logged once per file)", "shipper")
    files_not_shipped = event("Files an input's glob matches whose name does not match its log_name_pattern "
                              "(logged once per file)", "shipper")
    read_errors = counter("Files closed after a read error (logged each time)")
    scans = counter("Scans of the inputs' globs (periodic, and at most one per debounce interval after inotify "
                    "events)")
    files_opened = counter("Files opened for reading (new, found again or reopened)")
    files_finished = counter("Rotated or deleted files read to their end, every line acknowledged, and closed")


def counters() -> Instruments:
    """The program's counters, as ShipperCounters declares them."""
    return Instruments.declared("shipper", ShipperCounters)


class FileView(msgspec.Struct, frozen=True):
    path: str
    identity: str
    size: int
    delivered: int

    @property
    def behind(self) -> int:
        return max(0, self.size - self.delivered)


class ShipperSnapshot(msgspec.Struct, frozen=True):
    taken: float  # time.time()
    counters: dict
    files: tuple  # FileView of every followed file
    files_open: int
    queue_lines: int  # lines handed to the producer, not yet acknowledged
    queue_bytes: int
    kafka_up: bool
    kafka_contacted: bool = False  # a broker answered once since the start
    kafka_down_since: float | None = None  # time.time() Kafka became unreachable (None while reachable)
    kafka_down_errors: int = 0  # Kafka client errors since then
    kafka_denied: str | None = None  # what to fix while Kafka turns the shipper away (mulog/access.py)
    save_errors: int = 0  # position saves in a row that failed
    stopping: bool = False
    bytes_behind: int = 0  # of all files (the sum of their ``behind``)


class Rates:
    """Lines/s and bytes/s sent between two stats lines."""

    def __init__(self):
        self.last = (time.monotonic(), 0, 0)

    def __call__(self, snap: ShipperSnapshot) -> tuple[float, float]:
        now = time.monotonic()
        t0, l0, b0 = self.last
        lines, nbytes = snap.counters["lines_sent"], snap.counters["bytes_sent"]
        dt = max(1e-9, now - t0)
        self.last = (now, lines, nbytes)
        return (lines - l0) / dt, (nbytes - b0) / dt
