"""What the prospector does once at start (shipper/files/prospector.py calls these):
files rotated while the shipper was stopped are found by inode and read to
their end, and a new position store says what becomes of the files that
already have content."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Callable, Optional

from shipper.files.globs import log_name_of, owner
from shipper.files.identity import key_of, same_start
from shipper.files.tailer import DRAINING

if TYPE_CHECKING:
    from offsets import FilePosition

log = logging.getLogger("shipper")


def resume_rotated_while_stopped(stored: list["FilePosition"], tailers: dict, inputs: list,
                                 open_file: Callable) -> None:
    """At start: a file with a stored position that is no longer at its path
    (renamed by a rotation while the shipper was stopped, to a name no glob
    matches) is looked for by inode in its folder; when it has grown past its
    position, it is opened by ``open_file`` (the prospector's) from there and
    read to its end, like any rotated file."""
    by_folder: dict[str, list] = {}
    for p in stored:
        if (p.dev, p.ino) not in tailers:
            by_folder.setdefault(os.path.dirname(p.path), []).append(p)
    for folder, positions in by_folder.items():
        try:
            with os.scandir(folder) as it:
                names = {e.inode(): e.path for e in it if e.is_file(follow_symlinks=False)}
        except OSError:
            continue
        for p in positions:
            new = names.get(p.ino)
            if new is None or (new == p.path and p.src is None):
                continue  # (a copy outside the globs is at its own name: read on from its position)
            try:
                st = os.stat(new)
                if key_of(st) != (p.dev, p.ino) or st.st_size <= p.offset:
                    continue  # another device, or nothing left to read
                with open(new, "rb") as f:
                    if not same_start(f.fileno(), (p.fp_len, p.fp_crc)):
                        continue  # the inode now holds another file (a compressed copy, say)
            except OSError:
                continue
            name = p.src.path if p.src is not None else p.path
            inp = owner(inputs, name)
            ln = log_name_of(inp, name) if inp is not None else None
            if ln is None:
                continue
            t = open_file(key_of(st), p.path, inp, ln, initial=False, at=new, stored=p)
            if t is not None:
                t.to(DRAINING, "rotated while stopped: %s is now %s; reading it from offset %d to its end",
                     p.path, new, t.read_pos)


def report_new_store(found: Optional[list], db_path) -> None:
    """With a new position store, say what happens to the files ``found`` (path,
    size, start) that already have content: read again from their beginning
    (start_at: beginning, as Filebeat and Vector do without their registry) or
    skipped to their end (start_at: end)."""
    if not found:
        return
    reread = [(p, size) for p, size, start in found if start == 0]
    skipped = [(p, size, start) for p, size, start in found if start > 0]
    names = ", ".join(p for p, *_ in found[:3]) + (", ..." if len(found) > 3 else "")
    parts = []
    if reread:
        parts.append(f"{len(reread)} read from their beginning ({sum(s for _, s in reread)} bytes; lines an "
                     f"earlier run shipped are sent again, with the same file and offset, so mtga "
                     f"gives them the same #uuid)")
    if skipped:
        parts.append(f"{len(skipped)} skipped to their end (start_at: end; {sum(st for *_, st in skipped)} "
                     f"bytes not sent)")
    log.warning("new position store at %s (first start, or the state folder was removed): %d existing "
                "file(s) with content (%s): %s", db_path, len(found), names, "; ".join(parts))
