"""The two message forms a read chunk's lines are produced in (mulog/wire.py;
docs/wire-format.md), each line one message, the chunk on the last one (its
delivery report acknowledges the chunk: shipper/files/acks.py). A full producer
queue (``BufferError``) waits for room (``wait``) and goes on with the line
that met it."""

from __future__ import annotations

from collections import deque
from itertools import accumulate, repeat
from typing import TYPE_CHECKING, Callable, Iterator

PARTITIONS_S = 60.0  # how often a topic's partition count is looked up again (the key form)
UNKNOWN_S = 5.0  # ... and while it is not known (a lookup may block: not at every chunk)

if TYPE_CHECKING:
    from shipper.files.acks import Chunk
    from shipper.files.framing import Frame
    from shipper.files.tailer import Tailer


def send_keyed(produce: Callable, wait: Callable[[], None], t: "Tailer", frame: "Frame", chunk: "Chunk",
               part: int) -> None:
    """The key form: no headers; each key is the file's prefix and the line's
    offset; the partition is the file's (picked by the publisher). The lines but
    the last go through ``map`` (the per-line loop runs in C: key, offset and
    produce() without a Python step); after a full queue it goes on with the line
    that met it, the iterator telling how far it got."""
    lines, topic, prefix = frame.lines, t.topic, t.key_prefix
    last = len(lines) - 1
    i = 0
    while i < last:
        rest = lines[i:last]
        it = iter(rest)
        keys = map(_KEY, zip(repeat(prefix), _offsets(frame, i, rest)))
        try:
            deque(map(produce, repeat(topic), it, keys, repeat(part)), 0)
            i = last
        except BufferError:
            i += len(rest) - it.__length_hint__() - 1  # the line that met the full queue was taken, not queued
            wait()
    off = frame.offsets[last] if frame.offsets is not None else frame.end - len(lines[last]) - 1
    while True:
        try:
            produce(topic, lines[last], b"%s%d" % (prefix, off), part, chunk)
            return
        except BufferError:
            wait()


def _offsets(frame: "Frame", i: int, rest: list) -> Iterator[int]:
    """The byte offsets of the lines ``rest``, the frame's from its ``i``-th."""
    if frame.offsets is not None:
        return iter(frame.offsets[i:])
    start = frame.start + sum(map(len, frame.lines[:i])) + i if i else frame.start
    return accumulate(map(_ADD1, map(len, rest)), initial=start)  # each line and its newline


_KEY = b"%s%d".__mod__
_ADD1 = (1).__add__


def send_headers(produce: Callable, wait: Callable[[], None], t: "Tailer", frame: "Frame", chunk: "Chunk") -> None:
    """The headers form: keyed by the file identity (the partitioner places it),
    with the six headers; ``offset`` rewritten for every line. ``produce()`` is
    called with positional arguments, the delivery callback on the last line only."""
    lines = frame.lines
    topic, key, hdrs = t.topic, t.key, t.headers
    offs = offsets(frame)
    last = len(lines) - 1
    i = 0
    while i <= last:
        try:
            while i < last:
                hdrs["offset"] = str(offs[i])
                produce(topic, lines[i], key, -1, None, None, 0, hdrs)
                i += 1
            hdrs["offset"] = str(offs[last])
            produce(topic, lines[last], key, -1, chunk, None, 0, hdrs)
            i += 1
        except BufferError:
            wait()


def offsets(frame: "Frame") -> list:
    """The byte offset of each line of the frame (when the framer kept none, they
    follow from the line lengths: no line was cut or skipped)."""
    if frame.offsets is not None:
        return frame.offsets
    offs, off = [], frame.start
    for line in frame.lines:
        offs.append(off)
        off += len(line) + 1
    return offs


def partitions(cache: dict, topic: str, now: float, lookup: Callable[[str], int]) -> int:
    """The topic's partition count for the key form (0: not known; the headers
    form then), from ``cache`` (topic -> (count, when looked up)), looked up
    again (``lookup``: 0 when it cannot tell) every PARTITIONS_S, or UNKNOWN_S
    while not known; a count once known is kept when a lookup cannot tell."""
    got = cache.get(topic)
    if got is None or now - got[1] > (PARTITIONS_S if got[0] else UNKNOWN_S):
        n = lookup(topic)
        got = cache[topic] = (n or (got[0] if got is not None else 0), now)
    return got[0]
