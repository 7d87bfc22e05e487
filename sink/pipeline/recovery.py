"""After an unclean stop (SIGKILL, a crash, the machine), before anything is
consumed: what mtga did after its last checkpoint, found again.

The checkpoint stored, in one RocksDB batch with the partition offsets and the
marks, the length of every output file and the failure queue's next sequence.
What the files hold past those lengths (and files begun since) was written after
it, and the queue's entries from that sequence on were queued after it: exactly
those events are marked handled (sink/pipeline/marks.py ``done``), so that when
they are consumed again from the stored offsets they are skipped instead of
written twice, and the others of the same batches are written. A failure-queue entry whose
line is among those written lines was written by a retry that did not get to
remove it: it is removed now, not written again.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

from mulog.files import last_line_end
from offsets import Batch, FailureQueue, Recovery, StateDB

from sink.pipeline.marks import Marks
from sink.ta.uuids import parse, source_key, source_of

log = logging.getLogger("mtga")

_UUID = re.compile(rb'"#uuid":"([0-9a-f-]{36})"')
_CHUNK = 8 << 20


def written_since(output_dir: Path, r: Recovery) -> tuple[set, int, int]:
    """(source key, position) of every line written after the checkpoint; with
    the lines and files read."""
    found: set = set()
    lines = files = 0
    for f in sorted(output_dir.glob("*/*log.*")):
        rel = str(f.relative_to(output_dir))
        start = r.lengths.get(rel)
        try:
            st = f.stat()
        except OSError:
            continue
        if start is None:
            if st.st_mtime_ns < r.taken_ns:
                continue  # finished before the checkpoint
            start = 0
        if st.st_size <= start:
            continue
        files += 1
        with open(f, "rb") as fh:
            fh.seek(start)
            rest = b""
            while True:
                data = fh.read(_CHUNK)
                if not data:
                    break
                data = rest + data
                cut = data.rfind(b"\n") + 1  # a line cut short at the end is not a line
                rest = data[cut:]
                for m in _UUID.finditer(data, 0, cut):
                    p = parse(m.group(1).decode())
                    if p is not None:
                        found.add(p)
                lines += data.count(b"\n", 0, cut)
    return found, lines, files


def recover(marks: Marks, fq: FailureQueue, output_dir: Path, r: Recovery) -> dict:
    """Raise the marks from what was written and queued after the checkpoint
    ``r``; remove the queue's entries a retry wrote. Returns what it found."""
    t0 = time.monotonic()
    written, lines, files = written_since(output_dir, r)
    raised = 0
    for key, pos in written:
        raised += marks.handled(key, pos)
    queued = 0
    done = []
    for e in fq:
        stream, pos = source_of(e.headers, e.topic, e.partition, e.offset)
        key = source_key(stream)
        if (key, pos) in written:
            done.append(e.seq)  # a retry wrote it, then did not get to remove it
        elif e.seq >= r.fq_next:
            queued += 1
            raised += marks.handled(key, pos)
    if done:
        fq.ack(done, sync=True)
    out = {"lines": lines, "files": files, "queued": queued, "retried": len(done), "handled": raised,
           "seconds": round(time.monotonic() - t0, 3)}
    log.warning("unclean stop before: %d line(s) in %d file(s) were written and %d event(s) queued after the "
                "last checkpoint; %d event(s) marked handled so they are not written again; %d failure-queue entr%s "
                "written by a retry removed (%.1fs)", lines, files, queued, raised, len(done),
                "y" if len(done) == 1 else "ies", out["seconds"])
    return out


def lengths_now(output_dir: Path) -> dict[str, int]:
    """The length of every output file now, up to its last whole line."""
    out = {}
    for f in output_dir.glob("*/*log.*"):
        try:
            fd = os.open(f, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            out[str(f.relative_to(output_dir))] = last_line_end(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
    return out


def starting_point(db: StateDB, marks: Marks, fq: FailureQueue, output_dir: Path) -> None:
    """At a start (after recover() when the stop was unclean): the marks and a
    recovery record of the files as they are, stored, so that what this run
    writes before its first checkpoint is found by the next start if it dies."""
    b = Batch()
    b.on_commit(marks.write(b))
    marks.store.put_recovery(Recovery(lengths_now(output_dir), fq.next_seq, time.time_ns()), b)
    db.write(b, sync=True)
