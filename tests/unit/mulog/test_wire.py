"""mulog/wire.py: the key form of a shipper line carries the same six fields
as the headers form, and mtga reads both to the same source and position."""

from __future__ import annotations

from mulog import wire
from sink.ta.uuids import read_headers

IDENT = "fd01:2:3a4b5c6d:0"


def headers_form(host: str, path: str, off: int, app: int = 24, log: str = "log_item") -> list:
    return [(k, v.encode()) for k, v in (("host", host), ("path", path), ("file", IDENT), ("offset", str(off)),
                                         ("app_id", str(app)), ("log_name", log))]


def test_both_forms_give_one_source_and_position():
    for host, path in (("game-01", "/var/log/game/log_item.log"), ("", "/logs/a\x1fb.log"),
                       ("h", "/日志/物品.log")):
        prefix = wire.prefix(host, IDENT, 24, "log_item", path)
        for off in (0, 7, 2**40):
            key = prefix + b"%d" % off
            assert read_headers([(wire.CARRIER, key)]) == read_headers(headers_form(host, path, off))
            assert read_headers([(wire.CARRIER, key)])[2:] == ((host.encode(), IDENT.encode()), off)
            assert wire.fields(key) == {"host": host, "path": path, "file": IDENT, "offset": str(off),
                                        "app_id": "24", "log_name": "log_item"}


def test_what_the_key_form_cannot_carry_and_what_is_not_one():
    assert wire.prefix("bad\x1fhost", IDENT, 24, "log_item", "/a.log") is None
    assert wire.prefix("h", IDENT, 24, "log\x1fname", "/a.log") is None
    good = wire.prefix("h", IDENT, 24, "log_item", "/a.log") + b"12"
    for key in (b"", b"fd01:2:3", b"1\x1fh\x1ff\x1f24\x1flog\x1f/a\x1f1", good[:-2] + b"x1", b"2\x1fh\x1f12"):
        assert wire.parse(key) is None and wire.fields(key) is None, key
    assert wire.parse(good) == (b"24", b"log_item", (b"h", IDENT.encode()), 12)
