"""The pure transform, timed without Kafka: one process, one core.

Run by bench/run.py as ``python bench/transform_loop.py --mode
transform|pool|naive --data FILE --count N --settings DIR [--workers N]``. Reads
the envelopes in chunks of 10,000 (so memory stays that of the transform, not of
the data set) and times only the calls: for ``transform``,
``Transformer(SettingsStore(DIR).get).run_batch(items)`` (what mtga calls with
one worker); for ``pool``, ``Pool(DIR, N)`` on batches of 5,000 with two in
flight, as mtga's loop drives it (the results come back grouped per app, ready
to write); for ``naive``, ``naive.naive_line``. Prints one JSON object:
``{"items": N, "seconds": S, "cpu_seconds": C, "ok": N, "failed": N,
"lines": N, "first_failure": ...}`` (lines: the lines the events gave; seconds: wall time of the calls; cpu_seconds: process
time of the calls).

The project's code is this tree's, or that of the tree in BENCH_CODE (bench/run.py
--baseline), for this process and the worker processes it starts; its names are
found where that tree keeps them (bench/project.py: sink.ta.transform or
sink.transform, sink.pipeline.workers or sink.workers, ...).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, os.environ.get("BENCH_CODE") or str(HERE.parent))
sys.path.insert(0, str(HERE))

from project import load  # noqa: E402 - bench/project.py

CHUNK = 10_000
TOPIC = "mulog_clean_bench"


def _collect(pending, ok: int, failed: int) -> tuple[int, int]:
    o = pending.get()
    ok += sum(v[1] for v in o.apps.values())
    failed += len(o.failures)
    pending.release()
    return ok, failed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("transform", "pool", "naive"), required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--settings", required=True)
    a = ap.parse_args(argv)

    if a.mode == "transform":
        OK = load("OK")
        tr = load("Transformer")(load("SettingsStore")(Path(a.settings)).get)
    elif a.mode == "pool":
        from collections import deque

        pool = load("Pool")(Path(a.settings), a.workers)
        inflight: deque = deque()
    else:
        from naive import naive_line

    make_item = load("Item", None)  # the transform's item type
    if make_item is None:  # a tree from before typed items (bench/run.py --baseline)
        def make_item(*fields):
            return fields

    n = ok = failed = lines = 0
    first_failure = None
    spent = cpu = 0.0
    perf, ptime = time.perf_counter, time.process_time
    with open(a.data, "rb") as f:
        while n < a.count:
            chunk = [ln.rstrip(b"\n") for ln in itertools.islice(f, min(CHUNK, a.count - n))]
            if not chunk:
                break
            base = n
            if a.mode == "pool":
                # the pipeline stays full across chunks, as in mtga's loop (two batches in flight)
                items = [make_item(p, None, TOPIC, 0, base + i) for i, p in enumerate(chunk)]
                t0 = perf()
                for j in range(0, len(items), 5000):
                    inflight.append(pool.submit(items[j:j + 5000]))
                    while len(inflight) > 2:
                        ok, failed = _collect(inflight.popleft(), ok, failed)
                spent += perf() - t0
                res = None
            elif a.mode == "transform":
                t0, c0 = perf(), ptime()
                res = tr.run_batch([make_item(p, None, TOPIC, 0, base + i) for i, p in enumerate(chunk)])
                spent += perf() - t0
                cpu += ptime() - c0
                for r in res:
                    if r[0] == OK:
                        ok += 1
                        lines += r[2].count(b"\n") + 1
                    else:
                        failed += 1
                        first_failure = first_failure or r[2]
            else:
                t0, c0 = perf(), ptime()
                res = [naive_line(p, TOPIC, 0, base + i) for i, p in enumerate(chunk)]
                spent += perf() - t0
                cpu += ptime() - c0
                ok += len(res)
            n += len(chunk)
            del res
    if a.mode == "pool":
        t0 = perf()
        while inflight:
            ok, failed = _collect(inflight.popleft(), ok, failed)
        spent += perf() - t0
        pool.close()
        cpu = None  # spread over the worker processes: the caller measures the process tree
    print(json.dumps({"items": n, "seconds": spent, "cpu_seconds": cpu, "ok": ok, "failed": failed, "lines": lines or None,
                      "first_failure": first_failure}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
