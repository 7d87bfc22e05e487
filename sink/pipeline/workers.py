"""Transform workers: the transform (sink/ta/transform.py) run in processes, in order.

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
60 s while workers keep dying within a minute of their start). This module is
the parent's side; sink/pipeline/worker_process.py runs in the workers.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing as mp
import os
import pickle
import queue
import secrets
import threading
import time
from array import array
from typing import Optional, Sequence

from mulog.backoff import Backoff
from mulog.runtime import logs

from sink.ta.batch import Item, Outcome, merge
from sink.ta.settings import SettingsStore
from sink.ta.transform import Transformer
from sink.ta.typeguard import TypeGuard
from sink.pipeline import worker_process as wp
from sink.pipeline.worker_process import IN_BYTES, OUT_BYTES, SLOTS, Chunk, grow_pipe, map_shared, pack, serve

log = logging.getLogger("mtga.workers")

RESTART_MIN_S, RESTART_MAX_S = 1.0, 60.0
START_TIMEOUT_S = 60.0


class _Worker:
    """One worker process, its pipes and its shared-memory slots. A sender and a
    receiver thread move the bytes (the GIL is free while they wait in write
    and read), so neither the loop nor the worker waits on the other's pipe."""

    def __init__(self, ctx, idx: int, args: tuple):
        self.idx = idx
        self.dead: Optional[str] = None
        self.seq = 0
        self.kinds_version: Optional[int] = None  # the type guard version its copy was made from
        self.reset_marks = False  # its cached marks go with its next chunk (a batch was dropped)
        self.started_at = time.monotonic()
        self.receiver: Optional[threading.Thread] = None
        base = os.path.join(wp.shm_dir(), f"mtga-{os.getpid()}-{idx}-{secrets.token_hex(4)}")
        paths = [f"{base}-in{k}" for k in range(SLOTS)] + [f"{base}-out{k}" for k in range(SLOTS)]
        self.ins: list = []
        self.outs: list = []
        self.proc = self.down = self.up = None
        try:
            try:
                self.ins = [map_shared(p, IN_BYTES, True) for p in paths[:SLOTS]]
                self.outs = [map_shared(p, OUT_BYTES, True) for p in paths[SLOTS:]]
            except OSError as e:  # a small /dev/shm: this worker's chunks travel over its pipe
                log.warning("no shared memory for transform worker %d (%s in %s); its chunks go over a pipe",
                            idx, e.strerror or e, wp.shm_dir())
                for mm in self.ins + self.outs:
                    mm.close()
                self.ins, self.outs = [], []
                paths = []
            self.free = list(range(len(self.ins)))
            # two one-way pipes, enlarged so a message moves in few system calls
            down_r, self.down = ctx.Pipe(duplex=False)
            self.up, up_w = ctx.Pipe(duplex=False)
            for c in (down_r, self.down, self.up, up_w):
                grow_pipe(c.fileno())
            self.proc = ctx.Process(target=serve, args=(down_r, up_w, paths, *args), name=f"mtga-worker-{idx}",
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

    def send(self, chunk: Chunk) -> tuple[int, Optional[int]]:
        """Queue a chunk; returns its sequence number and the slot it occupies
        (None: it went inline). Replies come back in sequence order."""
        self.seq += 1
        blob = chunk.blob
        if self.free and len(blob) <= IN_BYTES:
            slot = self.free.pop()
            self.ins[slot][:len(blob)] = blob
            msg = wp.ToWorkerShared(self.seq, slot, len(blob), chunk._replace(blob=b""))
            self.outbox.put(pickle.dumps(msg, pickle.HIGHEST_PROTOCOL))
            return self.seq, slot
        self.outbox.put(pickle.dumps(wp.ToWorkerInline(self.seq, chunk), pickle.HIGHEST_PROTOCOL))
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
    def __init__(self, settings_dir, workers: int, uuid: bool = True, keep_dir=None,
                 guard: Optional[TypeGuard] = None, marks: Optional[dict] = None, done: Optional[dict] = None):
        self.workers = max(1, workers)
        self.store = SettingsStore(settings_dir, keep_dir=keep_dir)
        self.guard = guard if guard is not None else TypeGuard()  # the loop's: the one that counts
        self.marks = marks if marks is not None else {}  # the loop's exactly-once marks (sink/pipeline/marks.py)
        self.local = Transformer(self.store.get, uuid=uuid, guard=self.guard, dedupe=True)
        self.done = self.local.done = done if done is not None else {}  # and the positions handled above them
        self._procs: list[_Worker] = []
        self._logs: Optional[logs.Relay] = None
        if self.workers > 1:
            ctx = mp.get_context("forkserver")
            self._logs = logs.Relay(ctx)  # the workers' log records, into this process's log
            args = (str(settings_dir), uuid, self._logs.queue, self._logs.level, str(keep_dir) if keep_dir else None)
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
            self._restart_at[i] = nw.started_at + self._backoff[i].next()  # counted from its start

    def run(self, items: Sequence[Item], recheck: bool = False, again: bool = False, frozen=frozenset()) -> list:
        """Transform ``items`` here and now; one result per item. ``again``: retries, taken whatever
        their marks say; ``frozen``: names they teach the guard no type of (unknown, they fail)."""
        if recheck:
            self.store.invalidate()
        self.local.dedupe = not again
        self.guard.frozen = frozenset(frozen)
        try:
            return self.local.run_batch(items)
        finally:
            self.local.dedupe = True
            self.guard.frozen = frozenset()

    def submit(self, items: Sequence[Item], recheck: bool = False) -> "Pending":
        """Start transforming a batch; ``Pending.get()`` gives its Outcome."""
        if self._procs and any(w.dead is not None for w in self._procs):
            self._restart_dead()
        live = [w for w in self._procs if w.dead is None]
        if len(live) < 2 or len(items) < 256:
            return Pending(self, items, recheck, local=self._here(items, 0, recheck))
        n = len(live)
        size = (len(items) + n - 1) // n
        sent = []
        for w, i in zip(live, range(0, len(items), size)):
            kinds = None
            if w.kinds_version != self.guard.version:  # its copy of the type guard is older
                kinds = (self.guard.version, {app: dict(k) for app, k in self.guard.kinds.items()})
                w.kinds_version = self.guard.version
            seq, slot = w.send(pack(items[i:i + size], i, recheck, kinds, w.reset_marks))
            w.reset_marks = False
            sent.append((w, i, i + size, seq, slot))
        return Pending(self, items, recheck, sent=sent)

    def _here(self, items: Sequence[Item], base: int, recheck: bool, seen: Optional[dict] = None) -> Outcome:
        """Items transformed in this process, as an Outcome; with ``seen`` (source
        key -> position handled by the chunks before), held to the loop's marks."""
        if seen is not None:
            self.local.reset_marks({**self.marks, **seen})
        if recheck:
            self.store.invalidate()
        return self.local.outcome(items, base)

    def repeats(self, sources: dict, seen: dict) -> bool:
        """Whether a chunk handled a position at or below its source's mark (the
        loop's, or one of an earlier chunk of the batch): it may hold a duplicate."""
        marks, done = self.marks, self.done
        for key, (first, last) in sources.items():
            cur = seen.get(key)
            if cur is None:
                cur = marks.get(key)
            if cur is not None and first <= cur:
                return True
            if done and key in done and any(first <= p <= last for p in done[key]):
                return True
        return False

    def reset_marks(self) -> None:
        """A batch was dropped unwritten: every cached mark may be past what was handled."""
        self.local.reset_marks()
        for w in self._procs:
            w.reset_marks = True

    @property
    def live(self) -> int:
        """Transform processes working now (1: the loop itself)."""
        return sum(1 for w in self._procs if w.dead is None) or 1

    def close(self) -> None:
        for w in self._procs:
            w.close()
        self._procs = []
        if self._logs is not None:
            self._start = None  # its arguments hold the log queue, which goes now
            self._logs.close()
            self._logs = None


class Pending:
    """A batch being transformed: ``ready()`` without waiting, ``get()`` the
    Outcome (whose buffers may point into shared memory: write them, then
    ``release()``).

    If a worker died, its chunk is transformed here instead (nothing is lost;
    the batch is only slower)."""

    __slots__ = ("pool", "items", "recheck", "sent", "local", "_done")

    def __init__(self, pool: Pool, items, recheck: bool, sent=None, local: Optional[Outcome] = None):
        self.pool, self.items, self.recheck, self.sent, self.local = pool, items, recheck, sent, local
        self._done = None

    def ready(self) -> bool:
        if self._done is not None or self.local is not None:
            return True
        return all(w.results or w.dead is not None for w, *_ in self.sent)

    def get(self) -> Outcome:
        """The batch's Outcome. Chunks are taken in order, each checked against
        what the loop and the earlier chunks decided: the types learned (the type
        guard) and the positions handled (the exactly-once marks). A chunk that
        disagrees, or whose worker died, is transformed again here."""
        if self._done is None:
            pool = self.pool
            seen: dict = {}  # source key -> last position handled by the earlier chunks
            parts = []
            for lo, hi, o in self._parts():
                if o is None or (o.learned and pool.guard.conflicts(o.learned)) or pool.repeats(o.sources, seen):
                    o = pool._here(self.items[lo:hi], lo, self.recheck, seen)
                for key, (_first, last) in o.sources.items():
                    seen[key] = last
                parts.append(o)
            self._done = merge(parts)
            self.items = None
        return self._done

    def _parts(self):
        """(first index, end index, Outcome or None when its worker died) of each chunk, in order."""
        if self.local is not None:
            yield 0, len(self.items), self.local
            return
        for w, lo, hi, seq, slot in self.sent:
            data = w.take()
            reply = pickle.loads(data) if data is not None else None
            if reply is not None and reply.seq != seq:  # never expected: stop using that worker
                w.fail(f"replied to chunk {reply.seq} when chunk {seq} was due")
                reply = None
            if reply is None:
                log.error("transform worker %d: %s; transforming its part here", w.idx, w.dead)
                yield lo, hi, None
            elif type(reply) is wp.FromWorkerInline:
                yield lo, hi, reply.outcome
            else:
                view = memoryview(w.outs[slot])
                apps = {}
                for app, (a, b, n, idx_b) in reply.placed.items():
                    idx = array("I")
                    idx.frombytes(idx_b)
                    apps[app] = [[view[a:b]], n, idx]
                yield lo, hi, Outcome(apps, reply.failures, reply.filtered, reply.fixed, reply.learned, reply.sources,
                                      reply.duplicates)

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
