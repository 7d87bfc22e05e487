"""What ``check-config`` and a program's start both check before touching
Kafka: one list of findings, each ``<file>: <key>: <what was expected>``.

An error stops the command with exit code 2 (``EXIT_CONFIG``); a warning is
said and the command goes on. The Kafka client settings are checked by the
client library itself: the client is built without a broker to connect to,
so a misspelt key or a refused value is found here, not in the running
program.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from mulog.config import EXIT_CONFIG, REDACTED, SECRET_KEY, ConfigError
from mulog.connection import make

_HOST = r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])"
_BROKER = re.compile(rf"^(?:[A-Za-z_]+://)?{_HOST}(?::(?P<port>[0-9]{{1,5}}))?$")
_QUIET = logging.getLogger("mulog.preflight.client")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


@dataclass
class Finding:
    level: Literal["error", "warning"]
    problem: ConfigError

    def __str__(self) -> str:
        return f"{'config error' if self.level == 'error' else 'warning'}: {self.problem}"


@dataclass
class Report:
    """The findings of one configuration, in the order they were found."""

    findings: list[Finding] = field(default_factory=list)

    def error(self, file, key: str | None, expected: str) -> None:
        self.findings.append(Finding("error", ConfigError(file, key, expected)))

    def warn(self, file, key: str | None, expected: str) -> None:
        self.findings.append(Finding("warning", ConfigError(file, key, expected)))

    def add(self, e: ConfigError) -> None:
        self.findings.append(Finding("error", e))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def code(self) -> int:
        return EXIT_CONFIG if self.errors else 0

    def say(self, prog: str, echo: Callable[[str], None]) -> None:
        for f in self.findings:
            echo(f"{prog}: {f}")


def bootstrap(report: Report, servers: str, file, key: str) -> None:
    """A comma-separated list of ``host[:port]`` (a ``PROTOCOL://`` prefix allowed)."""
    entries = [e.strip() for e in servers.split(",")]
    bad = [e for e in entries if not _BROKER.match(e) or not _port_ok(e)]
    if not servers.strip() or bad:
        shown = ", ".join(repr(b) for b in bad) if bad else repr(servers)
        report.error(file, key, f"expected a comma-separated list of host:port, got {shown}")


def _port_ok(entry: str) -> bool:
    m = _BROKER.match(entry)
    return m is not None and (m.group("port") is None or 1 <= int(m.group("port")) <= 65535)


def client(report: Report, kind: Literal["producer", "consumer"], connection: dict, conf: dict, user: dict,
           file, section: str) -> None:
    """Build the Kafka client as the program will (``connection``: kafka.connection,
    every client's; ``conf``: this client's own settings, of which ``user`` came from
    the file under ``section``), without a broker; a refused setting is an error
    naming the key that carries it."""
    if connection and _refusal(kind, connection) is not None:
        _blame(report, kind, {}, connection, file, "kafka.connection")
        return
    base = {**connection, **{k: v for k, v in conf.items() if k not in user}}
    _blame(report, kind, base, user, file, section)


def _blame(report: Report, kind: str, base: dict, user: dict, file, section: str) -> None:
    problem = _refusal(kind, {**base, **user})
    if problem is None:
        return
    culprit = None
    tried = dict(base)
    for k, v in user.items():
        tried[k] = v
        if _refusal(kind, tried) is not None:
            culprit = k
            break
    for k, v in user.items():  # a message that quotes a secret's value does not show it
        if isinstance(v, str) and len(v) >= 4 and SECRET_KEY.search(k):
            problem = problem.replace(v, REDACTED)
    report.error(file, f"{section}.{culprit}" if culprit else section, f"the Kafka client refuses it: {problem}")


def _refusal(kind: str, conf: dict) -> str | None:
    from confluent_kafka import KafkaException

    conf = {k: v for k, v in conf.items() if k != "bootstrap.servers"}
    conf["logger"] = _QUIET
    try:
        if kind == "consumer":
            conf.setdefault("group.id", "check-config")
            make("consumer", conf).close()
        else:
            make("producer", conf)
    except KafkaException as e:
        err = e.args[0] if e.args else None
        text = err.str() if hasattr(err, "str") else str(e)
        return text.strip().rstrip(".")
    except (TypeError, ValueError) as e:
        return str(e)
    return None


def folder_of_glob(pattern: str) -> Path:
    """The deepest folder of ``pattern`` that holds no wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for p in parts[:-1]:
        if any(c in p for c in "*?["):
            break
        fixed.append(p)
    return Path(*fixed) if fixed else Path("/")


def globs(report: Report, patterns: list[str], file, key: str) -> None:
    """A warning for each glob whose folder does not exist (it may come later)."""
    for i, pattern in enumerate(patterns):
        folder = folder_of_glob(pattern)
        if not folder.is_dir():
            report.warn(file, f"{key}[{i}]", f"folder {folder} does not exist (yet): nothing is read from "
                                             f"{pattern} until it does")


def writable_folder(report: Report, folder: Path, file, key: str) -> None:
    """A warning when ``folder`` is missing and could not be created by this user."""
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            report.warn(file, key, f"folder {folder} is not writable by this user")
        return
    parent = folder
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        report.warn(file, key, f"folder {folder} does not exist and cannot be created under {parent} "
                               f"by this user")
