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
        assert (found["lines"], found["files"]) == (90, 2) and found["marks_raised"] >= 2
        assert marks.marks == {source_key((TOPIC, 0)): 59, source_key((TOPIC, 1)): 29}
        tr = transformer(tmp_path, marks.marks)
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
