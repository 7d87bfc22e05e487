"""ThinkingData's official Python SDK (``thinkingdatasdk``, strict mode) as the
oracle of a line: for a corpus of events, mtga's line and the line the SDK
writes for the same event are one JSON object, but for ``#lib`` /
``#lib_version`` (the SDK's own properties) and ``#time``'s milliseconds (the
SDK always writes them: ``.000`` where mtga writes whole seconds).

The SDK is given the event as a caller of it would: an id or ``#ip`` that is
missing, null or empty as None (not passed), ids as text, ``#time`` as the
event's local time (a datetime), mtga's ``#uuid`` and ``#zone_offset`` among the
properties (the SDK moves ``#uuid`` and ``#ip`` to the top level), the
properties without their nulls (mtga leaves a null property out). The SDK is
the tests' only: the programs never import it.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import tgasdk  # the dev extra's thinkingdatasdk: the oracle (the programs never import it)
from support.ta_sdk import Capture

from sink.ta.settings import SettingsStore
from sink.ta.transform import FAILED, OK, Transformer

NOW = 1608184243  # 2020-12-17 05:50:43 UTC
ZONE = dt.timezone(dt.timedelta(hours=8))
BASE = {"account_id": "role_id", "distinct_id": "account_name", "ip": "ip"}
APPS = {  # app -> its metadata: one per time unit; app 26 adds #zone_offset
    "24": dict(BASE, time={"field": "mtime", "unit": "s", "time_zone": "+08:00"}),
    "25": dict(BASE, time={"field": "mtime", "unit": "ms", "time_zone": "+08:00"}),
    "26": dict(BASE, time={"field": "mtime", "unit": "string", "time_zone": "+08:00", "zone_offset": True}),
}
MTIME = {"24": NOW - 3600, "25": (NOW - 3600) * 1000 + 123, "26": "2020-12-17 12:50:43"}
IDS = [  # (account, distinct, ip): present, absent (None: not in the event), null, empty
    ("6001310009300", None, "10.0.0.1"),
    ("6001310009300", "", ""),
    ("6001310009301", "visitor-1", None),
    ("", "visitor-2", "::1"),
    (None, "visitor-3", "null"),
    ("r-4", "d-4", "10.0.0.4"),
    ("null", "", None),
]
PROPS = [  # properties of every kind ThinkingData takes, preset ones mtga lets through
    {"s_text": "sword", "n_int": 3, "n_real": 2.5, "b_flag": True},
    {"s_text": "道具😀", "n_int": -9 * 10**15, "n_real": 0.1, "b_flag": False, "l_list": ["a", "b"]},
    {"l_list": [1, 2.5, True, "x"], "o_obj": {"slot": 3, "name": "sword", "ok": True, "tags": ["a"]}},
    {"g_group": [{"slot": 3}, {"slot": 4, "name": "shield"}], "o_obj": {}},
    {"#os": "Android", "#device_id": "dev-1", "#country": "China", "#app_version": "1.2.3"},
    {"s_text": "", "l_list": [], "n_null": None},
]


def corpus() -> list[tuple[str, dict]]:
    out = []
    for app in APPS:
        for i, (acc, did, ip) in enumerate(IDS):
            for j, props in enumerate(PROPS):
                logs = {"mtime": MTIME[app], "n": i * 10 + j}
                for k, v in (("role_id", acc), ("account_name", did), ("ip", ip)):
                    if v is not None:
                        logs[k] = None if v == "null" else v
                logs.update(props)
                out.append((app, logs))
    return out


def sdk_line(app: str, logs: dict, uuid: str) -> dict:
    sdk_id = lambda v: None if v is None or v == "" else str(v)
    t = logs["mtime"]
    if app == "24":
        when = dt.datetime.fromtimestamp(t, ZONE)
    elif app == "25":
        when = dt.datetime.fromtimestamp(t / 1000, ZONE)
    else:
        when = dt.datetime.strptime(t, "%Y-%m-%d %H:%M:%S")
    props = {k: v for k, v in logs.items() if v is not None}
    if APPS[app]["time"].get("zone_offset"):
        props["#zone_offset"] = 8
    props.update({"#time": when.replace(tzinfo=None), "#uuid": uuid})
    if sdk_id(logs.get("ip")) is not None:
        props["#ip"] = logs["ip"]
    cap = Capture()
    ta = tgasdk.TDAnalytics(cap, strict=True)
    try:
        ta.track(distinct_id=sdk_id(logs.get("account_name")), account_id=sdk_id(logs.get("role_id")),
                 event_name="t_log_item", properties=props)
    except tgasdk.TDException as e:
        return str(e)  # refused
    ta.flush()
    assert len(cap.lines) == 1
    return json.loads(cap.lines[0])


def settings(tmp_path) -> SettingsStore:
    d = tmp_path / "settings"
    d.mkdir()
    for app, meta in APPS.items():
        (d / f"metadata.{app}.json").write_text(json.dumps(meta))
    return SettingsStore(d, check_interval=0)


def test_mtgas_lines_are_the_official_sdks(tmp_path):
    """Every event of the corpus, twice (the second time on the typed path where
    the guard has learned the kinds): mtga's line is the SDK's."""
    tr = Transformer(settings(tmp_path).get, clock=lambda: NOW)
    events = corpus()
    compared = differ = refused = 0
    without_ids = {"#distinct_id": 0, "#account_id": 0, "#ip": 0}
    for rnd in range(2):
        for n, (app, logs) in enumerate(events):
            payload = json.dumps({"headers": {"app_id": int(app), "log_name": "log_item"}, "logs": logs}).encode()
            kind, got_app, line = tr(payload, None, "t", 0, n)
            sdk = sdk_line(app, logs, "0b5b8e1c-5d2b-4b8f-9d55-0c8c2e7c6a10")
            if isinstance(sdk, str):  # neither id: the SDK refuses it, and so does mtga
                assert "at least one" in sdk and kind == FAILED and line.startswith("identity: "), (logs, line)
                refused += 1
                continue
            assert (kind, got_app) == (OK, app), (logs, line)
            mine = json.loads(line)
            sdk = sdk_line(app, logs, mine["#uuid"])
            for k in ("#lib", "#lib_version"):
                assert sdk["properties"].pop(k)
            t = mine["#time"]
            if len(t) == 19:
                mine["#time"] = t + ".000"
            compared += 1
            if mine != sdk:
                differ += 1
                assert mine == sdk, (app, logs)
            for k in without_ids:
                without_ids[k] += k not in mine
    assert compared + refused == 2 * 3 * len(IDS) * len(PROPS) and differ == 0
    assert refused == 2 * 3 * len(PROPS)  # the one pair of ids that are both empty
    # the corpus left each id and #ip out somewhere, and kept it elsewhere
    assert all(0 < n < compared for n in without_ids.values()), without_ids


def test_the_sdk_writes_what_the_oracle_relies_on():
    """What the comparison above takes from the SDK, shown: an id given as None
    is left out, #ip and #uuid go to the top level, #time has milliseconds; and
    strict mode refuses an event without either id."""
    cap = Capture()
    ta = tgasdk.TDAnalytics(cap, strict=True)
    ta.track(account_id="a1", event_name="e", properties={
        "#ip": "10.0.0.1", "#uuid": "0b5b8e1c-5d2b-4b8f-9d55-0c8c2e7c6a10", "#time": dt.datetime(2020, 12, 17, 13, 50, 43),
        "x": 1})
    d = json.loads(cap.lines[0])
    assert "#distinct_id" not in d and d["#account_id"] == "a1"
    assert (d["#ip"], d["#uuid"], d["#time"]) == ("10.0.0.1", "0b5b8e1c-5d2b-4b8f-9d55-0c8c2e7c6a10",
                                                  "2020-12-17 13:50:43.000")
    assert d["properties"] == {"#lib": "tga_python_sdk", "#lib_version": "3.0.0", "x": 1}
    with pytest.raises(tgasdk.TDException):
        ta.track(event_name="e", properties={"x": 1})
    assert len(cap.lines) == 1
