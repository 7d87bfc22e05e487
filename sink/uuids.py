"""Deterministic ``#uuid``s of track lines."""

from __future__ import annotations

import hashlib


class UuidMaker:
    """Deterministic ``#uuid``s: the same (stream, position), the same UUID.

    A stream is a Kafka partition (``k|topic|partition``, position = offset) or,
    for shipper lines, the source file (``f|host|file identity``, position =
    byte offset), so a line the shipper sent twice keeps one UUID. Layout
    (RFC 9562 version 8, custom): the first 64 bits are an MD5 of the stream
    name with the version nibble set; the last 64 are the variant bits and
    the 62-bit position. Distinct positions of a stream never collide.
    """

    def __init__(self):
        self._prefix: dict[tuple, bytes] = {}

    def __call__(self, stream: tuple, position: int) -> bytes:
        """``stream`` is (topic, partition) or, for shipper lines, (host, file identity)."""
        p = self._prefix.get(stream)
        if p is None:
            a, b = stream
            name = b"k|%s|%d" % (a.encode(), b) if type(a) is str else b"f|%s|%s" % (a, b)
            x = hashlib.md5(name).hexdigest().encode()
            p = b"%s-%s-8%s-" % (x[:8], x[8:12], x[13:16])
            if len(self._prefix) > 100_000:
                self._prefix.clear()
            self._prefix[stream] = p
        h = b"%016x" % (0x8000000000000000 | (position & 0x3FFFFFFFFFFFFFFF))
        return b"%s%s-%s" % (p, h[:4], h[4:])


def event_uuid(topic: str, partition: int, offset: int) -> str:
    """The ``#uuid`` of the event at ``offset`` in a partition (no shipper headers)."""
    return UuidMaker()((topic, partition), offset).decode()
