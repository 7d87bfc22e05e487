"""sink/ta/model.py and the type guard's tables: the user table's types apart
from the event properties', the operations' own rules, ThinkingData's project
caps (refused past each, with its code, counted by ``sizes``), the object
sub-properties' types, and fixes reaching inside objects."""

from __future__ import annotations

import json

from sink.ta.model import schema_sizes
from sink.ta.settings import SettingsStore
from sink.ta.transform import FAILED, OK, Transformer

NOW = 1608184243


def transformer(tmp_path, **meta) -> Transformer:
    d = tmp_path / "settings"
    d.mkdir(parents=True, exist_ok=True)
    base = {"account_id": "role_id", "time": {"field": "mtime"}}
    (d / "metadata.24.json").write_text(json.dumps({**base, **meta}))
    return Transformer(SettingsStore(d, check_interval=0).get, clock=lambda: NOW)


def run(tr, log_name, n=0, **fields):
    logs = {"role_id": "r1", "mtime": NOW - 60, **fields}
    payload = json.dumps({"headers": {"app_id": 24, "log_name": log_name}, "logs": logs}).encode()
    return tr(payload, None, "t", 0, n)


def test_user_properties_have_their_own_types(tmp_path):
    """``level`` is a text among the event properties and a number in the user
    table; a user_add on a user property learned as text is refused, as is a
    user_append of a non-list."""
    tr = transformer(tmp_path, events={
        "log_a": {"user": {"set": {"level": "lv", "name": "nick"}}},
        "log_b": {"user": {"add": {"name": "gold"}}},
        "log_c": {"user": {"append": {"level": "tags"}}},
    })
    kind, _, out = run(tr, "log_a", lv=3, nick="bob", level="high")
    assert kind == OK, out
    assert tr.guard.kinds["24"]["level"] == "string" and tr.guard.kinds["24.user"]["level"] == "number"
    assert tr.guard.kinds["24.user"]["name"] == "string"
    kind, _, why = run(tr, "log_b", gold=5)
    assert kind == FAILED and why.startswith("type_conflict: user_add on 'name', a string in app 24's user table"), why
    kind, _, why = run(tr, "log_c", tags="x")
    assert kind == FAILED and why.startswith("property_type: user_append 'level' takes lists"), why
    kind, _, why = run(tr, "log_c", tags=["x"])
    assert kind == FAILED and why.startswith("type_conflict: user_append on 'level', a number"), why
    kind, _, out = run(tr, "log_a", lv="4", nick="al")  # a lossless text: converted, as for event properties
    assert kind == OK and b'"properties":{"level":4,"name":"al"}' in out, out


def test_each_cap_refuses_past_it_with_its_code_and_is_counted(tmp_path):
    tr = transformer(tmp_path, caps={"events": 3, "event_properties": 6, "user_properties": 2},
                     events={"log_u": {"user": {"set": ["u1", "u2", "u3"]}}})
    for i in range(3):  # role_id, mtime and one more each: 5 event properties, 3 events (log_u among them)
        assert run(tr, f"log_{i}", **{f"p{i}": 1})[0] == OK
    kind, _, why = run(tr, "log_u", u1=1)
    assert kind == FAILED and why.startswith("event_cap: 't_log_u' would be event name number 4 of app 24; its cap is 3")
    assert run(tr, "log_0", p9=1)[0] == OK  # the 6th event property
    kind, _, why = run(tr, "log_0", p10=1)
    assert kind == FAILED and why.startswith("property_cap: 'p10' would be event property number 7"), why
    assert run(tr, "log_1", **{"P9": 2})[0] == OK  # one name to TA: no new property
    assert run(tr, "log_0", o={"a": 1})[0] == FAILED  # a new object counts as a property too
    tr2 = transformer(tmp_path / "2", caps={"user_properties": 2}, events={"log_u": {"user": {"set": ["u1", "u2", "u3"]}}})
    kind, _, why = run(tr2, "log_u", u1=1, u2=2, u3=3)
    assert kind == FAILED and why.startswith("user_property_cap: 'u3' would be user property number 3"), why
    assert run(tr2, "log_u", u1=1, u2=2)[0] == OK
    assert tr.guard.sizes() == {"24": {"events": 3, "event_properties": 6, "user_properties": 0}}
    assert tr2.guard.sizes()["24"] == {"events": 1, "event_properties": 4, "user_properties": 2}
    sizes = schema_sizes(tr.guard, SettingsStore(tmp_path / "settings").get)
    assert sizes == {"24": {"events": (3, 3), "event_properties": (6, 6), "user_properties": (0, 2)}}


def test_object_sub_properties_keep_their_first_type(tmp_path):
    """An object's sub-properties are typed like properties (``o.slot``), on
    the exact path and on the cached plans' path alike; object groups too."""
    tr = transformer(tmp_path)
    assert run(tr, "log_i", o={"slot": 3, "name": "sword"}, g=[{"n": 1}])[0] == OK
    assert tr.guard.kinds["24"]["o.slot"] == "number" and tr.guard.kinds["24"]["g.n"] == "number"
    for _ in range(2):  # the second time through the plan cached for this layout
        assert run(tr, "log_i", o={"slot": 4, "name": "axe"})[0] == OK
    kind, _, why = run(tr, "log_i", o={"slot": "many", "name": "axe"})
    assert kind == FAILED and why.startswith("type_conflict: 'o.slot' is a number in app 24"), why
    kind, _, out = run(tr, "log_i", o={"slot": "5", "name": 7})
    assert kind == OK and b'"o":{"slot":5,"name":"7"}' in out, out
    kind, _, why = run(tr, "log_i", g=[{"n": 1}, {"n": "x"}])
    assert kind == FAILED and "'g.n' is a number" in why, why
    assert run(tr, "log_i", o={"slot": 6, "extra": True})[0] == OK  # a new sub-property is learned
    assert tr.guard.kinds["24"]["o.extra"] == "boolean" and tr.guard.sizes()["24"]["event_properties"] == 4


def test_fixes_reach_inside_objects_and_object_groups(tmp_path):
    tr = transformer(tmp_path, fix={"string_too_long": "cut", "number_out_of_range": "string",
                                    "list_too_long": "cut"})
    kind, _, out = run(tr, "log_i", o={"text": "x" * 3000, "n": 10**16}, g=[{"l": list(range(600))}])
    assert kind == OK, out
    props = json.loads(out)["properties"]
    assert props["o"] == {"text": "x" * 2048, "n": str(10**16)} and props["g"] == [{"l": list(range(500))}]
    assert tr.take_fixed() == {"string_too_long": 1, "number_out_of_range": 1, "list_too_long": 1}
    tr = transformer(tmp_path / "refusing")
    kind, _, why = run(tr, "log_i", o={"text": "x" * 3000})
    assert kind == FAILED and why.startswith("string_too_long: 'o'.text is 3000 bytes"), why
