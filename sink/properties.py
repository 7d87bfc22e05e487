"""Property values of a track line: the identity fields, ``#time``, and the
exact path that rebuilds ``properties`` field by field (drops, type coercions,
renames, name and value checks). Pure functions; a value ThinkingData would not
take raises ``Fail`` with its reason."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Optional

import msgspec

from .settings import NAME_RE, Rule

_TIME_STR = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{3})?$")
_I64 = 2**63

_encode = msgspec.json.encode


class Fail(Exception):
    """Raised inside the transform; carries the failure reason."""


def id_json(v, field: str) -> Optional[bytes]:
    """An identity field's value as a JSON string (None when absent or empty)."""
    t = type(v)
    if t is int:
        return b'"%d"' % v
    if t is str:
        return _encode(v) if v else None
    if v is None:
        return None
    return _encode(_ident(v, field))


def _ident(v, field: str) -> str:
    t = type(v)
    if t is str:
        return v
    if t is int:
        return str(v)
    if t is float:
        return str(int(v)) if v.is_integer() else repr(v)
    raise Fail(f"identity: field {field!r} is a {type(v).__name__}, expected a string or a number")


def event_time(rule: Rule, logs: dict, now: float) -> bytes:
    """``#time`` as bytes, from the configured field (processing time when absent)."""
    f = rule.time_field
    fmt = rule.seconds
    if f is None:
        return fmt(int(now))
    v = logs.get(f)
    if v is None:
        return fmt(int(now))  # documented fallback: processing time
    t = type(v)
    unit = rule.time_unit
    if t is int and unit == "s":
        return fmt(v)
    if unit == "string":
        if t is str and _TIME_STR.match(v) and (v[8:10] < "29" or _is_date(v)):
            return v.encode()
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
    return b"%s.%03d" % (base, milli) if unit == "ms" or milli else base


def _coerce(v, typ: str, key: str):
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


def short_reason(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short(v) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _check_value(k: str, v) -> None:
    t = type(v)
    if t is dict:
        raise Fail(f"property_type: {k!r} is an object; ThinkingData takes numbers, strings, booleans, "
                   f"lists and times (set properties.types.{k} to \"string\" to keep it as JSON text)")
    if t is int and not -_I64 <= v < _I64:
        raise Fail(f"property_value: {k!r} = {short(v)} is beyond 64-bit integers "
                   f"(set properties.types.{k} to \"string\" to keep it as text)")
    if t is list:
        for x in v:
            if type(x) in (dict, list) or x is None:
                raise Fail(f"property_type: {k!r} is a list holding {type(x).__name__ if x is not None else 'null'}; "
                           f"lists may hold only strings, numbers and booleans")


def build_properties(rule: Rule, logs: dict) -> bytes:
    """The exact path: rebuild properties with drops, coercions, renames and checks."""
    props = {}
    types, rename, drop = rule.types, rule.rename, rule.drop
    for k, v in logs.items():
        if k in drop or v is None:
            continue
        t = types.get(k)
        if t is not None:
            v = _coerce(v, t, k)
        k2 = rename.get(k, k)
        if not NAME_RE.match(k2):
            raise Fail(f"property_name: {k2!r} breaks ThinkingData's rule ^[#a-zA-Z][a-zA-Z0-9_]{{0,49}}$")
        _check_value(k2, v)
        props[k2] = v
    return _encode(props)


def layout_ok(rule: Rule, keys: tuple) -> bool:
    ok = rule.layouts.get(keys)
    if ok is None:
        special = rule.special
        ok = all(NAME_RE.match(k) and k not in special for k in keys)
        if len(rule.layouts) > 10_000:
            rule.layouts.clear()
        rule.layouts[keys] = ok
    return ok


def _is_date(text: str) -> bool:
    """True when the YYYY-MM-DD at the start of ``text`` is a day of the calendar."""
    try:
        dt.date(int(text[:4]), int(text[5:7]), int(text[8:10]))
        return True
    except ValueError:
        return False
