"""ThinkingData's data rules (sink/ta/rules.py) and the type guard
(sink/ta/typeguard.py) through the real daemon: Kafka in, LogBus files out.

- A corpus puts events on both sides of every rule's limit into two apps:
  one with the shipped settings (conf/settings/*.24.json: every break
  refused), one with the same settings choosing every fix of sink.ta.rules.FIXES
  (the fixed value written as TA takes it, counted per rule in ``mtga status``).
  Every event is found once: a line (by its #uuid) or a failure-queue entry
  with the rule's reason code.
- The type guard's learned types survive a restart; ``mtga schema`` lists them
  from the daemon and from the store; ``mtga schema forget`` lets the next value
  teach again, daemon running or stopped.
- Two worker processes: the first value in Kafka order decides a property's
  type, whichever worker's chunk it is in.

The same rules without a broker: tests/unit/sink/ta/test_rules.py."""


from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from sink.ta.rules import FIXES
from support.cli import run_cli
from support.mtga import Mtga, failure_entries, output_lines, produce, uuid_counts, uuid_of, wait_for, write_conf
from support.ta_corpus import (DAY, DROP, SPLIT_N, Want, at8, fixed, mtga_json, ok, refused, shipped_settings,
                               split_payloads, status)
from support.ta_rules import violations

pytestmark = pytest.mark.kafka

TOP_KEYS = ["#type", "#event_name", "#time", "#account_id", "#distinct_id", "#ip", "#uuid", "properties"]



YEAR3 = 3 * 365 * 86400

































@dataclass
class Ev:
    name: str
    logs: dict  # over the base fields (None: leave the base field out)
    plain: Want  # in the app with the shipped settings
    fixing: Optional[Want] = None  # in the app with every fix (None: as in the plain app)
    log_name: str = "log_item"



def corpus(now: int) -> list[Ev]:
    """Events on both sides of each rule's limit, in Kafka order (the type guard
    goes by it)."""
    obj100 = {f"k{i}": i for i in range(100)}
    group500 = [{"i": i} for i in range(500)]
    return [
        # ---- top-level and reserved fields: mtga writes them; an event cannot
        Ev("plain event", {}, ok()),
        Ev("a property named properties", {"properties": 1}, ok()),
        Ev("#uuid among the logs", {"#uuid": "x"}, refused("preset_property", "'#uuid'"),
           fixed("preset_property", {"#uuid": DROP})),
        Ev("#time among the logs", {"#time": "2020-01-01 00:00:00"}, refused("preset_property", "'#time'"),
           fixed("preset_property", {"#time": DROP})),
        Ev("#account_id among the logs", {"#account_id": "someone"}, refused("preset_property", "'#account_id'"),
           fixed("preset_property", {"#account_id": DROP})),
        # ---- event and property names: ^[a-zA-Z][a-zA-Z0-9_]{0,49}$
        Ev("event name of 50 characters", {}, ok(), log_name="e" * 48),
        Ev("event name of 51 characters", {}, refused("event_name", "t_" + "e" * 49), log_name="e" * 49),
        Ev("property name of 50 characters", {"p" * 50: 1}, ok()),
        Ev("property name of 51 characters", {"p" * 51: 1}, refused("property_name", "p" * 51)),
        Ev("property name ending in a newline", {"pname\n": 1}, refused("property_name", "'pname\\n'")),
        Ev("sub-property name of 50 characters", {"o50": {"q" * 50: 1}}, ok()),
        Ev("sub-property name of 51 characters", {"o51": {"q" * 51: 1}}, refused("property_name", "q" * 51)),
        # ---- names without case
        Ev("amount and Amount in one event", {"amount": 1, "Amount": 2},
           refused("duplicate_property", "'amount' and 'Amount'")),
        Ev("amount alone", {"amount": 3}, ok()),
        Ev("Amount alone, a lossless text: the type learned from amount", {"Amount": "4"}, ok({"Amount": 4})),
        Ev("AMOUNT a lossy text", {"AMOUNT": "four"}, refused("type_conflict", "'AMOUNT' is a number")),
        Ev("a and A in one object", {"oc": {"a": 1, "A": 2}}, refused("duplicate_property", "'a' and 'A'")),
        # ---- '#' properties: only TA's presets
        Ev("#os (a preset)", {"#os": "android"}, ok()),
        Ev("#custom", {"#custom": 1}, refused("preset_property", "'#custom'"),
           fixed("preset_property", {"#custom": DROP})),
        # ---- text up to 2048 bytes
        Ev("text of 2048 bytes", {"txt": "a" * 2048}, ok()),
        Ev("text of 2049 bytes", {"txt": "a" * 2049}, refused("string_too_long", "'txt' is 2049 bytes"),
           fixed("string_too_long", {"txt": "a" * 2048})),
        Ev("682 three-byte characters (2046 bytes)", {"txt": "道" * 682}, ok()),
        Ev("683 three-byte characters (2049 bytes)", {"txt": "道" * 683},
           refused("string_too_long", "'txt' is 2049 bytes"), fixed("string_too_long", {"txt": "道" * 682})),
        Ev("512 four-byte characters (2048 bytes)", {"txt": "😀" * 512}, ok()),
        Ev("513 four-byte characters (2052 bytes)", {"txt": "😀" * 513},
           refused("string_too_long", "'txt' is 2052 bytes"), fixed("string_too_long", {"txt": "😀" * 512})),
        # ---- numbers within +-9E15
        Ev("9E15", {"num": 9 * 10**15}, ok()),
        Ev("-9E15", {"num": -9 * 10**15}, ok()),
        Ev("9E15 as a float", {"num": 9e15}, ok()),
        # the fix writes the number as text, which a number property does not take
        Ev("9E15+1", {"num": 9 * 10**15 + 1}, refused("number_out_of_range", "'num' = 9000000000000001"),
           refused("type_conflict", "'num' is a number")),
        Ev("-9E15-1", {"num": -9 * 10**15 - 1}, refused("number_out_of_range", "'num' = -9000000000000001"),
           refused("type_conflict", "'num' is a number")),
        Ev("9E15+1 as a float", {"num": 9000000000000001.0}, refused("number_out_of_range", "'num'"),
           refused("type_conflict", "'num' is a number")),
        Ev("9E15+1 as the first value", {"numx": 9 * 10**15 + 1}, refused("number_out_of_range", "'numx'"),
           fixed("number_out_of_range", {"numx": "9000000000000001"})),
        Ev("a number after it", {"numx": 12}, ok(), ok({"numx": "12"})),
        Ev("1.5E16 as the first value", {"numf": 1.5e16}, refused("number_out_of_range", "'numf'"),
           fixed("number_out_of_range", {"numf": "1.5e+16"})),
        # ---- lists: up to 500 elements of up to 255 bytes
        Ev("list of 500", {"lst": ["x"] * 500}, ok()),
        Ev("list of 501", {"lst": ["x"] * 501}, refused("list_too_long", "'lst' has 501 elements"),
           fixed("list_too_long", {"lst": ["x"] * 500})),
        Ev("list element of 255 bytes", {"lst": ["y" * 255]}, ok()),
        Ev("list element of 256 bytes", {"lst": ["y" * 256]}, refused("list_item_too_long", "'lst'[0] is 256 bytes"),
           fixed("list_item_too_long", {"lst": ["y" * 255]})),
        Ev("list element of 85 three-byte characters", {"lst": ["a", "道" * 85]}, ok()),
        Ev("list element of 86 three-byte characters", {"lst": ["a", "道" * 86]},
           refused("list_item_too_long", "'lst'[1] is 258 bytes"),
           fixed("list_item_too_long", {"lst": ["a", "道" * 85]})),
        Ev("list of 501 elements of 300 bytes", {"lst": ["z" * 300] * 501}, refused("list_too_long"),
           fixed(["list_too_long", "list_item_too_long"], {"lst": ["z" * 255] * 500})),
        # ---- objects: up to 100 sub-properties, nothing nested
        Ev("object of 100 sub-properties", {"obj": obj100}, ok()),
        Ev("object of 101 sub-properties", {"obj": dict(obj100, k100=100)},
           refused("object_too_large", "'obj' has 101 sub-properties")),
        Ev("object inside an object", {"objn": {"a": {"b": 1}}}, refused("object_nested", "'objn'.a"),
           fixed("object_nested", {"objn": {"a": '{"b":1}'}})),
        Ev("object group inside an object", {"objn": {"a": [{"b": 1}]}}, refused("object_nested", "'objn'.a"),
           fixed("object_nested", {"objn": {"a": '[{"b":1}]'}})),
        # ---- object groups: up to 500 objects
        Ev("object group of 500", {"grp": group500}, ok()),
        Ev("object group of 501", {"grp": group500 + [{"i": 500}]},
           refused("object_group_too_long", "'grp' holds 501 objects")),
        Ev("object inside an object of a group", {"grp": [{"i": 1, "sub": {"x": 1}}]},
           refused("object_nested", "'grp'[0].sub"), fixed("object_nested", {"grp": [{"i": 1, "sub": '{"x":1}'}]})),
        # ---- #account_id / #distinct_id: up to 128 characters, one of them not empty
        Ev("#account_id of 128 characters", {"role_id": "i" * 128}, ok()),
        Ev("#account_id of 129 characters", {"role_id": "i" * 129}, refused("id_too_long", "129 characters")),
        Ev("#account_id of 128 three-byte characters", {"role_id": "道" * 128}, ok()),
        Ev("#account_id of 129 three-byte characters", {"role_id": "道" * 129}, refused("id_too_long", "'role_id'")),
        Ev("#distinct_id of 128 characters", {"account_name": "d" * 128}, ok(), log_name="log_login"),
        Ev("#distinct_id of 129 characters", {"account_name": "d" * 129},
           refused("id_too_long", "'account_name' is 129 characters"), log_name="log_login"),
        Ev("#account_id empty, #distinct_id given", {"role_id": "", "account_name": "acc1"}, ok(),
           log_name="log_login"),
        Ev("#account_id and #distinct_id empty", {"role_id": "", "account_name": ""}, refused("identity"),
           log_name="log_login"),
        Ev("#account_id empty, no #distinct_id", {"role_id": ""}, refused("identity", "(field 'role_id')")),
        # ---- #time: from 3 years back to 3 days ahead
        Ev("#time 3 years minus 2 days back", {"mtime": now - YEAR3 + 2 * DAY}, ok()),
        Ev("#time 3 years plus 2 days back", {"mtime": now - YEAR3 - 2 * DAY},
           refused("time_out_of_range", "days in the past"), fixed("time_out_of_range", now_time=True)),
        Ev("#time 2 days ahead", {"mtime": now + 2 * DAY}, ok()),
        Ev("#time 4 days ahead", {"mtime": now + 4 * DAY}, refused("time_out_of_range", "days in the future"),
           fixed("time_out_of_range", now_time=True)),
        # ---- the type guard: the first value decides, a lossless one converts, a lossy one is refused
        Ev("lvl: a number first", {"lvl": 5}, ok()),
        Ev("lvl: '12'", {"lvl": "12"}, ok({"lvl": 12})),
        Ev("lvl: '1.5'", {"lvl": "1.5"}, ok({"lvl": 1.5})),
        Ev("lvl: 'twelve'", {"lvl": "twelve"}, refused("type_conflict", "'lvl' is a number")),
        Ev("lvl: a boolean", {"lvl": True}, refused("type_conflict", "'lvl' is a number")),
        Ev("tag: a text first", {"tag": "abc"}, ok()),
        Ev("tag: 7", {"tag": 7}, ok({"tag": "7"})),
        Ev("tag: true", {"tag": True}, ok({"tag": "true"})),
        Ev("tag: a list", {"tag": ["a"]}, refused("type_conflict", "'tag' is a string")),
        Ev("on: a boolean first", {"on": True}, ok()),
        Ev("on: 'false'", {"on": "false"}, ok({"on": False})),
        Ev("on: 'no'", {"on": "no"}, refused("type_conflict", "'on' is a boolean")),
        Ev("at: a time first", {"at": "2026-01-02 03:04:05"}, ok()),
        Ev("at: a time and a newline", {"at": "2026-01-02 03:04:05\n"}, refused("type_conflict", "'at' is a time")),
        Ev("at: a text", {"at": "soon"}, refused("type_conflict", "'at' is a time")),
        Ev("note: a text first", {"note": "hello"}, ok()),
        Ev("note: a time (a text too)", {"note": "2026-01-02 03:04:05"}, ok()),
    ]



FILLER = 150  # plain events before and after the corpus: batches big enough for both worker processes



def schema_rows(conf: Path, app: str) -> tuple[dict, str]:
    """``mtga schema --json --app APP`` -> ({property: type}, stderr); all rows learned."""
    rc, res, err = mtga_json("schema", "-c", str(conf), "--app", app)
    assert rc == 0 and isinstance(res, dict), err
    rows = res["properties"]
    assert all(r["app"] == app and r["table"] == "event" and r["source"] == "learned" for r in rows), rows
    assert res["caps"] == [{"app": app, "events": [1 if rows else 0, 500], "event_properties": [len(rows), 1000],
                            "user_properties": [0, 500]}], res["caps"]
    return {r["property"]: r["type"] for r in rows}, err









SPLIT_WANT = {"mix": {10: 5, 310: 7, 320: "'mix' is a number", 330: 8},  # a text: refused with these words
              "rev": {20: "abc", 305: "12", 315: "'rev' is a string", 325: "x"}}






def test_every_rule_on_both_sides_through_the_daemon(kafka, topic_factory, tmp_path):
    """Every rule of sink/ta/rules.py with events on both sides of its limit, in an app
    with the shipped settings (what breaks a rule is refused with its code) and
    in one choosing every fix (what a fix applies to is written fixed, and
    counted per rule in ``mtga status``). Every event is found exactly once, as a
    line or as a failure-queue entry; every line has mtga's top-level fields and
    passes ``mtga check-output``."""
    plain, fixing = "61", "62"
    now = int(time.time())
    evs = corpus(now)
    assert len({e.name for e in evs}) == len(evs)
    base = {"role_id": "r1", "mtime": now - 3600, "ip": "10.0.0.1"}
    shipped_settings(tmp_path / "settings", plain, fixing)
    topic = topic_factory(partitions=1)  # one partition: Kafka order is the order below

    # (app, event, logs) in Kafka order; event None: a filler
    sent: list = []
    for i in range(FILLER):
        sent.append((plain if i % 2 else fixing, None, dict(base, n=i)))
    for e in evs:
        logs = {k: v for k, v in dict(base, **e.logs).items() if v is not None}
        sent += [(plain, e, logs), (fixing, e, logs)]
    for i in range(FILLER, 2 * FILLER):
        sent.append((plain if i % 2 else fixing, None, dict(base, n=i)))
    payloads = [json.dumps({"headers": {"app_id": int(a), "log_name": e.log_name if e else "log_item"},
                            "logs": logs}, ensure_ascii=False).encode() for a, e, logs in sent]
    t0 = int(time.time())
    where = produce(kafka, topic, payloads)

    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", workers=2, checkpoint={"interval_s": 1},
                      retry={"initial_backoff_s": 0.5, "max_backoff_s": 1})
    m = Mtga(conf).start()
    try:
        wait_for(lambda: status(conf).get("consumed") == len(sent), 60, "every event consumed", every=0.3)
        st = status(conf)
        assert st["written"] + st["failed"] == len(sent) and st["filtered"] == 0, st
        assert st["workers"] == 2, st
        # every refused event is retried (and refused again) before the last events come
        wait_for(lambda: all(x.attempts >= 1 for x in failure_entries(tmp_path / "state")), 30,
                 "every failure retried once", every=0.3)
        tail = [json.dumps({"headers": {"app_id": int(a), "log_name": "log_item"}, "logs": dict(base, n=-1)}).encode()
                for a in (plain, fixing)]
        where += produce(kafka, topic, tail)
        payloads += tail
        sent += [(plain, None, dict(base, n=-1)), (fixing, None, dict(base, n=-1))]
        wait_for(lambda: (lambda s: s.get("written", 0) + s.get("failed", 0))(status(conf)) == len(sent), 30,
                 "the last two events")
        st = status(conf)
    finally:
        rc = m.term()
    t1 = int(time.time())
    log = (tmp_path / "mtga.log").read_text() + m.output()
    assert rc == 0 and "Traceback" not in log, log[-3000:]

    # ---- every event found exactly once, as expected
    lines = output_lines(tmp_path / "out")
    by_uuid: dict = {}
    for ln in lines:
        d = json.loads(ln)
        by_uuid.setdefault(d["#uuid"], []).append(d)
    entries = failure_entries(tmp_path / "state")
    by_pos: dict = {}
    for x in entries:
        by_pos.setdefault((x.topic, x.partition, x.offset), []).append(x)
    problems = []
    want_fixed: Counter = Counter()
    n_ok = n_refused = 0
    for (app, e, logs), (p, o), payload in zip(sent, where, payloads):
        got_lines = by_uuid.pop(uuid_of(topic, p, o), [])
        got_fails = by_pos.pop((topic, p, o), [])
        w = Want("ok") if e is None else (e.fixing if app == fixing and e.fixing is not None else e.plain)
        name = f"app {app}: {e.name if e else 'filler'}"
        if w.kind == "refused":
            n_refused += 1
            if got_lines or len(got_fails) != 1:
                problems.append(f"{name}: expected refused {w.code}, got {len(got_lines)} line(s), "
                                f"{[f.reason[:150] for f in got_fails]}")
            elif got_fails[0].code != w.code or w.words not in got_fails[0].reason:
                problems.append(f"{name}: expected {w.code} ({w.words!r}), got {got_fails[0].reason[:300]}")
            elif got_fails[0].payload != payload:
                problems.append(f"{name}: the failure queue holds another payload")
            continue
        n_ok += 1
        want_fixed.update(w.fixed)
        if got_fails or len(got_lines) != 1:
            problems.append(f"{name}: expected one line, got {len(got_lines)} line(s), "
                            f"{[f.reason[:150] for f in got_fails]}")
            continue
        d = got_lines[0]
        props = dict(logs)
        for k, v in w.props.items():
            if v is DROP:
                props.pop(k)
            else:
                props[k] = v
        login = e is not None and e.log_name == "log_login"
        want = {"#type": "track", "#event_name": "t_" + (e.log_name if e else "log_item"),
                "#account_id": logs["role_id"], "#distinct_id": logs["account_name"] if login else "",
                "#ip": logs["ip"], "#uuid": uuid_of(topic, p, o), "properties": props}
        want = {k: v for k, v in want.items() if v != ""}  # an empty id or #ip is left out
        if list(d) != [k for k in TOP_KEYS if k in want or k == "#time"]:
            problems.append(f"{name}: top-level keys {list(d)}")
        if {k: d.get(k) for k in want} != want:
            problems.append(f"{name}: {json.dumps(d, ensure_ascii=False)[:400]}")
        if w.now_time:
            if not at8(t0) <= d["#time"] <= at8(t1):
                problems.append(f"{name}: #time {d['#time']} is not the processing time")
        elif d["#time"] != at8(logs["mtime"]):
            problems.append(f"{name}: #time {d['#time']}, expected {at8(logs['mtime'])}")
    assert not problems, "\n".join(problems)
    assert not by_uuid and not by_pos, "lines or failures of no event sent"
    assert len(lines) == n_ok and len(entries) == n_refused
    # each refused at once (none first refused, then written by a retry), and refused again on retry
    assert st["written"] == n_ok and st["failed"] == n_refused and st["retried_ok"] == 0, st

    # ---- both sides of every rule, in both apps; every fix shown and counted as often as it was applied
    refused_codes = {e.plain.code for e in evs if e.plain.kind == "refused"}
    assert refused_codes >= {"event_name", "property_name", "duplicate_property", "preset_property",
                             "string_too_long", "number_out_of_range", "list_too_long", "list_item_too_long",
                             "object_too_large", "object_nested", "object_group_too_long", "id_too_long", "identity",
                             "time_out_of_range", "type_conflict"}
    assert set(want_fixed) == set(FIXES)
    assert st["fixed"] == dict(want_fixed), st["fixed"]

    # ---- every line as TA takes it, checked by a separate process
    r = run_cli("mtga", "check-output", str(tmp_path / "out"), "--json")
    assert r.returncode == 0, r.stdout[-3000:]
    rep = json.loads(r.stdout)
    assert rep["lines"] == n_ok and rep["lines_breaking_rules"] == 0 and rep["rules"] == {}, rep
    assert not [v for ln in lines if (v := violations(ln))]



def test_learned_types_survive_a_restart_and_forget_teaches_again(kafka, topic_factory, tmp_path):
    """score is a number from its first value; after SIGTERM and a start, a
    lossy text is still refused (type_conflict) and a lossless one converted.
    ``mtga schema --json`` lists the learned type from the daemon (control
    socket) and from the store. ``mtga schema forget`` (daemon running, then
    stopped) lets the next value teach a new type. Each refused event is retried
    once (refused again) before anything else happens, and not again during the
    test: a retry after a forget would write it."""
    app = "71"
    shipped_settings(tmp_path / "settings", app, "72")
    topic = topic_factory(partitions=1)
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", workers=1, checkpoint={"interval_s": 1},
                      retry={"initial_backoff_s": 3600, "max_backoff_s": 3600})
    now = int(time.time())
    sent: list = []  # (score, (partition, offset))

    def send(*scores) -> list:
        payloads = [json.dumps({"headers": {"app_id": int(app), "log_name": "log_item"},
                                "logs": {"role_id": "r1", "mtime": now, "score": s}}).encode() for s in scores]
        where = produce(kafka, topic, payloads)
        sent.extend(zip(scores, where))
        return [uuid_of(topic, p, o) for p, o in where]

    def written(uuids) -> bool:
        c = uuid_counts(tmp_path / "out", running=True)
        return all(c[u] == 1 for u in uuids)

    def queued(n: int) -> bool:
        """n refused events in the failure queue, each retried once (and refused again)."""
        es = failure_entries(tmp_path / "state")
        return len(es) == n and all(x.attempts >= 1 for x in es)

    base_types = {"role_id": "string", "mtime": "number"}
    m = Mtga(conf).start()
    try:
        first = send(5)
        wait_for(lambda: written(first), 30, "the first score written")
        types, err = schema_rows(conf, app)
        assert types == dict(base_types, score="number") and "not running" not in err, (types, err)
    finally:
        assert m.term() == 0, m.output()
    types, err = schema_rows(conf, app)
    assert types == dict(base_types, score="number") and "mtga is not running: read from" in err, (types, err)

    # started again: the type came back from the store
    m = Mtga(conf).start()
    try:
        later = send("high", "7")
        wait_for(lambda: written(later[1:]) and queued(1), 30, "'7' written and 'high' refused")
        # forgotten while running: the next value is a text and teaches "string"
        r = run_cli("mtga", "schema", "forget", app, "SCORE", "-c", str(conf))
        assert r.returncode == 0 and f"forgot the type of 'SCORE' in app {app}" in r.stdout, r.stdout + r.stderr
        types, err = schema_rows(conf, app)
        assert types == base_types and "not running" not in err, (types, err)
        texts = send("abc", 9)
        wait_for(lambda: written(texts), 30, "'abc' and 9 written")
        types, _ = schema_rows(conf, app)
        assert types == dict(base_types, score="string"), types
    finally:
        assert m.term() == 0, m.output()

    # forgotten while stopped (in the store): the next value is a boolean
    r = run_cli("mtga", "schema", "forget", app, "score", "-c", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr
    assert schema_rows(conf, app)[0] == base_types
    r = run_cli("mtga", "schema", "forget", app, "score", "-c", str(conf))
    assert r.returncode != 0 and f"app {app} has no learned type for 'score'" in r.stderr, r.stdout + r.stderr
    m = Mtga(conf).start()
    try:
        booleans = send(True, "false")
        wait_for(lambda: written(booleans), 30, "the booleans written")
        send("maybe", 4)
        wait_for(lambda: queued(3), 30, "'maybe' and 4 refused")
        types, _ = schema_rows(conf, app)
        assert types == dict(base_types, score="boolean"), types
    finally:
        assert m.term() == 0, m.output()

    # every event once: written with the value its type took, or refused as a type conflict
    want = {5: 5, "7": 7, "abc": "abc", 9: "9", True: True, "false": False}
    refused_scores = {"high": "number", "maybe": "boolean", 4: "boolean"}
    lines = {json.loads(ln)["#uuid"]: json.loads(ln) for ln in output_lines(tmp_path / "out")}
    assert len(lines) == len(output_lines(tmp_path / "out")) == len(want)
    entries = {(x.topic, x.partition, x.offset): x for x in failure_entries(tmp_path / "state")}
    assert len(entries) == len(refused_scores)
    for score, (p, o) in sent:
        if score in refused_scores:
            x = entries[(topic, p, o)]
            assert x.code == "type_conflict" and f"'score' is a {refused_scores[score]} in app {app}" in x.reason, \
                x.reason
            assert uuid_of(topic, p, o) not in lines
        else:
            d = lines[uuid_of(topic, p, o)]
            assert d["properties"]["score"] == want[score] and type(d["properties"]["score"]) is type(want[score]), d
            assert (topic, p, o) not in entries
    assert len(sent) == len(want) + len(refused_scores)



def test_two_workers_the_first_value_in_kafka_order_decides(kafka, topic_factory, tmp_path):
    """600 events in one batch, cut into two chunks of 300 for two worker
    processes; mix is first a number in the first chunk and first a text in
    the second, rev the other way round. The first in Kafka order decides:
    the second chunk's values are converted or refused as if one process had
    taken the batch. Every event is written once or refused once."""
    app = "81"
    shipped_settings(tmp_path / "settings", app, "82")
    topic = topic_factory(partitions=1)
    payloads = split_payloads(app, int(time.time()))
    where = produce(kafka, topic, payloads)
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", workers=2, checkpoint={"interval_s": 1})
    m = Mtga(conf).start()
    try:
        wait_for(lambda: status(conf).get("consumed") == SPLIT_N, 60, "the 600 events consumed", every=0.2)
        st = status(conf)
        assert (st["workers"], st["written"], st["failed"]) == (2, SPLIT_N - 2, 2), st
    finally:
        assert m.term() == 0, m.output()

    lines = {}
    for ln in output_lines(tmp_path / "out"):
        d = json.loads(ln)
        assert d["#uuid"] not in lines
        lines[d["#uuid"]] = d["properties"]
    entries = {(x.topic, x.partition, x.offset): x for x in failure_entries(tmp_path / "state")}
    assert len(lines) == SPLIT_N - 2 and len(entries) == 2
    for i, (p, o) in enumerate(where):
        u = uuid_of(topic, p, o)
        wants = {k: v[i] for k, v in SPLIT_WANT.items() if i in v}
        if any(type(w) is str and w.startswith("'") for w in wants.values()):
            x = entries.pop((topic, p, o))
            assert u not in lines and x.code == "type_conflict" and list(wants.values())[0] in x.reason, x.reason
            continue
        props = lines.pop(u)
        assert props == dict({"role_id": f"r{i}", "mtime": props["mtime"], f"u{i}": i}, **wants), (i, props)
        assert all(type(props[k]) is type(w) for k, w in wants.items()), (i, props)
    assert not lines and not entries
    types, _ = schema_rows(conf, app)
    assert (types["mix"], types["rev"]) == ("number", "string")
    log = (tmp_path / "mtga.log").read_text()
    # each event written teaches one property of its own: one batch taught them all (and mix, rev, role_id,
    # mtime, and the event name counted against the cap), so the batch held the 600 events, and two live
    # workers took it in two chunks of 300
    learned = re.findall(r"learned the type of (\d+) propert", log)
    assert learned == [str(SPLIT_N - 2 + 5)], learned
