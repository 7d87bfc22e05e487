"""ThinkingData's data rules (sink/tarules.py) and the type guard
(sink/typeguard.py) through the real daemon: Kafka in, LogBus files out.

- A corpus puts events on both sides of every rule's limit into two apps:
  one with the shipped settings (conf/settings/*.24.json: every break
  refused), one with the same settings choosing every fix of tarules.FIXES
  (the fixed value written as TA takes it, counted per rule in ``mtga status``).
  Every event is found once: a line (by its #uuid) or a failure-queue entry
  with the rule's reason code. ``mtga check-output`` passes on the output
  folder, and fails, rule by rule, on hand-made bad lines.
- The type guard's learned types survive a restart; ``mtga schema`` lists them
  from the daemon and from the store; ``mtga schema forget`` lets the next value
  teach again, daemon running or stopped.
- Two worker processes: the first value in Kafka order decides a property's
  type, whichever worker's chunk it is in.
- ``time.zone_offset`` adds #zone_offset (through the transform only).
"""

from __future__ import annotations

import calendar
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from conftest import REPO, run_cli
from mtga_helpers import Mtga, failure_entries, output_lines, produce, uuid_counts, uuid_of, wait_for, write_conf
from mulog import cjson
from sink.batch import FAILED, OK
from sink.settings import SettingsStore
from sink.tarules import FIXES
from sink.transform import Transformer
from ta_rules import violations

TOP_KEYS = ["#type", "#event_name", "#time", "#account_id", "#distinct_id", "#ip", "#uuid", "properties"]
YEAR3 = 3 * 365 * 86400
DAY = 86400
DROP = object()  # an expected property that is not in the line


def at8(sec: int) -> str:
    """``sec`` as mtga writes #time in the shipped zone (+08:00)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec + 8 * 3600))


def mtga_json(*args: str, timeout: float = 30):
    """``mtga ARGS --json`` -> (rc, parsed stdout or None, stderr)."""
    r = run_cli("mtga", *args, "--json", timeout=timeout)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        out = None
    return r.returncode, out, r.stderr


def status(conf: Path) -> dict:
    rc, out, _ = mtga_json("status", "-c", str(conf))
    return out if rc == 0 and isinstance(out, dict) else {}


def shipped_settings(folder: Path, plain: str, fixing: str) -> None:
    """The shipped settings of app 24 as app ``plain``; the same choosing every
    fix of tarules.FIXES as app ``fixing``."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = (REPO / "conf/settings/metadata.24.json").read_text()
    flt = (REPO / "conf/settings/filter.24.json").read_text()
    (folder / f"metadata.{plain}.json").write_text(meta)
    (folder / f"filter.{plain}.json").write_text(flt)
    md = cjson.loads(meta)
    assert not md.get("fix") and not md["time"].get("zone_offset"), "the shipped settings fix nothing, add nothing"
    (folder / f"metadata.{fixing}.json").write_text(json.dumps(dict(md, fix=dict(FIXES))))
    (folder / f"filter.{fixing}.json").write_text(flt)


# ------------------------------------------------------------------------------------------ the transform alone

SPEC_NOW = 1608184243  # 2020-12-17 05:50:43 UTC: the transform runs as on that day (New York in winter time)
JULY = 1594990243  # 2020-07-17 12:50:43 UTC (New York in summer time)


def transformer(tmp_path, time_conf: dict, app: str = "24", fix: Optional[dict] = None) -> Transformer:
    d = tmp_path / "settings"
    d.mkdir(exist_ok=True)
    meta = {"account_id": "role_id", "time": time_conf}
    if fix:
        meta["fix"] = fix
    (d / f"metadata.{app}.json").write_text(json.dumps(meta))
    return Transformer(SettingsStore(d, check_interval=0).get, clock=lambda: SPEC_NOW)


def transform(tr: Transformer, logs: dict, offset: int = 7, app: str = "24", log_name: str = "log_item"):
    payload = json.dumps({"headers": {"app_id": int(app), "log_name": log_name}, "logs": logs}).encode()
    return tr(payload, None, "t", 0, offset)


@pytest.mark.parametrize("zone, unit, value, time_text, hours, instant", [
    ("+08:00", "s", SPEC_NOW, "2020-12-17 13:50:43", 8, SPEC_NOW),
    ("+05:30", "s", SPEC_NOW, "2020-12-17 11:20:43", 5.5, SPEC_NOW),
    ("-03:30", "ms", SPEC_NOW * 1000 + 123, "2020-12-17 02:20:43.123", -3.5, SPEC_NOW),
    ("UTC", "s", SPEC_NOW, "2020-12-17 05:50:43", 0, SPEC_NOW),
    ("America/New_York", "s", SPEC_NOW, "2020-12-17 00:50:43", -5, SPEC_NOW),
    ("America/New_York", "s", JULY, "2020-07-17 08:50:43", -4, JULY),
    ("America/New_York", "string", "2020-07-17 08:50:43", "2020-07-17 08:50:43", -4, JULY),
    ("America/New_York", "string", "2020-12-17 00:50:43", "2020-12-17 00:50:43", -5, SPEC_NOW),
])
def test_zone_offset_is_the_hours_of_the_zone_at_the_events_time(tmp_path, zone, unit, value, time_text, hours,
                                                                 instant):
    """time.zone_offset: true adds #zone_offset, the hours from UTC of the
    configured zone at the event's #time (a zone with summer time: its offset
    on that day); #time minus them is the event's instant. The same on the
    first event (the exact path, which learns the types) and on the next (the
    typed path)."""
    tr = transformer(tmp_path, {"field": "t", "unit": unit, "time_zone": zone, "zone_offset": True})
    for off in (1, 2):
        kind, _, line = transform(tr, {"role_id": "r1", "t": value, "n": 1}, offset=off)
        assert kind == OK, line
        d = json.loads(line)
        assert d["#time"] == time_text
        assert list(d["properties"].items())[0] == ("#zone_offset", hours)
        assert type(d["properties"]["#zone_offset"]) is (int if float(hours).is_integer() else float)
        assert line.count(b'"#zone_offset"') == 1
        local = calendar.timegm(time.strptime(time_text[:19], "%Y-%m-%d %H:%M:%S"))
        assert local - hours * 3600 == instant
        assert violations(line, SPEC_NOW) == []
    assert tr.lookup("24").rule("log_item").shape is not None  # the second event took the typed path


def test_no_zone_offset_unless_the_settings_ask(tmp_path):
    tr = transformer(tmp_path, {"field": "t", "unit": "s", "time_zone": "+08:00"})
    kind, _, line = transform(tr, {"role_id": "r1", "t": SPEC_NOW})
    assert kind == OK and "#zone_offset" not in json.loads(line)["properties"]
    # an event may give its own (a preset property)
    kind, _, line = transform(tr, {"role_id": "r1", "t": SPEC_NOW, "#zone_offset": 3})
    assert kind == OK and json.loads(line)["properties"]["#zone_offset"] == 3


def test_zone_offset_of_a_time_fixed_to_the_processing_time(tmp_path):
    """A #time out of range that the app fixes to the processing time: its
    #zone_offset is the zone's offset at the processing time (winter: -5), not
    at the event's time (summer: -4), else TA would shift #time by an hour."""
    tr = transformer(tmp_path, {"field": "t", "unit": "s", "time_zone": "America/New_York", "zone_offset": True},
                     fix={"time_out_of_range": "processing_time"})
    summer_long_ago = JULY - 5 * 365 * DAY
    for off in (1, 2):  # the exact path, then the typed path
        kind, _, line = transform(tr, {"role_id": "r1", "t": summer_long_ago}, offset=off)
        assert kind == OK, line
        d = json.loads(line)
        assert (d["#time"], d["properties"]["#zone_offset"]) == ("2020-12-17 00:50:43", -5), d
        assert violations(line, SPEC_NOW) == []
    assert tr.take_fixed() == {"time_out_of_range": 2}


def test_an_events_own_zone_offset_when_the_app_adds_one(tmp_path):
    """The app adds #zone_offset; an event that gives one too: the same value
    is written once; another value is refused (the line would hold the key
    twice, and TA one of them)."""
    tr = transformer(tmp_path, {"field": "t", "unit": "s", "time_zone": "+08:00", "zone_offset": True})
    for own in (8, 8.0):
        kind, _, line = transform(tr, {"role_id": "r1", "t": SPEC_NOW, "#zone_offset": own})
        assert kind == OK and line.count(b'"#zone_offset"') == 1, line
        assert json.loads(line)["properties"]["#zone_offset"] == 8
    for own in (3, 5.5, "8", True):
        kind, _, reason = transform(tr, {"role_id": "r1", "t": SPEC_NOW, "#zone_offset": own})
        assert kind == FAILED and reason.startswith("duplicate_property: '#zone_offset'"), reason
    kind, _, line = transform(tr, {"role_id": "r1", "t": SPEC_NOW, "n": 2})
    assert kind == OK and json.loads(line)["properties"] == {"#zone_offset": 8, "role_id": "r1", "t": SPEC_NOW, "n": 2}


def test_a_name_or_time_ending_in_a_newline_is_not_one(tmp_path):
    """TA's patterns end in "$", which Python's re also matches before a final
    newline: "abc\\n" is no property name, "t_log\\n" no event name, and
    "2020-12-17 13:50:43\\n" no time. Refused here, and by check-output; the
    app's later events are still written (a learned name that cannot name a
    Struct field would fail every later event of the app)."""
    tr = transformer(tmp_path, {"field": "t", "unit": "string", "time_zone": "+08:00"})
    t = "2020-12-17 13:50:43"
    kind, _, line = transform(tr, {"role_id": "r1", "t": t, "at": t, "n": 1}, offset=1)
    assert kind == OK, line
    cases = [({"role_id": "r1", "t": t, "abc\n": 1}, "log_item", "property_name: 'abc\\n'"),
             ({"role_id": "r1", "t": t}, "log\n", "event_name: 't_log\\n'"),
             ({"role_id": "r1", "t": t + "\n"}, "log_item", "time: field 't'"),
             ({"role_id": "r1", "t": t, "at": t + "\n"}, "log_item", "type_conflict: 'at' is a time"),
             ({"role_id": "r1", "t": t, "n": "12\n"}, "log_item", "type_conflict: 'n' is a number")]
    for i, (logs, log_name, reason) in enumerate(cases, 2):
        kind, _, got = transform(tr, logs, offset=i, log_name=log_name)
        assert kind == FAILED and got.startswith(reason), (logs, got)
        kind, _, line = transform(tr, {"role_id": "r1", "t": t, "at": t, "n": 2}, offset=100 + i)
        assert kind == OK and json.loads(line)["properties"]["n"] == 2, line
    good = {"#type": "track", "#event_name": "t_log", "#time": t, "#account_id": "a", "properties": {}}
    assert violations(json.dumps(good), SPEC_NOW) == []
    assert violations(json.dumps(dict(good, properties={"abc\n": 1})), SPEC_NOW)[0].startswith("property_name")
    assert violations(json.dumps(dict(good, **{"#event_name": "t_log\n"})), SPEC_NOW)[0].startswith("event_name")
    assert violations(json.dumps(dict(good, **{"#time": t + "\n"})), SPEC_NOW)[0].startswith("time")


def test_fixed_counts_only_the_events_written(tmp_path):
    """``fixed`` (mtga status) counts the events written with a fix; an event
    fixed on one rule and refused on another is not counted, however often it
    is retried."""
    tr = transformer(tmp_path, {"field": "t", "unit": "s", "time_zone": "+08:00"}, fix=dict(FIXES))
    ok_logs = {"role_id": "r1", "t": SPEC_NOW, "num": 5, "s": "a" * 3000, "#custom": 1}
    bad = [{"role_id": "r1", "t": SPEC_NOW, "num": 9 * 10**15 + 1},  # fixed to a text, which num does not take
           {"role_id": "r1", "t": SPEC_NOW + 9 * DAY, "s": "b" * 3000, "bad-name": 1},
           {"role_id": "r1", "t": SPEC_NOW, "#custom": 1, "Num": 1, "num": 2}]
    kind, _, line = transform(tr, ok_logs)
    assert kind == OK and json.loads(line)["properties"] == {"role_id": "r1", "t": SPEC_NOW, "num": 5, "s": "a" * 2048}
    for _ in range(3):
        for logs in bad:
            kind, _, reason = transform(tr, logs)
            assert kind == FAILED, reason
    assert tr.take_fixed() == {"string_too_long": 1, "preset_property": 1}
