import pytest

"""Exactly once, end to end: every event reaches the output files once, whatever
is SIGKILLed when, counted line by line."""

import json
import os
import random
import re
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from support.mtga import (
    Mtga,
    count_lines,
    failure_count,
    output_lines,
    uuid_of,
    wait_for,
    write_conf,
    write_settings,
)

from sink.ta.uuids import parse_line

pytestmark = pytest.mark.kafka

APPS = (24, 25, 26)


def test_a_retry_killed_between_its_write_and_its_removal_is_not_written_again(kafka, topic_factory, tmp_path):
    """App 27 has no settings: its events wait in the failure queue. With its
    settings back, a retry round writes them (fsynced) and is SIGKILLed before it
    removes them; the next start finds them in the output and removes them
    instead of writing them again."""
    from support.mtga import retry_killed_before_removal

    topic = topic_factory(partitions=2)
    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", checkpoint={"interval_s": 1}, workers=1,
                      retry={"initial_backoff_s": 3600, "max_backoff_s": 3600})
    where = retry_killed_before_removal(kafka, topic, tmp_path, conf)
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
    from offsets import Batch, SourceMarks, StateDB
    from sink.counters import counters
    from sink.pipeline.marks import Marks
    from sink.ta.uuids import source_key

    keys = [source_key((b"game-%03d" % (i % 300), b"fd01:%x:%08x" % (i, i * 7919))) for i in range(10_000)]
    with StateDB(tmp_path / "db", "mtga") as db:
        empty = _dir_bytes(tmp_path / "db")
        marks = Marks(db, forget_after_s=3600, inst=counters())
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


def _rename_every(every: int):
    """A Writer hook: every ``every`` lines the file is renamed away (out of the
    glob) and a new one is started."""
    def hook(w, n):
        _pace(n)
        if n and n % every == 0:
            os.rename(w.path, f"{w.path}.{n // every}")
            w.open()
    return hook


def _copytruncate_every(every: int, copies: str):
    """A Writer hook: every ``every`` lines the file is copied to
    ``<copies>.<k>`` (in the glob) and truncated, as logrotate's copytruncate
    does; the writer goes on at the start of the file (append mode)."""
    def hook(w, n):
        _pace(n)
        if n and n % every == 0:
            shutil.copyfile(w.path, f"{copies}.{n // every}")
            os.truncate(w.path, 0)
    return hook


def _pace(n: int) -> None:
    """About 1,000 lines/s: a Writer with a hook writes line by line, unpaced."""
    if n % 50 == 0:
        time.sleep(0.05)


def test_shipper_and_mtga_killed_at_random_under_load_every_line_once_in_the_output(kafka, topic_factory, tmp_path):
    """Three game logs at about 1,000 lines/s each for about 40 s (and on until
    the last kill, however long the starts take): one renamed away every 6 s,
    one copy-truncated every 6 s with its copies in the glob. The shipper and
    mtga are each SIGKILLed 4 times at random moments and started again at once.
    Each event gives a track line and two user-table operations (user_set, and
    user_add of its pay and a count). Every line is in the output exactly once,
    counted by the writer and line number each track line carries and by each
    line's #uuid (its event and its line in it); the user_add sums per account
    are the game's pays and event counts per role."""
    from support.shipper import ShipperProc, Writer, all_delivered, line
    from support.shipper import write_conf as shipper_conf

    app = 31
    topic = topic_factory(partitions=3)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "sstate"
    sconf = shipper_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[
        {"paths": [str(logs / "a.log"), str(logs / "b.log")], "topic": topic, "app_id": app, "log_name": "log_item"},
        {"paths": [str(logs / "c.log*")], "topic": topic, "app_id": app, "log_name": "log_item"}])
    mdir = tmp_path / "mtga"
    (mdir / "settings").mkdir(parents=True)
    (mdir / "settings" / f"metadata.{app}.json").write_text(json.dumps({
        "account_id": "role_id", "ip": "ip", "time": {"field": "mtime", "unit": "s", "time_zone": "+08:00"},
        "events": {"log_item": {"user": {"set": {"vip": "vip_level"},
                                         "add": {"total_pay": "pay_amount", "pay_count": 1}}}}}))
    mconf = write_conf(mdir, kafka, topic, f"g-{topic}", checkpoint={"interval_s": 2},
                       kafka={"consumer": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}})
    out = mdir / "out"
    per = 40_000
    killed = threading.Event()  # the last kill is done: the writers may finish
    writers = [Writer(logs / "a.log", "a", per, burst=50, pause=0.05, until=killed),
               Writer(logs / "b.log", "b", per, burst=50, pause=0.05, hook=_rename_every(6000), until=killed),
               Writer(logs / "c.log", "c", per, burst=50, pause=0.05,
                      hook=_copytruncate_every(6000, str(logs / "c.log")), until=killed)]
    rnd = random.Random(15)
    kills = ["shipper"] * 4 + ["mtga"] * 4
    rnd.shuffle(kills)
    runs = {"shipper": 0, "mtga": 0}
    sh = ShipperProc(sconf, tmp_path / "shipper-0.log").start()
    m = Mtga(mconf).start()
    try:
        sh.wait_log("watching ")
        for w in writers:
            w.start()
        held = 0
        for who in kills:
            runs[who] += 1
            if who == "shipper":
                time.sleep(rnd.uniform(1.0, 3.0))  # a random moment, not a synchronisation
                assert sh.stop(signal.SIGKILL) == -signal.SIGKILL
                sh = ShipperProc(sconf, tmp_path / f"shipper-{runs[who]}.log").start()
            else:
                # this run has its partitions (a killed member holds them for its session, 6 s) and writes
                wait_for(lambda: count_lines(out) > held, 60, "this run of mtga to write lines")
                time.sleep(rnd.uniform(0.5, 2.5))
                m.kill()
                held = count_lines(out)
                m = Mtga(mconf).start()
        assert any(w.is_alive() for w in writers), "the writers finished before the last kill"
        killed.set()
        for w in writers:
            w.join(120)
            assert w.error is None, w.error
        wait_for(lambda: all_delivered(state, [w.path for w in writers]), 120, "every line in Kafka")
        assert all(w.count >= per for w in writers)
        want = {(w.tag, n) for w in writers for n in range(w.count)}
        wait_for(lambda: len(output_lines(out, running=True)) >= 3 * len(want), 180, "every line in the output",
                 every=1)
        assert sh.stop() == 0
        assert m.term() == 0
    finally:
        killed.set()
        sh.kill_if_alive()
        if m.alive():
            m.kill()
    lines = [json.loads(x) for x in output_lines(out)]
    rows = [d["properties"] for d in lines if d["#type"] == "track"]
    seen = Counter((r["w"], r["n"]) for r in rows)
    twice = {k: c for k, c in seen.items() if c > 1}
    lost = want - set(seen)
    per_line = Counter(parse_line(d["#uuid"]) for d in lines)  # (source, position, line of the event)
    events = Counter(p[:2] for p in per_line)
    types = Counter(d["#type"] for d in lines)
    paid: Counter = Counter()  # role -> cents and events, as the game wrote them
    for tag, n in want:
        ev = json.loads(line(tag, n))
        paid[(str(ev["role_id"]), "cents")] += round(ev["pay_amount"] * 100)
        paid[(str(ev["role_id"]), "count")] += 1
    added: Counter = Counter()  # account -> cents and count, as the user_add lines add them up
    for d in lines:
        if d["#type"] == "user_add":
            added[(d["#account_id"], "cents")] += round(d["properties"]["total_pay"] * 100)
            added[(d["#account_id"], "count")] += d["properties"]["pay_count"]
    print(f"\nshipper and mtga SIGKILLed 4 times each under load: {len(want)} lines written, {len(rows)} track "
          f"lines in the output, {len(lost)} lost, {len(twice)} written twice; {dict(types)}; failure queue "
          f"{failure_count(mdir / 'state')}")
    mlog = (mdir / "mtga.log").read_text(errors="replace")
    found = [int(x) for x in re.findall(r"unclean stop before: (\d+) line", mlog)]
    print(f"mtga's starts after its kills found {found} line(s) written after the last checkpoint")
    assert len(found) == 4 and sum(found) > 0, "each start after a kill looks past the last checkpoint"
    assert not lost, f"{len(lost)} lines lost, e.g. {sorted(lost)[:5]}"
    assert not twice, f"{len(twice)} lines written more than once, e.g. {sorted(twice.items())[:5]}"
    assert len(rows) == len(want) and set(seen) == want
    assert types == {"track": len(want), "user_set": len(want), "user_add": len(want)}, types
    assert max(per_line.values()) == 1 and set(events.values()) == {3} and len(events) == len(want)
    assert {i for (_k, _p, i) in per_line} == {0, 1, 2}
    assert added == paid, "the user_add sums per account differ from the game's pays per role"
