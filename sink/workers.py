"""Transform workers: the pure transform run in processes, in order.

A consumed batch is cut into one contiguous chunk per worker. A chunk travels
as a few flat objects (the payloads joined into one bytes object with their
lengths, partitions and offsets as arrays) rather than thousands of tuples,
and comes back already grouped: per app, the output lines joined into one
bytes object ready for a single write, and the indexes of failed events with
their reasons. Chunks are merged back in order, so the output keeps
per-partition order and the caller's offset rule is unchanged. With one
worker (or a small batch) the same work runs in the calling process.
"""

from __future__ import annotations

import collections
import logging
import logging.handlers
import multiprocessing as mp
import pickle
import queue
import signal
import threading
from array import array
from typing import Optional, Sequence

from .settings import SettingsStore
from .transform import FILTERED, OK, Transformer

Item = tuple  # (payload, headers, topic, partition, offset)

log = logging.getLogger("mtga.workers")


class Outcome:
    """A transformed batch: ``apps`` maps app id -> [lines joined with newlines,
    line count, indexes of the events]; ``failures`` lists (index, app, reason)."""

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
    apps = {app: [b"\n".join(lines) + b"\n", len(lines), idx] for app, (lines, idx) in groups.items()}
    return Outcome(apps, failures, filtered)


def merge(parts: list) -> Outcome:
    """Outcomes of consecutive chunks -> one outcome, app blobs concatenated in order."""
    if len(parts) == 1:
        return parts[0]
    apps: dict = {}
    failures = []
    filtered = 0
    for o in parts:
        for app, (blob, n, idx) in o.apps.items():
            cur = apps.get(app)
            if cur is None:
                apps[app] = [[blob], n, idx]
            else:
                cur[0].append(blob)
                cur[1] += n
                cur[2].extend(idx)
        failures.extend(o.failures)
        filtered += o.filtered
    for v in apps.values():
        v[0] = b"".join(v[0])
    return Outcome(apps, failures, filtered)


# --------------------------------------------------------------- in a worker

_tr: Optional[Transformer] = None
_store: Optional[SettingsStore] = None


def _init(settings_dir: str, uuid: bool, log_queue, level: int) -> None:
    global _tr, _store
    # the parent decides when to stop; a Ctrl-C or SIGTERM to the group must
    # not kill a worker in the middle of a batch
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # log records (a settings file that broke, say) go to the parent's log
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(logging.handlers.QueueHandler(log_queue))
    root.setLevel(level)
    _store = SettingsStore(settings_dir)
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


def _unpack(chunk: tuple) -> list:
    blob, lens_b, headers, topics, parts_b, offs_b, base, recheck = chunk
    lens = array("I")
    lens.frombytes(lens_b)
    parts = array("i")
    parts.frombytes(parts_b)
    offs = array("q")
    offs.frombytes(offs_b)
    items = []
    pos = 0
    for i, n in enumerate(lens):
        items.append((blob[pos:pos + n], headers[i] if headers else None,
                      topics if type(topics) is str else topics[i], parts[i], offs[i]))
        pos += n
    return items


def _run_chunk(chunk: tuple) -> Outcome:
    if chunk[-1]:
        _store.invalidate()
    return summarize(_tr.run_batch(_unpack(chunk)), chunk[6])


def _serve(conn, settings_dir: str, uuid: bool, log_queue, level: int) -> None:
    """A worker process: chunks in, outcomes out, over its own pipe, until EOF."""
    _init(settings_dir, uuid, log_queue, level)
    recv, send, loads, dumps = conn.recv_bytes, conn.send_bytes, pickle.loads, pickle.dumps
    while True:
        try:
            data = recv()
        except (EOFError, OSError):
            return
        send(dumps(_run_chunk(loads(data)), pickle.HIGHEST_PROTOCOL))


# ------------------------------------------------------------ in the parent

class _Worker:
    """One worker process and its pipe. A sender thread and a receiver thread move
    the bytes (the GIL is free while they wait in write/read), so neither the
    loop nor the worker waits on the other's pipe; pickling stays on the loop's
    thread."""

    def __init__(self, ctx, idx: int, args: tuple):
        self.idx = idx
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_serve, args=(child, *args), name=f"mtga-worker-{idx}", daemon=True)
        self.proc.start()
        child.close()
        self.outbox: queue.Queue = queue.Queue()
        self.results: collections.deque = collections.deque()
        self.arrived = threading.Condition()
        self.dead: Optional[str] = None
        threading.Thread(target=self._send, name=f"worker-{idx}-send", daemon=True).start()
        threading.Thread(target=self._recv, name=f"worker-{idx}-recv", daemon=True).start()

    def _send(self) -> None:
        while True:
            data = self.outbox.get()
            if data is None:
                return
            try:
                self.conn.send_bytes(data)
            except OSError as e:
                self._die(f"cannot send to the worker: {e}")
                return

    def _recv(self) -> None:
        while True:
            try:
                data = self.conn.recv_bytes()
            except (EOFError, OSError) as e:
                self._die(f"the worker exited ({e or 'end of pipe'})")
                return
            with self.arrived:
                self.results.append(data)
                self.arrived.notify_all()

    def _die(self, why: str) -> None:
        with self.arrived:
            if self.dead is None:
                self.dead = why
            self.arrived.notify_all()

    def take(self) -> Optional[bytes]:
        """The next result in order (waiting for it), or None if the worker died."""
        with self.arrived:
            while not self.results and self.dead is None:
                self.arrived.wait()
            return self.results.popleft() if self.results else None

    def close(self) -> None:
        self.outbox.put(None)
        try:
            self.conn.close()
        except OSError:
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


class Pool:
    def __init__(self, settings_dir, workers: int, uuid: bool = True):
        self.workers = max(1, workers)
        self.store = SettingsStore(settings_dir)
        self.local = Transformer(self.store.get, uuid=uuid)
        self._procs: list[_Worker] = []
        self._listener = None
        if self.workers > 1:
            ctx = mp.get_context("forkserver")
            q = ctx.Queue()
            root = logging.getLogger()
            self._listener = logging.handlers.QueueListener(q, *root.handlers, respect_handler_level=True)
            self._listener.start()
            args = (str(settings_dir), uuid, q, root.getEffectiveLevel())
            self._procs = [_Worker(ctx, i, args) for i in range(self.workers)]

    def run(self, items: Sequence[Item], recheck: bool = False) -> list:
        """Transform ``items`` here and now; one result per item (for retries)."""
        if recheck:
            self.store.invalidate()
        return self.local.run_batch(items)

    def submit(self, items: Sequence[Item], recheck: bool = False) -> "Pending":
        """Start transforming a batch; ``Pending.get()`` gives its Outcome."""
        live = [w for w in self._procs if w.dead is None]
        if len(live) < 2 or len(items) < 256:
            return Pending(self, items, recheck, done=summarize(self.run(items, recheck)))
        n = len(live)
        size = (len(items) + n - 1) // n
        sent = []
        for w, i in zip(live, range(0, len(items), size)):
            w.outbox.put(pickle.dumps(_pack(items[i:i + size], i, recheck), pickle.HIGHEST_PROTOCOL))
            sent.append((w, i, i + size))
        return Pending(self, items, recheck, sent=sent)

    def close(self) -> None:
        for w in self._procs:
            w.close()
        self._procs = []
        if self._listener is not None:
            self._listener.stop()
            self._listener = None


class Pending:
    """A batch being transformed: ``ready()`` without waiting, ``get()`` the Outcome.

    If a worker died, its chunk is transformed here instead (nothing is lost;
    the batch is only slower)."""

    __slots__ = ("pool", "items", "recheck", "sent", "_done")

    def __init__(self, pool: Pool, items, recheck: bool, sent=None, done: Optional[Outcome] = None):
        self.pool, self.items, self.recheck, self.sent, self._done = pool, items, recheck, sent, done

    def ready(self) -> bool:
        if self._done is not None:
            return True
        return all(w.results or w.dead is not None for w, _, _ in self.sent[:1]) and \
            all(w.results or w.dead is not None for w, _, _ in self.sent)

    def get(self) -> Outcome:
        if self._done is None:
            parts = []
            for w, lo, hi in self.sent:
                data = w.take()
                if data is None:
                    log.error("transform worker %d: %s; transforming its part here", w.idx, w.dead)
                    parts.append(summarize(self.pool.run(self.items[lo:hi], self.recheck), lo))
                else:
                    parts.append(pickle.loads(data))
            self._done = merge(parts)
            self.items = self.sent = None
        return self._done
