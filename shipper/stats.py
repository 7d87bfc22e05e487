"""What the shipper counts, and the snapshot other threads read.

``Counters``: one mulog.runtime.instrument.Instruments for the program. An event worth
knowing (a cut line, a truncation, a refused chunk, a full producer queue, a
Kafka error, positions that could not be saved) is one call that logs it
(rate-limited), counts it and is exported to Prometheus; the hot path only adds
to plain counters. Every counter is exported, so nothing is counted unseen.

``Snapshot``: what the loop last published (every SNAPSHOT_S and before each
stats line): the counters, the producer's queue, Kafka up or down, and per file
its path, identity, size and delivered offset. The metrics server's thread and
the stats line read it, never the live tailers.
"""

from __future__ import annotations

import logging
import time

import msgspec

from mulog.runtime.instrument import Instruments

SNAPSHOT_S = 0.25  # how often the loop publishes a snapshot


class Counters:
    def __init__(self):
        inst = self.inst = Instruments("shipper")
        tlog = logging.getLogger("shipper.tailer")
        plog = logging.getLogger("shipper.publisher")
        slog = logging.getLogger("shipper")
        self.lines_read = inst.counter("lines_read", "Lines framed from files (empty lines included; they are "
                                                     "not sent)")
        self.lines_sent = inst.counter("lines_sent", "Lines handed to the Kafka producer (a re-sent line counts "
                                                     "again)")
        self.lines_acked = inst.counter("lines_acked", "Lines Kafka acknowledged")
        self.bytes_sent = inst.counter("bytes_sent", "File bytes (newlines included) of the lines handed to the "
                                                     "producer")
        self.lines_empty = inst.counter("lines_empty", "Empty lines skipped")
        self.lines_cut = inst.event("lines_cut", "Lines longer than max_line_bytes, cut", plog)
        self.truncations = inst.event("truncations", "Files found truncated (copytruncate) and read again from 0",
                                      tlog)
        self.chunk_errors = inst.event("chunk_errors", "Read chunks Kafka refused (sent again)", tlog,
                                       logging.ERROR)
        self.queue_full = inst.event("producer_queue_full", "Times produce() met a full producer queue and "
                                                            "waited for room", plog)
        self.kafka_errors = inst.event("kafka_errors", "Errors the Kafka producer reported (not fatal)", plog)
        self.kafka_unreachable = inst.event("kafka_unreachable", "Times Kafka became unreachable", plog)
        self.save_failures = inst.event("positions_not_saved", "Checkpoints whose positions could not be stored "
                                                               "(tried again)", slog, logging.ERROR, first=1,
                                        every=100)
        self.open_errors = inst.event("open_errors", "Files an input wants that could not be opened (logged once "
                                                     "per file)", slog)
        self.not_shipped = inst.event("files_not_shipped", "Files an input's glob matches whose name does not match "
                                                           "its log_name_pattern (logged once per file)", slog)
        self.read_errors = inst.counter("read_errors", "Files closed after a read error (logged each time)")
        self.scans = inst.counter("scans", "Scans of the inputs' globs (periodic, and at most one per "
                                           "debounce interval after inotify events)")
        self.files_opened = inst.counter("files_opened", "Files opened for reading (new, found again or reopened)")
        self.files_finished = inst.counter("files_finished", "Rotated or deleted files read to their end, every "
                                                             "line acknowledged, and closed")


class FileView(msgspec.Struct, frozen=True):
    path: str
    identity: str
    size: int
    delivered: int

    @property
    def behind(self) -> int:
        return max(0, self.size - self.delivered)


class Snapshot(msgspec.Struct, frozen=True):
    taken: float  # time.time()
    counters: dict
    files: tuple  # FileView of every followed file
    files_open: int
    queue_lines: int  # lines handed to the producer, not yet acknowledged
    queue_bytes: int
    kafka_up: bool
    kafka_contacted: bool = False  # a broker answered once since the start
    save_errors: int = 0  # position saves in a row that failed
    stopping: bool = False

    @property
    def bytes_behind(self) -> int:
        return sum(f.behind for f in self.files)


class Rates:
    """Lines/s and bytes/s sent between two stats lines."""

    def __init__(self):
        self.last = (time.monotonic(), 0, 0)

    def __call__(self, snap: Snapshot) -> tuple[float, float]:
        now = time.monotonic()
        t0, l0, b0 = self.last
        lines, nbytes = snap.counters["lines_sent"], snap.counters["bytes_sent"]
        dt = max(1e-9, now - t0)
        self.last = (now, lines, nbytes)
        return (lines - l0) / dt, (nbytes - b0) / dt
