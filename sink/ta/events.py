"""Decoding an event: the payload (an envelope, or the bare logs object whose
app_id and log_name came as Kafka headers) into its logs object, and the reason
when it cannot be (invalid JSON or UTF-8, not an object, no envelope)."""

from __future__ import annotations

from typing import Annotated, Union

import msgspec

from sink.ta.rules import MAX_LIST, MAX_NUMBER, MAX_OBJECT_KEYS, Fail, short

BOM = b"\xef\xbb\xbf"
_TOO_DEEP = "invalid_json: nested too deeply to decode (arrays or objects inside one another)"

_decode = msgspec.json.decode
_encode = msgspec.json.encode


# what the fast path takes without looking: within ThinkingData's limits by construction
# (a text of at most 512 characters is at most 2 KB; 63 characters, at most 255 bytes)
_Num = Annotated[int, msgspec.Meta(ge=-MAX_NUMBER, le=MAX_NUMBER)]
_Real = Annotated[float, msgspec.Meta(ge=-MAX_NUMBER, le=MAX_NUMBER)]
_Text = Annotated[str, msgspec.Meta(max_length=512)]
_Scalar = Union[_Text, _Num, _Real, bool]
_List = Annotated[list[Union[Annotated[str, msgspec.Meta(max_length=63)], _Num, _Real, bool]],
                  msgspec.Meta(max_length=MAX_LIST)]
_Object = Annotated[dict[str, Union[_Scalar, _List]], msgspec.Meta(max_length=MAX_OBJECT_KEYS)]
FlatLogs = dict[str, Union[_Scalar, _List, _Object]]


class _Envelope(msgspec.Struct):
    headers: dict
    logs: dict


class _FlatEnvelope(msgspec.Struct):
    headers: dict
    logs: FlatLogs


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_flat_envelope = msgspec.json.Decoder(_FlatEnvelope).decode
_decode_flat = msgspec.json.Decoder(FlatLogs).decode





def decode(payload: bytes, app_id, log_name) -> tuple:
    """-> (logs, app_id, log_name, flat); ``flat``: decoded as FlatLogs, every
    value already of a type and size ThinkingData takes. Raises Fail. The caller
    has taken a byte order mark off the payload (one: two are not JSON)."""
    flat = True  # decoded as FlatLogs: every value already of a type ThinkingData takes
    try:
        if app_id is not None:  # bare form: the payload is the logs object
            try:
                logs = _decode_flat(payload)
                if len(logs) == 2 and type(logs.get("logs")) is dict and type(logs.get("headers")) is dict:
                    logs = logs["logs"]  # an envelope after all (its values: of an object's types)
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
    return logs, app_id, log_name, flat


def app_key(app_id) -> str:
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
