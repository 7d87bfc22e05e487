"""sink/pipeline/retry.py on a real RocksDB failure queue and real output files
(no broker): an entry refused for a type conflict teaches no type of that
property when it is retried, so after ``mtga schema forget`` the property's
type comes from a new event, and the old value is then held to it."""

from __future__ import annotations

import json
import time

from offsets import FailedEvent, FailureQueue, StateDB
from sink.config import RetryConf
from sink.counters import counters
from sink.pipeline.retry import Retrier
from sink.pipeline.workers import Pool
from sink.pipeline.writer import LogBusWriter
from sink.ta.batch import Item


def event(**fields) -> bytes:
    logs = {"role_id": "r1", "mtime": int(time.time()), **fields}
    return json.dumps({"headers": {"app_id": 24, "log_name": "log_item"}, "logs": logs}).encode()


def test_a_type_conflict_retried_after_a_forget_teaches_nothing(tmp_path):
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / "metadata.24.json").write_text(json.dumps({"account_id": "role_id",
                                                                        "time": {"field": "mtime"}}))
    out = tmp_path / "out"
    with StateDB(tmp_path / "db", "mtga") as db:
        fq = FailureQueue(db)
        pool = Pool(tmp_path / "settings", 1)
        try:
            assert pool.run([Item(event(score=5), None, "t", 0, 0)])[0][0] == 0  # score: a number
            kind, _, why = pool.run([Item(event(score="high", extra=1), None, "t", 0, 1)])[0]
            assert why.startswith("type_conflict: 'score' is a number")
            fq.push(FailedEvent(event(score="high", extra=1), why, "t", 0, 1), sync=True)
            fq.push(FailedEvent(event(level=3), "sink_write: cannot write (ENOSPC)", "t", 0, 2), sync=True)
            assert pool.guard.forget("24", "score")
            r = Retrier(fq, pool, LogBusWriter(out), RetryConf(initial_backoff_s=1, max_backoff_s=1, batch=10),
                        counters(), lambda: None)
            now = time.time() + 5
            assert r.round(now) == 1  # the ENOSPC one is written and teaches level; the conflict waits
            left = fq.peek(10)
            assert [e.offset for e in left] == [1] and "it waits until a new event teaches one" in left[0].reason
            assert pool.guard.kind("24", "score") is None and pool.guard.kind("24", "level") == "number"
            # a new event teaches score (a text now); the retried one is held to it, and written
            assert pool.run([Item(event(score="low"), None, "t", 0, 3)])[0][0] == 0
            assert pool.guard.kind("24", "score") == "string"
            assert r.round(now + 10) == 1 and fq.count() == 0
            assert pool.guard.kind("24", "extra") == "number"  # its other new property taught as usual
        finally:
            pool.close()
    lines = [json.loads(x) for f in out.rglob("log.*") for x in f.read_bytes().splitlines()]
    assert sorted(json.dumps(d["properties"].get("score")) for d in lines) == ['"high"', "null"]
