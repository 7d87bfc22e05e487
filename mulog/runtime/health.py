"""``GET /health`` and ``GET /ready`` beside ``/metrics`` (both programs).

Each program gives two functions returning its checks, computed from the
snapshot its loop last published (never live state: they run on the HTTP
server's thread). An answer is 200 when every check passes, else 503, with a
JSON body saying why::

    {"status": "ok" | "unavailable",
     "checks": {"loop": {"ok": true, "detail": "ticked 0.2s ago"}, ...}}

``/health``: the process loop is alive (a supervisor restarts it when not).
``/ready``: it does its work now (state open, broker reachable, not stalled...).
"""

from __future__ import annotations

import json
import time
from typing import Callable, Iterable

Check = tuple[str, bool, str]  # (name, ok, detail)
Checks = Callable[[], Iterable[Check]]

LOOP_STALE_S = 10.0  # a loop that has not published a snapshot for this long is not alive


def loop_check(taken: float, now: float | None = None, limit: float = LOOP_STALE_S) -> Check:
    """The loop publishes a snapshot every few hundred ms: its age tells whether it ticks."""
    age = max(0.0, (time.time() if now is None else now) - taken)
    return ("loop", age <= limit, f"ticked {age:.1f}s ago" + ("" if age <= limit else f" (more than {limit:.0f}s)"))


def answer(checks: Iterable[Check]) -> tuple[int, bytes]:
    """(HTTP status, JSON body) of a list of checks."""
    out = {name: {"ok": bool(ok), "detail": detail} for name, ok, detail in checks}
    good = all(c["ok"] for c in out.values())
    body = {"status": "ok" if good else "unavailable", "checks": out}
    return (200 if good else 503), json.dumps(body).encode() + b"\n"


def wsgi(metrics_app, routes: dict[str, Checks]):
    """A WSGI app answering ``routes`` (path -> checks) and passing the rest to ``metrics_app``."""

    def app(environ, start_response):
        checks = routes.get(environ.get("PATH_INFO", ""))
        if checks is None:
            return metrics_app(environ, start_response)
        try:
            code, body = answer(checks())
        except Exception as e:  # a check that fails to run says so, it does not take the server down
            code, body = answer([("checks", False, f"could not run: {e}")])
        start_response("200 OK" if code == 200 else "503 Service Unavailable",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-store")])
        return [body]

    return app
