"""The context a case runs in: the options, the broker, the data, the code side."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from .code import Code
from .common import BENCH, BIN, REPO, WORK, BenchError, say
from .data import envelopes_file, lines_file, settings_dir
from .kafka import Kafka
from .procs import kill_live


class Bench:
    """What the case functions receive: ``args`` (the command line), ``kafka``, the data
    (``lines``, ``envelopes``, ``event_topic``, made on first use), ``code`` (the side whose
    project code the case running now runs: ``new``, or ``base`` with --baseline) and the
    helpers every case uses (``tmp``, ``program``, ``code_env``, ``timeout``, ``profiled``)."""

    def __init__(self, args, bootstrap: str, base: Code | None = None):
        self.args = args
        # this tree, and the baseline's tree with --baseline (both then run with their tree on PYTHONPATH)
        self.new = Code("new", REPO, None) if base is None else Code.of("new", REPO)
        self.base = base
        self.code = self.new  # the code of the case running now
        self.kafka = Kafka(bootstrap)
        self.n_events = args.events
        self.n_lines = args.lines
        self.run_dir = WORK / f"run-{os.getpid()}"
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)
        self._settings: dict[str, Path] = {}
        self.env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap, PYTHONUNBUFFERED="1")
        self._lines: Path | None = None
        self._envelopes: Path | None = None
        self._event_topic: str | None = None
        self.event_highs: dict[int, int] = {}  # of event_topic
        # per code side, the topic its last `shipper` run filled (read by mtga_shipped): a baseline's
        # mtga reads what a baseline shipper wrote, in the wire form that code knows
        self.shipped_topics: dict[str, str] = {}

    @property
    def settings(self) -> Path:
        """The settings folder for the code of the case running now."""
        side = self.code.side
        if side not in self._settings:
            self._settings[side] = settings_dir(self.run_dir / f"settings-{side}", self.code.root)
        return self._settings[side]

    # data, made on first use --------------------------------------------------
    @property
    def lines(self) -> Path:
        if self._lines is None:
            self._lines = lines_file(self.n_lines)
        return self._lines

    @property
    def envelopes(self) -> Path:
        if self._envelopes is None:
            self._envelopes = envelopes_file(self.n_events)
        return self._envelopes

    @property
    def event_topic(self) -> str:
        """One topic (3 partitions) with the N envelopes, read by every mtga-side case."""
        if self._event_topic is None:
            t = self.kafka.topic("events", 3)
            t0 = time.monotonic()
            self.kafka.produce_file(t, self.envelopes, self.n_events)
            self.event_highs = self.kafka.highs(t)
            if sum(self.event_highs.values()) != self.n_events:
                raise BenchError(f"{t} holds {sum(self.event_highs.values())} events, expected {self.n_events}")
            say(f"produced {self.n_events:,} events to {t} in {time.monotonic() - t0:.1f}s")
            self._event_topic = t
        return self._event_topic

    # helpers -------------------------------------------------------------------
    def tmp(self, name: str) -> Path:
        d = self.run_dir / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def program(self, name: str) -> list:
        """The command that runs the program ``name`` (shipper, mtga) of the code on the path:
        its command line's main, in whichever module that tree keeps it (bench/project.py)."""
        return [sys.executable, BENCH / "project.py", name]

    @property
    def code_env(self) -> dict:
        """The environment of a process that runs the project's code: self.code's."""
        return dict(self.env, **self.code.env) if self.code.env else self.env

    def timeout(self, n: int) -> float:
        return 120 + n / 2000

    def check_topic(self, topic: str, n: int) -> str:
        got = self.kafka.total(topic)
        return "ok" if got == n else f"topic holds {got} messages, expected {n}"

    def profiled(self, name: str, cmd: list) -> list:
        """``cmd`` under pyinstrument if ``name`` is one of --profile's cases, else as it is
        (a Python script: run by pyinstrument in this Python itself)."""
        if name not in self.args.profile:
            return cmd
        if cmd[0] == sys.executable:
            cmd = cmd[1:]
        prof = BIN / "pyinstrument"
        if not prof.exists():
            raise BenchError("--profile needs pyinstrument (pip install -e '.[dev]')")
        outdir = WORK / "profiles"
        outdir.mkdir(parents=True, exist_ok=True)
        target = outdir / f"{name}.txt"
        say(f"profiling {name} with pyinstrument into {target.relative_to(REPO)} (its figures are slowed down)")
        return [prof, "-r", "text", "-o", target, *cmd]

    def close(self) -> None:
        kill_live()
        try:
            self.kafka.cleanup()
        finally:
            if not self.args.keep_work:
                shutil.rmtree(self.run_dir, ignore_errors=True)
