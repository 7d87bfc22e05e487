"""sink/ta/uuids.py: the deterministic ``#uuid`` in the standard version-4 form,
unique per (source, position), and ``parse`` of it and of the old version-8
form."""

from __future__ import annotations

import uuid as uuidlib

from sink.ta.uuids import UuidMaker, current_key, event_uuid, parse, parse_line, source_key, uuid_of


def old_form(u: str) -> str:
    """``u`` as mtga wrote it before: the same bits, version nibble 8."""
    return u[:14] + "8" + u[15:]


def test_version_4_and_the_rfc_4122_variant():
    positions = [0, 1, 7, 2**16 - 1, 2**16, 2**40, 2**58 - 1]
    streams = [("t", 0), ("mulog_clean_24", 11), (b"host-1", b"fd01:2:3"), (b"", b"9:9:9")]
    seen = 0
    for st in streams:
        for pos in positions:
            u = UuidMaker()(st, pos).decode()
            v = uuidlib.UUID(u)
            assert str(v) == u and v.version == 4 and v.variant == uuidlib.RFC_4122, u
            assert u[14] == "4" and u[19] in "89ab"
            seen += 1
    assert seen == len(streams) * len(positions)


def test_deterministic_and_unique_over_sources_and_positions():
    mk = UuidMaker()
    streams = [("topic-%d" % (i % 7), i) for i in range(200)] + [(b"h%d" % i, b"1:%d:2" % i) for i in range(200)]
    all_uuids = {mk(st, pos) for st in streams for pos in range(250)}
    assert len(all_uuids) == len(streams) * 250 == 100_000
    assert len({mk(("s", 0), n) for n in range(100_000)}) == 100_000
    assert mk(("t", 3), 5) == UuidMaker()(("t", 3), 5) == event_uuid("t", 3, 5).encode()
    # positions far apart stay apart: all 58 bits are kept
    assert len({mk(("s", 0), 2**k) for k in range(58)}) == 58
    assert mk(("s", 0), 2**58 - 1) != mk(("s", 0), 2**57 - 1)


def test_parse_gives_source_and_position_of_both_forms():
    for st, pos in [(("t", 0), 0), (("t", 0), 5), (("mulog_clean_24", 3), 2**40 + 17), ((b"h", b"1:2:3"), 2**58 - 1)]:
        key = source_key(st)
        u = uuid_of(key, pos).decode()
        assert parse(u) == (key, pos)
        assert parse(old_form(u)) == (key, pos)  # the old form: the same source, in the current key's form
        assert current_key(old_form(u)[:19].encode()) == key and current_key(key) == key
    u = event_uuid("t", 0, 5)
    not_ours = [uuidlib.uuid4().hex, u.upper(), u[:14] + "1" + u[15:], u[:19] + "c" + u[20:], u[:-1], u + "0",
                "-" + u[1:], u[:8] + "0" + u[9:], u[:35] + "g", ""]
    assert [x for x in not_ours if parse(x) is not None] == []
    # a random version-4 uuid parses as some line (its bits are any source's): recovery reads only mtga's output
    assert parse_line(str(uuidlib.uuid4())) is not None


def test_each_line_of_an_event_has_its_own_uuid_and_only_the_last_marks_it():
    """An event giving several lines (a track line and user operations): each
    line's #uuid differs, is version 4, and tells its line counted from the
    event's last; ``parse`` (what recovery counts) takes only the last line's,
    which is the one-line event's #uuid of before."""
    key = source_key((b"host-1", b"fd01:2:3"))
    for pos in (0, 12345, 2**58 - 1):
        lines = [uuid_of(key, pos, k).decode() for k in range(16)]
        assert len(set(lines)) == 16
        assert all(uuidlib.UUID(u).version == 4 and uuidlib.UUID(u).variant == uuidlib.RFC_4122 for u in lines)
        assert [parse_line(u) for u in lines] == [(key, pos, k) for k in range(16)]
        assert [parse(u) for u in lines] == [(key, pos)] + [None] * 15
        assert lines[0] == uuid_of(key, pos).decode()
        assert parse_line(old_form(lines[3])) == (key, pos, 3)
