"""Typed configuration of ``mtga`` (conf/mtga.yml documents each key)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import msgspec

from mulog.common_conf import FleetConf, LogConf, MetricsConf, Scalar, connection_problem
from mulog.connection import Connection
from mulog.config import ConfigError, bootstrap_override, convert, layered, resolve

# Consumer settings the daemon relies on; `kafka.consumer` may add or override
# tuning keys, but not the ones that carry the delivery contract.
CONSUMER_DEFAULTS: dict[str, Scalar] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": False,
    # bounded prefetch (RSS stays well under 400 MB at any backlog); a short
    # backoff when the prefetch queue is full keeps the fetcher from idling
    "fetch.max.bytes": 8_388_608,
    "max.partition.fetch.bytes": 2_097_152,
    "queued.max.messages.kbytes": 16_384,
    "fetch.queue.backoff.ms": 10,
    "session.timeout.ms": 30_000,
    "max.poll.interval.ms": 300_000,
    "partition.assignment.strategy": "cooperative-sticky",
}
# each worker holds its own settings and a batch in flight (~40 MB); the cap keeps
# the default within mtga's 400 MB on many-core hosts
MAX_AUTO_WORKERS = 4
CONSUMER_FIXED = ("enable.auto.commit", "enable.auto.offset.store", "group.id", "bootstrap.servers")


_PERL_ONLY = re.compile(r"\\[A-Za-z0-9]|\(\?|[*+?}]\?|\[:")
_INSTEAD = {"\\d": "[0-9]", "\\w": "[A-Za-z0-9_]", "\\D": "[^0-9]", "\\W": "[^A-Za-z0-9_]"}


def posix_problem(pattern: str) -> str | None:
    """What in ``pattern`` the Kafka client would read otherwise than mtga's own
    queries do: the consumer matches topics with POSIX extended regular
    expressions, offset-checker and kafka-lag with Python's; only what both read
    alike is taken (no backslash classes like \\d, no (?...), no lazy
    quantifiers, no [:class:])."""
    m = _PERL_ONLY.search(pattern)
    if m is None:
        return None
    bad = m.group()
    hint = f"; write {_INSTEAD[bad]}" if bad in _INSTEAD else ""
    return (f"'{bad}' means something else to the Kafka client, which matches topics with POSIX regular "
            f"expressions, than to Python{hint}")


class KafkaConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "mtga"
    topics: list[str] = []
    topic_pattern: str | None = None
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    batch_size: int = 5000
    connection: dict[str, Scalar] = {}  # what every client receives: TLS, SASL (docs/security.md)
    consumer: dict[str, Scalar] = {}

    def __post_init__(self):
        problem = connection_problem(self.connection)
        if problem:
            raise ValueError(problem)
        if not self.group_id:
            raise ValueError("group_id: expected a non-empty string")
        if self.topic_pattern is not None:
            problem = posix_problem(self.topic_pattern)
            if problem:
                raise ValueError(f"topic_pattern: {problem}")
            try:
                re.compile(self.topic_pattern)
            except re.error as e:
                raise ValueError(f"topic_pattern: expected a regular expression ({e})") from None
        if self.batch_size < 1:
            raise ValueError("batch_size: expected at least 1")
        for k in CONSUMER_FIXED:
            if k in self.consumer:
                raise ValueError(f"consumer: {k!r} is managed by mtga and cannot be set here")


class OutputKafkaConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The Kafka output: ThinkingData lines into a topic, in transactions (sink/pipeline/topic_writer.py)."""

    topic: Optional[str] = None  # set: lines go to this topic, not to files; "{app_id}" gives a topic per app
    producer: dict[str, Any] = {}  # librdkafka producer settings (kafka.connection's apply as well)
    transactional_id: Optional[str] = None  # default: mtga-<group>-<host>-<state folder's hash>
    timeout_s: float = 30.0  # for each transaction call (begin, offsets, commit, abort)

    def __post_init__(self):
        if self.topic is not None:
            name = self.topic.replace("{app_id}", "0")
            if not re.match(r"^[A-Za-z0-9._-]{1,249}$", name) or "{" in name:
                raise ValueError(f"topic: expected a Kafka topic name (letters, digits, '.', '_', '-'), with "
                                 f"{{app_id}} where the app's id goes; got {self.topic!r}")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s: expected more than 0")


class OutputConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    dir: str = "output"
    kafka: OutputKafkaConf = msgspec.field(default_factory=OutputKafkaConf)
    prefix: str = ""
    rotation: Literal["daily", "hourly"] = "daily"
    max_bytes: int = 0
    fsync: Literal["checkpoint", "never"] = "checkpoint"

    def __post_init__(self):
        if self.prefix and not re.match(r"^[A-Za-z0-9_.-]+$", self.prefix):
            raise ValueError("prefix: expected only letters, digits, '_', '-' and '.'")
        if self.max_bytes < 0:
            raise ValueError("max_bytes: expected 0 (no limit) or more")


class TransformConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    uuid: bool = True


class CheckpointConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    interval_s: float = 10.0
    sync: bool = True

    def __post_init__(self):
        if self.interval_s <= 0:
            raise ValueError("interval_s: expected a number greater than 0")


class RetryConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    initial_backoff_s: float = 5.0
    max_backoff_s: float = 600.0
    batch: int = 500

    def __post_init__(self):
        if self.initial_backoff_s <= 0 or self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("initial_backoff_s: expected 0 < initial_backoff_s <= max_backoff_s")
        if self.batch < 1:
            raise ValueError("batch: expected at least 1")


class ExactlyOnceConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    forget_after_s: float = 30 * 86400.0  # a source's mark is forgotten after this long unseen

    def __post_init__(self):
        if self.forget_after_s <= 0:
            raise ValueError("forget_after_s: expected a number greater than 0")


class ControlConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    socket: str | None = None
    timeout_s: float = 10.0

    def __post_init__(self):
        if self.timeout_s <= 0:
            raise ValueError("timeout_s: expected a number greater than 0")


class MtgaConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kafka: KafkaConf = msgspec.field(default_factory=KafkaConf)
    state_dir: str = "state/mtga"
    settings_dir: str = "settings"
    output: OutputConf = msgspec.field(default_factory=OutputConf)
    transform: TransformConf = msgspec.field(default_factory=TransformConf)
    checkpoint: CheckpointConf = msgspec.field(default_factory=CheckpointConf)
    workers: int = 0
    stats_interval_s: float = 30.0  # how often the stats line is logged
    retry: RetryConf = msgspec.field(default_factory=RetryConf)
    exactly_once: ExactlyOnceConf = msgspec.field(default_factory=ExactlyOnceConf)
    control: ControlConf = msgspec.field(default_factory=ControlConf)
    metrics: MetricsConf = msgspec.field(default_factory=MetricsConf)
    log: LogConf = msgspec.field(default_factory=LogConf)
    host: str | None = None  # this process's name in the fleet view (default: the machine's name)
    fleet: FleetConf = msgspec.field(default_factory=FleetConf)

    def __post_init__(self):
        if self.workers < 0:
            raise ValueError("workers: expected 0 (one per core) or more")
        if self.stats_interval_s <= 0:
            raise ValueError("stats_interval_s: expected a number greater than 0")


@dataclass
class MtgaConfig:
    """The configuration a program runs with: ``conf`` (mtga.yml as written, validated)
    with its paths resolved and the command line's and environment's overrides applied.
    (The per-app settings files of mtga are another thing: sink/ta/settings.py.)"""

    conf: MtgaConf
    file: Path | None
    base: Path
    state_dir: Path
    settings_dir: Path
    output_dir: Path
    socket_path: Path
    log_file: Path
    pid_file: Path
    bootstrap_servers: str
    consumer: dict[str, Scalar]

    @property
    def connection(self) -> Connection:
        """How every Kafka client of mtga reaches the cluster."""
        return Connection(self.bootstrap_servers, self.conf.kafka.connection)

    @property
    def workers(self) -> int:
        """Transform processes: as configured, or one per core up to MAX_AUTO_WORKERS."""
        return self.conf.workers or min(MAX_AUTO_WORKERS, os.cpu_count() or 1)


def build(data: dict, file: Path | None, require_topics: bool = True) -> MtgaConfig:
    """Validate ``data``; ``require_topics=False`` for commands that only find the daemon."""
    conf = convert(data, MtgaConf, file)
    if require_topics and not conf.kafka.topics and not conf.kafka.topic_pattern:
        raise ConfigError(file, "kafka.topics", "set at least one topic, or kafka.topic_pattern")
    if conf.kafka.topics and conf.kafka.topic_pattern:
        raise ConfigError(file, "kafka.topic_pattern", "set either kafka.topics or kafka.topic_pattern, not both")
    base = file.parent.resolve() if file else Path.cwd()
    state = resolve(base, conf.state_dir)
    settings_dir = resolve(base, conf.settings_dir)
    if require_topics and not settings_dir.is_dir():
        raise ConfigError(file, "settings_dir", f"folder {settings_dir} does not exist")
    consumer = dict(CONSUMER_DEFAULTS)
    consumer.update(conf.kafka.consumer)
    return MtgaConfig(
        conf=conf,
        file=file,
        base=base,
        state_dir=state,
        settings_dir=settings_dir,
        output_dir=resolve(base, conf.output.dir),
        socket_path=resolve(base, conf.control.socket) or state / "run" / "mtga.sock",
        log_file=resolve(base, conf.log.file) or state / "mtga.log",
        pid_file=state / "mtga.pid",
        bootstrap_servers=bootstrap_override(conf.kafka.bootstrap_servers),
        consumer=consumer,
    )


def load(path: str | Path | None, overrides: dict | None = None, require_topics: bool = True) -> MtgaConfig:
    """Load ``path`` (or defaults when None), with command-line overrides merged in."""
    return layered(path, overrides, lambda data, file: build(data, file, require_topics))
