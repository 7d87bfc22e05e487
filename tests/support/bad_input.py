"""The bad-input corpus of tests/system/test_bad_input.py: the per-app settings
it runs with, and every case (``CASES``) with what must become of it."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from confluent_kafka import Producer

from sink.ta.uuids import UuidMaker
from support.cli import run_cli
from support.mtga import failure_entries

TRANSFORMED, FILTERED, FAILED, SKIPPED = "transformed", "filtered", "failed", "skipped"
MAX_LINE = 1_048_576  # the shipper's default max_line_bytes


@dataclass
class Case:
    name: str
    payload: Optional[bytes]  # the Kafka message value, or the file line without its end of line
    expect: str
    code: str = ""  # failed: the reason code
    words: str = ""  # failed: words the reason must contain
    check: Optional[Callable[[dict], bool]] = None  # transformed: a test of the parsed output line
    via: str = "kafka"  # "kafka" (produced directly) or "file:<name>" (a line shipped by shipper tail)
    headers: Optional[list] = None  # kafka: the message headers
    eol: bytes = b"\n"  # file: the line's ending (b"" for an unterminated last line)


# ----------------------------------------------------------------- settings

METADATA_24 = """// the bad-input corpus: app 24
{
  "account_id": "role_id",
  "ip": "ip",
  "time": {"field": "mtime", "unit": "s", "time_zone": "+08:00"},
  "properties": {
    "types": {"amount": "int", "price": "number", "flag": "bool", "extra": "string"},
    "rename": {"via": "via_path"},
    "drop": ["secret"],
  },
  "events": {
    "log_ms": {"time": {"field": "t_ms", "unit": "ms", "time_zone": "+08:00"}},
    "log_str": {"time": {"field": "t", "unit": "string"}},
  },
}
"""
FILTER_24 = '{"drop": ["log_dropped"], "where": [{"field": "server_id", "not_in": [0]}]}'
METADATA_25 = '{"account_id": "role_id", "time": {"field": "mtime", "unit": "s", "time_zone": "+08:00"}}'
FILTER_25 = '{"keep": ["log_item"]}  // any other log_name of app 25 is filtered'
METADATA_28 = '{"account_id": "role_id", "time": {"unit": "hours"}}'  # a mistake: no usable settings


def write_app_settings(folder: Path) -> None:
    """The settings mtga starts with (a start refuses a broken file: see break_app_28)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("metadata.24.json", METADATA_24), ("filter.24.json", FILTER_24),
                       ("metadata.25.json", METADATA_25), ("filter.25.json", FILTER_25)):
        (folder / name).write_text(text)


def break_app_28(folder: Path) -> None:
    """App 28's settings, with a mistake, written while mtga runs."""
    (folder / "metadata.28.json").write_text(METADATA_28)


# -------------------------------------------------------------------- cases

# a time of yesterday (ThinkingData takes #time from 3 years back to 3 days ahead), and as mtga writes it (+08:00)
MTIME = int(time.time()) // 86400 * 86400 - 86400 + 20 * 3600 + 50 * 60 + 43
BASE = {"role_id": 6001310009300, "mtime": MTIME, "server_id": 5001, "ip": "10.0.0.1"}
BASE_TIME = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(MTIME + 8 * 3600))
H24 = [("app_id", b"24"), ("log_name", b"log_item")]


def js(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def env(logs: dict, app=24, log_name="log_item", **extra) -> bytes:
    """An envelope event."""
    return js({"headers": {"app_id": app, "log_name": log_name}, "logs": logs, **extra})


def logs(**kv) -> dict:
    return dict(BASE, **kv)


def props(d: dict) -> dict:
    return d["properties"]


def line_of(**kv) -> bytes:
    """A bare log line, as a game server writes it."""
    return js(logs(**kv))


TEN_MB_LINE = b'{"role_id":6001310009300,"mtime":%d,"pad":"' % MTIME + b"x" * (10 << 20) + b'"}'
DEEP_ARRAYS = b'{"role_id":1,"deep":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
DEEP_OBJECTS = b'{"headers":{"app_id":24,"log_name":"log_item"},"logs":' + b'{"a":' * 100_000 + b"1" + \
    b"}" * 100_000 + b"}"
HUGE_DIGITS = b"9" * 5000

CASES: list[Case] = [
    # ---------------------------------------- lines of log files, through shipper tail
    Case("file: a valid line", line_of(n=1), TRANSFORMED, via="file:main.log",
         check=lambda d: props(d) == logs(n=1) and d["#time"] == BASE_TIME and d["#account_id"] == "6001310009300"),
    Case("file: empty line", b"", SKIPPED, via="file:main.log"),
    Case("file: a line of only whitespace", b"  \t ", FAILED, "invalid_json", "truncated", via="file:main.log"),
    Case("file: invalid UTF-8 in a value", b'{"role_id":1,"name":"caf\xe9 \xff"}', FAILED, "invalid_utf8",
         "byte 24 of the event",
         via="file:main.log"),
    Case("file: invalid UTF-8 (an encoded surrogate)", b'{"role_id":1,"name":"\xed\xa0\x80"}', FAILED,
         "invalid_utf8", "byte 21 of the event", via="file:main.log"),
    Case("file: truncated JSON", b'{"role_id":6001310009300,"mtime":16081', FAILED, "invalid_json", "truncated",
         via="file:main.log"),
    Case("file: not JSON at all", b"this is not json", FAILED, "invalid_json", "malformed", via="file:main.log"),
    Case("file: a plain-text log line", b"2024-01-01 12:00:00 INFO server started", FAILED, "invalid_json",
         "malformed", via="file:main.log"),
    Case("file: NUL bytes between tokens", b'{"role_id":1,\x00\x00"n":2}', FAILED, "invalid_json", "malformed",
         via="file:main.log"),
    Case("file: raw NUL inside a string", b'{"role_id":1,"s":"a\x00b"}', FAILED, "invalid_json",
         "invalid character", via="file:main.log"),
    Case("file: NUL run before a line (preallocated file after a crash)", b"\x00" * 64 + line_of(n=2), FAILED,
         "invalid_json", "invalid character", via="file:main.log"),
    Case("file: a line of only NUL bytes", b"\x00" * 4096, FAILED, "invalid_json", "invalid character (byte 0)",
         via="file:main.log"),
    Case("file: escaped \\u0000 inside a string", b'{"role_id":1,"s":"a\\u0000b"}', TRANSFORMED,
         via="file:main.log", check=lambda d: props(d)["s"] == "a\x00b"),
    Case("file: a JSON array line", b"[1,2,3]", FAILED, "not_object", "array", via="file:main.log"),
    Case("file: a JSON number line", b"12345", FAILED, "not_object", "number", via="file:main.log"),
    Case("file: a 10 MB line (cut by the shipper at max_line_bytes)", TEN_MB_LINE, FAILED, "invalid_json",
         "truncated", via="file:main.log"),
    Case("file: the line after the 10 MB line", line_of(n=3), TRANSFORMED, via="file:main.log",
         check=lambda d: props(d) == logs(n=3)),
    Case("file: a BOM before a line in the middle of a file", b"\xef\xbb\xbf" + line_of(n=4), TRANSFORMED,
         via="file:main.log", check=lambda d: props(d) == logs(n=4)),
    Case("file: two BOMs before a line", b"\xef\xbb\xbf\xef\xbb\xbf" + line_of(n=5), FAILED, "invalid_json",
         "invalid character (byte 0)", via="file:main.log"),
    Case("file: trailing spaces and a tab", line_of(n=6) + b"  \t", TRANSFORMED, via="file:main.log",
         check=lambda d: props(d) == logs(n=6)),
    Case("file: two objects on one line", line_of(n=7) + line_of(n=8), FAILED, "invalid_json", "trailing",
         via="file:main.log"),
    Case("file: BOM at the start of the file", b"\xef\xbb\xbf" + line_of(n=10), TRANSFORMED, via="file:bom.log",
         check=lambda d: props(d) == logs(n=10)),
    Case("file: the second line of the BOM file", line_of(n=11), TRANSFORMED, via="file:bom.log",
         check=lambda d: props(d) == logs(n=11)),
    Case("file: a CRLF line", line_of(n=20), TRANSFORMED, via="file:crlf.log", eol=b"\r\n",
         check=lambda d: props(d) == logs(n=20)),
    Case("file: an empty CRLF line", b"", SKIPPED, via="file:crlf.log", eol=b"\r\n"),
    Case("file: another CRLF line", line_of(n=21), TRANSFORMED, via="file:crlf.log", eol=b"\r\n",
         check=lambda d: props(d) == logs(n=21)),
    Case("file: a CRLF line of only whitespace", b"   ", FAILED, "invalid_json", "truncated", via="file:crlf.log",
         eol=b"\r\n"),
    Case("file: a line of a file whose name is not UTF-8", line_of(n=40), TRANSFORMED,
         via="file:" + os.fsdecode(b"bad_name_\xff.log"), check=lambda d: props(d) == logs(n=40)),
    Case("file: a complete line before an unterminated one", line_of(n=30), TRANSFORMED, via="file:partial.log",
         check=lambda d: props(d) == logs(n=30)),
    Case("file: an unterminated last line (held back until its newline)", b'{"role_id":1,"n":', SKIPPED,
         via="file:partial.log", eol=b""),

    # ---------------------------------------------- events produced to Kafka directly
    Case("valid envelope", env(logs(n=100)), TRANSFORMED,
         check=lambda d: props(d) == logs(n=100) and d["#event_name"] == "t_log_item" and d["#time"] == BASE_TIME),
    Case("valid bare event with headers", line_of(n=101), TRANSFORMED, headers=H24,
         check=lambda d: props(d) == logs(n=101)),
    Case("invalid JSON", b"{not json", FAILED, "invalid_json", "malformed"),
    Case("truncated envelope", env(logs(n=102))[:-7], FAILED, "invalid_json", "truncated"),
    Case("invalid UTF-8 in an envelope", env(logs(n=103)).replace(b"10.0.0.1", b"10.0.\xc0\xaf"), FAILED,
         "invalid_utf8", "\\xc0\\xaf"),
    Case("UTF-16 encoded event", env(logs(n=104)).decode().encode("utf-16"), FAILED, "invalid_json",
         "invalid character (byte 0)"),
    Case("empty message", b"", FAILED, "invalid_json", "truncated"),
    Case("message without a value (null)", None, FAILED, "invalid_json", "truncated"),
    Case("a JSON array", b"[1, 2, 3]", FAILED, "not_object", "array"),
    Case("a JSON array with headers", b'[{"role_id": 1}]', FAILED, "not_object", "array", headers=H24),
    Case("a JSON number", b"42", FAILED, "not_object", "number"),
    Case("a JSON number with headers", b"42", FAILED, "not_object", "number", headers=H24),
    Case("a JSON string", b'"hello"', FAILED, "not_object", "string"),
    Case("JSON null", b"null", FAILED, "not_object", "null"),
    Case("JSON true with headers", b"true", FAILED, "not_object", "boolean", headers=H24),
    Case("two objects in one message", env(logs(n=105)) + env(logs(n=106)), FAILED, "invalid_json", "trailing"),
    Case("two bare objects, no headers", line_of(n=187) + line_of(n=188), FAILED, "invalid_json", "trailing"),
    Case("bare event, no headers at all", line_of(n=107), FAILED, "no_app_id", "neither Kafka headers nor"),
    Case("empty object, no headers", b"{}", FAILED, "no_app_id", "neither Kafka headers nor"),
    Case("bare event, app_id header only", line_of(n=108), FAILED, "no_log_name", "no log_name",
         headers=[("app_id", b"24")]),
    Case("bare event, log_name header only", line_of(n=109), FAILED, "no_app_id",
         "neither Kafka headers nor", headers=[("log_name", b"log_item")]),
    Case("envelope without log_name", js({"headers": {"app_id": 24}, "logs": logs(n=110)}), FAILED, "no_log_name",
         "no log_name"),
    Case("envelope with log_name null", env(logs(n=111), log_name=None), FAILED, "no_log_name", "no log_name"),
    Case("envelope with a numeric log_name", env(logs(n=112), log_name=7), FAILED, "no_log_name", "int"),
    Case("envelope with an empty log_name", env(logs(n=113), log_name=""), FAILED, "no_log_name", "empty"),
    Case("log_name header not UTF-8", line_of(n=114), FAILED, "no_log_name", "UTF-8",
         headers=[("app_id", b"24"), ("log_name", b"log_\xff")]),
    Case("envelope whose headers is a list", js({"headers": [24, "log_item"], "logs": logs(n=115)}), FAILED,
         "no_app_id", "headers is a JSON array"),
    Case("envelope whose logs is a list", js({"headers": {"app_id": 24, "log_name": "log_item"}, "logs": [1, 2]}),
         FAILED, "not_object", "logs is a JSON array"),
    Case("envelope whose logs is null", js({"headers": {"app_id": 24, "log_name": "log_item"}, "logs": None}),
         FAILED, "not_object", "logs is a JSON null"),
    Case("shipper headers on a produced event: #uuid from file and offset", line_of(n=192), TRANSFORMED,
         headers=H24 + [("host", b"h1"), ("file", b"9:9:9"), ("offset", b"77")],
         check=lambda d: d["#uuid"] == UuidMaker()((b"h1", b"9:9:9"), 77).decode()),
    Case("shipper headers with a non-numeric offset: #uuid from the Kafka position", line_of(n=193), TRANSFORMED,
         headers=H24 + [("host", b"h1"), ("file", b"9:9:9"), ("offset", b"77x")],
         check=lambda d: props(d) == logs(n=193)),
    Case("envelope with an extra top-level key", env(logs(n=116), extra=1), TRANSFORMED,
         check=lambda d: props(d) == logs(n=116)),
    Case("envelope sent with headers too (bare path)", env(logs(n=117)), TRANSFORMED, headers=H24,
         check=lambda d: props(d) == logs(n=117)),
    Case("unknown app id (no settings)", env(logs(n=118), app=99), FAILED, "no_settings", "metadata.99.json"),
    Case("app whose settings have a mistake", env(logs(n=119), app=28), FAILED, "bad_settings",
         "metadata.28.json: time.unit"),
    Case("app_id a path", line_of(n=120), FAILED, "bad_app_id", "../../etc",
         headers=[("app_id", b"../../etc"), ("log_name", b"log_item")]),
    Case("app_id header not UTF-8", line_of(n=121), FAILED, "bad_app_id", "UTF-8",
         headers=[("app_id", b"2\xff"), ("log_name", b"log_item")]),
    Case("app_id header with a sign", line_of(n=122), FAILED, "bad_app_id", "'-24'",
         headers=[("app_id", b"-24"), ("log_name", b"log_item")]),
    Case("app_id a float", env(logs(n=123), app=24.0), FAILED, "bad_app_id", "24.0"),
    Case("app_id a bool", env(logs(n=124), app=True), FAILED, "bad_app_id", "True"),
    Case("app_id a list", env(logs(n=190), app=[24]), FAILED, "bad_app_id", "[24]"),
    Case("log_name an object", env(logs(n=191), log_name={"name": "log_item"}), FAILED, "no_log_name", "dict"),
    Case("app_id null", env(logs(n=125), app=None), FAILED, "no_app_id", "no app_id"),
    Case("envelope without app_id", js({"headers": {"log_name": "log_item"}, "logs": logs(n=189)}), FAILED,
         "no_app_id", "no app_id"),
    Case("app_id too long", env(logs(n=126), app="9" * 19), FAILED, "bad_app_id", "'9999999999999999999'"),
    Case("app_id in full-width digits", env(logs(n=127), app="２４"), FAILED, "bad_app_id", "'２４'"),
    Case("app_id as a string", env(logs(n=128), app="24"), TRANSFORMED, check=lambda d: props(d) == logs(n=128)),
    Case("log_name not in settings (app without keep): default rule", env(logs(n=129), log_name="log_unlisted"),
         TRANSFORMED, check=lambda d: d["#event_name"] == "t_log_unlisted"),
    Case("log_name not in settings (app with keep)", env(logs(n=130), app=25, log_name="log_unlisted"), FILTERED),
    Case("log_name with spaces (app without keep)", env(logs(n=131), log_name="log item"), FAILED, "event_name",
         "'t_log item'"),
    Case("log_name with spaces (app with keep)", env(logs(n=132), app=25, log_name="log item"), FILTERED),
    Case("log_name dropped by the filter", env(logs(n=133), log_name="log_dropped"), FILTERED),
    Case("field filter (server_id not_in [0])", env(logs(n=134, server_id=0)), FILTERED),
    Case("filtered even when the event is otherwise bad", env({"n": 135, "server_id": 0, "a-b": 1}), FILTERED),
    Case("account id a bool", env(logs(n=136, role_id=True)), FAILED, "identity", "'role_id' is a bool"),
    Case("account id an object", env(logs(n=137, role_id={"a": 1})), FAILED, "identity", "'role_id' is a dict"),
    Case("account id an empty string", env(logs(n=138, role_id="")), FAILED, "identity", "'role_id'"),
    Case("account id missing", env({"n": 139, "mtime": MTIME}), FAILED, "identity", "'role_id'"),
    Case("account id null", env(logs(n=140, role_id=None)), FAILED, "identity", "(field 'role_id')"),
    Case("account id a float", env(logs(n=141, role_id=1.5)), TRANSFORMED, check=lambda d: d["#account_id"] == "1.5"),
    Case("account id a float with an exponent", b'{"headers":{"app_id":24,"log_name":"log_item"},'
         b'"logs":{"role_id":6.0013e12,"n":142}}', TRANSFORMED, check=lambda d: d["#account_id"] == "6001300000000"),
    # role_id is a number in app 24 (the type guard learned it): a text one is refused...
    Case("account id a unicode string, in an app where it is a number", env(logs(n=143, role_id="玩家😀")), FAILED,
         "type_conflict", "'role_id' is a number in app 24"),
    # ...and taken in app 25, whose role_id is a text from its first event on
    Case("account id a unicode string", env({"role_id": "玩家😀", "mtime": MTIME}, app=25), TRANSFORMED,
         check=lambda d: d["#account_id"] == "玩家😀"),
    Case("ip field a number", env(logs(n=144, ip=167772161)), FAILED, "property_type", "'ip'"),
    Case("mapped int field not a number", env(logs(n=145, amount="many")), FAILED, "property_type",
         "'amount' = 'many' cannot be coerced to int"),
    Case("mapped int field a numeric string", env(logs(n=146, amount="42")), TRANSFORMED,
         check=lambda d: props(d)["amount"] == 42),
    Case("mapped int field a list", env(logs(n=147, amount=[1])), FAILED, "property_type", "'amount'"),
    Case("mapped bool field 'yes'", env(logs(n=148, flag="yes")), FAILED, "property_type", "'flag'"),
    Case("mapped bool field 'TRUE'", env(logs(n=149, flag="TRUE")), TRANSFORMED,
         check=lambda d: props(d)["flag"] is True),
    Case("mapped number field 'nan'", env(logs(n=150, price="nan")), FAILED, "property_type", "'price'"),
    Case("mapped number field '-Infinity'", env(logs(n=151, price="-Infinity")), FAILED, "property_type", "'price'"),
    Case("mapped number field '1e400' (overflows)", env(logs(n=152, price="1e400")), FAILED, "property_type",
         "'price'"),
    Case("mapped number field '1.5'", env(logs(n=153, price="1.5")), TRANSFORMED,
         check=lambda d: props(d)["price"] == 1.5),
    Case("mapped string field holding an object", env(logs(n=154, extra={"a": [1, {"b": None}]})), TRANSFORMED,
         check=lambda d: json.loads(props(d)["extra"]) == {"a": [1, {"b": None}]}),
    Case("renamed and dropped fields", env(logs(n=155, via="36|3100", secret="x")), TRANSFORMED,
         check=lambda d: props(d)["via_path"] == "36|3100" and "via" not in props(d) and "secret" not in props(d)),
    Case("property name with a dash", env(logs(n=156, **{"bad-key": 1})), FAILED, "property_name", "'bad-key'"),
    Case("property name with a dot", env(logs(n=157, **{"a.b": 1})), FAILED, "property_name", "'a.b'"),
    Case("property name starting with a digit", env(logs(n=158, **{"1abc": 1})), FAILED, "property_name", "'1abc'"),
    Case("property name with a space", env(logs(n=159, **{"a b": 1})), FAILED, "property_name", "'a b'"),
    Case("property name empty", env(logs(n=160, **{"": 1})), FAILED, "property_name", "''"),
    Case("property name an emoji", env(logs(n=161, **{"😀": 1})), FAILED, "property_name", "'😀'"),
    Case("property name of 51 characters", env(logs(n=162, **{"k" * 51: 1})), FAILED, "property_name", "k" * 51),
    Case("property name of 50 characters", env(logs(n=163, **{"k" * 50: 1})), TRANSFORMED,
         check=lambda d: props(d)["k" * 50] == 1),
    Case("property name of 10,000 characters", env(logs(n=164, **{"k" * 10_000: 1})), FAILED, "property_name",
         "k" * 10_000),
    Case("#time a word", env(logs(n=165, mtime="yesterday")), FAILED, "time", "'mtime'"),
    Case("#time a bool", env(logs(n=166, mtime=True)), FAILED, "time", "'mtime'"),
    Case("#time a list", env(logs(n=167, mtime=[MTIME])), FAILED, "time", "'mtime'"),
    Case("#time out of range", env(logs(n=168, mtime=-10**14)), FAILED, "time", "out of range"),
    Case("#time a huge float", env(logs(n=169, mtime=1e300)), FAILED, "time", "out of range"),
    Case("#time a numeric string", env(logs(n=170, mtime=str(MTIME))), TRANSFORMED,
         check=lambda d: d["#time"] == BASE_TIME),
    Case("#time a float with an exponent", b'{"headers":{"app_id":24,"log_name":"log_item"},'
         b'"logs":{"role_id":1,"mtime":%se9}}' % repr((MTIME + 0.5) / 1e9).encode(), TRANSFORMED,
         check=lambda d: d["#time"] == BASE_TIME + ".500"),
    Case("#time missing: processing time", env({"role_id": 1, "n": 171}), TRANSFORMED,
         check=lambda d: d["#time"] > "2024-01-01"),
    Case("#time in ms, a word", env({"role_id": 1, "t_ms": "abc"}, log_name="log_ms"), FAILED, "time",
         "milliseconds"),
    Case("#time in ms", env({"role_id": 1, "t_ms": MTIME * 1000 + 123}, log_name="log_ms"), TRANSFORMED,
         check=lambda d: d["#time"] == BASE_TIME + ".123"),
    Case("#time as text, ISO 'T' form", env({"role_id": 1, "t": "2020-12-17T13:50:43"}, log_name="log_str"),
         FAILED, "time", "'t'"),
    Case("#time as text, impossible date", env({"role_id": 1, "t": "2020-13-45 25:61:61"}, log_name="log_str"),
         FAILED, "time", "'t'"),
    Case("#time as text", env({"role_id": 1, "t": BASE_TIME + ".007"}, log_name="log_str"), TRANSFORMED,
         check=lambda d: d["#time"] == BASE_TIME + ".007"),
    Case("an object (ThinkingData's object property)", env(logs(n=172, nested={"a": 1})), TRANSFORMED,
         check=lambda d: props(d)["nested"] == {"a": 1}),
    Case("an object inside an object", env(logs(n=172, nested2={"a": {"b": 1}})), FAILED, "object_nested",
         "'nested2'.a"),
    Case("a list of objects (an object group)", env(logs(n=173, group=[{"a": 1}])), TRANSFORMED,
         check=lambda d: props(d)["group"] == [{"a": 1}]),
    Case("list holding a list", env(logs(n=174, lst=[[1]])), FAILED, "property_type", "'lst'"),
    Case("list holding null", env(logs(n=175, lst=[1, None])), FAILED, "property_type", "null"),
    Case("list mixing types", env(logs(n=176, lst=[1, "a", True, 1.5])), TRANSFORMED,
         check=lambda d: props(d)["lst"] == [1, "a", True, 1.5]),
    Case("empty list and empty string", env(logs(n=177, lst=[], s="")), TRANSFORMED,
         check=lambda d: props(d)["lst"] == [] and props(d)["s"] == ""),
    Case("deeply nested arrays (100,000 levels)", DEEP_ARRAYS, FAILED, "invalid_json", "nest", headers=H24),
    Case("deeply nested objects (100,000 levels)", DEEP_OBJECTS, FAILED, "invalid_json", "nest"),
    Case("NaN", b'{"headers":{"app_id":24,"log_name":"log_item"},"logs":{"role_id":1,"x":NaN}}', FAILED,
         "invalid_json"),
    Case("Infinity", b'{"role_id":1,"x":Infinity}', FAILED, "invalid_json", "malformed", headers=H24),
    Case("-Infinity", b'{"role_id":1,"x":-Infinity}', FAILED, "invalid_json", "malformed", headers=H24),
    Case("a number beyond float range (1e999)", b'{"role_id":1,"x":1e999}', FAILED, "invalid_json", "range",
         headers=H24),
    Case("duplicate keys: the last wins", b'{"role_id":1,"a":1,"a":2}', TRANSFORMED, headers=H24,
         check=lambda d: props(d) == {"role_id": 1, "a": 2}),
    Case("duplicate account id keys: the last wins", b'{"role_id":"abc","role_id":77}', TRANSFORMED, headers=H24,
         check=lambda d: d["#account_id"] == "77"),
    Case("integer beyond 64 bits", env(logs(n=178, big=2**64)), FAILED, "number_out_of_range", "'big'"),
    Case("negative integer beyond 64 bits", env(logs(n=179, big=-2**63 - 1)), FAILED, "number_out_of_range", "'big'"),
    Case("largest 64-bit integer (beyond 9E15)", env(logs(n=180, big=2**63 - 1)), FAILED, "number_out_of_range",
         "beyond plus or minus 9E15"),
    Case("the largest number ThinkingData keeps", env(logs(n=180, big=9 * 10**15)), TRANSFORMED,
         check=lambda d: props(d)["big"] == 9 * 10**15),
    Case("integer of 5,000 digits", b'{"role_id":1,"big":' + HUGE_DIGITS + b"}", FAILED, "invalid_json",
         "out of range", headers=H24),
    Case("integer of 5,000 digits as account id", b'{"role_id":' + HUGE_DIGITS + b"}", FAILED, "invalid_json",
         "out of range", headers=H24),
    Case("-0 and -0.0", b'{"role_id":1,"a":-0,"b":-0.0,"c":1.5e-7}', TRANSFORMED, headers=H24,
         check=lambda d: props(d) == {"role_id": 1, "a": 0, "b": -0.0, "c": 1.5e-7}),
    Case("null values are left out", env(logs(n=181, gone=None)), TRANSFORMED,
         check=lambda d: "gone" not in props(d) and props(d)["n"] == 181),
    Case("unicode values: CJK, emoji, RTL, combining", env(logs(n=182, s="道具😀👍🏽 مرحبا e\u0301")), TRANSFORMED,
         check=lambda d: props(d)["s"] == "道具😀👍🏽 مرحبا e\u0301"),
    Case("escaped control characters and a lone surrogate escape", b'{"role_id":1,"s":"\\t\\u001f\\ud800"}',
         FAILED, "invalid_json", headers=H24),
    Case("a 100 KB string value", env(logs(n=183, s="v" * 100_000)), FAILED, "string_too_long",
         "'s' is 100000 bytes; ThinkingData keeps at most 2048"),
    Case("a 2 KB string value", env(logs(n=183, s="v" * 2048)), TRANSFORMED,
         check=lambda d: props(d)["s"] == "v" * 2048),
    Case("booleans and floats", env(logs(n=184, ok=False, f=0.1)), TRANSFORMED,
         check=lambda d: props(d)["ok"] is False and props(d)["f"] == 0.1),
    Case("a BOM before an envelope", b"\xef\xbb\xbf" + env(logs(n=185)), TRANSFORMED,
         check=lambda d: props(d) == logs(n=185)),
    Case("CRLF after an envelope", env(logs(n=186)) + b"\r\n", TRANSFORMED, check=lambda d: props(d) == logs(n=186)),
    Case("empty object with headers", b"{}", FAILED, "identity", "(field 'role_id')", headers=H24),
    Case("envelope with empty logs", env({}), FAILED, "identity", "(field 'role_id')"),
]

FILLER = 400  # valid events around the table, so that a consumed batch is big enough for the worker processes


def filler(i: int) -> bytes:
    return env(logs(n=10_000 + i, filler=True))


# ----------------------------------------------------------------- plumbing

def produce_all(bootstrap: str, topic: str, items: list[tuple[Optional[bytes], Optional[list]]]) -> list:
    """Produce (value, headers) items in order, round robin over 2 partitions; -> (partition, offset) of each."""
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20,
                  "compression.type": "snappy"})
    where: list = [None] * len(items)

    def report(i):
        def cb(err, msg):
            assert err is None, err
            where[i] = (msg.partition(), msg.offset())
        return cb

    for i, (value, headers) in enumerate(items):
        p.produce(topic, value, partition=i % 2, headers=headers, on_delivery=report(i))
        p.poll(0)
    assert p.flush(60) == 0
    assert None not in where
    return where


def write_files(folder: Path, cases: list[Case]) -> dict:
    """Write the file cases; -> {(path, byte offset): case}."""
    folder.mkdir(parents=True, exist_ok=True)
    data: dict[str, bytearray] = {}
    at = {}
    for c in cases:
        name = c.via.split(":", 1)[1]
        buf = data.setdefault(name, bytearray())
        at[(str(folder / name), len(buf))] = c
        buf += c.payload + c.eol
    for name, buf in data.items():
        (folder / name).write_bytes(bytes(buf))
    return at


def header_path(path: str) -> str:
    """The shipper's ``path`` header of a file: valid UTF-8, bytes that are not UTF-8 as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def mtga_status(conf: Path) -> dict:
    r = run_cli("mtga", "status", "-c", str(conf), "--json", timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 else {}


def all_retried(state: Path, n: int) -> bool:
    es = failure_entries(state)
    return len(es) == n and all(e.attempts >= 1 for e in es)
