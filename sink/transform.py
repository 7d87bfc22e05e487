"""The transform: one Kafka event in, one ThinkingData track line out (or a
reason it was filtered or failed). Pure: no I/O; per-app settings come from an
injected lookup.

Output line, one JSON object::

    {"#type":"track","#event_name":"t_log_item","#time":"2020-12-17 13:50:43",
     "#account_id":"6001310009300","#distinct_id":"","#ip":"","#uuid":"...",
     "properties":{...the event's fields...}}

Speed: most events are flat objects whose keys are valid property names. They
are decoded straight into a typed mapping (msgspec checks in C that every value
is a string, a 64-bit integer, a float, a boolean or a list of those), the key
layout is checked once per distinct layout and cached, and the mapping is
re-encoded as ``properties``. Anything else (nulls, nested objects, keys that
settings coerce, rename or drop, invalid names) takes the exact path, which
rebuilds the properties field by field and names what is wrong.

Failure reasons are ``"<code>: <detail>"``; the codes are listed in REASONS.
"""

from __future__ import annotations

import hashlib
import time
from typing import Annotated, Callable, Optional, Union

import msgspec

from .batch import FAILED, FILTERED, OK, Item
from .properties import Fail, id_json, layout_ok, short, short_reason, build_properties, event_time
from .settings import AppSettings, Problem, Rule
from .timefmt import TimeRangeError


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
    "internal": "an unexpected error while transforming this event (a bug: please report it)",
}

_BOM = b"\xef\xbb\xbf"
_TOO_DEEP = "invalid_json: nested too deeply to decode (arrays or objects inside one another)"

_decode = msgspec.json.decode
_encode = msgspec.json.encode


_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_Scalar = Union[str, _Int64, float, bool]
FlatLogs = dict[str, Union[_Scalar, list[_Scalar]]]


class _Envelope(msgspec.Struct):
    headers: dict
    logs: dict


class _FlatEnvelope(msgspec.Struct):
    headers: dict
    logs: FlatLogs


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_flat_envelope = msgspec.json.Decoder(_FlatEnvelope).decode
_decode_flat = msgspec.json.Decoder(FlatLogs).decode


class UuidMaker:
    """Deterministic ``#uuid``s: the same (stream, position), the same UUID.

    A stream is a Kafka partition (``k|topic|partition``, position = offset) or,
    for shipper lines, the source file (``f|host|file identity``, position =
    byte offset), so a line the shipper sent twice keeps one UUID. Layout
    (RFC 9562 version 8, custom): the first 64 bits are an MD5 of the stream
    name with the version nibble set; the last 64 are the variant bits and
    the 62-bit position. Distinct positions of a stream never collide.
    """

    def __init__(self):
        self._prefix: dict[tuple, bytes] = {}

    def __call__(self, stream: tuple, position: int) -> bytes:
        """``stream`` is (topic, partition) or, for shipper lines, (host, file identity)."""
        p = self._prefix.get(stream)
        if p is None:
            a, b = stream
            name = b"k|%s|%d" % (a.encode(), b) if type(a) is str else b"f|%s|%s" % (a, b)
            x = hashlib.md5(name).hexdigest().encode()
            p = b"%s-%s-8%s-" % (x[:8], x[8:12], x[13:16])
            if len(self._prefix) > 100_000:
                self._prefix.clear()
            self._prefix[stream] = p
        h = b"%016x" % (0x8000000000000000 | (position & 0x3FFFFFFFFFFFFFFF))
        return b"%s%s-%s" % (p, h[:4], h[4:])


def event_uuid(topic: str, partition: int, offset: int) -> str:
    """The ``#uuid`` of the event at ``offset`` in a partition (no shipper headers)."""
    return UuidMaker()((topic, partition), offset).decode()


Lookup = Callable[[str], Union[AppSettings, Problem]]


class Transformer:
    """Turns events into track lines with the settings ``lookup`` gives."""

    def __init__(self, lookup: Lookup, uuid: bool = True, clock: Callable[[], float] = time.time):
        self.lookup = lookup
        self.uuid = uuid
        self.clock = clock
        self.uuids = UuidMaker()

    def __call__(self, payload: bytes, headers: Optional[list], topic: str, partition: int, offset: int):
        """-> (OK, app_id, line) | (FILTERED, app_id, why) | (FAILED, app_id or None, reason)."""
        return self.run_batch([Item(payload, headers, topic, partition, offset)])[0]

    def run_batch(self, items) -> list:
        """Transform ``batch.Item``s, in order.

        Settings are looked up once per (app, log_name) per batch, and the clock
        read once, which keeps the per-event work to the event itself.
        """
        now = self.clock()
        rules: dict = {}
        out = []
        append = out.append
        one = self._one
        for it in items:
            try:
                append(one(it.payload, it.headers, it.topic, it.partition, it.offset, now, rules))
            except Fail as e:
                append((FAILED, getattr(e, "app_id", None), str(e)))
            except Exception as e:  # a case no rule foresaw: this event fails, the daemon goes on
                append((FAILED, None, short_reason(f"internal: {type(e).__name__}: {e}")))
        return out

    def _one(self, payload, headers, topic, partition, offset, now, rules):
        app_id = log_name = None
        stream = None
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
            if file_id is not None and pos is not None and pos.isdigit():
                stream = (host or b"", file_id)
                offset = int(pos)  # the line's byte offset in its file names its #uuid
        if payload[:3] == _BOM:
            payload = payload[3:]
        flat = True  # decoded as FlatLogs: every value already of a type ThinkingData takes
        try:
            if app_id is not None:  # bare form: the payload is the logs object
                try:
                    logs = _decode_flat(payload)
                except msgspec.ValidationError:
                    flat = False
                    logs = _decode(payload)
                    if type(logs) is dict and len(logs) == 2 and type(logs.get("logs")) is dict \
                            and type(logs.get("headers")) is dict:
                        logs = logs["logs"]  # an envelope after all
            else:
                try:
                    env = _decode_flat_envelope(payload)
                except msgspec.ValidationError:
                    flat = False
                    env = _decode_envelope(payload)
                logs = env.logs
                h = env.headers
                app_id = h.get("app_id")
                log_name = h.get("log_name")
        except msgspec.ValidationError as e:
            msg = str(e)
            if "missing required field" in msg or "Expected `object`" in msg:
                raise Fail(_not_envelope(payload)) from None
            raise Fail(f"invalid_json: {msg}") from None
        except msgspec.DecodeError as e:
            raise Fail(_undecodable(payload, e)) from None
        except UnicodeDecodeError:
            raise Fail(_not_utf8(payload)) from None
        except RecursionError:
            raise Fail(_TOO_DEEP) from None
        if type(logs) is not dict:
            raise Fail(f"not_object: the event is a JSON {_json_type(logs)}, expected an object")

        if type(app_id) in _PLAIN and type(log_name) in _PLAIN:
            key = (app_id, log_name)
            hit = rules.get(key)
            if hit is None:
                hit = rules[key] = self._resolve(app_id, log_name)
        else:  # 24.0 == 24 and True == 1 must not share a cached rule; a list is not even hashable
            hit = self._resolve(app_id, log_name)
        app, settings, rule = hit
        if rule is None:
            _fail_app(app, settings)  # settings holds the reason
        if settings is not None:  # the app filters
            why = settings.filtered(rule.log_name, logs)
            if why is not None:
                return (FILTERED, app, why)
        try:
            return (OK, app, self._line(rule, logs, flat, topic, partition, offset, stream, now))
        except Fail as e:
            e.app_id = app
            raise
        except TimeRangeError as e:
            err = Fail(f"time: field {rule.time_field!r}: {e}")
            err.app_id = app
            raise err from None

    def _resolve(self, app_id, log_name):
        """-> (app, settings if the app filters else None, rule) or (app, reason, None)."""
        try:
            app = _app_key(app_id)
        except Fail as e:
            return (None, str(e), None)
        if log_name is None:
            return (app, "no_log_name: no log_name in the Kafka headers or the envelope", None)
        if type(log_name) is bytes:
            try:
                log_name = log_name.decode()
            except UnicodeDecodeError:
                return (app, "no_log_name: the log_name header is not UTF-8", None)
        elif type(log_name) is not str:
            return (app, f"no_log_name: log_name is a {type(log_name).__name__}, expected a string", None)
        if not log_name:
            return (app, "no_log_name: log_name is empty", None)
        settings = self.lookup(app)
        if type(settings) is Problem:
            return (app, settings.reason, None)
        rule = settings.rule(log_name)
        if type(rule) is str:
            if settings.keep is not None or settings.drop or settings.where:
                # a filtered log_name is filtered even when its name would be invalid
                return (app, settings, _FilteredOnly(log_name, rule))
            return (app, rule, None)
        filters = settings if (settings.keep is not None or settings.drop or settings.where) else None
        return (app, filters, rule)

    def _line(self, rule: Rule, logs: dict, flat: bool, topic, partition, offset, stream, now) -> bytes:
        if type(rule) is _FilteredOnly:
            raise Fail(rule.reason)
        f = rule.account_field
        acc = None if f is None else id_json(logs.get(f), f)
        f = rule.distinct_field
        did = None if f is None else id_json(logs.get(f), f)
        if acc is None and did is None:
            raise Fail(f"identity: #account_id (field {rule.account_field!r}) and #distinct_id "
                       f"(field {rule.distinct_field!r}) are both empty")
        f = rule.ip_field
        ip = None if f is None else logs.get(f)
        if ip is None:
            ip = b'""'
        elif type(ip) is str:
            ip = _encode(ip)
        else:
            raise Fail(f"property_type: ip field {f!r} is a {type(ip).__name__}, expected a string")
        f = rule.seconds_field  # the common case, inline: a time field in whole seconds
        if f is not None and type(t := logs.get(f)) is int:
            tm = rule.seconds(t)
        else:
            tm = event_time(rule, logs, now)

        if flat:
            keys = tuple(logs)
            ok = rule.layouts.get(keys)
            if ok is None:
                ok = layout_ok(rule, keys)
            props = _encode(logs) if ok else build_properties(rule, logs)
        else:
            props = build_properties(rule, logs)
        if self.uuid:
            if stream is None:
                stream = (topic, partition)
            return _LINE_UUID % (rule.event_name_json, tm, acc or b'""', did or b'""', ip,
                                 self.uuids(stream, offset), props)
        return _LINE % (rule.event_name_json, tm, acc or b'""', did or b'""', ip, props)


_PLAIN = frozenset((str, bytes, int))  # app_id / log_name types whose equal values mean the same app / log
_LINE = (b'{"#type":"track","#event_name":%s,"#time":"%s","#account_id":%s,"#distinct_id":%s,"#ip":%s,'
         b'"properties":%s}')
_LINE_UUID = (b'{"#type":"track","#event_name":%s,"#time":"%s","#account_id":%s,"#distinct_id":%s,"#ip":%s,'
              b'"#uuid":"%s","properties":%s}')


class _FilteredOnly:
    """A log_name whose rule failed, in an app with filters: filtered if the filters say so."""

    __slots__ = ("log_name", "reason")

    def __init__(self, log_name: str, reason: str):
        self.log_name, self.reason = log_name, reason


def _fail_app(app: str, reason: str):
    e = Fail(reason)
    e.app_id = app
    raise e


def _app_key(app_id) -> str:
    """The app id as a folder-safe string, or a failure."""
    t = type(app_id)
    if t is int and app_id >= 0:
        return str(app_id)
    if app_id is None:
        raise Fail("no_app_id: the envelope's headers have no app_id")
    if t is bytes:
        try:
            app_id = app_id.decode()
        except UnicodeDecodeError:
            raise Fail("bad_app_id: the app_id header is not UTF-8") from None
        t = str
    if t is str and app_id.isascii() and app_id.isdigit() and len(app_id) <= 18:
        return str(int(app_id))
    raise Fail(f"bad_app_id: {short(app_id)} is not a non-negative integer")


def _not_envelope(payload: bytes) -> str:
    """The reason for a payload without Kafka headers that is no envelope."""
    try:
        top = _decode(payload)
    except msgspec.DecodeError as e:  # e.g. trailing bytes after a first object
        return _undecodable(payload, e)
    except UnicodeDecodeError:
        return _not_utf8(payload)
    except RecursionError:
        return _TOO_DEEP
    if type(top) is not dict:
        return f"not_object: the event is a JSON {_json_type(top)}, expected an object"
    h = top.get("headers")
    if "headers" in top and type(h) is not dict:
        return f"no_app_id: the envelope's headers is a JSON {_json_type(h)}, expected an object with app_id"
    if "headers" in top and "logs" in top:
        return f"not_object: the envelope's logs is a JSON {_json_type(top['logs'])}, expected an object"
    return "no_app_id: neither Kafka headers nor an envelope {\"headers\": {...}, \"logs\": {...}} give app_id"


def _undecodable(payload: bytes, error: Exception) -> str:
    """The reason for a payload the JSON decoder refused: invalid_utf8 when it stopped at bytes
    that are not UTF-8 (older msgspec raises UnicodeDecodeError there, newer a DecodeError
    saying "Invalid UTF-8"), else invalid_json with the decoder's words (a UTF-16 event, whose
    first byte is no JSON, stays invalid_json)."""
    if "UTF-8" in str(error):
        return _not_utf8(payload)
    return f"invalid_json: {error}"


def _not_utf8(payload: bytes) -> str:
    """The reason for a payload that is not UTF-8, with the offset of the first bad byte.

    (The decoder's own error counts from the start of the string value it was reading.)"""
    try:
        payload.decode()
    except UnicodeDecodeError as e:
        return f"invalid_utf8: byte {e.start} of the event ({payload[e.start:e.start + 4]!r}) is not UTF-8"
    return "invalid_utf8: the event is not UTF-8"


def _json_type(v) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(v), type(v).__name__)
