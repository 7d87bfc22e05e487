"""The project code a case runs (this tree's or a baseline revision's) and the git facts of the report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .common import REPO, WORK, BenchError, say

PACKAGES = ("mulog", "offsets", "shipper", "sink")  # the project's top-level packages


def git_rev() -> tuple[str, bool]:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip() != ""
        return rev or "unknown", dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


class Code:
    """The project code a case runs: this tree's or the baseline's.

    ``env`` is None for this tree in a run without --baseline: the programs run as
    installed in this Python's environment, as they always did. Otherwise the tree
    comes first on PYTHONPATH (ahead of the editable install, for the programs and
    every process they start) and in BENCH_CODE (read by bench/transform_loop.py).
    """

    def __init__(self, side: str, root: Path, env: dict | None):
        self.side, self.root, self.env = side, root, env

    @classmethod
    def of(cls, side: str, root: Path) -> "Code":
        path = os.pathsep.join(x for x in (str(root), os.environ.get("PYTHONPATH", "")) if x)
        return cls(side, root, {"PYTHONPATH": path, "BENCH_CODE": str(root)})

    def check(self) -> None:
        """Each package imports from this tree with this environment, or BenchError."""
        names = [n for n in PACKAGES if (self.root / n / "__init__.py").exists()]
        if "sink" not in names:
            raise BenchError(f"{self.root} holds no sink package")
        code = ("import importlib, json, sys; "
                "print(json.dumps({n: importlib.import_module(n).__file__ for n in sys.argv[1:]}))")
        WORK.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=60,
                           cwd=WORK, env=dict(os.environ, **(self.env or {})))
        if r.returncode != 0:
            raise BenchError(f"the code of {self.root} does not import: {r.stderr.strip()[-500:]}")
        for name, file in json.loads(r.stdout.strip().splitlines()[-1]).items():
            if not Path(file).resolve().is_relative_to(self.root / name):
                raise BenchError(f"{name} imports from {file}, not from {self.root}")


def export_rev(rev: str) -> tuple[str, Path]:
    """(full sha, folder) of git revision ``rev`` of this repository, exported once
    (``git archive``) to bench/work/base-<sha>/ and kept for later runs."""
    try:
        r = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=REPO,
                           capture_output=True, text=True, timeout=30)
    except OSError as e:
        raise BenchError(f"--baseline needs git: {e.strerror}") from None
    sha = r.stdout.strip()
    if r.returncode != 0 or not sha:
        raise BenchError(f"--baseline {rev}: not a commit of the repository at {REPO}")
    root = WORK / f"base-{sha[:12]}"
    if (root / ".exported").exists():
        return sha, root
    tmp = WORK / f"base-{sha[:12]}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    tmp.mkdir(parents=True)
    archive = subprocess.Popen(["git", "archive", "--format=tar", sha], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", str(tmp)], stdin=archive.stdout, capture_output=True)
    archive.stdout.close()
    err = archive.stderr.read().decode(errors="replace")
    if archive.wait() != 0 or untar.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BenchError(f"cannot export {rev} ({sha[:12]}): {err.strip() or untar.stderr.decode(errors='replace')}")
    (tmp / ".exported").write_text(sha + "\n")
    tmp.rename(root)
    say(f"exported {rev} ({sha[:12]}) to {root.relative_to(REPO)}")
    return sha, root
