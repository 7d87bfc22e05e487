"""The project's console scripts run as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"  # programs the tests run as processes of their own


def run_cli(*args: str, env: dict | None = None, timeout: float = 60, input: str | None = None):
    """Run a console script of this project as a real process.

    ``env`` entries override the environment; a value of None removes the variable.
    """
    e = dict(os.environ)
    # this tree's code, whatever checkout the virtualenv's editable install points at
    e["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO), e.get("PYTHONPATH")) if x)
    for k, v in (env or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    exe = Path(sys.executable).parent / args[0]
    return subprocess.run([str(exe), *args[1:]], capture_output=True, text=True, timeout=timeout, env=e,
                          input=input)
