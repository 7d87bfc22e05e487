"""The demo's pipeline run with installed commands (a wheel in a virtualenv, or the
package's /usr/bin): sample logs -> `shipper tail` -> Kafka -> `mtga start` -> LogBus
files, each stage awaited (the shipper's delivered positions, the lines in the output)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from mulog import sample
from support.mtga import wait_for


def run(*cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)


def clean_env(**extra) -> dict:
    """This environment without what would make an installed program import this tree's code
    (PYTHONPATH, and the mulog_pipeline.egg-info a build leaves in the repository) or another
    virtualenv's."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def write_sample_logs(folder: Path, per_file: int = 500, mode: int = 0o644) -> int:
    """One file per sample log name, ``per_file`` lines each; returns the number of lines."""
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i, ln in enumerate(sample.LOG_NAMES):
        lines = list(sample.bare_lines(per_file, seed=i + 1, log_name=ln))
        f = folder / f"{ln}.log"
        f.write_bytes(b"".join(x + b"\n" for x in lines))
        f.chmod(mode)
        total += len(lines)
    return total


@dataclass
class Installed:
    """Where the installed commands are and how to run them: ``prefix`` goes before each
    (``runuser -u mulog --`` runs them as the service's user)."""

    bin: Path
    cwd: Path
    env: dict
    prefix: list = field(default_factory=list)

    def cmd(self, prog: str, *args) -> list[str]:
        return [*self.prefix, str(self.bin / prog), *(str(a) for a in args)]

    def run(self, prog: str, *args) -> subprocess.CompletedProcess:
        return run(*self.cmd(prog, *args), cwd=self.cwd, env=self.env)

    def popen(self, prog: str, *args) -> subprocess.Popen:
        return subprocess.Popen(self.cmd(prog, *args), cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)


def ship(inst: Installed, sconf: Path, files: int, tail_flags=(), status_flags=()) -> None:
    """`shipper tail -c sconf` until `shipper status` shows ``files`` files delivered whole,
    then SIGTERM (exit code 0)."""
    sh = inst.popen("shipper", "tail", "-c", sconf, *tail_flags)
    try:
        def delivered():
            r = inst.run("shipper", "status", "-c", sconf, "--json", *status_flags)
            rows = json.loads(r.stdout)["files"] if r.returncode == 0 and r.stdout.strip() else []
            return len(rows) == files and all(x["delivered"] == x["size"] for x in rows)

        wait_for(delivered, 60, "every sample line delivered by the installed shipper", every=0.5)
    finally:
        sh.send_signal(signal.SIGTERM)
        assert sh.wait(60) == 0


def sink(inst: Installed, mconf: Path, total: int, count, start_flags=()) -> int:
    """`mtga start -c mconf` until ``count()`` (lines in the output) reaches ``total``, then
    SIGTERM (exit code 0); returns ``count()`` after the stop."""
    m = inst.popen("mtga", "start", "-c", mconf, *start_flags)
    try:
        wait_for(lambda: count() >= total, 90, "every line in the installed mtga's output", every=0.5)
    finally:
        m.send_signal(signal.SIGTERM)
        assert m.wait(60) == 0
    return count()
