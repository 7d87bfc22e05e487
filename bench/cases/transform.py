"""The transform alone, without Kafka: bench/transform_loop.py in one process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from ..harness.bench import Bench
from ..harness.common import BENCH, BenchError
from ..harness.data import user_ops_settings
from ..harness.procs import Proc
from ..harness.registry import case
from ..project import where


def _transform(b: Bench, mode: str, name: str, settings=None) -> dict:
    n = b.n_events
    d = b.tmp(name)
    cmd = [sys.executable, BENCH / "transform_loop.py", "--mode", mode, "--data", b.envelopes,
           "--count", str(n), "--settings", settings or b.settings]
    cmd = b.profiled(name, cmd)
    with open(d / "result.json", "wb") as f:
        p = Proc(cmd, stdout=f, env=b.code_env)
    try:
        rc = p.wait(b.timeout(n))
    except subprocess.TimeoutExpired:
        p.stop(signal.SIGKILL)
        raise BenchError(f"the transform loop did not finish in {b.timeout(n):.0f}s") from None
    text = (d / "result.json").read_text(errors="replace")
    try:
        r = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"the transform loop exited with {rc}: {text[-500:]}") from None
    check = "ok" if r["ok"] == n else f"{r['ok']} of {n} ok; first failure: {r['first_failure']}"
    return {"items": r["items"], "seconds": r["seconds"], "peak_rss_mb": p.peak_rss_mb, "lines": r.get("lines"),
            "cpu_s": round(r["cpu_seconds"], 3) if r["cpu_seconds"] is not None else p.cpu_s,
            "cpu_s_process": p.cpu_s, "check": check}


@case("transform_naive", order=10,
      about="bench/naive.py's naive_line on every envelope, no Kafka, one process: only the calls are timed")
def transform_naive(b: Bench) -> dict:
    return _transform(b, "naive", "transform_naive")


@case("transform", order=11, reference="transform_naive", code=True,
      about=f"{where('Transformer')}.Transformer(SettingsStore(dir).get).run_batch(items) on every envelope in "
            "batches, no Kafka, one process: only the calls are timed")
def transform(b: Bench) -> dict:
    return _transform(b, "transform", "transform")


@case("transform_2_workers", order=12, reference="transform", code=True,
      about=f"{where('Pool')}.Pool(dir, 2) on batches of 5,000 (two in flight, results grouped per app) as "
            "mtga's loop drives it, no Kafka: wall time of the batches (ratio = scaling factor of the workers "
            "without the broker sharing the cores)")
def transform_2_workers(b: Bench) -> dict:
    return _transform(b, "pool", "transform_2_workers")


@case("transform_user_ops", order=13, reference="transform",
      about="as transform, with settings whose log_pay, log_login and log_role_up events also give user-table "
            "lines (user_add, user_set, user_setOnce: bench/harness/data.py USER_OPS; half the events, "
            "about 1.8 lines an event); items are events")
def transform_user_ops(b: Bench) -> dict:
    return _transform(b, "transform", "transform_user_ops", user_ops_settings(b.run_dir / "settings-user-ops"))
