"""systemd's service notification protocol (``Type=notify``), in a few lines.

systemd names an AF_UNIX datagram socket in ``$NOTIFY_SOCKET`` (a leading ``@``
is Linux's abstract namespace); the service sends it newline-separated
``KEY=VALUE`` states: ``READY=1`` once it serves, ``WATCHDOG=1`` at least every
``$WATCHDOG_USEC`` microseconds while alive (``WatchdogSec=`` in the unit), and
``STOPPING=1`` when it begins to stop. Without ``$NOTIFY_SOCKET`` (run by hand,
in Docker) every call does nothing. A send that fails is dropped: the
notifications must never stop the program.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Mapping, Optional

log = logging.getLogger("sdnotify")


class Notifier:
    def __init__(self, env: Optional[Mapping[str, str]] = None):
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self.addr: Optional[str] = ("\0" + addr[1:] if addr.startswith("@") else addr) or None
        self.sock: Optional[socket.socket] = None
        if self.addr:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.interval: Optional[float] = None  # seconds between WATCHDOG=1
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if self.sock and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.interval = int(usec) / 2e6  # at half the interval systemd allows, as sd_watchdog_enabled advises
        self.next_ping = 0.0
        self.is_ready = False

    @property
    def enabled(self) -> bool:
        return self.sock is not None

    def send(self, state: str) -> bool:
        if self.sock is None:
            return False
        try:
            self.sock.sendto(state.encode(), self.addr)
            return True
        except OSError as e:
            log.debug("systemd notification %r not sent: %s", state, e)
            return False

    def ready(self, status: str = "") -> None:
        """READY=1, once."""
        if not self.is_ready:
            self.is_ready = True
            self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self, now: Optional[float] = None) -> None:
        """WATCHDOG=1 when due, once ready (call it from the loop as often as it likes)."""
        if self.interval is None or not self.is_ready:
            return
        now = time.monotonic() if now is None else now
        if now >= self.next_ping:
            self.next_ping = now + self.interval
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
