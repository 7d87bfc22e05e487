"""Paths, sizes and errors shared by the harness, the cases and the report."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent  # bench/
REPO = BENCH.parent
WORK = BENCH / "work"
RESULTS = BENCH / "results"
PEERS = BENCH / "peers"  # the peers' builder manifest, configurations and Quix Streams application
BIN = Path(sys.executable).parent

QUICK = {"events": 20_000, "lines": 50_000}
FULL = {"events": 1_000_000, "lines": 2_000_000}
POLL_S = 0.05


class BenchError(Exception):
    """A failure with a message meant for the user (no traceback)."""


class Skip(Exception):
    """The case cannot run here; the message says why."""


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)
