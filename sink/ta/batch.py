"""What a batch is made of on its way through mtga: consumed ``Item``s in, one
``Outcome`` out (the transform's lines grouped per app, its failures and the
count filtered out)."""

from __future__ import annotations

from typing import Optional

import msgspec

# the kinds of transform results: (kind, app, line | why | reason); DUPLICATE: at or below its source's mark
OK, FILTERED, FAILED, DUPLICATE = 0, 1, 2, 3


class Item(msgspec.Struct, array_like=True, gc=False):
    """One consumed Kafka message. Built in C and read by attribute, it costs
    less on the hot path than a tuple passed on with ``*item``."""

    payload: bytes
    headers: Optional[list]  # [(name, bytes or None), ...] as the consumer gives them
    topic: str
    partition: int
    offset: int




class Outcome:
    """A transformed batch: ``apps`` maps app id -> [buffers holding the lines
    (newline-terminated, in order), line count, indexes of the events];
    ``failures`` lists (index, app, reason); ``fixed`` counts the events fixed
    per rule; ``learned`` lists the (app, name, kind) a worker learned;
    ``sources`` maps a source key to the (first, last) position handled, and
    ``duplicates`` counts the events skipped as handled before."""

    __slots__ = ("apps", "failures", "filtered", "fixed", "learned", "sources", "duplicates")

    def __init__(self, apps: dict, failures: list, filtered: int, fixed: Optional[dict] = None,
                 learned: Optional[list] = None, sources: Optional[dict] = None, duplicates: int = 0):
        self.apps, self.failures, self.filtered = apps, failures, filtered
        self.fixed = fixed or {}
        self.learned = learned or []
        self.sources = sources or {}
        self.duplicates = duplicates


def merge(parts: list) -> Outcome:
    """Outcomes of consecutive chunks -> one outcome; an app's buffers stay in order."""
    if len(parts) == 1:
        return parts[0]
    apps: dict = {}
    failures = []
    filtered = duplicates = 0
    fixed: dict = {}
    sources: dict = {}
    for o in parts:
        duplicates += o.duplicates
        for key, (first, last) in o.sources.items():
            had = sources.get(key)
            sources[key] = (first if had is None else had[0], last)
        for code, n in o.fixed.items():
            fixed[code] = fixed.get(code, 0) + n
        for app, (bufs, n, idx) in o.apps.items():
            cur = apps.get(app)
            if cur is None:
                apps[app] = [list(bufs), n, idx]
            else:
                cur[0].extend(bufs)
                cur[1] += n
                cur[2].extend(idx)
        failures.extend(o.failures)
        filtered += o.filtered
    return Outcome(apps, failures, filtered, fixed, None, sources, duplicates)


def first_offsets(items) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the offset of its first item."""
    first: dict = {}
    for it in items:
        first.setdefault((it.topic, it.partition), it.offset)
    return first
