"""Exactly once, end to end: every event reaches the output files once, whatever
is SIGKILLed when, counted line by line."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mtga_helpers import (Mtga, failure_count, output_lines, produce, uuid_of, wait_for, write_conf,
                          write_settings)
from mulog import sample

HERE = Path(__file__).resolve().parent
APPS = (24, 25, 26)


def test_a_retry_killed_between_its_write_and_its_removal_is_not_written_again(kafka, topic_factory, tmp_path):
    """App 27 has no settings: its events wait in the failure queue. With its
    settings back, a retry round writes them (fsynced) and is SIGKILLed before it
    removes them; the next start finds them in the output and removes them
    instead of writing them again."""
    topic = topic_factory(partitions=2)
    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", checkpoint={"interval_s": 1}, workers=1,
                      retry={"initial_backoff_s": 3600, "max_backoff_s": 3600})
    events = list(sample.envelopes(300, app_ids=(24, 27)))
    where = produce(kafka, topic, events)
    m = Mtga(conf).start()
    try:
        wait_for(lambda: failure_count(tmp_path / "state") == 150, 60, "app 27's events in the failure queue")
    finally:
        assert m.term() == 0
    write_settings(tmp_path / "settings", (27,))
    r = subprocess.run([sys.executable, str(HERE / "helpers" / "retry_then_die.py"), str(conf)],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(HERE.parent)))
    assert r.returncode == -signal.SIGKILL, r.stdout + r.stderr
    assert "written, 150 entries not removed yet" in r.stdout
    written = [json.loads(x) for x in output_lines(tmp_path / "out")]
    assert sum(1 for d in written if d["#event_name"].startswith("t_")) == 300  # 150 + 150 by the retry
    assert failure_count(tmp_path / "state") == 150  # still queued: the kill came before the removal
    m = Mtga(conf).start()
    try:
        wait_for(lambda: failure_count(tmp_path / "state") == 0, 60, "the written entries removed")
        log = (tmp_path / "mtga.log").read_text()
        assert "150 failure-queue entries written by a retry removed" in log
    finally:
        assert m.term() == 0
    lines = output_lines(tmp_path / "out")
    uuids = [json.loads(x)["#uuid"] for x in lines]
    assert len(lines) == 300 and sorted(uuids) == sorted(uuid_of(topic, p, o) for p, o in where)


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_marks_of_10000_sources_stay_small_and_expire(tmp_path, capsys):
    """10,000 shipper files' marks: what they cost in the store and how they go
    once unseen for forget_after_s (pure: a real RocksDB, no broker)."""
    from mulog.instrument import Instruments
    from offsets import Batch, SourceMarks, StateDB
    from sink.marks import Marks
    from sink.uuids import source_key

    keys = [source_key((b"game-%03d" % (i % 300), b"fd01:%x:%08x" % (i, i * 7919))) for i in range(10_000)]
    with StateDB(tmp_path / "db", "mtga") as db:
        empty = _dir_bytes(tmp_path / "db")
        marks = Marks(db, forget_after_s=3600, inst=Instruments("t"))
        old = time.time() - 7200
        marks.advance({k: (0, 1_000_000 + i) for i, k in enumerate(keys[:5000])}, now=old)  # unseen for 2 h
        marks.advance({k: (0, 2_000_000 + i) for i, k in enumerate(keys[5000:])})
        b = Batch()
        marks.next_sweep = float("inf")
        done = marks.write(b)
        db.write(b, sync=True)
        done()
        db.flush()
        stored = SourceMarks(db).all()
        assert len(stored) == 10_000 and stored[keys[42]][0] == 1_000_042
        value_bytes = sum(len(k) + 5 + 16 for k in stored)  # key + prefix, then position and time
        on_disk = _dir_bytes(tmp_path / "db") - empty
        # the sweep: the 5,000 unseen for longer than forget_after_s go, in the checkpoint's batch
        marks.next_sweep = 0.0
        b = Batch()
        done = marks.write(b)
        db.write(b, sync=True)
        done()
        left = SourceMarks(db).all()
        assert set(left) == set(keys[5000:]) and set(marks.marks) == set(keys[5000:])
        assert marks.expired.value == 5000
    print(f"\n10,000 source marks: {value_bytes} bytes of keys and values ({value_bytes / 10_000:.0f} per source), "
          f"{on_disk} bytes more on disk after a flush; 5,000 unseen for 2 h forgotten at the sweep")
    assert value_bytes / 10_000 < 48
    assert on_disk < 2_000_000
