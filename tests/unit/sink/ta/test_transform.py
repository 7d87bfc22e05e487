"""The pure transform, without Kafka: forms, settings rules, ThinkingData's
rules, failures with reasons, filters, the fast path against the exact path."""

import json
import time
import uuid as uuidlib

import pytest

from mulog import sample
from sink.ta.batch import Item
from sink.ta.settings import SettingsStore
from sink.ta.transform import FAILED, FILTERED, OK
from sink.ta.transform import Transformer as _Transformer
from sink.ta.uuids import UuidMaker, event_uuid
from support.cli import REPO
from support.ta_rules import violations

BASE_META = {
    "account_id": "role_id",
    "ip": "ip",
    "time": {"field": "mtime", "unit": "s", "time_zone": "+08:00"},
}


def make_settings(tmp_path, meta=None, flt=None, app="24"):
    d = tmp_path / "settings"
    d.mkdir(exist_ok=True)
    (d / f"metadata.{app}.json").write_text(json.dumps(meta if meta is not None else BASE_META))
    if flt is not None:
        (d / f"filter.{app}.json").write_text(json.dumps(flt))
    return SettingsStore(d, check_interval=0)


def run(tr, logs, headers=None, envelope=True, app=24, log_name="log_item", offset=7):
    if envelope:
        payload = json.dumps({"headers": {"app_id": app, "log_name": log_name}, "logs": logs}).encode()
    else:
        payload = json.dumps(logs).encode() if not isinstance(logs, bytes) else logs
        headers = headers if headers is not None else [("app_id", str(app).encode()), ("log_name", log_name.encode())]
    return tr(payload, headers, "mulog_clean_24", 2, offset)


SPEC_NOW = 1608184243.0  # the SPEC example's time: the transform runs as on that day


def Transformer(lookup, **kw):
    kw.setdefault("clock", lambda: SPEC_NOW)
    return _Transformer(lookup, **kw)


SPEC_LOGS = {"account_name": "4866014107", "action": 2146, "agent_id": 36, "amount": 1, "item_id": 31103003,
             "mtime": 1608184243, "role_id": 6001310009300, "role_level": 800, "server_id": 5001,
             "via": "36|3100", "ip": ""}


def test_spec_example(tmp_path):
    tr = Transformer(make_settings(tmp_path).get)
    kind, app, line = run(tr, SPEC_LOGS)
    assert (kind, app) == (OK, "24")
    d = json.loads(line)
    assert d["#type"] == "track"
    assert d["#event_name"] == "t_log_item"
    assert d["#time"] == "2020-12-17 13:50:43"
    assert d["#account_id"] == "6001310009300"
    assert list(d) == ["#type", "#event_name", "#time", "#account_id", "#uuid", "properties"]  # no empty id, no #ip
    assert d["properties"] == SPEC_LOGS
    assert uuidlib.UUID(d["#uuid"])
    assert violations(line, SPEC_NOW) == []


def test_bare_form_with_headers_equals_envelope(tmp_path):
    tr = Transformer(make_settings(tmp_path).get)
    a = run(tr, SPEC_LOGS)
    b = run(tr, SPEC_LOGS, envelope=False)
    assert a == b


def test_uuid_is_deterministic_and_distinct(tmp_path):
    tr = Transformer(make_settings(tmp_path).get)
    u = lambda off: json.loads(run(tr, SPEC_LOGS, offset=off)[2])["#uuid"]
    assert u(1) == u(1)
    assert len({u(i) for i in range(1000)}) == 1000
    # shipper lines carry their file identity and byte offset: a line re-sent
    # after a shipper crash (new Kafka offset) keeps its #uuid
    hdr = [("app_id", b"24"), ("log_name", b"log_item"), ("host", b"h"), ("file", b"1:2:3"), ("offset", b"99")]
    x = json.loads(run(tr, SPEC_LOGS, headers=hdr, envelope=False, offset=5)[2])["#uuid"]
    y = json.loads(run(tr, SPEC_LOGS, headers=hdr, envelope=False, offset=6000)[2])["#uuid"]
    assert x == y
    # a different line of the same file, or the same offset in another partition: another UUID
    z = json.loads(run(tr, SPEC_LOGS, headers=hdr[:-1] + [("offset", b"100")], envelope=False)[2])["#uuid"]
    assert z != x
    assert event_uuid("t", 0, 5) != event_uuid("t", 1, 5) != event_uuid("u", 0, 5)
    for u in (x, event_uuid("t", 0, 2**40)):
        v = uuidlib.UUID(u)
        assert str(v) == u and v.version == 4 and v.variant == uuidlib.RFC_4122
    mk = UuidMaker()
    assert len({mk(("s", 0), n) for n in range(100_000)}) == 100_000


def test_uuid_can_be_turned_off(tmp_path):
    tr = Transformer(make_settings(tmp_path).get, uuid=False)
    assert "#uuid" not in json.loads(run(tr, SPEC_LOGS)[2])


@pytest.mark.parametrize("unit, value, zone, expected", [
    ("s", 1608184243, "+08:00", "2020-12-17 13:50:43"),
    ("s", 1608184243, "UTC", "2020-12-17 05:50:43"),
    ("s", 1608184243, "Asia/Shanghai", "2020-12-17 13:50:43"),
    ("s", "1608184243", "+08:00", "2020-12-17 13:50:43"),
    ("s", 1608184243.5, "+08:00", "2020-12-17 13:50:43.500"),
    ("ms", 1608184243123, "+08:00", "2020-12-17 13:50:43.123"),
    ("ms", 1608184243000, "-05:00", "2020-12-17 00:50:43.000"),
    ("string", "2020-12-17 13:50:43", "+08:00", "2020-12-17 13:50:43"),
    ("string", "2020-12-17 13:50:43.007", "+08:00", "2020-12-17 13:50:43.007"),
])
def test_time_units_and_zones(tmp_path, unit, value, zone, expected):
    meta = dict(BASE_META, time={"field": "t", "unit": unit, "time_zone": zone})
    tr = Transformer(make_settings(tmp_path, meta).get)
    kind, _, line = run(tr, {"role_id": 1, "t": value})
    assert kind == OK, line
    assert json.loads(line)["#time"] == expected


def test_missing_time_field_falls_back_to_processing_time(tmp_path):
    tr = Transformer(make_settings(tmp_path).get, clock=lambda: 1608184243.9)
    kind, _, line = run(tr, {"role_id": 1})
    assert json.loads(line)["#time"] == "2020-12-17 13:50:43"


@pytest.mark.parametrize("unit, value, words", [
    ("s", "yesterday", "time: field 't'"),
    ("s", [1], "time: field 't'"),
    ("string", "17/12/2020", "is not 'YYYY-MM-DD HH:MM:SS[.mmm]'"),
    ("s", 10**20, "out of range"),
])
def test_unreadable_time_is_a_failure(tmp_path, unit, value, words):
    meta = dict(BASE_META, time={"field": "t", "unit": unit, "time_zone": "+08:00"})
    tr = Transformer(make_settings(tmp_path, meta).get)
    kind, app, reason = run(tr, {"role_id": 1, "t": value})
    assert kind == FAILED and app == "24"
    assert reason.startswith("time: ") and words in reason


def test_event_name_rules(tmp_path):
    meta = dict(BASE_META, event_name={"prefix": "ev_", "names": {"log_pay": "payment"}},
                events={"log_login": {"event_name": "login", "account_id": None, "distinct_id": "account_name"}})
    tr = Transformer(make_settings(tmp_path, meta).get)
    name = lambda ln, logs=SPEC_LOGS: json.loads(run(tr, logs, log_name=ln)[2])
    assert name("log_item")["#event_name"] == "ev_log_item"
    assert name("log_pay")["#event_name"] == "payment"
    d = name("log_login")
    assert d["#event_name"] == "login" and "#account_id" not in d and d["#distinct_id"] == "4866014107"
    kind, _, reason = run(tr, SPEC_LOGS, log_name="bad-name")
    assert kind == FAILED and reason.startswith("event_name: 'ev_bad-name'")


def test_identity_rule(tmp_path):
    tr = Transformer(make_settings(tmp_path).get)
    kind, _, reason = run(tr, {"x": 1})
    assert kind == FAILED and reason.startswith("identity: ")
    kind, _, reason = run(tr, {"role_id": {"a": 1}})
    assert kind == FAILED and reason.startswith("identity: field 'role_id' is a dict")
    kind, _, line = run(tr, {"role_id": "abc"})
    assert kind == OK and json.loads(line)["#account_id"] == "abc"


ABSENT = object()


def test_empty_ids_and_ip_are_left_out_on_every_path(tmp_path):
    """#account_id, #distinct_id and #ip missing, null or "" are left out of
    the line (as ThinkingData's SDKs do), on the typed path (once the kinds are
    learned) as on the exact path; with both ids empty the event fails."""
    meta = dict(BASE_META, distinct_id="account_name")
    tr = Transformer(make_settings(tmp_path, meta).get)
    paths = {"_typed": 0, "_line": 0}
    for name in paths:
        def spy(*a, _f=getattr(tr, name), _n=name):
            paths[_n] += 1
            return _f(*a)
        setattr(tr, name, spy)
    values = [ABSENT, None, "", "v1"]
    checked = 0
    for _ in range(2):  # the first round teaches the guard the kinds: the second takes the typed path
        for acc in values:
            for did in values:
                for ip in values:
                    logs = {"n": 1, "mtime": int(SPEC_NOW)}
                    for k, v in (("role_id", acc), ("account_name", did), ("ip", ip)):
                        if v is not ABSENT:
                            logs[k] = v
                    kind, _, line = run(tr, logs, offset=7 + checked)
                    checked += 1
                    if acc in values[:3] and did in values[:3]:
                        assert kind == FAILED and line.startswith("identity: "), (logs, line)
                        continue
                    assert kind == OK, (logs, line)
                    d = json.loads(line)
                    want = {k: "v1" for k, v in (("#account_id", acc), ("#distinct_id", did), ("#ip", ip))
                            if v == "v1"}
                    assert {k: d[k] for k in ("#account_id", "#distinct_id", "#ip") if k in d} == want, line
                    assert violations(line, SPEC_NOW) == []
    assert checked == 128 and paths["_typed"] >= 20 and paths["_line"] >= 64, paths


def test_coercions_renames_drops(tmp_path):
    meta = dict(BASE_META, properties={"types": {"role_id": "string", "amount": "int", "flag": "bool",
                                                 "price": "number", "extra": "string"},
                                       "rename": {"via": "via_path"}, "drop": ["ip"]})
    tr = Transformer(make_settings(tmp_path, meta).get)
    logs = dict(SPEC_LOGS, amount="3", flag="true", price="1.5", extra={"a": [1, 2]})
    kind, _, line = run(tr, logs)
    assert kind == OK, line
    p = json.loads(line)["properties"]
    assert p["role_id"] == "6001310009300"
    assert p["amount"] == 3 and p["flag"] is True and p["price"] == 1.5
    assert p["extra"] == '{"a":[1,2]}'
    assert "via" not in p and p["via_path"] == "36|3100"
    assert "ip" not in p
    assert violations(line, SPEC_NOW) == []
    kind, _, reason = run(tr, dict(SPEC_LOGS, amount="many"))
    assert kind == FAILED and reason == "property_type: 'amount' = 'many' cannot be coerced to int"


@pytest.mark.parametrize("logs, code, words", [
    ({"role_id": 1, "bad-key": 1}, "property_name", "'bad-key'"),
    ({"role_id": 1, "1abc": 1}, "property_name", "'1abc'"),
    ({"role_id": 1, "k" * 51: 1}, "property_name", "breaks"),
    ({"role_id": 1, "nested": {"a": {"b": 1}}}, "object_nested", "'nested'.a is an object inside an object"),
    ({"role_id": 1, "lst": [{"a": 1}, 2]}, "property_type", "list holding objects and other values"),
    ({"role_id": 1, "lst": [[1]]}, "property_type", "'lst' is a list holding a list"),
    ({"role_id": 1, "big": 2**70}, "number_out_of_range", "beyond plus or minus 9E15"),
])
def test_property_rules(tmp_path, logs, code, words):
    tr = Transformer(make_settings(tmp_path).get)
    kind, app, reason = run(tr, logs)
    assert kind == FAILED and app == "24"
    assert reason.startswith(code + ": ") and words in reason


def test_nulls_are_left_out(tmp_path):
    tr = Transformer(make_settings(tmp_path).get)
    kind, _, line = run(tr, {"role_id": 1, "gone": None, "kept": "x"})
    assert json.loads(line)["properties"] == {"role_id": 1, "kept": "x"}


@pytest.mark.parametrize("payload, headers, code", [
    (b"{not json", None, "invalid_json"),
    (b'{"headers": {"app_id": 24, "log_name": "x"}, "logs": {"a": 1}', None, "invalid_json"),
    (b"[1, 2]", None, "not_object"),
    (b"42", [("app_id", b"24"), ("log_name", b"x")], "not_object"),
    (b'{"role_id": 1}', None, "no_app_id"),
    (b'{"role_id": 1}', [("app_id", b"24")], "no_log_name"),
    (b'{"role_id": 1}', [("app_id", b"../../etc"), ("log_name", b"x")], "bad_app_id"),
    (b'{"headers": {"app_id": "-1", "log_name": "x"}, "logs": {}}', None, "bad_app_id"),
    (b'{"role_id": 1}', [("app_id", b"99"), ("log_name", b"x")], "no_settings"),
    (b'{"a": "\xff"}', [("app_id", b"24"), ("log_name", b"x")], "invalid_utf8"),
    (b'{"role_id": NaN}', [("app_id", b"24"), ("log_name", b"x")], "invalid_json"),
    (b"", [("app_id", b"24"), ("log_name", b"x")], "invalid_json"),
    # nesting beyond what the decoder can follow is a failure, not an exception out of the transform
    (b"[" * 100_000 + b"]" * 100_000, None, "invalid_json"),
    (b'{"role_id": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", [("app_id", b"24"), ("log_name", b"x")],
     "invalid_json"),
    (b'{"headers": {"app_id": 24, "log_name": "x"}, "logs": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001, None,
     "invalid_json"),
    # no headers, a first object that is no envelope, then more bytes: invalid JSON, not "a JSON null"
    (b'{"role_id": 1}{"role_id": 2}', None, "invalid_json"),
    (b'{"headers": {"app_id": 24, "log_name": "x"}, "logs": [1]}', None, "not_object"),
    (b'{"headers": {"app_id": 24, "log_name": "x"}, "logs": null}', None, "not_object"),
    (b'{"headers": {"log_name": "x"}, "logs": {"role_id": 1}}', None, "no_app_id"),
    (b'{"headers": {"app_id": null, "log_name": "x"}, "logs": {"role_id": 1}}', None, "no_app_id"),
    (b'{"headers": {"app_id": 24, "log_name": ""}, "logs": {"role_id": 1}}', None, "no_log_name"),
    (b'{"role_id": 1}', [("app_id", b"24"), ("log_name", b"")], "no_log_name"),
])
def test_bad_events_fail_with_a_named_reason(tmp_path, payload, headers, code):
    tr = Transformer(make_settings(tmp_path).get)
    r = tr(payload, headers, "t", 0, 0)
    assert r[0] == FAILED, r
    assert r[2].split(":", 1)[0] == code, r[2]


@pytest.mark.parametrize("payload, words", [
    (b'{"headers": {"app_id": 24, "log_name": "x"}, "logs": [1]}', "the envelope's logs is a JSON array"),
    (b'{"headers": [24], "logs": {"role_id": 1}}', "the envelope's headers is a JSON array"),
    (b'{"role_id": 1}{"role_id": 2}', "trailing characters"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    # the offset of the bad byte in the event, not in the string value that holds it
    (b'{"headers": {"app_id": 24, "log_name": "x"}, "logs": {"role_id": "caf\xe9"}}',
     "invalid_utf8: byte 69 of the event (b'\\xe9\"}}') is not UTF-8"),
])
def test_reasons_name_what_is_wrong(tmp_path, payload, words):
    tr = Transformer(make_settings(tmp_path).get)
    kind, _, reason = tr(payload, None, "t", 0, 0)
    assert kind == FAILED and words in reason, reason


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity", "1e400"])
def test_number_coercion_refuses_what_json_cannot_hold(tmp_path, value):
    meta = dict(BASE_META, properties={"types": {"price": "number"}})
    tr = Transformer(make_settings(tmp_path, meta).get)
    kind, _, reason = run(tr, {"role_id": 1, "price": value})
    assert kind == FAILED and reason == f"property_type: 'price' = {value!r} cannot be coerced to number"
    kind, _, line = run(tr, {"role_id": 1, "price": "1e3"})
    assert kind == OK and json.loads(line)["properties"]["price"] == 1000 and violations(line, SPEC_NOW) == []


@pytest.mark.parametrize("text, ok", [
    ("2020-12-17 13:50:43", True), ("2024-02-29 23:59:59.999", True), ("2020-12-31 00:00:00", True),
    ("2020-13-45 25:61:61", False), ("2020-00-10 10:00:00", False), ("2020-12-00 10:00:00", False),
    ("2020-12-17 24:00:00", False), ("2020-12-17 13:60:00", False), ("2023-02-29 10:00:00", False),
    ("2020-04-31 10:00:00", False),
])
def test_time_text_must_be_a_real_time(tmp_path, text, ok):
    import datetime as dt

    meta = dict(BASE_META, time={"field": "t", "unit": "string"})
    when = dt.datetime.fromisoformat(text[:19]).timestamp() if ok else SPEC_NOW  # within TA's window
    tr = Transformer(make_settings(tmp_path, meta).get, clock=lambda: when)
    kind, _, out = run(tr, {"role_id": 1, "t": text})
    if ok:
        assert kind == OK and json.loads(out)["#time"] == text
    else:
        assert kind == FAILED and out.startswith("time: field 't'"), out


def test_app_ids_equal_in_value_but_not_in_type_do_not_share_a_rule(tmp_path):
    """In one batch, a cached (24, log) rule must not serve app_id 24.0 or true; lists must not crash it."""
    tr = Transformer(make_settings(tmp_path).get)
    env = lambda app, ln="log_item": json.dumps({"headers": {"app_id": app, "log_name": ln}, "logs": SPEC_LOGS}).encode()
    out = tr.run_batch([Item(env(24), None, "t", 0, 0), Item(env(24.0), None, "t", 0, 1), Item(env(True), None, "t", 0, 2),
                        Item(env([24]), None, "t", 0, 3), Item(env(24, {"a": 1}), None, "t", 0, 4),
                        Item(env(24, ["log_item"]), None, "t", 0, 5), Item(env("24"), None, "t", 0, 6)])
    assert [(r[0], r[2].split(":")[0] if r[0] == FAILED else None) for r in out] == [
        (OK, None), (FAILED, "bad_app_id"), (FAILED, "bad_app_id"), (FAILED, "bad_app_id"),
        (FAILED, "no_log_name"), (FAILED, "no_log_name"), (OK, None)]


def test_bom_crlf_and_duplicate_keys(tmp_path):
    tr = Transformer(make_settings(tmp_path).get)
    h = [("app_id", b"24"), ("log_name", b"log_item")]
    kind, _, line = tr(b'\xef\xbb\xbf{"role_id": 5, "a": 1}\r', h, "t", 0, 0)
    assert kind == OK and json.loads(line)["properties"] == {"role_id": 5, "a": 1}
    kind, _, line = tr(b'{"role_id": 5, "a": 1, "a": 2}', h, "t", 0, 0)
    assert kind == OK and json.loads(line)["properties"] == {"role_id": 5, "a": 2}
    assert line.count(b'"a"') == 1


def test_filters(tmp_path):
    flt = {"keep": ["log_item", "log_pay"], "drop": ["log_pay"],
           "where": [{"field": "server_id", "in": [5001]}, {"field": "agent_id", "not_in": [0]},
                     {"field": "role_id", "exists": True}]}
    tr = Transformer(make_settings(tmp_path, flt=flt).get)
    assert run(tr, SPEC_LOGS)[0] == OK
    assert run(tr, SPEC_LOGS, log_name="log_pay")[0] == FILTERED
    assert run(tr, SPEC_LOGS, log_name="log_other")[0] == FILTERED
    assert run(tr, dict(SPEC_LOGS, server_id=5002))[0] == FILTERED
    assert run(tr, dict(SPEC_LOGS, agent_id=0))[0] == FILTERED
    logs = dict(SPEC_LOGS)
    del logs["role_id"]
    assert run(tr, logs)[0] == FILTERED  # filtered wins over the identity failure


def test_fast_path_output_equals_exact_path(tmp_path):
    """Every sample event: the spliced properties equal a full rebuild."""
    from collections import Counter

    from sink.ta.properties import build_properties
    from sink.ta.typeguard import TypeGuard

    store = make_settings(tmp_path)
    tr = Transformer(store.get, clock=time.time)
    rule = store.get("24").rule("log_item")
    guard = TypeGuard()
    for i, payload in enumerate(sample.envelopes(3000)):
        kind, _, line = tr(payload, None, "t", 0, i)
        assert kind == OK
        d = json.loads(line)
        logs = json.loads(payload)["logs"]
        assert d["properties"] == json.loads(build_properties(rule, logs, "24", guard, Counter(), []))
        assert violations(line) == []


def test_shipped_example_settings_transform_sample_events():
    tr = Transformer(SettingsStore(REPO / "conf" / "settings").get, clock=time.time)
    for i, payload in enumerate(sample.envelopes(600)):
        kind, app, line = tr(payload, None, "t", 0, i)
        assert kind in (OK, FILTERED), line
        if kind == OK:
            assert violations(line) == []


def test_an_unforeseen_error_fails_the_event_not_the_batch(tmp_path):
    store = make_settings(tmp_path)

    def lookup(app):
        if app == "25":
            raise ZeroDivisionError("a bug somewhere")
        return store.get(app)

    tr = Transformer(lookup)
    good = json.dumps({"headers": {"app_id": 24, "log_name": "log_item"}, "logs": SPEC_LOGS}).encode()
    bad = json.dumps({"headers": {"app_id": 25, "log_name": "log_item"}, "logs": SPEC_LOGS}).encode()
    res = tr.run_batch([Item(good, None, "t", 0, 0), Item(bad, None, "t", 0, 1), Item(good, None, "t", 0, 2)])
    assert [r[0] for r in res] == [OK, FAILED, OK]
    assert res[1][2] == "internal: ZeroDivisionError: a bug somewhere"
