"""Logging for operators: one line per event worth knowing, with numbers."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(level: str = "info", file: Path | None = None, max_bytes: int = 10 * 1024 * 1024,
          backups: int = 5) -> None:
    """Log to ``file`` (rotating, 0600) or to standard error."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.touch(mode=0o600, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
