"""Logging for operators: one line per event worth knowing, with numbers.

Two formats: ``text`` (``2026-01-02 03:04:05,678 INFO mtga: message``) and
``json``: one object per line, ``{"time": "2026-01-02T03:04:05.678Z", "level":
"INFO", "logger": "mtga", "message": "...", ...}`` with the values a log call
passed as fields: what it gave in ``extra`` as they are, the arguments of its
message as ``args``, and the traceback of an exception as ``exc``.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from pathlib import Path

import msgspec

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")

# what every LogRecord has; anything else on a record came from ``extra``
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}
_SCALARS = (str, int, float, bool, type(None))


def _plain(v):
    return v if isinstance(v, _SCALARS) else str(v)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module's doc)."""

    def __init__(self):
        super().__init__()
        self._enc = msgspec.json.Encoder(enc_hook=str)

    def format(self, record: logging.LogRecord) -> str:
        ms = int(record.msecs)
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{ms:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _STANDARD and k not in out and not k.startswith("_"):
                out[k] = v
        args = record.args
        if isinstance(args, tuple) and args:
            out["args"] = [_plain(a) for a in args]
        elif isinstance(args, dict) and args:
            out["args"] = {str(k): _plain(v) for k, v in args.items()}
        if record.exc_info and record.exc_info[0] is not None:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        try:
            return self._enc.encode(out).decode()
        except (TypeError, ValueError, OverflowError):
            return self._enc.encode({k: _plain(v) for k, v in out.items()}).decode()


def formatter(fmt: str = "text") -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return logging.Formatter(FORMAT)
    raise ValueError(f"log format: expected one of {', '.join(FORMATS)}, got {fmt!r}")


def setup(level: str = "info", file: Path | None = None, max_bytes: int = 10 * 1024 * 1024,
          backups: int = 5, fmt: str = "text") -> None:
    """Log to ``file`` (rotating, 0600) or to standard error, as ``fmt`` (text or json)."""
    form = formatter(fmt)
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
    handler.setFormatter(form)
    root.addHandler(handler)
    root.setLevel(level.upper())


class QueueHandler(logging.handlers.QueueHandler):
    """Records of a worker process for its parent's log: the message formatted,
    an exception's traceback kept apart (as ``exc`` in JSON, after the message
    in text), the ``extra`` fields kept."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        exc = record.exc_text
        if record.exc_info and record.exc_info[0] is not None:
            exc = logging.Formatter().formatException(record.exc_info)
        r = logging.makeLogRecord(record.__dict__)
        r.msg = r.message = record.getMessage()
        r.args, r.exc_info, r.exc_text = None, None, exc
        return r


class Relay:
    """The parent's end of its worker processes' logs: a queue of ``ctx`` (a
    multiprocessing context) whose records go to this process's root handlers.
    ``close`` stops it and releases the queue's semaphores at once (a daemon that
    ends with os._exit runs no finalizer: the resource tracker would find them
    "leaked" at its exit)."""

    def __init__(self, ctx):
        self.queue = ctx.Queue()
        root = logging.getLogger()
        self.level = root.getEffectiveLevel()
        self.listener: logging.handlers.QueueListener | None = logging.handlers.QueueListener(
            self.queue, *root.handlers, respect_handler_level=True)
        self.listener.start()

    def close(self) -> None:
        if self.listener is None:
            return
        self.listener.stop()
        self.queue.close()
        self.queue.join_thread()
        # the last references: the queue's locks are finalized, each unlinks its semaphore
        self.listener = self.queue = None
