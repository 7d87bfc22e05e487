"""Ports on 127.0.0.1 for the brokers' listeners and controllers."""

from __future__ import annotations

import socket

from kafkalocal.common import KafkaLocalError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
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
