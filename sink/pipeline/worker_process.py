"""The worker process side of the transform pool (sink/pipeline/workers.py is the
parent's): chunks of items arrive as one payload block in shared memory (or
inline over the pipe) plus arrays of lengths, partitions and offsets; the
outcome goes back per app, its lines joined in the worker's out slot.

What travels, both ways, is one of the messages below (pickled): ``Chunk``
inside ``ToWorkerInline`` or ``ToWorkerShared``; ``FromWorkerInline`` or
``FromWorkerShared`` back, in the order the chunks were sent."""

from __future__ import annotations

import fcntl
import itertools
import logging
import mmap
import os
import pickle
import signal
import tempfile
from array import array
from typing import NamedTuple, Optional, Sequence, Union

from mulog.runtime import allocator, logs

from sink.ta.batch import Item, Outcome
from sink.ta.settings import SettingsStore
from sink.ta.transform import Transformer

class Chunk(NamedTuple):
    """A chunk of a batch as it travels to a worker: its items as one payload
    block plus arrays (array's machine bytes)."""

    blob: bytes  # the payloads, joined (empty when it travels in a shared-memory slot)
    lens: bytes  # array("I"): each payload's length
    headers: Optional[list]  # each item's Kafka headers, or None when no item has any
    topics: Union[str, list]  # the one topic of every item, or each item's
    partitions: bytes  # array("i")
    offsets: bytes  # array("q")
    base: int  # the index of the chunk's first item in its batch
    recheck: bool  # the settings are checked again first (SIGHUP)
    kinds: Optional[tuple]  # (version, the type guard's kinds) when the worker's copy is older
    reset: bool  # forget the exactly-once marks the worker cached


class ToWorkerInline(NamedTuple):
    seq: int
    chunk: Chunk


class ToWorkerShared(NamedTuple):
    """The chunk's payload block is in the worker's in slot ``slot``."""

    seq: int
    slot: int
    nbytes: int
    chunk: Chunk


class FromWorkerInline(NamedTuple):
    seq: int
    outcome: Outcome


class FromWorkerShared(NamedTuple):
    """The outcome, its lines in the worker's out slot of the same number: per
    app, (start, end, events, indexes of its items as array("I") bytes)."""

    seq: int
    placed: dict
    failures: list
    filtered: int
    fixed: dict
    learned: list
    sources: dict
    duplicates: int


_tr: Optional[Transformer] = None
_store: Optional[SettingsStore] = None


def _init(settings_dir: str, uuid: bool, log_queue, level: int, keep_dir: Optional[str] = None) -> None:
    global _tr, _store
    # the parent decides when to stop; a Ctrl-C or SIGTERM to the group must
    # not kill a worker in the middle of a batch
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    # log records (a settings file that broke, say) go to the parent's log
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(logs.QueueHandler(log_queue))
    root.setLevel(level)
    _store = SettingsStore(settings_dir, keep_dir=keep_dir)
    _tr = Transformer(_store.get, uuid=uuid, dedupe=True)


def pack(items: Sequence[Item], base: int, recheck: bool, kinds: Optional[tuple] = None, reset: bool = False) -> Chunk:
    """A chunk of items as it travels (``Chunk``)."""
    payloads = [it.payload for it in items]
    lens = array("I", map(len, payloads))
    parts = array("i", [it.partition for it in items])
    offs = array("q", [it.offset for it in items])
    headers = [it.headers for it in items]
    if not any(headers):
        headers = None
    topics = [it.topic for it in items]
    one_topic = topics[0] if all(t == topics[0] for t in topics) else None
    return Chunk(b"".join(payloads), lens.tobytes(), headers, one_topic or topics, parts.tobytes(), offs.tobytes(),
                 base, recheck, kinds, reset)


def _unpack(chunk: Chunk) -> list[Item]:
    """The chunk's items."""
    lens = array("I")
    lens.frombytes(chunk.lens)
    parts = array("i")
    parts.frombytes(chunk.partitions)
    offs = array("q")
    offs.frombytes(chunk.offsets)
    ends = list(itertools.accumulate(lens))
    payloads = list(map(chunk.blob.__getitem__, map(slice, [0] + ends[:-1], ends)))
    n = len(payloads)
    topics, headers = chunk.topics, chunk.headers
    return list(map(Item, payloads, headers if headers else itertools.repeat(None, n),
                    itertools.repeat(topics, n) if type(topics) is str else topics, parts, offs))


def _run_chunk(chunk: Chunk) -> Outcome:
    if chunk.recheck:
        _store.invalidate()
    if chunk.kinds is not None:
        _tr.guard.replace(chunk.kinds[1], chunk.kinds[0])
    if chunk.reset:
        _tr.reset_marks()
    o = _tr.outcome(_unpack(chunk), chunk.base)
    o.learned = list(_tr.guard.learned)  # what this copy learned since the loop's kinds came
    return o


_PIPE_SIZE = 1 << 20
SLOTS = 3  # chunks a worker can have in shared memory at once (two batches in flight + one being written)
IN_BYTES = 4 << 20
OUT_BYTES = 8 << 20


def grow_pipe(fd: int) -> None:
    try:
        fcntl.fcntl(fd, 1031, _PIPE_SIZE)  # F_SETPIPE_SZ (Linux)
    except OSError:
        pass  # the default size works, in more system calls


def map_shared(path: str, size: int, create: bool) -> mmap.mmap:
    fd = os.open(path, (os.O_RDWR | os.O_CREAT | os.O_EXCL) if create else os.O_RDWR, 0o600)
    try:
        if create:
            # reserve every page now: a page tmpfs cannot supply later would kill
            # the process with SIGBUS on first touch, not raise an error
            os.posix_fallocate(fd, 0, size)
        return mmap.mmap(fd, size)
    finally:
        os.close(fd)


def shm_dir() -> str:
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def serve(down, up, paths: list, settings_dir: str, uuid: bool, log_queue, level: int,
           keep_dir: Optional[str]) -> None:
    """A worker process: chunks in, outcomes out, until its pipe closes."""
    _init(settings_dir, uuid, log_queue, level, keep_dir)
    allocator.tune()
    allocator.settled()
    ins = [map_shared(p, IN_BYTES, False) for p in paths[:SLOTS]] if paths else []
    outs = [map_shared(p, OUT_BYTES, False) for p in paths[SLOTS:]] if paths else []
    recv, send, loads, dumps = down.recv_bytes, up.send_bytes, pickle.loads, pickle.dumps
    send(b"ready")  # the parent unlinks the files now: nothing is left behind, whatever happens
    while True:
        try:
            msg = loads(recv())
        except (EOFError, OSError):
            return
        if type(msg) is ToWorkerInline:
            send(dumps(FromWorkerInline(msg.seq, _run_chunk(msg.chunk)), pickle.HIGHEST_PROTOCOL))
            continue
        seq, slot = msg.seq, msg.slot
        o = _run_chunk(msg.chunk._replace(blob=ins[slot][:msg.nbytes]))
        mm = outs[slot]
        if sum(len(v[0][0]) for v in o.apps.values()) > len(mm):
            send(dumps(FromWorkerInline(seq, o), pickle.HIGHEST_PROTOCOL))
            continue
        placed = {}
        pos = 0
        for app, (bufs, n, idx) in o.apps.items():
            blob = bufs[0]
            mm[pos:pos + len(blob)] = blob
            placed[app] = (pos, pos + len(blob), n, idx.tobytes())
            pos += len(blob)
        send(dumps(FromWorkerShared(seq, placed, o.failures, o.filtered, o.fixed, o.learned, o.sources, o.duplicates),
                   pickle.HIGHEST_PROTOCOL))


