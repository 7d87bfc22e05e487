"""The copy rules of the prospector (shipper/files/prospector.py holds them):
what happens when a followed file is truncated, when a generation ends, and to
a new file before anything of it is sent (shipper/files/copies.py says what a
copy is)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from offsets import CopiedFrom

from shipper.files.copies import Copies, Origin
from shipper.files.globs import log_name_of, owner
from shipper.files.identity import MIN_COPY_BYTES, identity_crc, key_of
from shipper.files.tailer import CLOSED, DRAINING

if TYPE_CHECKING:
    from offsets import FilePosition

    from mulog.runtime.instrument import Instruments
    from shipper.files.tailer import Generation, Tailer

log = logging.getLogger("shipper")


class CopyRules:
    """How the prospector follows copies: a truncation starts a generation, an
    ended generation looks for its copy, a new file is judged (a copy, compressed,
    not shipped, or a file of its own). Changes tailers through their own methods
    only; opens files through the prospector's ``open_file``."""

    def __init__(self, tailers: dict, copies: Copies, warned: set, counters: "Instruments",
                 open_file: Callable, save_now: Callable[[], object]):
        self.tailers = tailers  # the prospector's table (read, and added to through open_file)
        self.copies = copies
        self.inputs: list = []  # the inputs as configured (the prospector sets them)
        self.warned = warned  # paths said once already (shared with the prospector)
        self.counters = counters
        self.open_file = open_file
        self.save_now = save_now
        self.skipped: dict = {}  # judged not a log (compressed, or no log_name): device + inode -> size then
        self.found_later: list[Origin] = []  # origins to look for copies of once the scan is applied

    def truncated(self, t: "Tailer", size: int) -> None:
        """``t`` was truncated: a new generation; the old one waits for its copy."""
        self.ended(t.truncated(size))
        self.save_now()  # the new generation is stored before any of its lines is sent

    def ended(self, old: "Generation", find: bool = True) -> None:
        if len(old.head) < MIN_COPY_BYTES:
            return  # too few bytes to tell its copy (if any) from another file
        o = Origin(old.dev, old.ino, old.gen, old.ident, old.fp, old.head, old.end, old.path, old.log_name, old.input,
                   old.acks)
        self.copies.add(o)
        if find:
            self.find_copy(o)

    def find_copy(self, o: Origin) -> None:
        """Look for ``o``'s copy in its folder (in a glob or not) and read it."""
        found = self.copies.find(o, self.tailers)
        if found is None:
            return
        path, st = found
        key = key_of(st)
        t = self.tailers.get(key)
        wanted = owner(self.inputs, path)
        if t is None:
            inp = wanted or o.input or owner(self.inputs, o.path)
            if inp is None:
                return
            t = self.open_file(key, path, inp, None, initial=False)
            if t is None or not t.judging:
                return
            if wanted is None:
                t.to(DRAINING, "found the copy of %s (%s) outside the globs: %s; reading it to its end", o.path,
                     o.identity, path)
        self.claim_copy(o, t)

    def claim_copy(self, o: Origin, t: "Tailer") -> None:
        """``t`` (judged) is the copy of ``o``: read on from ``o``'s end, under its identity."""
        inp = owner(self.inputs, o.path)
        ln = o.log_name or (log_name_of(inp, o.path) if inp is not None else None) or t.log_name
        if ln is None:
            ln = log_name_of(t.input, t.path)
        if ln is None:
            return self.skip(t, "not shipped: %s, the copy of %s, has no log_name", t.path, o.path)
        self.copies.claim(o)
        ident = o.ident if o.ident is not None else identity_crc(t.fd)
        t.become_copy(CopiedFrom(o.dev, o.ino, o.gen, ident, o.path), ln, o.acks, o.end)
        self.copies.followed(t)
        log.info("copy: %s holds the lines of %s (%s) written before its truncation; reading it from offset %d "
                 "(delivered up to %d) under that identity", t.path, o.path, t.identity, o.end, t.delivered)
        self.save_now()

    def judge(self, t: "Tailer", now: float) -> None:
        verdict, o = self.copies.judge(t, self.tailers.values(), now)
        if verdict == "wait":
            return
        if verdict == "copy":
            return self.claim_copy(o, t)
        if verdict == "compressed":
            return self.skip(t, "not shipped: %s is compressed (its first bytes are a compression format's)",
                              t.path)
        ln = t.log_name or log_name_of(t.input, t.path)
        if ln is None:
            return self.skip(t, "not shipped: the file name of %s does not match log_name_pattern %r", t.path,
                              t.input.log_name_pattern)
        t.judged_new(ln)
        self.copies.followed(t)
        log.info("reading %s (%s, %s) from offset 0 of %d -> topic %s, log_name %s", t.path, t.identity,
                 t.how, t.size_now(), t.topic, ln)
        if t.gen:
            self.save_now()

    def skip(self, t: "Tailer", why: str, *args) -> None:
        if t.path not in self.warned:
            self.warned.add(t.path)
            self.counters.files_not_shipped(why, *args)
        self.skipped[(t.dev, t.ino)] = t.size_now()
        t.to(CLOSED, "let go of %s: not shipped", t.path)

    def ended_stored(self, p: "FilePosition") -> None:
        """A stored position whose inode now holds other bytes (truncated while
        stopped, say): that generation waits for its copy."""
        if p.fp_len < MIN_COPY_BYTES or any(o.key == (p.dev, p.ino, p.gen) for o in self.copies.origins.values()):
            return
        o = Origin.from_stored(p)
        inp = owner(self.inputs, p.path)
        o.input, o.log_name = inp, (log_name_of(inp, p.path) if inp is not None else None)
        self.copies.add(o)
        self.found_later.append(o)

    def look_for_copies(self, origins: list[Origin] | None = None) -> None:
        """Look for the copies of generations that ended while the shipper was
        stopped (found at start) or before it stopped (stored)."""
        todo = self.found_later if origins is None else origins
        self.found_later = []
        for o in todo:
            if o.key in self.copies.origins:
                self.find_copy(o)

