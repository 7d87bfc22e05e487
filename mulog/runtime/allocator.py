"""The C allocator's settings for a long-running pipeline process.

Every line the shipper produces costs librdkafka a handful of small
``malloc`` calls (the message, its header list, one block per header), freed
in bulk when the delivery reports are served. With glibc's default settings
those small blocks pile up in the "fast bins", and every larger allocation
(a 1 MB read, a list of a chunk's lines, a batch buffer) first walks and merges
them all (``malloc_consolidate``): a third of the shipper's main thread in a
profile. Turning the fast bins off (``mallopt(M_MXFAST, 0)``, the same as
``GLIBC_TUNABLES=glibc.malloc.mxfast=0``) frees each block at once into the
normal bins instead; measured with ``bench/run.py`` (see the README's
"Benchmarks").

Only glibc has ``mallopt``; elsewhere (musl, macOS) this does nothing. A value
the operator already set through ``GLIBC_TUNABLES`` is left as it is.

Python's cyclic collector runs a young-generation pass every 700 container
allocations by default; a batch of 5,000 events makes tens of thousands of
them (messages, decoded events, their lists), all freed by reference counting
anyway, and each pass also walks the batch still alive. ``tune`` raises that
step to GC_YOUNG, and ``settled()`` (once a program has started) moves what
it holds for good (modules, settings) out of the collector's sight
(``gc.freeze``). Measured with ``bench/run.py``: mtga about 3 % faster.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os

log = logging.getLogger("mulog.allocator")

M_MXFAST = 1  # from <malloc.h>
GC_YOUNG = 50_000  # container allocations between two passes of the young generation (Python's default: 700)


def tune() -> bool:
    """Turn glibc's fast bins off in this process, and space the cyclic collector's
    passes (module doc); True when the fast bins were turned off."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, older, oldest)
    if "mxfast" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MXFAST, 0) == 1
    if not ok:
        log.debug("mallopt(M_MXFAST, 0) refused")
    return ok


def settled() -> None:
    """The program has started: what it holds now stays, out of the collector's sight."""
    gc.collect()
    gc.freeze()


__all__ = ["settled", "tune"]
