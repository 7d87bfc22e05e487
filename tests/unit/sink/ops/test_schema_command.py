"""``mtga schema`` with mtga stopped (read from the state store): the event
properties and the user table apart, each app's names against its caps, and
``schema forget --user`` (a real RocksDB, the real command, no broker)."""

from __future__ import annotations

import json

import yaml

from offsets import PropertyTypes, StateDB
from support.cli import run_cli


def test_schema_shows_both_tables_and_the_caps(tmp_path):
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / "metadata.24.json").write_text(json.dumps({
        "account_id": "role_id", "caps": {"events": 2, "user_properties": 3},
        "properties": {"types": {"role_id": "string"}}}))
    conf = tmp_path / "mtga.yml"
    conf.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": "127.0.0.1:9", "topics": ["t"]},
                                    "state_dir": str(tmp_path / "state"), "settings_dir": str(tmp_path / "settings"),
                                    "output": {"dir": str(tmp_path / "out")}}))
    (tmp_path / "state").mkdir(mode=0o700)
    with StateDB(tmp_path / "state" / "db", "mtga") as db:
        PropertyTypes(db).put_many([("24", "mtime", "number"), ("24", "gear", "object"), ("24", "gear.slot", "number"),
                                    ("24.user", "total_pay", "number"), ("24.user", "maps", "list"),
                                    ("24.event", "t_log_pay", "event"), ("24.event", "t_log_login", "event")],
                                   sync=True)
    r = run_cli("mtga", "schema", "-c", str(conf), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    rows = {(x["table"], x["property"]): (x["type"], x["source"]) for x in res["properties"]}
    assert rows == {("event", "mtime"): ("number", "learned"), ("event", "gear"): ("object", "learned"),
                    ("event", "gear.slot"): ("number", "learned"), ("event", "role_id"): ("string", "pinned"),
                    ("user", "total_pay"): ("number", "learned"), ("user", "maps"): ("list", "learned")}
    assert res["caps"] == [{"app": "24", "events": [2, 2], "event_properties": [2, 1000], "user_properties": [2, 3]}]
    r = run_cli("mtga", "schema", "-c", str(conf))
    assert r.returncode == 0 and r.stdout.splitlines()[0] == (
        "app 24: events 2/2 (near the cap), event properties 2/1000, user properties 2/3"), r.stdout
    assert any(ln.split() == ["24", "user", "total_pay", "number", "learned"] for ln in r.stdout.splitlines())
    r = run_cli("mtga", "schema", "forget", "24", "total_pay", "--user", "-c", str(conf))
    assert r.returncode == 0 and "forgot the type of 'total_pay' in app 24's user table" in r.stdout, r.stderr
    r = run_cli("mtga", "schema", "forget", "24", "maps", "-c", str(conf))  # not an event property
    assert r.returncode == 1 and "app 24 has no learned type for 'maps'" in r.stderr, r.stdout + r.stderr
    res = json.loads(run_cli("mtga", "schema", "-c", str(conf), "--json").stdout)
    assert {x["property"] for x in res["properties"] if x["table"] == "user"} == {"maps"}
