"""Transform workers: the pure transform run in processes, in order.

``Pool.run(items)`` returns one result per item, in the items' order, so the
output keeps per-partition order and the offset rule holds: the caller
writes results exactly as if it had transformed them itself. With one worker
the transform runs in the calling process (no IPC).
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from typing import Sequence

from .settings import SettingsStore
from .transform import Transformer

Item = tuple  # (payload, headers, topic, partition, offset)

_tr: Transformer | None = None
_store: SettingsStore | None = None


def _init(settings_dir: str, uuid: bool) -> None:
    global _tr, _store
    # the parent decides when to stop; a Ctrl-C or SIGTERM to the group must
    # not kill a worker in the middle of a batch
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _store = SettingsStore(settings_dir)
    _tr = Transformer(_store.get, uuid=uuid)


def _run_chunk(args) -> list:
    items, recheck = args
    if recheck:
        _store.invalidate()
    return _tr.run_batch(items)


class Pool:
    def __init__(self, settings_dir, workers: int, uuid: bool = True):
        self.workers = max(1, workers)
        self.store = SettingsStore(settings_dir)
        self.local = Transformer(self.store.get, uuid=uuid)
        self._pool = None
        if self.workers > 1:
            ctx = mp.get_context("forkserver")
            self._pool = ctx.Pool(self.workers, initializer=_init, initargs=(str(settings_dir), uuid))

    def run(self, items: Sequence[Item], recheck: bool = False) -> list:
        """Transform ``items``; ``recheck`` makes settings files be checked again first."""
        if self._pool is None or len(items) < 64:
            if recheck:
                self.store.invalidate()
            return self.local.run_batch(items)
        n = self.workers
        size = (len(items) + n - 1) // n
        chunks = [(items[i:i + size], recheck) for i in range(0, len(items), size)]
        out = []
        for part in self._pool.map(_run_chunk, chunks, chunksize=1):
            out.extend(part)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
