"""Property values of a track line: the identity fields, ``#time``, and the
exact path that rebuilds ``properties`` field by field: drops, type coercions,
renames, ThinkingData's rules (sink/ta/rules.py, with the fixes the app chose)
and the type guard (sink/ta/typeguard.py). Pure functions; a value ThinkingData
would not take raises ``Fail`` with its reason."""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Optional

import msgspec

from sink.ta.rules import (FUTURE_S, MAX_ID_CHARS, PAST_S, TIME_TEXT, Fail, duplicate_names, fix_value, name_problem,
                      short, value_problem)

if TYPE_CHECKING:
    from collections import Counter

    from sink.ta.settings import Rule

    from sink.ta.typeguard import TypeGuard

_encode = msgspec.json.encode


def id_json(v, field: str) -> Optional[bytes]:
    """An identity field's value as a JSON string (None when absent or empty)."""
    t = type(v)
    if t is int:
        return b'"%d"' % v
    if t is str:
        if not v:
            return None
        if len(v) > MAX_ID_CHARS:
            raise Fail(f"id_too_long: field {field!r} is {len(v)} characters; ThinkingData takes at most "
                       f"{MAX_ID_CHARS} in #account_id and #distinct_id")
        return _encode(v)
    if v is None:
        return None
    return id_json(_ident(v, field), field)


def _ident(v, field: str) -> str:
    t = type(v)
    if t is float:
        return str(int(v)) if v.is_integer() else repr(v)
    raise Fail(f"identity: field {field!r} is a {type(v).__name__}, expected a string or a number")


def event_time(rule: Rule, logs: dict, now: float) -> tuple[bytes, Optional[float]]:
    """``#time`` as bytes, from the configured field (processing time when
    absent), and the event's epoch seconds (None for processing time)."""
    f = rule.time_field
    fmt = rule.seconds
    if f is None:
        return fmt(int(now)), None
    v = logs.get(f)
    if v is None:
        return fmt(int(now)), None  # documented fallback: processing time
    t = type(v)
    unit = rule.time_unit
    if t is int and unit == "s":
        return fmt(v), v
    if unit == "string":
        if t is str and TIME_TEXT.match(v) and (v[8:10] < "29" or _is_date(v)):
            local = dt.datetime.strptime(v[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=rule.tz)
            return v.encode(), local.timestamp()
        raise Fail(f"time: field {f!r} = {short(v)} is not 'YYYY-MM-DD HH:MM:SS[.mmm]'")
    if t is str and v.isdigit():
        v = int(v)
        t = int
    if t is not int and t is not float:
        raise Fail(f"time: field {f!r} = {short(v)} is not a number of {'seconds' if unit == 's' else 'milliseconds'}")
    try:
        ms = int(round(v * 1000)) if unit == "s" else int(v)
    except (OverflowError, ValueError):
        raise Fail(f"time: field {f!r} = {short(v)} is out of range") from None
    sec, milli = divmod(ms, 1000)
    base = fmt(sec)
    return (b"%s.%03d" % (base, milli) if unit == "ms" or milli else base), sec


def time_window(rule: Rule, tm: bytes, sec: float, now: float, fixed: "Counter") -> bytes:
    """``tm`` when ``sec`` is within the days ThinkingData takes, else the
    processing time (when the app fixes it) or a failure."""
    if now - PAST_S <= sec <= now + FUTURE_S:
        return tm
    if rule.fix.get("time_out_of_range"):
        fixed["time_out_of_range"] += 1
        return rule.seconds(int(now))
    days = (now - sec) / 86400
    when = f"{days:.0f} days in the past" if days > 0 else f"{-days:.1f} days in the future"
    raise Fail(f"time_out_of_range: field {rule.time_field!r} gives #time {tm.decode()!r}, {when}; ThinkingData "
               f"takes from 3 years in the past to 3 days in the future")


def zone_offset(rule: Rule, sec: Optional[float], now: float) -> bytes:
    """The ``#zone_offset`` property (hours from UTC of #time), as JSON."""
    off = rule.tz.utcoffset(dt.datetime.fromtimestamp(now if sec is None else sec, rule.tz))
    h = off.total_seconds() / 3600
    return b"%d" % h if h.is_integer() else b"%s" % repr(h).encode()


def coerce(v, typ: str, key: str):
    try:
        if typ == "string":
            if type(v) is str:
                return v
            if type(v) in (dict, list):
                return _encode(v).decode()
            if type(v) is bool:
                return "true" if v else "false"
            return str(v)
        if typ == "int":
            if type(v) is bool:
                return int(v)
            return int(float(v)) if type(v) is str and not v.lstrip("-").isdigit() else int(v)
        if typ == "number":
            if type(v) in (int, float) and type(v) is not bool:
                return v
            f = float(v)
            if not math.isfinite(f):  # "nan", "inf", "1e400": no JSON number holds them
                raise ValueError
            return int(f) if f.is_integer() and "." not in str(v) else f
        if typ == "bool":
            if type(v) is bool:
                return v
            if type(v) is str and v.lower() in ("true", "false", "1", "0"):
                return v.lower() in ("true", "1")
            if type(v) in (int, float):
                return bool(v)
    except (TypeError, ValueError, OverflowError):
        pass
    raise Fail(f"property_type: {key!r} = {short(v)} cannot be coerced to {typ}")


def checked(rule: Rule, name: str, v, fixed: "Counter"):
    """``v`` as ThinkingData takes it: unchanged, fixed as the app chose, or a failure."""
    while True:
        p = value_problem(name, v)
        if p is None:
            return v
        code, detail = p
        if rule.fix.get(code):
            w = fix_value(code, v)
            if w is not v and w != v:
                fixed[code] += 1
                v = w
                continue
        raise Fail(f"{code}: {detail}")


def build_properties(rule: Rule, logs: dict, app: str, guard: "TypeGuard", fixed: "Counter", learn: list,
                     first: bytes = b"") -> bytes:
    """The exact path: rebuild properties with drops, coercions, renames,
    ThinkingData's rules and the type guard. ``first`` is JSON put before them
    (``"#zone_offset":8,``)."""
    props = {}
    types, rename, drop, pinned = rule.types, rule.rename, rule.drop, rule.pinned
    for k, v in logs.items():
        if k in drop or v is None:
            continue
        t = types.get(k)
        if t is not None:
            v = coerce(v, t, k)
        k2 = rename.get(k, k)
        if first and k2 == "#zone_offset":  # the app adds it (time.zone_offset): the line holds it once
            if type(v) in (int, float) and v == msgspec.json.decode(first[15:-1]):
                continue
            raise Fail(f"duplicate_property: '#zone_offset' = {short(v)} in the event, {first[15:-1].decode()} "
                       f"from the app's time zone (time.zone_offset adds it to every line)")
        p = name_problem(k2)
        if p is not None:
            if p[0] == "preset_property" and rule.fix.get("preset_property"):
                fixed["preset_property"] += 1
                continue
            raise Fail(f"{p[0]}: {p[1]}")
        v = checked(rule, k2, v, fixed)
        props[k2] = v if k2.lower() in pinned else guard.check(app, k2, v, learn, rule.caps.event_properties)
    p = duplicate_names(props)
    if p is not None:
        raise Fail(f"{p[0]}: {p[1]}")
    out = _encode(props)
    return b"{" + first + out[1:] if first and len(out) > 2 else (b"{" + first[:-1] + b"}" if first else out)


def _is_date(text: str) -> bool:
    """True when the YYYY-MM-DD at the start of ``text`` is a day of the calendar."""
    try:
        dt.date(int(text[:4]), int(text[5:7]), int(text[8:10]))
        return True
    except ValueError:
        return False
