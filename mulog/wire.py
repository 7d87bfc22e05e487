"""The wire format of a shipper line in Kafka (docs/wire-format.md): the value
is the raw line; where it comes from travels in one of two forms.

- **key form** (version 2, the default): no headers; the key is
  ``2 US host US file US app_id US log_name US path US offset`` (US: the byte
  0x1F), so only its last field changes from line to line. The shipper picks
  the partition itself, from the file identity, as librdkafka's
  ``consistent_random`` partitioner does for a key holding just the identity
  (the headers form's key): a file's lines stay in one partition, whichever
  form each was sent in.
- **headers form** (version 1): key = the file identity; headers ``host``,
  ``path``, ``file``, ``offset``, ``app_id``, ``log_name``.

mtga reads both, message by message (``parse``; sink/ta/uuids.py).
"""

from __future__ import annotations

import zlib
from typing import Optional

VERSION = b"2"
SEP = b"\x1f"
CARRIER = "~2"  # the name under which mtga carries a key-form key among an item's headers


def prefix(host: str, ident: str, app_id: int, log_name: Optional[str], path: str) -> Optional[bytes]:
    """The constant part of a file's key-form keys, the offset to be appended; None
    when a field cannot be carried (a unit separator in host, app id or log_name)."""
    fields = [host or "", ident, str(app_id), log_name or ""]
    if any("\x1f" in f for f in fields):
        return None
    enc = [f.encode("utf-8", "surrogateescape") for f in fields]
    return SEP.join([VERSION, *enc, path.encode("utf-8", "surrogateescape"), b""])


def partition(ident: bytes, partitions: int) -> int:
    """The partition of a file's lines: CRC-32 of its identity modulo the
    topic's partitions, as librdkafka's consistent_random partitioner places a
    message keyed by the identity."""
    return zlib.crc32(ident) % partitions


_cache: dict[bytes, tuple] = {}


def parse(key: bytes) -> Optional[tuple]:
    """(app_id, log_name, (host, file identity), offset) of a key-form key, as
    bytes but the offset; None when ``key`` is not one."""
    cut = key.rfind(SEP) + 1
    head = key[:cut]
    hit = _cache.get(head)
    if hit is None:
        parts = head.split(SEP, 5)
        if len(parts) < 6 or parts[0] != VERSION:
            return None
        if len(_cache) > 100_000:
            _cache.clear()
        hit = _cache[head] = (parts[3], parts[4], (parts[1], parts[2]))
    tail = key[cut:]
    if not tail.isdigit():
        return None
    return hit[0], hit[1], hit[2], int(tail)


def fields(key: bytes) -> Optional[dict[str, str]]:
    """A key-form key as the six fields of the headers form (``host``, ``path``,
    ``file``, ``offset``, ``app_id``, ``log_name``), or None when it is not one."""
    parts = key.split(SEP, 5)
    if len(parts) < 6 or parts[0] != VERSION or SEP not in parts[5]:
        return None
    path, offset = parts[5].rsplit(SEP, 1)
    if not offset.isdigit():
        return None
    text = [x.decode("utf-8", "backslashreplace") for x in (parts[1], path, parts[2], offset, parts[3], parts[4])]
    return dict(zip(("host", "path", "file", "offset", "app_id", "log_name"), text))


def is_key_form(key: Optional[bytes]) -> bool:
    return key is not None and key[:2] == b"2\x1f"
