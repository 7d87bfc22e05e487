"""Transform workers: the pure transform run in processes, in order.

A consumed batch is cut into one contiguous chunk per worker. A chunk's
payloads travel joined in one block of shared memory (a file in /dev/shm,
mapped by both processes and unlinked once mapped), with their lengths,
partitions and offsets as arrays over the worker's pipe; the worker's output
comes back the same way: per app, the lines joined in the shared block, ready
for the writer, plus the indexes of failed events with their reasons. Chunks
are merged back in order, so the output keeps per-partition order and the
caller's offset rule is unchanged, and the caller writes an app's lines of a
batch with one writev call straight from the shared memory. A chunk that does
not fit its block travels inline over the pipe instead. With one worker (or a
small batch) the same work runs in the calling process. A worker that dies
costs speed, not events: its part is transformed in the calling process, and
a new worker takes its place (at most once per backoff: 1 s, doubling up to
60 s while workers keep dying within a minute of their start).
"""

from __future__ import annotations

import collections
import fcntl
import itertools
import logging
import logging.handlers
import mmap
import multiprocessing as mp
import os
import pickle
import queue
import secrets
import signal
import tempfile
import threading
import time
from array import array
from typing import Optional, Sequence

from mulog.backoff import Backoff

from .settings import SettingsStore
from .transform import FILTERED, OK, Transformer

Item = tuple  # (payload, headers, topic, partition, offset)

log = logging.getLogger("mtga.workers")


class Outcome:
    """A transformed batch: ``apps`` maps app id -> [buffers holding the lines
    (newline-terminated, in order), line count, indexes of the events];
    ``failures`` lists (index, app, reason)."""

    __slots__ = ("apps", "failures", "filtered")

    def __init__(self, apps: dict, failures: list, filtered: int):
        self.apps, self.failures, self.filtered = apps, failures, filtered


def summarize(results: list, base: int = 0) -> Outcome:
    groups: dict = {}
    failures = []
    filtered = 0
    for i, r in enumerate(results, base):
        kind = r[0]
        if kind == OK:
            g = groups.get(r[1])
            if g is None:
                g = groups[r[1]] = ([], array("I"))
            g[0].append(r[2])
            g[1].append(i)
        elif kind == FILTERED:
            filtered += 1
        else:
            failures.append((i, r[1], r[2]))
    apps = {app: [[b"\n".join(lines) + b"\n"], len(lines), idx] for app, (lines, idx) in groups.items()}
    return Outcome(apps, failures, filtered)


def merge(parts: list) -> Outcome:
    """Outcomes of consecutive chunks -> one outcome; an app's buffers stay in order."""
    if len(parts) == 1:
        return parts[0]
    apps: dict = {}
    failures = []
    filtered = 0
    for o in parts:
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
    return Outcome(apps, failures, filtered)


# --------------------------------------------------------------- in a worker

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
    root.addHandler(logging.handlers.QueueHandler(log_queue))
    root.setLevel(level)
    _store = SettingsStore(settings_dir, keep_dir=keep_dir)
    _tr = Transformer(_store.get, uuid=uuid)


def _pack(items: Sequence[Item], base: int, recheck: bool) -> tuple:
    lens = array("I")
    parts = array("i")
    offs = array("q")
    for it in items:
        lens.append(len(it[0]))
        parts.append(it[3])
        offs.append(it[4])
    headers = [it[1] for it in items]
    if not any(headers):
        headers = None
    topics = [it[2] for it in items]
    one_topic = topics[0] if all(t == topics[0] for t in topics) else None
    return (b"".join(it[0] for it in items), lens.tobytes(), headers, one_topic or topics,
            parts.tobytes(), offs.tobytes(), base, recheck)


def _unpack(chunk: tuple):
    """The chunk's items, as (payload, headers, topic, partition, offset) tuples."""
    blob, lens_b, headers, topics, parts_b, offs_b, base, recheck = chunk
    lens = array("I")
    lens.frombytes(lens_b)
    parts = array("i")
    parts.frombytes(parts_b)
    offs = array("q")
    offs.frombytes(offs_b)
    ends = list(itertools.accumulate(lens))
    payloads = list(map(blob.__getitem__, map(slice, [0] + ends[:-1], ends)))
    n = len(payloads)
    return list(zip(payloads, headers if headers else itertools.repeat(None, n),
                    itertools.repeat(topics, n) if type(topics) is str else topics, parts, offs))


def _run_chunk(chunk: tuple) -> Outcome:
    if chunk[-1]:
        _store.invalidate()
    return summarize(_tr.run_batch(_unpack(chunk)), chunk[6])


_PIPE_SIZE = 1 << 20
SLOTS = 3  # chunks a worker can have in shared memory at once (two batches in flight + one being written)
IN_BYTES = 4 << 20
OUT_BYTES = 8 << 20
RESTART_MIN_S, RESTART_MAX_S = 1.0, 60.0
START_TIMEOUT_S = 60.0


def _grow_pipe(fd: int) -> None:
    try:
        fcntl.fcntl(fd, 1031, _PIPE_SIZE)  # F_SETPIPE_SZ (Linux)
    except OSError:
        pass  # the default size works, in more system calls


def _map(path: str, size: int, create: bool) -> mmap.mmap:
    fd = os.open(path, (os.O_RDWR | os.O_CREAT | os.O_EXCL) if create else os.O_RDWR, 0o600)
    try:
        if create:
            # reserve every page now: a page tmpfs cannot supply later would kill
            # the process with SIGBUS on first touch, not raise an error
            os.posix_fallocate(fd, 0, size)
        return mmap.mmap(fd, size)
    finally:
        os.close(fd)


def _shm_dir() -> str:
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def _serve(down, up, paths: list, settings_dir: str, uuid: bool, log_queue, level: int,
           keep_dir: Optional[str]) -> None:
    """A worker process: chunks in, outcomes out, until its pipe closes."""
    _init(settings_dir, uuid, log_queue, level, keep_dir)
    ins = [_map(p, IN_BYTES, False) for p in paths[:SLOTS]] if paths else []
    outs = [_map(p, OUT_BYTES, False) for p in paths[SLOTS:]] if paths else []
    recv, send, loads, dumps = down.recv_bytes, up.send_bytes, pickle.loads, pickle.dumps
    send(b"ready")  # the parent unlinks the files now: nothing is left behind, whatever happens
    while True:
        try:
            msg = loads(recv())
        except (EOFError, OSError):
            return
        seq = msg[1]
        if msg[0] == "inline":
            send(dumps(("inline", seq, _run_chunk(msg[2])), pickle.HIGHEST_PROTOCOL))
            continue
        _, seq, slot, nbytes, rest = msg
        o = _run_chunk((ins[slot][:nbytes], *rest))
        mm = outs[slot]
        if sum(len(v[0][0]) for v in o.apps.values()) > len(mm):
            send(dumps(("inline", seq, o), pickle.HIGHEST_PROTOCOL))
            continue
        placed = {}
        pos = 0
        for app, (bufs, n, idx) in o.apps.items():
            blob = bufs[0]
            mm[pos:pos + len(blob)] = blob
            placed[app] = (pos, pos + len(blob), n, idx.tobytes())
            pos += len(blob)
        send(dumps(("shm", seq, placed, o.failures, o.filtered), pickle.HIGHEST_PROTOCOL))


# ------------------------------------------------------------ in the parent

class _Worker:
    """One worker process, its pipes and its shared-memory slots. A sender and a
    receiver thread move the bytes (the GIL is free while they wait in write
    and read), so neither the loop nor the worker waits on the other's pipe."""

    def __init__(self, ctx, idx: int, args: tuple):
        self.idx = idx
        self.dead: Optional[str] = None
        self.seq = 0
        self.started_at = time.monotonic()
        self.receiver: Optional[threading.Thread] = None
        base = os.path.join(_shm_dir(), f"mtga-{os.getpid()}-{idx}-{secrets.token_hex(4)}")
        paths = [f"{base}-in{k}" for k in range(SLOTS)] + [f"{base}-out{k}" for k in range(SLOTS)]
        self.ins: list = []
        self.outs: list = []
        self.proc = self.down = self.up = None
        try:
            try:
                self.ins = [_map(p, IN_BYTES, True) for p in paths[:SLOTS]]
                self.outs = [_map(p, OUT_BYTES, True) for p in paths[SLOTS:]]
            except OSError as e:  # a small /dev/shm: this worker's chunks travel over its pipe
                log.warning("no shared memory for transform worker %d (%s in %s); its chunks go over a pipe",
                            idx, e.strerror or e, _shm_dir())
                for mm in self.ins + self.outs:
                    mm.close()
                self.ins, self.outs = [], []
                paths = []
            self.free = list(range(len(self.ins)))
            # two one-way pipes, enlarged so a message moves in few system calls
            down_r, self.down = ctx.Pipe(duplex=False)
            self.up, up_w = ctx.Pipe(duplex=False)
            for c in (down_r, self.down, self.up, up_w):
                _grow_pipe(c.fileno())
            self.proc = ctx.Process(target=_serve, args=(down_r, up_w, paths, *args), name=f"mtga-worker-{idx}",
                                    daemon=True)
            self.proc.start()
            down_r.close()
            up_w.close()
            if not self.up.poll(START_TIMEOUT_S) or self.up.recv_bytes() != b"ready":
                self.dead = f"did not start within {START_TIMEOUT_S:.0f}s"
                self.proc.kill()
        except (EOFError, OSError) as e:
            self.dead = f"did not start ({e})"
        finally:  # mapped by both sides (or not at all): the names go, nothing is left behind
            for p in [f"{base}-in{k}" for k in range(SLOTS)] + [f"{base}-out{k}" for k in range(SLOTS)]:
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
        self.outbox: queue.Queue = queue.Queue()
        self.results: collections.deque = collections.deque()
        self.arrived = threading.Condition()
        if self.dead is None:
            threading.Thread(target=self._send, name=f"worker-{idx}-send", daemon=True).start()
            self.receiver = threading.Thread(target=self._recv, name=f"worker-{idx}-recv", daemon=True)
            self.receiver.start()
        else:
            log.error("transform worker %d %s; the loop transforms its share", idx, self.dead)

    def _send(self) -> None:
        while True:
            data = self.outbox.get()
            if data is None:
                return
            try:
                self.down.send_bytes(data)
            except OSError as e:
                self._die(f"cannot send to the worker: {e}")
                return

    def _recv(self) -> None:
        while True:
            try:
                data = self.up.recv_bytes()
            except (EOFError, OSError) as e:
                self._die(f"the worker exited ({e or 'end of pipe'})")
                return
            with self.arrived:
                self.results.append(data)
                self.arrived.notify_all()

    def fail(self, why: str) -> None:
        """Stop using this worker (its process is ended)."""
        self._die(why)
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()

    def _die(self, why: str) -> None:
        with self.arrived:
            if self.dead is None:
                self.dead = why
            self.arrived.notify_all()

    def send(self, packed: tuple) -> tuple[int, Optional[int]]:
        """Queue a chunk; returns its sequence number and the slot it occupies
        (None: it went inline). Replies come back in sequence order."""
        self.seq += 1
        blob = packed[0]
        if self.free and len(blob) <= IN_BYTES:
            slot = self.free.pop()
            self.ins[slot][:len(blob)] = blob
            self.outbox.put(pickle.dumps(("shm", self.seq, slot, len(blob), packed[1:]), pickle.HIGHEST_PROTOCOL))
            return self.seq, slot
        self.outbox.put(pickle.dumps(("inline", self.seq, packed), pickle.HIGHEST_PROTOCOL))
        return self.seq, None

    def take(self) -> Optional[bytes]:
        """The next reply in order (waiting for it), or None if the worker died."""
        with self.arrived:
            while not self.results and self.dead is None:
                self.arrived.wait()
            return self.results.popleft() if self.results else None

    def retire(self) -> None:
        """The end of a dead worker: its process killed and reaped, its threads
        gone, its pipes closed. Its shared memory stays mapped while batches still
        refer to it (replies already received are still read from it), and is
        unmapped with the object."""
        self.outbox.put(None)
        if self.proc is not None:
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join(5)
        if self.receiver is not None:
            self.receiver.join(5)  # the end of the pipe reached: its descriptor is not read any more
        self._close_pipes()

    def _close_pipes(self) -> None:
        for c in (self.down, self.up):
            try:
                if c is not None:
                    c.close()
            except OSError:
                pass

    def close(self) -> None:
        self.outbox.put(None)
        self._close_pipes()
        if self.proc is not None:
            self.proc.join(10)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5)
        for mm in self.ins + self.outs:
            try:
                mm.close()
            except BufferError:
                pass  # a view of it is still referenced; the mapping goes with the process


class Pool:
    def __init__(self, settings_dir, workers: int, uuid: bool = True, keep_dir=None):
        self.workers = max(1, workers)
        self.store = SettingsStore(settings_dir, keep_dir=keep_dir)
        self.local = Transformer(self.store.get, uuid=uuid)
        self._procs: list[_Worker] = []
        self._listener = None
        if self.workers > 1:
            ctx = mp.get_context("forkserver")
            q = ctx.Queue()
            root = logging.getLogger()
            self._listener = logging.handlers.QueueListener(q, *root.handlers, respect_handler_level=True)
            self._listener.start()
            args = (str(settings_dir), uuid, q, root.getEffectiveLevel(), str(keep_dir) if keep_dir else None)
            self._start = lambda i: _Worker(ctx, i, args)
            self._procs = [self._start(i) for i in range(self.workers)]
        # a dead worker is started again, at most once per backoff: 1 s, doubling
        # (to 60 s) while workers die within a minute of their start
        self._backoff = [Backoff(RESTART_MIN_S, RESTART_MAX_S) for _ in self._procs]
        self._restart_at = [time.monotonic()] * len(self._procs)
        self.restarts = 0

    def _restart_dead(self) -> None:
        now = time.monotonic()
        for i, w in enumerate(self._procs):
            if w.dead is None or now < self._restart_at[i]:
                continue
            w.retire()  # batches still holding it read its replies, or transform its part in the loop
            if now - w.started_at >= RESTART_MAX_S:
                self._backoff[i].reset()  # it had worked a while: not a crash loop
            nw = self._start(i)
            self._procs[i] = nw
            if nw.dead is None:
                self.restarts += 1
                log.warning("transform worker %d started again (the previous one: %s); another restart "
                            "waits at least %.0fs", i, w.dead, self._backoff[i].current)
            self._restart_at[i] = time.monotonic() + self._backoff[i].next()

    def run(self, items: Sequence[Item], recheck: bool = False) -> list:
        """Transform ``items`` here and now; one result per item (for retries)."""
        if recheck:
            self.store.invalidate()
        return self.local.run_batch(items)

    def submit(self, items: Sequence[Item], recheck: bool = False) -> "Pending":
        """Start transforming a batch; ``Pending.get()`` gives its Outcome."""
        if self._procs and any(w.dead is not None for w in self._procs):
            self._restart_dead()
        live = [w for w in self._procs if w.dead is None]
        if len(live) < 2 or len(items) < 256:
            return Pending(self, items, recheck, done=summarize(self.run(items, recheck)))
        n = len(live)
        size = (len(items) + n - 1) // n
        sent = []
        for w, i in zip(live, range(0, len(items), size)):
            seq, slot = w.send(_pack(items[i:i + size], i, recheck))
            sent.append((w, i, i + size, seq, slot))
        return Pending(self, items, recheck, sent=sent)

    @property
    def live(self) -> int:
        """Transform processes working now (1: the loop itself)."""
        return sum(1 for w in self._procs if w.dead is None) or 1

    def close(self) -> None:
        for w in self._procs:
            w.close()
        self._procs = []
        if self._listener is not None:
            self._listener.stop()
            self._listener = None


class Pending:
    """A batch being transformed: ``ready()`` without waiting, ``get()`` the
    Outcome (whose buffers may point into shared memory: write them, then
    ``release()``).

    If a worker died, its chunk is transformed here instead (nothing is lost;
    the batch is only slower)."""

    __slots__ = ("pool", "items", "recheck", "sent", "_done")

    def __init__(self, pool: Pool, items, recheck: bool, sent=None, done: Optional[Outcome] = None):
        self.pool, self.items, self.recheck, self.sent, self._done = pool, items, recheck, sent, done

    def ready(self) -> bool:
        if self._done is not None:
            return True
        return all(w.results or w.dead is not None for w, *_ in self.sent)

    def get(self) -> Outcome:
        if self._done is None:
            parts = []
            for w, lo, hi, seq, slot in self.sent:
                data = w.take()
                reply = pickle.loads(data) if data is not None else None
                if reply is not None and reply[1] != seq:  # never expected: stop using that worker
                    w.fail(f"replied to chunk {reply[1]} when chunk {seq} was due")
                    reply = None
                if reply is None:
                    log.error("transform worker %d: %s; transforming its part here", w.idx, w.dead)
                    parts.append(summarize(self.pool.run(self.items[lo:hi], self.recheck), lo))
                    continue
                if reply[0] == "inline":
                    parts.append(reply[2])
                    continue
                _, _, placed, failures, filtered = reply
                view = memoryview(w.outs[slot])
                apps = {}
                for app, (a, b, n, idx_b) in placed.items():
                    idx = array("I")
                    idx.frombytes(idx_b)
                    apps[app] = [[view[a:b]], n, idx]
                parts.append(Outcome(apps, failures, filtered))
            self._done = merge(parts)
            self.items = None
        return self._done

    def release(self) -> None:
        """The outcome is written: its shared-memory slots may take new chunks."""
        self._done = None
        if self.sent:
            for w, _, _, _, slot in self.sent:
                if slot is not None and w.dead is None:
                    w.free.append(slot)
            self.sent = None

    def discard(self) -> None:
        """Drop the batch unwritten, keeping each worker's replies in step."""
        if self.sent:
            for w, *_ in self.sent:
                if w.dead is None:
                    w.take()
        self._done = None
        self.items = None
        self.release()
