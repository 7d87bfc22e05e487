"""The two message forms a read chunk's lines are produced in (mulog/wire.py;
docs/wire-format.md), each line one message, the chunk on the last one (its
delivery report acknowledges the chunk: shipper/files/acks.py). A full producer
queue (``BufferError``) waits for room (``wait``) and goes on with the line
that met it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

PARTITIONS_S = 60.0  # how often a topic's partition count is looked up again (the key form)
UNKNOWN_S = 5.0  # ... and while it is not known (a lookup may block: not at every chunk)

if TYPE_CHECKING:
    from shipper.files.acks import Chunk
    from shipper.files.framing import Frame
    from shipper.files.tailer import Tailer


def send_keyed(produce: Callable, wait: Callable[[], None], t: "Tailer", frame: "Frame", chunk: "Chunk",
               part: int) -> None:
    """The key form: no headers; each key is the file's prefix and the line's
    offset; the partition is the file's (picked by the publisher)."""
    lines, topic, prefix = frame.lines, t.topic, t.key_prefix
    offs = offsets(frame)
    last = len(lines) - 1
    i = 0
    while i <= last:
        try:
            while i < last:
                produce(topic, lines[i], b"%s%d" % (prefix, offs[i]), part)
                i += 1
            produce(topic, lines[last], b"%s%d" % (prefix, offs[last]), part, chunk)
            i += 1
        except BufferError:
            wait()


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
