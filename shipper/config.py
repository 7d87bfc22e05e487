"""Typed configuration of ``shipper tail`` (conf/shipper.yml documents each key)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from mulog.common_conf import LogConf, MetricsConf, Scalar
from mulog.config import ConfigError, bootstrap_override, convert, merge, read_yaml, resolve

TOPIC_RE = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")

# Producer settings chosen for throughput and safety; `kafka.producer` overrides any.
PRODUCER_DEFAULTS: dict[str, Scalar] = {
    "compression.type": "snappy",
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 50,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 200_000,
    "queue.buffering.max.kbytes": 65_536,
    "message.max.bytes": 4_194_304,
    "message.timeout.ms": 0,  # never give up on a line: retry until the broker is back
    "socket.keepalive.enable": True,
}


class KafkaConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    bootstrap_servers: str = "127.0.0.1:9092"
    producer: dict[str, Scalar] = {}


class Input(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    paths: list[str]
    exclude: list[str] = []
    topic: str
    app_id: int
    log_name: str | None = None
    log_name_pattern: str | None = None
    start_at: Literal["beginning", "end"] = "beginning"
    max_line_bytes: int = 1_048_576

    def __post_init__(self):
        if not self.paths:
            raise ValueError("paths: expected at least one glob")
        if not TOPIC_RE.match(self.topic):
            raise ValueError(f"topic: expected a Kafka topic name (letters, digits, . _ -), got {self.topic!r}")
        if self.app_id < 0:
            raise ValueError("app_id: expected a non-negative integer")
        if (self.log_name is None) == (self.log_name_pattern is None):
            raise ValueError("log_name: expected exactly one of log_name or log_name_pattern")
        if self.log_name_pattern is not None:
            try:
                rx = re.compile(self.log_name_pattern)
            except re.error as e:
                raise ValueError(f"log_name_pattern: expected a regular expression ({e})") from None
            if "log_name" not in rx.groupindex:
                raise ValueError("log_name_pattern: expected a named group (?P<log_name>...)")
        if self.max_line_bytes < 16:
            raise ValueError("max_line_bytes: expected at least 16")


class ShipperConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kafka: KafkaConf = msgspec.field(default_factory=KafkaConf)
    state_dir: str = "state/shipper"
    inputs: list[Input] = []
    rescan_interval_s: float = 2.0
    checkpoint_interval_s: float = 1.0
    stats_interval_s: float = 30.0
    shutdown_timeout_s: float = 10.0
    metrics: MetricsConf = msgspec.field(default_factory=MetricsConf)
    log: LogConf = msgspec.field(default_factory=LogConf)

    def __post_init__(self):
        for k in ("rescan_interval_s", "checkpoint_interval_s", "stats_interval_s", "shutdown_timeout_s"):
            if getattr(self, k) <= 0:
                raise ValueError(f"{k}: expected a number greater than 0")


@dataclass
class ShipperSettings:
    """The validated configuration with paths resolved and overrides applied."""

    conf: ShipperConf
    file: Path | None
    base: Path
    state_dir: Path
    bootstrap_servers: str
    producer: dict[str, Scalar]

    @property
    def inputs(self) -> list[Input]:
        return self.conf.inputs


def build(data: dict, file: Path | None) -> ShipperSettings:
    conf = convert(data, ShipperConf, file)
    base = file.parent.resolve() if file else Path.cwd()
    for i, inp in enumerate(conf.inputs):
        inp.paths = [str(resolve(base, p)) for p in inp.paths]
        inp.exclude = [str(resolve(base, p)) if "/" in p else p for p in inp.exclude]
    producer = dict(PRODUCER_DEFAULTS)
    producer.update(conf.kafka.producer)
    return ShipperSettings(
        conf=conf,
        file=file,
        base=base,
        state_dir=resolve(base, conf.state_dir),
        bootstrap_servers=bootstrap_override(conf.kafka.bootstrap_servers),
        producer=producer,
    )


def load(path: str | Path | None, overrides: dict | None = None) -> ShipperSettings:
    """Load ``path`` (or defaults when None) and apply command-line overrides.

    ``overrides`` is a nested dict merged over the file's data before validation,
    so a flag is checked exactly like the key it stands for.
    """
    file = Path(path) if path else None
    data = read_yaml(file) if file else {}
    if overrides:
        data = merge(data, overrides)
    return build(data, file)


__all__ = ["ConfigError", "Input", "ShipperConf", "ShipperSettings", "load", "build", "PRODUCER_DEFAULTS"]
