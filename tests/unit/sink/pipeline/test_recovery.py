"""sink/pipeline/recovery.py and marks.py without a broker: after an unclean
stop the marks are raised from the #uuids of the lines written after the last
checkpoint, in the current form and in the old version-8 form (files written
before the change), so the events consumed again are skipped, not written
twice; marks stored under old-form keys are taken as their sources'."""

from __future__ import annotations

import json

from offsets import Batch, FailureQueue, Recovery, SourceMarks, StateDB
from sink.counters import counters
from sink.pipeline.marks import Marks
from sink.pipeline.recovery import recover
from sink.ta.batch import DUPLICATE, OK, Item
from sink.ta.settings import SettingsStore
from sink.ta.transform import Transformer
from sink.ta.uuids import event_uuid, source_key

TOPIC = "mulog_clean_24"


def old_form(u: str) -> str:
    return u[:14] + "8" + u[15:]


def line(u: str) -> str:
    return json.dumps({"#type": "track", "#event_name": "t_log_item", "#time": "2020-12-17 13:50:43",
                       "#account_id": "a1", "#uuid": u, "properties": {"n": 1}}, separators=(",", ":")) + "\n"


def transformer(tmp_path, marks: dict) -> Transformer:
    d = tmp_path / "settings"
    d.mkdir()
    (d / "metadata.24.json").write_text(json.dumps({"account_id": "role_id"}))
    tr = Transformer(SettingsStore(d, check_interval=0).get, clock=lambda: 1608184243, dedupe=True)
    tr.reset_marks(marks)
    return tr


def test_recovery_over_files_of_old_and_new_form_uuids_skips_exactly_what_was_written(tmp_path):
    """Partition 0's lines 0-49 in the old form (before the upgrade), 50-59 in the
    new; partition 1's 0-29 in the old form only. After recover(), the events at
    those offsets, consumed again, are duplicates; the next ones are written."""
    out = tmp_path / "out" / "24"
    out.mkdir(parents=True)
    (out / "log.2020-12-17").write_text("".join(line(old_form(event_uuid(TOPIC, 0, o))) for o in range(50))
                                        + "".join(line(old_form(event_uuid(TOPIC, 1, o))) for o in range(30)))
    (out / "log.2020-12-17_1").write_text("".join(line(event_uuid(TOPIC, 0, o)) for o in range(50, 60)))
    with StateDB(tmp_path / "db", "mtga") as db:
        marks = Marks(db, forget_after_s=3600, inst=counters())
        fq = FailureQueue(db)
        found = recover(marks, fq, tmp_path / "out", Recovery({}, fq.next_seq, 0))
        assert (found["lines"], found["files"], found["handled"]) == (90, 2, 90)
        assert marks.done == {source_key((TOPIC, 0)): set(range(60)), source_key((TOPIC, 1)): set(range(30))}
        tr = transformer(tmp_path, marks.marks)
        tr.done = marks.done
        payload = json.dumps({"headers": {"app_id": 24, "log_name": "log_item"}, "logs": {"role_id": "a"}}).encode()
        kinds = {p: [r[0] for r in tr.run_batch([Item(payload, None, TOPIC, p, o) for o in range(70)])]
                 for p in (0, 1)}
        assert kinds[0] == [DUPLICATE] * 60 + [OK] * 10
        assert kinds[1] == [DUPLICATE] * 30 + [OK] * 40


def test_marks_stored_under_old_form_keys_are_their_sources_and_are_rewritten(tmp_path):
    new0, new1 = source_key((TOPIC, 0)), source_key((TOPIC, 1))
    old0, old1 = (k[:14] + b"8" + k[15:] for k in (new0, new1))
    with StateDB(tmp_path / "db", "mtga") as db:
        b = Batch()
        SourceMarks(db).put_many([(old0, 41, 100.0), (old1, 7, 100.0), (new1, 9, 200.0)], b)
        db.write(b, sync=True)
        marks = Marks(db, forget_after_s=3600, inst=counters())
        assert marks.marks == {new0: 41, new1: 9}  # the higher of the two forms of source 1
        assert marks.seen == {new0: 100.0, new1: 200.0}
        b = Batch()
        done = marks.write(b)
        db.write(b, sync=True)
        done()
        assert SourceMarks(db).all() == {new0: (41, 100.0), new1: (9, 200.0)}  # the old-form keys gone
        assert marks.old_form == [] and Marks(db, 3600, counters()).marks == {new0: 41, new1: 9}


def test_an_event_below_one_handled_after_the_checkpoint_is_still_written(tmp_path):
    """A batch's failures are queued before its lines are written, and its apps
    are written one after the other: a SIGKILL in between leaves events handled
    above others that are not. Partition 0: events 0-9 behind the checkpoint;
    after it, 10-14 written, 15 queued, 16-19 not handled, 20 written (another
    app's file). Consumed again, exactly 10-15 and 20 are skipped; 16-19 are
    written, and what the recovery found survives a restart (stored)."""
    out = tmp_path / "out"
    (out / "24").mkdir(parents=True)
    (out / "25").mkdir(parents=True)
    (out / "24" / "log.2020-12-17").write_text("".join(line(event_uuid(TOPIC, 0, o)) for o in range(10, 15)))
    (out / "25" / "log.2020-12-17").write_text(line(event_uuid(TOPIC, 0, 20)))
    from offsets import FailedEvent

    key = source_key((TOPIC, 0))
    with StateDB(tmp_path / "db", "mtga") as db:
        marks = Marks(db, forget_after_s=3600, inst=counters())
        marks.advance({key: (0, 9)})
        fq = FailureQueue(db)
        r = Recovery({}, fq.next_seq, 0)
        fq.push(FailedEvent(b"{}", "invalid_json: x", TOPIC, 0, 15), sync=True)
        found = recover(marks, fq, out, r)
        assert (found["lines"], found["queued"], found["handled"]) == (6, 1, 7)
        b = Batch()
        done = marks.write(b)
        db.write(b, sync=True)
        done()
        marks = Marks(db, forget_after_s=3600, inst=counters())  # as the next start reads them
        assert marks.marks == {key: 9} and marks.done == {key: {10, 11, 12, 13, 14, 15, 20}}
        tr = transformer(tmp_path, marks.marks)
        tr.done = marks.done
        payload = json.dumps({"headers": {"app_id": 24, "log_name": "log_item"}, "logs": {"role_id": "a"}}).encode()
        kinds = [r[0] for r in tr.run_batch([Item(payload, None, TOPIC, 0, o) for o in range(25)])]
        assert [o for o, k in enumerate(kinds) if k == OK] == [16, 17, 18, 19, 21, 22, 23, 24]
        marks.advance(tr.take_sources())
        assert marks.marks == {key: 24} and marks.done == {}  # passed: forgotten, and so in the store
        b = Batch()
        marks.write(b)
        db.write(b, sync=True)
        assert SourceMarks(db).done() == {}
