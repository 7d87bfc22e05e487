"""Ports on 127.0.0.1 for the brokers' listeners and controllers."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from kafkalocal.common import KafkaLocalError


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for the ports it picks itself (a connection's local port,
    a bind to port 0): net.ipv4.ip_local_port_range."""
    try:
        lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A port on 127.0.0.1 that nothing uses now, for a broker or a program to
    listen on a moment later. It is chosen outside the kernel's ephemeral range:
    a port from that range, free now, may become the local port of any process's
    next connection before the listener binds it (seconds, for a broker), and
    on a busy machine that happens."""
    lo, hi = _ephemeral_ports()
    pool = [p for p in range(max(1024, lo - 12000), lo)] + [p for p in range(hi + 1, 65536)]
    rnd = random.SystemRandom()
    for _ in range(100):
        p = rnd.choice(pool)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
            return p
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # a crowded machine: any free port
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    """Whether the broker can listen on ``port``. It binds with SO_REUSEADDR (Java's
    default), so the check does too: a port held only by TIME_WAIT connections (those
    of a broker that just stopped) is free, one that something listens on is not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def distinct_ports(brokers: int, first: int | None = None) -> list[tuple[int, int]]:
    """(listener port, controller port) per node, all distinct: ``first``,
    ``first+1``, ... for the listeners when given, free ports otherwise."""
    used: set[int] = set()
    listeners = []
    for i in range(brokers):
        if first:
            p = first + i
            if not _port_free(p):
                raise KafkaLocalError(f"port {p} on 127.0.0.1 is in use")
        else:
            p = free_port()
            while p in used:
                p = free_port()
        used.add(p)
        listeners.append(p)
    out = []
    for p in listeners:
        cp = free_port()
        while cp in used:
            cp = free_port()
        used.add(cp)
        out.append((p, cp))
    return out
