"""The daemon's control socket and its client.

Protocol: one JSON object per line each way over a Unix stream socket.
Request ``{"cmd": NAME, ...}``; reply ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "...", "exit": CODE}`` (``exit``, the exit code of
mulog/exitcodes.py the query ends with, when the error has one: 3 when Kafka did
not answer the daemon). Commands: ping, status, offsets, lag,
fq_count (``by_reason``), fq_clear (``confirm`` must be true; ``reason``).

The socket lives in a 0700 folder and is itself 0600. A request over
MAX_REQUEST bytes, invalid JSON or an unknown command gets an error reply;
the server goes on serving. The client gives up after a timeout (connect and
reply) so a stuck daemon never hangs an operator's terminal.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from offsets import ensure_private_dir

log = logging.getLogger("mtga.control")

MAX_REQUEST = 1024 * 1024


class ControlTimeout(Exception):
    pass


class ControlUnavailable(Exception):
    """No daemon listens (no socket, or a stale one)."""


class Refused(RuntimeError):
    """The daemon answered with an error; ``exit_code`` is the one it gave, if any."""

    def __init__(self, message: str, exit_code: Optional[int] = None):
        super().__init__(message)
        self.exit_code = exit_code


class _Handler(socketserver.StreamRequestHandler):
    timeout = 30  # a client that stops sending is dropped

    def handle(self):
        try:
            line, too_big = self._read_line()
        except (socket.timeout, OSError):
            return
        if too_big:
            reply = {"ok": False, "error": f"request too large (limit {MAX_REQUEST} bytes)"}
        elif not line.strip():
            return
        else:
            reply = self.server.dispatch(line)
        try:
            self.wfile.write(json.dumps(reply, default=str).encode() + b"\n")
        except OSError:
            pass

    def _read_line(self) -> tuple[bytes, bool]:
        buf = bytearray()
        too_big = False
        while True:
            chunk = self.rfile.readline(65536)
            if not chunk:
                break
            if not too_big:
                buf += chunk
                if len(buf) > MAX_REQUEST:
                    too_big = True
                    buf = bytearray()
            if chunk.endswith(b"\n"):
                break
        return bytes(buf), too_big


class ControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, path: Path, handlers: dict[str, Callable[[dict], object]]):
        self.path = Path(path)
        self.handlers = handlers
        notes = ensure_private_dir(self.path.parent)
        for n in notes:
            log.warning("%s", n)
        if len(str(self.path).encode()) > 107:
            raise OSError(f"control socket path too long for a Unix socket ({len(str(self.path))} > 107): {self.path}")
        try:
            self.path.unlink()  # a stale socket of a dead daemon (we hold the pid lock)
        except FileNotFoundError:
            pass
        old = os.umask(0o177)
        try:
            super().__init__(str(self.path), _Handler)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="control",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()
        log.info("control socket at %s", self.path)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def dispatch(self, line: bytes) -> dict:
        try:
            req = json.loads(line)
        except (ValueError, UnicodeDecodeError) as e:
            return {"ok": False, "error": f"invalid JSON: {e}"}
        if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
            return {"ok": False, "error": 'expected an object like {"cmd": "status"}'}
        fn = self.handlers.get(req["cmd"])
        if fn is None:
            return {"ok": False, "error": f"unknown command {req['cmd']!r}; known: {', '.join(sorted(self.handlers))}"}
        try:
            return {"ok": True, "result": fn(req)}
        except Exception as e:  # one bad request never stops the server
            log.warning("control request %s failed: %s", req.get("cmd"), e)
            reply = {"ok": False, "error": str(e) or type(e).__name__}
            code = getattr(e, "exit_code", None)
            if isinstance(code, int):
                reply["exit"] = int(code)
            return reply


def request(path: Path, cmd: str, timeout: float, **args) -> object:
    """Send one request; returns the result, raises ControlTimeout,
    ControlUnavailable, or Refused (the daemon's error message and exit code)."""
    deadline = time.monotonic() + timeout
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise ControlUnavailable(str(e)) from None
        except socket.timeout:
            raise ControlTimeout(f"no answer within {timeout:.0f}s (connect)") from None
        data = json.dumps({"cmd": cmd, **args}).encode() + b"\n"
        try:
            s.sendall(data)
            buf = bytearray()
            while not buf.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout()
                s.settimeout(left)
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except socket.timeout:
            raise ControlTimeout(f"no answer within {timeout:.0f}s") from None
        except (ConnectionResetError, BrokenPipeError) as e:
            raise ControlUnavailable(str(e)) from None
    finally:
        s.close()
    if not buf:
        raise ControlUnavailable("the daemon closed the connection without answering")
    reply = json.loads(buf)
    if not reply.get("ok"):
        code = reply.get("exit")
        raise Refused(reply.get("error", "error"), code if isinstance(code, int) else None)
    return reply.get("result")
