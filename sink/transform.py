"""The transform: one Kafka event in, one ThinkingData track line out (or a
reason it was filtered or failed). Pure: no I/O; per-app settings come from an
injected lookup.

Output line, one JSON object::

    {"#type":"track","#event_name":"t_log_item","#time":"2020-12-17 13:50:43",
     "#account_id":"6001310009300","#distinct_id":"","#ip":"","#uuid":"...",
     "properties":{...the event's fields...}}

Speed: for most events the output's ``properties`` is the input's ``logs``
object unchanged, so its bytes are spliced through rather than re-encoded.
That fast path is taken only when cheap checks prove the bytes are already
valid output: the key layout (cached per distinct layout) has only valid
property names and no key that settings coerce, rename or drop, and the raw
bytes hold no nested object, no null, no 64-bit overflow candidate, no
duplicate key and no line break. Anything else goes through the exact,
slower path that rebuilds the properties.

Failure reasons are ``"<code>: <detail>"``; the codes are listed in REASONS.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from typing import Callable, Optional, Union

import msgspec

from .settings import NAME_RE, AppSettings, Problem, Rule

OK, FILTERED, FAILED = 0, 1, 2

REASONS = {
    "invalid_json": "the payload is not valid JSON",
    "invalid_utf8": "the payload is not valid UTF-8",
    "not_object": "the event is not a JSON object",
    "no_app_id": "no app_id in the Kafka headers or the envelope",
    "no_log_name": "no log_name in the Kafka headers or the envelope",
    "bad_app_id": "the app_id is not a non-negative integer",
    "no_settings": "no metadata.<app_id>.json for the app",
    "bad_settings": "the app's settings files have a mistake",
    "event_name": "the event name breaks ThinkingData's naming rule",
    "identity": "#account_id and #distinct_id are both empty",
    "time": "the time field cannot be read as configured",
    "property_name": "a property name breaks ThinkingData's naming rule",
    "property_type": "a property value has a type ThinkingData does not take",
    "property_value": "a property value is out of range",
    "sink_write": "the output file could not be written",
}

_BOM = b"\xef\xbb\xbf"
# digits -> "0", everything else -> " ": a run of 19 zeros marks a possible 64-bit overflow
_DIGITS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_RUN19 = b"0" * 19
_TIME_STR = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{3})?$")
_I64 = 2**63
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

_decode = msgspec.json.decode
_encode = msgspec.json.encode


class _Envelope(msgspec.Struct):
    headers: dict
    logs: msgspec.Raw


_decode_envelope = msgspec.json.Decoder(_Envelope).decode


class Fail(Exception):
    """Raised inside the transform; carries the failure reason."""


def det_uuid(basis: bytes) -> str:
    """A name-based (MD5, version 3 layout) UUID: the same basis, the same UUID."""
    h = bytearray(hashlib.md5(basis).digest())
    h[6] = (h[6] & 0x0F) | 0x30
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def _ident(v, field: str) -> str:
    t = type(v)
    if t is str:
        return v
    if t is int:
        return str(v)
    if t is float:
        return str(int(v)) if v.is_integer() else repr(v)
    raise Fail(f"identity: field {field!r} is a {type(v).__name__}, expected a string or a number")


def _fmt_seconds(rule: Rule, sec: int) -> str:
    s = rule.seconds.get(sec)
    if s is None:
        try:
            s = (_EPOCH + dt.timedelta(seconds=sec)).astimezone(rule.tz).strftime("%Y-%m-%d %H:%M:%S")
        except (OverflowError, ValueError):
            raise Fail(f"time: {sec} seconds is out of range") from None
        if len(rule.seconds) > 4096:
            rule.seconds.clear()
        rule.seconds[sec] = s
    return s


def event_time(rule: Rule, logs: dict, now: float) -> str:
    f = rule.time_field
    if f is None:
        return _fmt_seconds(rule, int(now))
    v = logs.get(f)
    if v is None:
        return _fmt_seconds(rule, int(now))  # documented fallback: processing time
    unit = rule.time_unit
    t = type(v)
    if unit == "string":
        if t is str and _TIME_STR.match(v):
            return v
        raise Fail(f"time: field {f!r} = {v!r} is not 'YYYY-MM-DD HH:MM:SS[.mmm]'")
    if t is str and v.isdigit():
        v = int(v)
        t = int
    if t is not int and t is not float:
        raise Fail(f"time: field {f!r} = {v!r} is not a number of {'seconds' if unit == 's' else 'milliseconds'}")
    if unit == "s":
        if t is int:
            return _fmt_seconds(rule, v)
        ms = int(round(v * 1000))
    else:
        ms = int(v)
    sec, milli = divmod(ms, 1000)
    base = _fmt_seconds(rule, sec)
    return f"{base}.{milli:03d}" if unit == "ms" or milli else base


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
    raise Fail(f"property_type: {key!r} = {_short(v)} cannot be coerced to {typ}")


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _check_value(k: str, v) -> None:
    t = type(v)
    if t is dict:
        raise Fail(f"property_type: {k!r} is an object; ThinkingData takes numbers, strings, booleans, "
                   f"lists and times (set properties.types.{k} to \"string\" to keep it as JSON text)")
    if t is int and not -_I64 <= v < _I64:
        raise Fail(f"property_value: {k!r} = {_short(v)} is beyond 64-bit integers "
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


def _layout_ok(rule: Rule, keys: tuple) -> bool:
    ok = rule.layouts.get(keys)
    if ok is None:
        special = rule.special
        ok = all(NAME_RE.match(k) and k not in special for k in keys)
        if len(rule.layouts) > 10_000:
            rule.layouts.clear()
        rule.layouts[keys] = ok
    return ok


Lookup = Callable[[str], Union[AppSettings, Problem]]


class Transformer:
    """Turns events into track lines with the settings ``lookup`` gives."""

    def __init__(self, lookup: Lookup, uuid: bool = True, clock: Callable[[], float] = time.time):
        self.lookup = lookup
        self.uuid = uuid
        self.clock = clock

    def __call__(self, payload: bytes, headers: Optional[list], topic: str, partition: int, offset: int):
        """-> (OK, app_id, line) | (FILTERED, app_id, why) | (FAILED, app_id or None, reason)."""
        try:
            return self._run(payload, headers, topic, partition, offset)
        except Fail as e:
            return (FAILED, getattr(e, "app_id", None), str(e))

    def _run(self, payload, headers, topic, partition, offset):
        app_id = log_name = None
        uuid_basis = None
        if headers:
            file_id = host = pos = None
            for k, v in headers:
                if k == "app_id":
                    app_id = v
                elif k == "log_name":
                    log_name = v
                elif k == "file":
                    file_id = v
                elif k == "offset":
                    pos = v
                elif k == "host":
                    host = v
            if file_id is not None and pos is not None:
                uuid_basis = b"f|%s|%s|%s" % (host or b"", file_id, pos)
        if payload.startswith(_BOM):
            payload = payload[3:]
        try:
            if app_id is not None:  # bare form: the payload is the logs object
                logs = _decode(payload)
                raw = payload
                if type(logs) is dict and len(logs) == 2 and type(logs.get("logs")) is dict \
                        and type(logs.get("headers")) is dict:
                    env = _decode_envelope(payload)
                    raw = bytes(env.logs)
                    logs = logs["logs"]
            else:
                env = _decode_envelope(payload)
                raw = bytes(env.logs)
                logs = _decode(raw)
                h = env.headers
                app_id = h.get("app_id")
                log_name = h.get("log_name")
        except msgspec.ValidationError as e:
            msg = str(e)
            if "missing required field" in msg or "Expected `object`" in msg:
                top = _safe_decode(payload)
                if type(top) is not dict:
                    raise Fail(f"not_object: the event is a JSON {_json_type(top)}, expected an object") from None
                raise Fail("no_app_id: neither Kafka headers nor an envelope {\"headers\": {...}, \"logs\": {...}} "
                           "give app_id") from None
            raise Fail(f"invalid_json: {msg}") from None
        except msgspec.DecodeError as e:
            raise Fail(f"invalid_json: {e}") from None
        except UnicodeDecodeError as e:
            raise Fail(f"invalid_utf8: byte {e.start} of the event") from None
        if type(logs) is not dict:
            raise Fail(f"not_object: the event is a JSON {_json_type(logs)}, expected an object")

        app = _app_key(app_id)
        if log_name is None:
            _fail_app(app, "no_log_name: no log_name in the Kafka headers or the envelope")
        if type(log_name) is bytes:
            try:
                log_name = log_name.decode()
            except UnicodeDecodeError:
                _fail_app(app, "no_log_name: the log_name header is not UTF-8")
        elif type(log_name) is not str:
            _fail_app(app, f"no_log_name: log_name is a {type(log_name).__name__}, expected a string")

        settings = self.lookup(app)
        if type(settings) is Problem:
            _fail_app(app, settings.reason)
        if settings.keep is not None or settings.drop or settings.where:
            why = settings.filtered(log_name, logs)
            if why is not None:
                return (FILTERED, app, why)
        rule = settings.rule(log_name)
        if type(rule) is str:
            _fail_app(app, rule)

        try:
            return (OK, app, self._line(rule, logs, raw, topic, partition, offset, uuid_basis))
        except Fail as e:
            e.app_id = app
            raise

    def _line(self, rule: Rule, logs: dict, raw: bytes, topic, partition, offset, uuid_basis) -> bytes:
        f = rule.account_field
        acc = "" if f is None else logs.get(f)
        acc = "" if acc is None else _ident(acc, f)
        f = rule.distinct_field
        did = "" if f is None else logs.get(f)
        did = "" if did is None else _ident(did, f)
        if not acc and not did:
            raise Fail(f"identity: #account_id (field {rule.account_field!r}) and #distinct_id "
                       f"(field {rule.distinct_field!r}) are both empty")
        f = rule.ip_field
        ip = "" if f is None else logs.get(f)
        if ip is None:
            ip = ""
        elif type(ip) is not str:
            raise Fail(f"property_type: ip field {f!r} is a {type(ip).__name__}, expected a string")
        t = event_time(rule, logs, self.clock())

        if (_layout_ok(rule, tuple(logs)) and raw.count(b"{") == 1 and raw.count(b'":') == len(logs)
                and b"null" not in raw and b"\n" not in raw and b"\r" not in raw and _RUN19 not in raw.translate(_DIGITS)):
            props = raw.strip()
        else:
            props = build_properties(rule, logs)

        parts = [b'{"#type":"track","#event_name":', rule.event_name_json,
                 b',"#time":"', t.encode(), b'","#account_id":', _encode(acc),
                 b',"#distinct_id":', _encode(did), b',"#ip":', _encode(ip)]
        if self.uuid:
            basis = uuid_basis if uuid_basis is not None else b"k|%s|%d|%d" % (topic.encode(), partition, offset)
            parts += (b',"#uuid":"', det_uuid(basis).encode(), b'"')
        parts += (b',"properties":', props, b"}")
        return b"".join(parts)


def _fail_app(app: str, reason: str):
    e = Fail(reason)
    e.app_id = app
    raise e


def _app_key(app_id) -> str:
    """The app id as a folder-safe string, or a failure."""
    t = type(app_id)
    if t is int and app_id >= 0:
        return str(app_id)
    if t is bytes:
        try:
            app_id = app_id.decode()
        except UnicodeDecodeError:
            raise Fail("bad_app_id: the app_id header is not UTF-8") from None
        t = str
    if t is str and app_id.isascii() and app_id.isdigit() and len(app_id) <= 18:
        return str(int(app_id))
    raise Fail(f"bad_app_id: {_short(app_id)} is not a non-negative integer")


def _safe_decode(payload: bytes):
    try:
        return _decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None


def _json_type(v) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(v), type(v).__name__)
