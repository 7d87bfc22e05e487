"""ThinkingData's data rules (sink/ta/rules.py) without a broker: ``mtga
check-output`` names each broken rule with its file and line, the pool cuts a
batch where the daemon test expects, ``time.zone_offset`` adds #zone_offset, a
name or time ending in a newline is not one, and ``fixed`` counts only the
events written. Through the real daemon: tests/mtga/test_rules.py."""


from __future__ import annotations

import calendar
import json
import re
import time
from collections import Counter
from typing import Optional

import pytest

from sink.ta.batch import FAILED, OK
from sink.ta.rules import FIXES
from sink.ta.settings import SettingsStore
from sink.ta.transform import Transformer
from support.cli import run_cli
from support.ta_corpus import DAY, SPLIT, at8, shipped_settings, split_payloads
from support.ta_rules import violations

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



def test_check_output_names_each_broken_rule_with_file_and_line(tmp_path):
    """``mtga check-output`` on hand-made lines, one rule broken per line: exit
    code 1, the count of each rule, file:line examples, in text and in JSON."""
    now = int(time.time())
    t = at8(now - 3600)

    def line(props: dict, **top) -> str:
        d = {"#type": "track", "#event_name": "t_log_item", "#time": t, "#account_id": "a1",
             "#uuid": "0b5b8e1c-5d2b-4b8f-9d55-0c8c2e7c6a10", "properties": props}
        d.update(top)
        return json.dumps(d, ensure_ascii=False)

    app = tmp_path / "out" / "61"
    app.mkdir(parents=True)
    rows = [  # (line, the rule it breaks or None)
        (line({"lvl": 1, "s": "a" * 2048, "#os": "x"}), None),
        (line({"s": "a" * 2049}), "string_too_long"),
        (line({"#custom": 1}), "preset_property"),
        (line({"n": 9 * 10**15 + 1}), "number_out_of_range"),
        (line({"amount": 1, "Amount": 2}), "duplicate_property"),
        (line({"lvl": "twelve"}), "type_conflict"),
        (line({"l": ["x"] * 501}), "list_too_long"),
        (line({"pname\n": 1}), "property_name"),
        (line({}, **{"#account_id": "i" * 129}), "id_too_long"),
        (line({}, **{"#time": at8(now + 4 * DAY)}), "time_out_of_range"),
        (line({}, **{"#time": t + "\n"}), "time"),
        (line({}, **{"#event_name": "t_" + "e" * 49}), "event_name"),
        (line({}, extra=1), "top_level"),
        (line({}, **{"#distinct_id": ""}), "empty_id"),
        (line({}, **{"#account_id": "", "#distinct_id": "d1"}), "empty_id"),
        (line({}, **{"#ip": ""}), "empty_id"),
        (line({}, **{"#distinct_id": "d1", "#ip": "10.0.0.1"}), None),
        ("{not json", "line_json"),
        (line({"lvl": 2}).replace('"lvl": 2', '"lvl": 2, "lvl": 3'), "repeated_key"),
        (line({"o": {"a": 1}}).replace('"a": 1', '"a": 1, "a": 2'), "repeated_key"),
        (line({}, **{"#import_tool_id": 1, "#transaction_property": "x"}), None),
        (line({"lvl": 2}), None),
    ]
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    good = app / f"log.{day}"
    good.write_text("".join(ln + "\n" for ln, _ in rows))
    (app / "events.txt").write_text(rows[0][0] + "\n")
    want = Counter(code for _, code in rows if code)
    want["file_name"] += 1

    r = run_cli("mtga", "check-output", str(tmp_path / "out"), "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    rep = json.loads(r.stdout)
    assert (rep["files"], rep["lines"], rep["lines_breaking_rules"]) == (2, len(rows) + 1, sum(want.values()) - 1)
    assert {code: v["count"] for code, v in rep["rules"].items()} == want
    for n, (_, code) in enumerate(rows, 1):
        if code:
            examples = rep["rules"][code]["examples"]
            assert any(x.startswith(f"{good}:{n}: ") for x in examples), (code, examples)
    assert rep["rules"]["file_name"]["examples"][0].startswith(f"{app / 'events.txt'}: ")

    r = run_cli("mtga", "check-output", str(tmp_path / "out"))
    assert r.returncode == 1
    out = r.stdout
    assert f"2 file(s), {len(rows) + 1} line(s); {sum(want.values()) - 1} line(s) break ThinkingData's rules" in out
    for code, n in want.items():
        assert re.search(rf"^\s+{n}  {code}: ", out, re.M), (code, out)
    assert f"{good}:2: 's' is 2049 bytes" in out

    # the good lines alone pass
    ok_file = tmp_path / "ok" / "61" / f"log.{day}"
    ok_file.parent.mkdir(parents=True)
    ok_file.write_text(rows[0][0] + "\n" + rows[-1][0] + "\n")
    r = run_cli("mtga", "check-output", str(tmp_path / "ok"))
    assert r.returncode == 0 and "2 line(s); 0 line(s) break" in r.stdout, r.stdout



def test_the_pool_cuts_that_batch_where_the_daemon_test_says(tmp_path):
    """The batch of the test above, given to the worker pool in this process:
    two chunks, events 0-299 to one worker and 300-599 to the other, and the
    outcome of a single transform (the first value in batch order decides)."""
    from sink.pipeline.workers import Pool
    from sink.ta.batch import Item
    from support.grouping import summarize

    app = "81"
    shipped_settings(tmp_path / "settings", app, "82")
    items = [Item(p, None, "t", 0, i) for i, p in enumerate(split_payloads(app, int(time.time())))]
    one = summarize(Transformer(SettingsStore(tmp_path / "settings").get).run_batch(items))
    assert [(i, r.split(":")[0]) for i, _, r in one.failures] == [(315, "type_conflict"), (320, "type_conflict")]
    pool = Pool(tmp_path / "settings", 2)
    try:
        p = pool.submit(items)
        assert [(w.idx, lo, hi) for w, lo, hi, *_ in p.sent] == [(0, 0, 300), (1, 300, 600)]
        out = p.get()
        assert out.failures == one.failures
        assert {a: b"".join(bytes(b) for b in bufs) for a, (bufs, _, _) in out.apps.items()} == \
            {a: b"".join(bytes(b) for b in bufs) for a, (bufs, _, _) in one.apps.items()}
        p.release()
        assert {k: pool.guard.kind(app, k) for k in SPLIT} == {"mix": "number", "rev": "string"}
    finally:
        pool.close()



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
