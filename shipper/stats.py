"""Counters of the shipper, in one small object (the stats log line and the
Prometheus metrics in shipper/metrics.py read them; only the loop writes them)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class FileStat:
    path: str
    identity: str
    size: int
    delivered: int

    @property
    def behind(self) -> int:
        return max(0, self.size - self.delivered)


@dataclass
class Stats:
    lines_sent: int = 0  # lines handed to the producer
    bytes_sent: int = 0  # file bytes they span (newlines included)
    lines_acked: int = 0  # lines Kafka acknowledged
    cut_lines: int = 0  # lines longer than max_line_bytes, cut
    empty_lines: int = 0  # empty lines skipped
    truncations: int = 0  # files found truncated (copytruncate)
    chunk_errors: int = 0  # read chunks Kafka refused (sent again)
    queue_full: int = 0  # times produce() met a full queue
    files_open: int = 0
    files_known: int = 0
    started: float = field(default_factory=time.monotonic)
    _last: tuple[float, int, int] = (0.0, 0, 0)

    def rates(self, now: float | None = None) -> tuple[float, float]:
        """(lines/s, bytes/s) since the previous call."""
        now = time.monotonic() if now is None else now
        t0, l0, b0 = self._last or (self.started, 0, 0)
        if not t0:
            t0 = self.started
        dt = max(1e-9, now - t0)
        r = ((self.lines_sent - l0) / dt, (self.bytes_sent - b0) / dt)
        self._last = (now, self.lines_sent, self.bytes_sent)
        return r

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_") and k != "started"}
