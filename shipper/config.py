"""Typed configuration of ``shipper tail`` (conf/shipper.yml documents each key)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from mulog.common_conf import FleetConf, LogConf, MetricsConf, Scalar, connection_problem
from mulog.connection import Connection
from mulog.config import ConfigError, bootstrap_override, convert, layered, read_yaml, resolve

TOPIC_RE = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")

# Producer settings the delivery reasoning rests on (one acknowledgement per read
# chunk stands for every line of the chunk, and a file's lines stay in order in
# one partition); `kafka.producer` may not set them.
PRODUCER_MANAGED: dict[str, tuple[Scalar, str]] = {
    "enable.idempotence": (True, "no line duplicated or reordered by the producer's retries"),
    "acks": ("all", "a line counts as delivered once every in-sync replica has it"),
    "request.required.acks": ("all", "an alias of acks"),
    "enable.gapless.guarantee": (True, "a failure that could leave a hole before an acknowledged line stops "
                                       "the shipper"),
    "partitioner": ("consistent_random", "a file's lines go to one partition, by the file identity"),
}
# Producer settings chosen for throughput; `kafka.producer` overrides any of these.
PRODUCER_DEFAULTS: dict[str, Scalar] = {
    "compression.type": "snappy",
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": "consistent_random",
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 100_000,
    "queue.buffering.max.kbytes": 32_768,  # with the rest of the process: RSS under 150 MB
    "message.max.bytes": 4_194_304,
    "message.timeout.ms": 0,  # never give up on a line: retry until the broker is back
    # a failure that could leave a hole before an acknowledged line is fatal (the
    # shipper acknowledges one message per read chunk and relies on this)
    "enable.gapless.guarantee": True,
    "socket.keepalive.enable": True,
}


class KafkaConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    bootstrap_servers: str = "127.0.0.1:9092"
    connection: dict[str, Scalar] = {}  # what every client receives: TLS, SASL (docs/security.md)
    producer: dict[str, Scalar] = {}
    # where a line comes from: in its key ("key", version 2) or in six headers ("headers", version 1,
    # for consumers that read them); docs/wire-format.md
    wire_format: Literal["key", "headers"] = "key"

    def __post_init__(self):
        problem = connection_problem(self.connection)
        if problem:
            raise ValueError(problem)
        for k in self.producer:
            if k in PRODUCER_MANAGED:
                value, why = PRODUCER_MANAGED[k]
                raise ValueError(f"producer: {k!r} is managed by the shipper (always {value}: {why}) and cannot "
                                 f"be set here")


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
    rescan_interval_s: float = 10.0
    checkpoint_interval_s: float = 1.0
    stats_interval_s: float = 30.0
    shutdown_timeout_s: float = 10.0
    rotate_wait_s: float = 5.0
    close_inactive_s: float = 300.0
    max_open_files: int = 1000
    forget_after_s: float = 86400.0
    metrics: MetricsConf = msgspec.field(default_factory=MetricsConf)
    log: LogConf = msgspec.field(default_factory=LogConf)
    host: str | None = None  # this process's name in the fleet view (and the shipper's host header)
    fleet: FleetConf = msgspec.field(default_factory=FleetConf)

    def __post_init__(self):
        for k in ("rescan_interval_s", "checkpoint_interval_s", "stats_interval_s", "shutdown_timeout_s",
                  "rotate_wait_s", "close_inactive_s", "forget_after_s"):
            if getattr(self, k) <= 0:
                raise ValueError(f"{k}: expected a number greater than 0")
        if self.max_open_files < 1:
            raise ValueError("max_open_files: expected an integer of at least 1")


@dataclass
class ShipperConfig:
    """The configuration a program runs with: ``conf`` (shipper.yml as written, validated)
    with its paths resolved and the command line's and environment's overrides applied."""

    conf: ShipperConf
    file: Path | None
    base: Path
    state_dir: Path
    bootstrap_servers: str
    producer: dict[str, Scalar]

    @property
    def inputs(self) -> list[Input]:
        return self.conf.inputs

    @property
    def db_path(self) -> Path:
        return db_path(self.state_dir)

    @property
    def connection(self) -> Connection:
        """How every Kafka client of the shipper reaches the cluster."""
        return Connection(self.bootstrap_servers, self.conf.kafka.connection)


def db_path(state_dir: Path) -> Path:
    """The RocksDB folder of the positions, inside the (0700) state folder."""
    return Path(state_dir) / "db"


def build(data: dict, file: Path | None) -> ShipperConfig:
    conf = convert(data, ShipperConf, file)
    base = file.parent.resolve() if file else Path.cwd()
    for i, inp in enumerate(conf.inputs):
        inp.paths = [str(resolve(base, p)) for p in inp.paths]
        inp.exclude = [str(resolve(base, p)) if "/" in p else p for p in inp.exclude]
    producer = dict(PRODUCER_DEFAULTS)
    producer.update(conf.kafka.producer)
    try:
        max_msg = int(producer.get("message.max.bytes", 1_000_000))
    except (TypeError, ValueError):
        raise ConfigError(file, "kafka.producer.message.max.bytes", "expected an integer") from None
    for i, inp in enumerate(conf.inputs):
        if inp.max_line_bytes + 4096 > max_msg:
            raise ConfigError(file, f"inputs[{i}].max_line_bytes",
                              f"expected at most {max_msg - 4096} (message.max.bytes {max_msg} minus 4096 "
                              f"for the key and headers), got {inp.max_line_bytes}")
    return ShipperConfig(
        conf=conf,
        file=file,
        base=base,
        state_dir=resolve(base, conf.state_dir),
        bootstrap_servers=bootstrap_override(conf.kafka.bootstrap_servers),
        producer=producer,
    )


def load(path: str | Path | None, overrides: dict | None = None) -> ShipperConfig:
    """Load ``path`` (or defaults when None) and apply command-line overrides.

    ``overrides`` is a nested dict merged over the file's data before validation,
    so a flag is checked exactly like the key it stands for.
    """
    return layered(path, overrides, build)


@dataclass
class TailFlags:
    """Command-line flags of ``shipper tail`` that stand for configuration keys."""

    paths: list[str] | None = None
    topic: str | None = None
    app_id: int | None = None
    log_name: str | None = None
    state_dir: str | None = None
    bootstrap_servers: str | None = None
    from_beginning: bool = False
    host: str | None = None


_INPUT_FLAGS = (("--path", "paths"), ("--topic", "topic"), ("--app-id", "app_id"), ("--log-name", "log_name"))


def load_tail(path: str | Path | None, flags: TailFlags) -> ShipperConfig:
    """The configuration of ``shipper tail``: the file (if any) with the flags over it.

    Input flags (--path, --topic, --app-id, --log-name) override the fields of the
    file's only input, or make up the input when the file has none (then all four
    are needed). --from-beginning sets start_at: beginning on every input. Relative
    paths given as flags are relative to the current folder. A --bootstrap-servers
    flag wins over KAFKA_BOOTSTRAP_SERVERS, which wins over the file.
    """
    file = Path(path) if path else None
    data = read_yaml(file) if file else {}
    over: dict = {}
    given = {key: v for (_, key), v in zip(_INPUT_FLAGS, (flags.paths, flags.topic, flags.app_id, flags.log_name))
             if v not in (None, [], ())}
    if "paths" in given:
        given["paths"] = [os.path.abspath(os.path.expanduser(p)) for p in given["paths"]]
    file_inputs = data.get("inputs") if isinstance(data.get("inputs"), list) else []
    inputs = None
    if given:
        if len(file_inputs) > 1:
            raise ConfigError(file, "inputs", f"the file has {len(file_inputs)} inputs; --path, --topic, --app-id "
                                              f"and --log-name can only override a file with one input")
        if file_inputs and isinstance(file_inputs[0], dict):
            base = dict(file_inputs[0])
        else:
            missing = [flag for flag, key in _INPUT_FLAGS if key not in given]
            if missing:
                raise ConfigError(file, None, f"no input to override: give {', '.join(missing)} as well "
                                              f"(or an input in a configuration file)")
            base = {}
        if "log_name" in given:
            base.pop("log_name_pattern", None)
        base.update(given)
        inputs = [base]
    if flags.from_beginning:
        inputs = [dict(i, start_at="beginning") if isinstance(i, dict) else i for i in (inputs or file_inputs)]
    if inputs is not None:
        over["inputs"] = inputs
    if flags.state_dir:
        over["state_dir"] = os.path.abspath(os.path.expanduser(flags.state_dir))
    if flags.bootstrap_servers:
        over["kafka"] = {"bootstrap_servers": flags.bootstrap_servers}
    if flags.host:
        over["host"] = flags.host
    s = load(file, over)
    if flags.bootstrap_servers:
        s.bootstrap_servers = flags.bootstrap_servers
    if not s.inputs:
        raise ConfigError(file, "inputs", "expected at least one input (in the file, or --path, --topic, --app-id "
                                          "and --log-name)")
    return s


__all__ = ["ConfigError", "Input", "ShipperConf", "ShipperConfig", "TailFlags", "db_path", "load", "load_tail", "build",
           "PRODUCER_DEFAULTS", "PRODUCER_MANAGED"]
