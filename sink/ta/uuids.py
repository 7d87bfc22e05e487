"""Where an event comes from, and its deterministic ``#uuid``.

Every event has a source and a position that grow together: for a shipper line
its file (host and file identity, from the Kafka headers) and its byte offset in
it; for any other event its Kafka partition and offset. The ``#uuid`` is made
of both, in the standard RFC 4122 / RFC 9562 version-4 form (the only one
ThinkingData's SDKs make), deterministic instead of random::

    xxxxxxxx-xxxx-4xxx-vppp-pppppppppppp
    |<- 60 bits of MD5 ->|  |<- position ->|

- bits 0-47 and 52-63: 60 of the first 64 bits of an MD5 of the source name
  (its 13th hex digit gives way to the version nibble ``4``, bits 48-51): the
  *source key*, the first 19 characters ``xxxxxxxx-xxxx-4xxx-``;
- bits 64-65: the RFC 4122 variant ``10`` (``v`` is 8, 9, a or b);
- bits 66-127: the line and the position: bits 66-69 the line of the event
  counted from its last (0 for the last, so the one line of a plain track event),
  bits 70-127 the 58-bit position.

So every bit that is not the version or the variant carries the source, the
line or the position: two events of one source differ in their position (unique
up to 2^58), two lines of one event in their line, two sources in their key (60
bits: a collision is expected after about 2^30 sources). A line the shipper sent twice keeps one UUID, and an output line tells
its source and position (``parse``): what the exactly-once marks are keyed by
(sink/pipeline/marks.py). An event's lines are written together, its last one
last; recovery counts an event written when it finds its last line.

Before, the same bits were written with the version nibble ``8`` (RFC 9562
version 8, custom): ``parse`` reads that old form too and gives its source key in
the new form (``current_key``), so recovery over files, and marks stored, from
before the change still find their sources.
"""

from __future__ import annotations

import hashlib
import re
from typing import Optional

from mulog import wire
from mulog.wire import CARRIER

_MASK = 0x3FFFFFFFFFFFFFFF
_LINE_SHIFT = 58  # bits 58-61 of the 62: the line of the event (up to 16 lines an event gives)
_POSITION = (1 << _LINE_SHIFT) - 1  # bits 0-57: the position (2^58 bytes or Kafka offsets)
_VARIANT = 0x8000000000000000
VERSION = "4"
OLD_VERSION = "8"  # the form of #uuids (and marks' source keys) written before


def source_key(stream: tuple) -> bytes:
    """The first 19 characters of the #uuids of a source: ``stream`` is (topic,
    partition) or, for shipper lines, (host, file identity) as bytes."""
    a, b = stream
    name = b"k|%s|%d" % (a.encode(), b) if type(a) is str else b"f|%s|%s" % (a, b)
    x = hashlib.md5(name).hexdigest().encode()
    return b"%s-%s-4%s-" % (x[:8], x[8:12], x[13:16])


def current_key(key: bytes) -> bytes:
    """A source key in the current form (an old, version-8 one turned to 4)."""
    return key[:14] + b"4" + key[15:] if key[14:15] == b"8" and len(key) == 19 else key


def uuid_of(key: bytes, position: int, line: int = 0) -> bytes:
    """The #uuid of line ``line`` of the event at ``position``, counted from the
    event's last line (0: the one whose #uuid recovery takes as the event's)."""
    h = b"%016x" % (_VARIANT | (line << _LINE_SHIFT) | (position & _POSITION))
    return b"%s%s-%s" % (key, h[:4], h[4:])


def parse(uuid: str) -> Optional[tuple[bytes, int]]:
    """(source key, position) of a #uuid mtga made for an event's last line, in
    the current form or the old one (its key given in the current form), or
    None (another line of an event, or a #uuid mtga did not make)."""
    p = parse_line(uuid)
    return None if p is None or p[2] else p[:2]


def parse_line(uuid: str) -> Optional[tuple[bytes, int, int]]:
    """(source key, position, line counted from the event's last) of a #uuid mtga made, or None."""
    if _FORM.match(uuid) is None:
        return None
    bits = int(uuid[19:23] + uuid[24:], 16)
    return (uuid[:14] + VERSION + uuid[15:19]).encode(), bits & _POSITION, (bits & _MASK) >> _LINE_SHIFT


_FORM = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[%s%s][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z" % (VERSION, OLD_VERSION))


def read_headers(headers) -> tuple:
    """(app_id, log_name, stream, position) from an event's Kafka headers (or the
    key of the key form, carried as the one header ``~2``): the stream and
    position are a shipper line's ((host, file identity), byte offset), or (None,
    None) without the ``file`` and ``offset`` headers."""
    if headers and headers[0][0] == CARRIER:  # the key form (mulog/wire.py)
        p = wire.parse(headers[0][1])
        if p is not None:
            return p
    app_id = log_name = file_id = host = pos = None
    for k, v in headers or ():
        if k == "app_id":
            app_id = v
        elif k == "log_name":
            log_name = v
        elif k == "file":
            file_id = v
        elif k == "offset":
            pos = v
        elif k == "host":
            host = v
    if file_id is not None and pos is not None and pos.isdigit():
        return app_id, log_name, (host or b"", file_id), int(pos)
    return app_id, log_name, None, None


def source_of(headers, topic: str, partition: int, offset: int) -> tuple[tuple, int]:
    """(stream, position) of an event: a shipper line's file and byte offset, or
    its partition and Kafka offset."""
    _, _, stream, pos = read_headers(headers)
    return (stream, pos) if stream is not None else ((topic, partition), offset)


class UuidMaker:
    """``#uuid``s of (stream, position), with the source keys cached."""

    def __init__(self):
        self._key: dict[tuple, bytes] = {}

    def __call__(self, stream: tuple, position: int) -> bytes:
        k = self._key.get(stream)
        if k is None:
            if len(self._key) > 100_000:
                self._key.clear()
            k = self._key[stream] = source_key(stream)
        return uuid_of(k, position)


def event_uuid(topic: str, partition: int, offset: int) -> str:
    """The ``#uuid`` of the event at ``offset`` in a partition (no shipper headers)."""
    return uuid_of(source_key((topic, partition)), offset).decode()
