"""The signals both daemons answer, set up in one place.

SIGTERM and SIGINT ask the loop to stop (it finishes its stop on its own
thread: final checkpoint, then exit 0); SIGHUP asks it to take its
configuration again. The handlers only set flags and wake the loop: nothing
else runs inside a signal handler.
"""

from __future__ import annotations

import signal
from typing import Callable

Handler = Callable[..., None]


def handle(stop: Handler, reload: Handler | None = None) -> None:
    """Route SIGTERM and SIGINT to ``stop``, SIGHUP to ``reload`` (main thread only)."""
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if reload is not None:
        signal.signal(signal.SIGHUP, reload)
