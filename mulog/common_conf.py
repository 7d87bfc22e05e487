"""Configuration sections shared by both programs."""

from __future__ import annotations

from typing import Literal, Union

import msgspec

Scalar = Union[str, int, float, bool]


# librdkafka settings `kafka.connection` may not hold: each has a key of its own
CONNECTION_FIXED = ("bootstrap.servers", "group.id", "metadata.broker.list")


def connection_problem(settings: dict) -> str | None:
    """What is wrong with a ``kafka.connection`` mapping, or None."""
    for k in settings:
        if k in CONNECTION_FIXED:
            return f"connection: {k!r} has a key of its own (kafka.bootstrap_servers, kafka.group_id)"
    return None


class LogConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    file: str | None = None  # default: <state_dir>/<program>.log when daemonised, else stderr
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"  # json: one JSON object per line
    max_bytes: int = 10 * 1024 * 1024  # rotate the log file at this size
    backups: int = 5  # rotated log files kept

    def __post_init__(self):
        if self.max_bytes < 1024:
            raise ValueError("max_bytes: expected at least 1024")
        if self.backups < 0:
            raise ValueError("backups: expected 0 or more")


class MetricsConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = False  # serve Prometheus metrics over HTTP
    host: str = "127.0.0.1"  # bind address; keep it on loopback unless a scraper needs more
    port: int = 0  # 0 = the program's default port

    def __post_init__(self):
        if not 0 <= self.port <= 65535:
            raise ValueError("port: expected a number from 0 to 65535")


class FleetConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True  # publish a heartbeat record (mulog/fleet.py)
    topic: str = "mulog_fleet"  # compacted topic, created when missing
    interval_s: float = 10.0  # a process is silent after 3 intervals without a record

    def __post_init__(self):
        if self.interval_s < 0.5:
            raise ValueError("interval_s: expected 0.5 or more")
        if not self.topic or len(self.topic) > 249:
            raise ValueError("topic: expected a Kafka topic name")
