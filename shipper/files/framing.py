"""Line framing: pure functions, no I/O.

``Framer`` cuts a byte stream (what a tailer reads from a file, in big chunks)
into complete lines. A line is only handed out once its newline has been read;
the newline itself is not part of the line. A line longer than ``max_line``
bytes is cut to its first ``max_line`` bytes; the rest of it, up to its
newline, is skipped (never sent as further lines) and the cut is reported with
its offset and full length. Empty lines carry no event and are skipped (they
still count in the offsets); so is a lone ``\r``, the empty line of a file
written with CRLF line endings.

Offsets are byte positions in the file: a line's offset is where its first
byte is, and ``Frame.end`` is the position just after the last newline framed,
the position to store once every line of the frame is acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Frame:
    """Complete lines framed from one chunk.

    ``lines[i]`` starts at ``offsets[i]`` when ``offsets`` is given; otherwise
    (the fast path: no line cut, none skipped) at ``start`` plus the lengths of
    the lines before it, each plus one for its newline.
    """

    lines: list[bytes]
    start: int
    end: int
    offsets: list[int] | None = None
    cuts: list[tuple[int, int]] = field(default_factory=list)  # (offset, full length) of cut lines
    empty: int = 0  # empty lines skipped


class Framer:
    """Turns chunks of a byte stream into complete lines (see the module doc)."""

    __slots__ = ("max_line", "pos", "partial", "partial_len")

    def __init__(self, offset: int, max_line: int):
        self.max_line = max_line
        self.pos = offset  # stream offset where the incomplete line starts
        self.partial = b""  # its first bytes (at most max_line of them)
        self.partial_len = 0  # its full length so far (bytes beyond max_line are dropped)

    @property
    def pending_bytes(self) -> int:
        """Bytes read but not yet framed (an incomplete last line)."""
        return self.partial_len

    def reset(self, offset: int) -> None:
        self.pos = offset
        self.partial = b""
        self.partial_len = 0

    def feed(self, data: bytes) -> Frame | None:
        """Frame ``data`` (the bytes that follow what was fed before)."""
        if not data:
            return None
        mx = self.max_line
        nl = data.rfind(b"\n")
        if nl < 0:  # still no end of line: keep what fits, count the rest
            room = mx - len(self.partial)
            if room > 0:
                self.partial += data[:room]
            self.partial_len += len(data)
            return None
        start = self.pos
        lines = data.split(b"\n")
        rest = lines.pop()
        carried = self.partial_len
        if carried:
            head = lines[0]
            full = carried + len(head)
            if full > mx:
                room = mx - len(self.partial)
                lines[0] = self.partial + head[:room] if room > 0 else self.partial
            else:
                lines[0] = self.partial + head
        else:
            full = -1
        end = start + carried + nl + 1
        # the next incomplete line
        self.pos = end
        self.partial_len = len(rest)
        self.partial = rest if len(rest) <= mx else rest[:mx]
        if full <= mx and (len(data) <= mx or max(map(len, lines)) <= mx) and b"" not in lines \
                and b"\r" not in lines:
            return Frame(lines, start, end)
        return self._slow(lines, start, end, full)

    def _slow(self, lines: list[bytes], start: int, end: int, first_full: int) -> Frame:
        """Some line is too long or empty: give explicit offsets."""
        mx = self.max_line
        out: list[bytes] = []
        offsets: list[int] = []
        cuts: list[tuple[int, int]] = []
        empty = 0
        off = start
        for i, line in enumerate(lines):
            n = first_full if (i == 0 and first_full >= 0) else len(line)
            if n == 0 or (n == 1 and line == b"\r"):
                empty += 1
            else:
                if n > mx:
                    line = line[:mx]
                    cuts.append((off, n))
                out.append(line)
                offsets.append(off)
            off += n + 1
        assert off == end, (off, end)
        return Frame(out, start, end, offsets, cuts, empty)


# --------------------------------------------------------------------- headers


def utf8_text(s: str | None) -> str | None:
    """``s`` made valid UTF-8 for a Kafka header: bytes of a file name that are
    not UTF-8 (kept by Python as surrogate escapes) become ``\\xNN``, which
    would otherwise make every produce() of the file's lines raise."""
    if s is None:
        return s
    try:
        s.encode()
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
