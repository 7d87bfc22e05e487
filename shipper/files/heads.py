"""The first bytes of the followed files, indexed: which of them a new file could
be a copy of (shipper/files/copies.py judges it)."""

from __future__ import annotations

import bisect
import itertools
from typing import TYPE_CHECKING, Iterable

from shipper.files.identity import MIN_COPY_BYTES

if TYPE_CHECKING:
    from shipper.files.tailer import Tailer


class Heads:
    """The first MIN_COPY_BYTES bytes of the followed files that have that many,
    sorted: the files a new file's first bytes could be a copy of are found by
    bisection, not by comparing it with every file (thousands of files followed)."""

    def __init__(self, tailers: Iterable["Tailer"]):
        self.seq = itertools.count()
        self.items = sorted((x.head[:MIN_COPY_BYTES], next(self.seq), x) for x in tailers
                            if not x.judging and len(x.head) >= MIN_COPY_BYTES and x.state != "closed")
        self.keys = [k for k, _, _ in self.items]

    def add(self, x: "Tailer") -> None:
        """``x`` was judged a file to follow (in the turn the index was made)."""
        if len(x.head) >= MIN_COPY_BYTES:
            item = (x.head[:MIN_COPY_BYTES], next(self.seq), x)
            i = bisect.bisect_right(self.items, item)
            self.items.insert(i, item)
            self.keys.insert(i, item[0])

    def same_start(self, head: bytes) -> Iterable["Tailer"]:
        """Files whose first MIN_COPY_BYTES bytes are ``head``'s (``head`` has that many)."""
        key = head[:MIN_COPY_BYTES]
        i = bisect.bisect_left(self.keys, key)
        while i < len(self.keys) and self.keys[i] == key:
            yield self.items[i][2]
            i += 1

    def begins(self, head: bytes, but: "Tailer") -> bool:
        """A file (not ``but``) starts with ``head``, which is shorter than MIN_COPY_BYTES."""
        i = bisect.bisect_left(self.keys, head)
        while i < len(self.keys) and self.keys[i].startswith(head):
            if self.items[i][2] is not but:
                return True
            i += 1
        return False
