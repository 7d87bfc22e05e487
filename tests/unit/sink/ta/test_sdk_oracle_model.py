"""ThinkingData's official Python SDK (strict mode) as the oracle of every
``#type`` mtga writes: first events (``track_first``), updatable events
(``track_update`` / ``track_overwrite``) and the user table (``user_set``,
``user_setOnce``, ``user_add``, ``user_append``, ``user_uniq_append``,
``user_unset``, ``user_del``). For each event, mtga's lines and the SDK's for
the same calls are the same JSON objects, line by line, but for the SDK's own
``#lib`` / ``#lib_version`` on track lines and ``#time``'s milliseconds; the
SDK's ``user_del`` takes no properties, so it cannot be given ``#time`` and
``#uuid``: those two are left out of that comparison.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import tgasdk  # the dev extra's thinkingdatasdk: the oracle (the programs never import it)
from support.ta_rules import violations
from support.ta_sdk import Capture

from sink.ta.settings import SettingsStore
from sink.ta.transform import FAILED, FILTERED, OK, Transformer
from sink.ta.uuids import parse_line

NOW = 1608184243
ZONE = dt.timezone(dt.timedelta(hours=8))
META = {
    "account_id": "role_id", "distinct_id": "account_name",
    "time": {"field": "mtime", "unit": "s", "time_zone": "+08:00"},
    "events": {
        "log_pay": {"user": {"add": {"total_pay": "pay", "pay_count": 1}, "set": {"vip": "vip"},
                             "set_once": {"first_pay_time": "pay_time"}}},
        "log_create": {"first_check_id": "role_key", "user": {"set_once": ["register_server"]}},
        "log_order": {"event_id": ["server", "order_id"]},
        "log_refund": {"event_id": "order_id", "update": "overwrite"},
        "log_level": {"track": False, "user": {"set": {"level": "lv"}, "append": {"titles": "titles"},
                                               "uniq_append": {"maps": "maps"}, "unset": ["temp_buff"]}},
        "log_delete": {"track": False, "delete_user": True},
    },
}
IDS = [("r-1", None), (None, "d-2"), ("r-3", "d-3"), ("6001310009300", "")]
EVENTS = [  # (log_name, fields), each given with every pair of IDS
    ("log_pay", {"pay": 6.5, "vip": 3, "pay_time": "2020-12-17 12:00:00", "server": 5001}),
    ("log_pay", {"pay": 30, "server": 5001}),
    ("log_create", {"register_server": 5001, "role_name": "小明", "role_key": 7001}),
    ("log_order", {"server": 5001, "order_id": "o-17", "state": "paid", "items": ["a", "b"]}),
    ("log_refund", {"order_id": "o-99", "state": "refunded"}),
    ("log_level", {"lv": 12, "titles": ["knight"], "maps": ["m1", "m2"]}),
    ("log_level", {"titles": ["duke", "earl"]}),
    ("log_delete", {"reason": "gdpr"}),
]


def sdk_lines(log_name: str, logs: dict, uuids: list) -> list[dict]:
    """The SDK's lines for the event, with mtga's #uuids (in line order) given to it."""
    cap = Capture()
    ta = tgasdk.TDAnalytics(cap, strict=True)
    acc = None if logs.get("role_id") in (None, "") else str(logs["role_id"])
    did = None if logs.get("account_name") in (None, "") else logs["account_name"]
    when = dt.datetime.fromtimestamp(logs["mtime"], ZONE).replace(tzinfo=None)
    props = {k: v for k, v in logs.items() if v is not None}
    uu = iter(uuids)
    meta = META["events"][log_name]

    def given(p):
        return dict(p, **{"#time": when, "#uuid": next(uu)})

    if meta.get("track", True):
        name = "t_" + log_name
        if "first_check_id" in meta:
            ta.track_first(did, acc, name, str(logs[meta["first_check_id"]]), given(props))
        elif "event_id" in meta:
            f = meta["event_id"]
            eid = "_".join(str(logs[x]) for x in f) if isinstance(f, list) else str(logs[f])
            call = ta.track_overwrite if meta.get("update") == "overwrite" else ta.track_update
            call(did, acc, name, eid, given(props))
        else:
            ta.track(did, acc, name, given(props))
    user = meta.get("user", {})
    for key, call in (("set", ta.user_set), ("set_once", ta.user_setOnce), ("add", ta.user_add),
                      ("append", ta.user_append), ("uniq_append", ta.user_uniq_append)):
        spec = user.get(key)
        if not spec:
            continue
        pairs = spec.items() if isinstance(spec, dict) else ((p, p) for p in spec)
        vals = {p: (logs[f] if isinstance(f, str) else f) for p, f in pairs if not isinstance(f, str) or f in logs}
        if vals:
            call(did, acc, given(vals))
    if user.get("unset"):
        ta.user_unset(did, acc, given({p: 0 for p in user["unset"]}))
    if meta.get("delete_user"):
        ta.user_del(did, acc)
    return [json.loads(x) for x in cap.lines]


def test_every_type_mtga_writes_is_the_official_sdks(tmp_path):
    d = tmp_path / "settings"
    d.mkdir()
    (d / "metadata.24.json").write_text(json.dumps(META))
    tr = Transformer(SettingsStore(d, check_interval=0).get, clock=lambda: NOW)
    types: dict[str, int] = {}
    n = 0
    for rnd in range(2):  # the second time, the guard has learned every kind
        for acc, did in IDS:
            for log_name, fields in EVENTS:
                n += 1
                logs = {"mtime": NOW - 3600, **fields}
                if acc is not None:
                    logs["role_id"] = acc
                if did is not None:
                    logs["account_name"] = did
                payload = json.dumps({"headers": {"app_id": 24, "log_name": log_name}, "logs": logs}).encode()
                kind, app, out = tr(payload, None, "t", 0, n)
                assert (kind, app) == (OK, "24"), (log_name, logs, out)
                assert [v for x in out.split(b"\n") for v in violations(x, NOW)] == [], out
                mine = [json.loads(x) for x in out.split(b"\n")]
                sdk = sdk_lines(log_name, logs, [m["#uuid"] for m in mine])
                assert len(mine) == len(sdk), (log_name, logs)
                for i, (m, s) in enumerate(zip(mine, sdk)):
                    assert parse_line(m["#uuid"])[1:] == (n, len(mine) - 1 - i)
                    if s["#type"].startswith("track"):
                        assert s["properties"].pop("#lib") and s["properties"].pop("#lib_version")
                    if s["#type"] == "user_del":
                        for k in ("#time", "#uuid"):
                            m.pop(k), s.pop(k, None)
                    else:
                        m["#time"] += ".000"
                    assert m == s, (log_name, logs)
                    types[m["#type"]] = types.get(m["#type"], 0) + 1
    assert set(types) == {"track", "track_update", "track_overwrite", "user_set", "user_setOnce", "user_add",
                          "user_append", "user_uniq_append", "user_unset", "user_del"}, types
    assert sum(1 for _ in EVENTS) * len(IDS) * 2 == n
    assert types["user_add"] == 2 * 2 * len(IDS) and types["user_del"] == 2 * len(IDS)


def test_what_the_sdk_refuses_mtga_refuses_too(tmp_path):
    """The SDK (strict) refuses a user_add of a text and a first event without
    its id; mtga fails both events with a reason code, and a pure user update
    whose fields are all missing gives no line (filtered, with why)."""
    d = tmp_path / "settings"
    d.mkdir()
    (d / "metadata.24.json").write_text(json.dumps(META))
    tr = Transformer(SettingsStore(d, check_interval=0).get, clock=lambda: NOW)
    cap = Capture()
    ta = tgasdk.TDAnalytics(cap, strict=True)
    with pytest.raises(tgasdk.TDException):
        ta.user_add(None, "r-1", {"total_pay": "6.5"})
    with pytest.raises(tgasdk.TDException):
        ta.track_first(None, "r-1", "t_log_create", None, {"x": 1})
    assert cap.lines == []

    def run(log_name, **fields):
        logs = {"mtime": NOW - 60, "role_id": "r-1", **fields}
        return tr(json.dumps({"headers": {"app_id": 24, "log_name": log_name}, "logs": logs}).encode(), None, "t", 0, 1)

    kind, _, why = run("log_pay", pay="6.5")
    assert kind == FAILED and why.startswith("property_type: user_add 'total_pay' takes numbers"), why
    kind, _, why = run("log_order", server=1)
    assert kind == FAILED and why.startswith("event_id: #event_id field 'order_id' is missing"), why
    kind, _, why = run("log_create", role_name="x", role_id="")
    assert kind == FAILED and why.startswith("identity: "), why
    meta = dict(META, events={"log_level": {"track": False, "user": {"set": {"level": "lv"}}}})
    (d / "metadata.24.json").write_text(json.dumps(meta))
    kind, _, why = run("log_level", other=1)
    assert kind == FILTERED and "none of the fields of its user operations" in why, why


def test_check_output_knows_each_types_rules():
    """What breaks a #type's own rules is named (type_rule); the SDK's lines pass."""
    base = '"#time":"2020-12-17 12:00:00","#account_id":"r1"'
    bad = {
        '{"#type":"user_add",%s,"properties":{"gold":"5"}}': "user_add 'gold' is '5', expected a number",
        '{"#type":"user_append",%s,"properties":{"tags":"a"}}': "user_append 'tags' is 'a', expected a list",
        '{"#type":"user_set","#event_name":"e",%s,"properties":{"a":1}}': "#event_name on a user_set line",
        '{"#type":"user_del",%s,"properties":{"a":1}}': "user_del with properties ['a']",
        '{"#type":"track_update","#event_name":"e",%s,"properties":{}}': "track_update without an #event_id",
        '{"#type":"track","#event_name":"e","#event_id":"x",%s,"properties":{}}': "#event_id on a track line",
        '{"#type":"user_set","#first_check_id":"x",%s,"properties":{}}': "#first_check_id 'x' on a user_set line",
    }
    for line, want in bad.items():
        got = violations(line % base, NOW)
        assert got == [f"type_rule: {want}"] or (got and got[0].startswith(f"type_rule: {want}")), (line, got)
    cap = Capture()
    ta = tgasdk.TDAnalytics(cap, strict=True)
    when = {"#time": dt.datetime(2020, 12, 17, 12)}
    ta.user_add(None, "r1", dict(when, gold=5))
    ta.user_append(None, "r1", dict(when, tags=["a"]))
    ta.user_unset(None, "r1", dict(when, gold=0))
    ta.track_first(None, "r1", "e", "f1", dict(when, x=1))
    ta.track_update(None, "r1", "e", "o1", dict(when, x=2))
    assert [violations(x, NOW) for x in cap.lines] == [[]] * 5
