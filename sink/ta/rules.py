"""ThinkingData's data rules, as data and pure checks.

Source: TA v6 documentation, "Data Rules" and "Preset Properties", and the
validators of ThinkingData's official SDKs. An event counts only if TA keeps it,
once, with the value and type the game wrote; a line that breaks one of these
rules is dropped or mangled by TA without a word, so mtga refuses it (or, where
an app's settings say so, fixes it) before writing it.

- Top level: only TOP_LEVEL keys.
- Event and property names: NAME (``^[a-zA-Z][a-zA-Z0-9_]{0,49}$``); TA compares
  names without case (``amount`` and ``Amount`` are one property). A property may
  begin with ``#`` only when it is one of PRESET.
- Values: text up to 2 KB; numbers within +-9E15; lists up to 500 elements of at
  most 255 bytes each; objects up to 100 sub-properties, no object inside an
  object; object groups (lists of objects) up to 500 objects.
- One type per property name per project (see sink/ta/typeguard.py).
- ``#account_id`` / ``#distinct_id`` up to 128 characters, at least one non-empty.
- ``#time`` ``yyyy-MM-dd HH:mm:ss[.SSS]``, from 3 years in the past to 3 days
  in the future of the time TA receives it.
- ``#uuid`` a standard UUID.
"""

from __future__ import annotations

import math
import re
from typing import Optional

# the top-level keys ThinkingData's SDKs write
TOP_LEVEL = frozenset(("#account_id", "#distinct_id", "#type", "#time", "#event_name", "#ip", "#uuid",
                       "#first_check_id", "#event_id", "#app_id", "#transaction_property", "#import_tool_id",
                       "properties"))
NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,49}\Z")  # \Z: "$" would take a name ending in a newline
NAME_TEXT = "^[a-zA-Z][a-zA-Z0-9_]{0,49}$"
# TA's preset event properties (the SDKs' and the server's); any other '#' property is dropped by TA
PRESET = frozenset((
    "#zone_offset", "#os", "#os_version", "#device_id", "#device_model", "#device_type", "#manufacturer",
    "#carrier", "#network_type", "#screen_height", "#screen_width", "#system_language", "#app_version",
    "#bundle_id", "#install_time", "#lib", "#lib_version", "#browser", "#browser_version", "#ua", "#url",
    "#url_path", "#referrer", "#referrer_host", "#title", "#screen_name", "#element_id", "#element_type",
    "#element_content", "#element_position", "#element_selector", "#duration", "#resume_from_background",
    "#start_reason", "#background_duration", "#simulator", "#ram", "#disk", "#fps", "#country",
    "#country_code", "#province", "#city", "#mp_platform", "#scene",
))
MAX_TEXT_BYTES = 2048
MAX_NUMBER = 9_000_000_000_000_000  # 9E15
MAX_LIST = 500
MAX_LIST_ITEM_BYTES = 255
MAX_OBJECT_KEYS = 100
MAX_OBJECT_GROUP = 500
MAX_ID_CHARS = 128
PAST_S = 3 * 365 * 86400  # #time accepted from 3 years back...
FUTURE_S = 3 * 86400  # ...to 3 days ahead
TIME_TEXT = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{3})?\Z")

# reason codes of the failure queue (and of check-output): code -> what it means
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
    "id_too_long": "#account_id or #distinct_id is longer than 128 characters",
    "time": "the time field cannot be read as configured",
    "time_out_of_range": "#time is more than 3 years in the past or 3 days in the future",
    "property_name": "a property name breaks ThinkingData's naming rule",
    "repeated_key": "a key written twice in one JSON object of a line (a reader keeps one of them)",
    "preset_property": "a property begins with '#' but is none of ThinkingData's preset properties",
    "duplicate_property": "two properties whose names differ only in case (one property to ThinkingData), or an "
                          "event's #zone_offset that differs from the one its app adds",
    "property_type": "a property value has a type ThinkingData does not take",
    "property_value": "a property value cannot be stored (beyond 64-bit integers, not finite)",
    "string_too_long": "a text value is longer than 2 KB",
    "number_out_of_range": "a number is beyond plus or minus 9E15",
    "list_too_long": "a list has more than 500 elements",
    "list_item_too_long": "a list element is longer than 255 bytes",
    "object_too_large": "an object has more than 100 sub-properties",
    "object_nested": "an object (or a list of them) inside an object",
    "object_group_too_long": "an object group has more than 500 objects",
    "type_conflict": "a value of another type than the property's first one (ThinkingData would store null), or "
                     "a user_add / user_append on a user property of another type",
    "event_id": "the field of #first_check_id or #event_id is missing or empty",
    "event_cap": "a new event name beyond the app's cap of event names (caps.events)",
    "property_cap": "a new event property beyond the app's cap (caps.event_properties)",
    "user_property_cap": "a new user property beyond the app's cap (caps.user_properties)",
    "sink_write": "the output file could not be written",
    "internal": "an unexpected error while transforming this event (a bug: please report it)",
}
# output checks only (mtga check-output)
LINE_REASONS = {
    "line_json": "the line is not one JSON object",
    "top_level": "a top-level key ThinkingData does not take, or #type/properties missing",
    "uuid": "#uuid is not a standard UUID",
    "type_rule": "a rule of the line's #type broken (user_add of a non-number, #event_name on a user operation, "
                 "track_update without #event_id, ...)",
    "empty_id": "#account_id, #distinct_id or #ip is an empty text: ThinkingData's SDKs leave it out",
    "file_name": "the file name is not one LogBus reads (log.YYYY-MM-DD[-HH][_N], with an optional prefix)",
    "time": "#time is missing or not a real yyyy-MM-dd HH:mm:ss[.SSS]",
}

# the rules an app's settings may fix instead of refusing, and how (metadata.<app>.json "fix")
FIXES = {
    "string_too_long": "cut",  # keep the first 2 KB (whole characters)
    "number_out_of_range": "string",  # write the number as text
    "list_too_long": "cut",  # keep the first 500 elements
    "list_item_too_long": "cut",  # keep the first 255 bytes of each element
    "time_out_of_range": "processing_time",  # #time = when mtga processed the event
    "preset_property": "drop",  # leave the property out
    "object_nested": "json_text",  # write what is nested too deep as JSON text
}


class Fail(Exception):
    """Raised inside the transform; carries the failure reason ``"<code>: <detail>"``."""


def short(v) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def short_reason(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def text_bytes(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode())


def cut_text(s: str, limit: int) -> str:
    """``s`` cut to at most ``limit`` bytes of UTF-8, on a character boundary."""
    return s.encode()[:limit].decode("utf-8", "ignore")


def name_problem(name: str, *, top: bool = True) -> Optional[tuple[str, str]]:
    """(code, detail) when ``name`` may not name a property (None: it may)."""
    if type(name) is not str:
        return "property_name", f"{short(name)} is not a text"
    if name.startswith("#") and top:
        if name in PRESET:
            return None
        return "preset_property", f"{name!r} is none of ThinkingData's preset properties (TA drops it)"
    if not NAME.match(name):
        return "property_name", f"{name!r} breaks ThinkingData's rule {NAME_TEXT}"
    return None


def duplicate_names(names) -> Optional[tuple[str, str]]:
    """(code, detail) when two names differ only in case."""
    seen: dict[str, str] = {}
    for n in names:
        low = n.lower()
        other = seen.get(low)
        if other is not None:
            return "duplicate_property", (f"{other!r} and {n!r} are one property to ThinkingData "
                                          f"(names are compared without case)")
        seen[low] = n
    return None


def _scalar_problem(name: str, v, where: str) -> Optional[tuple[str, str]]:
    t = type(v)
    if t is str:
        if len(v) > MAX_TEXT_BYTES // 4 and (n := text_bytes(v)) > MAX_TEXT_BYTES:
            return "string_too_long", f"{where} is {n} bytes; ThinkingData keeps at most {MAX_TEXT_BYTES}"
        return None
    if t is bool:
        return None
    if t is int or t is float:
        if t is float and not math.isfinite(v):
            return "property_value", f"{where} = {short(v)} is not a finite number"
        if not -MAX_NUMBER <= v <= MAX_NUMBER:
            return "number_out_of_range", (f"{where} = {short(v)} is beyond plus or minus 9E15, the numbers "
                                           f"ThinkingData keeps")
        return None
    return "property_type", f"{where} is a {_json_type(v)}"


def _list_problem(name: str, v: list, where: str) -> Optional[tuple[str, str]]:
    if len(v) > MAX_LIST:
        return "list_too_long", f"{where} has {len(v)} elements; ThinkingData keeps at most {MAX_LIST}"
    for i, x in enumerate(v):
        t = type(x)
        if t is str:
            if len(x) > MAX_LIST_ITEM_BYTES // 4 and (n := text_bytes(x)) > MAX_LIST_ITEM_BYTES:
                return "list_item_too_long", (f"{where}[{i}] is {n} bytes; ThinkingData keeps list elements of "
                                              f"at most {MAX_LIST_ITEM_BYTES}")
        elif t is bool:
            continue
        elif t is int or t is float:
            p = _scalar_problem(name, x, f"{where}[{i}]")
            if p:
                return p
        else:
            return "property_type", (f"{where} is a list holding a {_json_type(x)}; lists hold only texts, "
                                     f"numbers and booleans")
    return None


def _object_problem(name: str, v: dict, where: str) -> Optional[tuple[str, str]]:
    if len(v) > MAX_OBJECT_KEYS:
        return "object_too_large", f"{where} has {len(v)} sub-properties; ThinkingData keeps at most {MAX_OBJECT_KEYS}"
    for k, x in v.items():
        p = name_problem(k, top=False)
        if p:
            return p[0], f"in {where}: {p[1]}"
        t = type(x)
        if t is dict or (t is list and any(type(y) is dict for y in x)):
            return "object_nested", f"{where}.{k} is {'an object' if t is dict else 'a list of objects'} inside an object"
        if x is None:
            continue
        p = _list_problem(name, x, f"{where}.{k}") if t is list else _scalar_problem(name, x, f"{where}.{k}")
        if p:
            return p
    return duplicate_names(v)


def value_problem(name: str, v) -> Optional[tuple[str, str]]:
    """(code, detail) of the first rule the value of property ``name`` breaks."""
    t = type(v)
    where = repr(name)
    if t is list:
        if v and all(type(x) is dict for x in v):
            if len(v) > MAX_OBJECT_GROUP:
                return "object_group_too_long", (f"{where} holds {len(v)} objects; ThinkingData keeps at most "
                                                 f"{MAX_OBJECT_GROUP}")
            for i, o in enumerate(v):
                p = _object_problem(name, o, f"{where}[{i}]")
                if p:
                    return p
            return None
        if any(type(x) is dict for x in v):
            return "property_type", f"{where} is a list holding objects and other values"
        return _list_problem(name, v, where)
    if t is dict:
        return _object_problem(name, v, where)
    return _scalar_problem(name, v, where)


def fix_value(code: str, v):
    """``v`` changed so that it no longer breaks rule ``code`` (see FIXES), or the
    value unchanged when the fix does not apply to it. The fixes of values reach
    into an object's sub-properties and an object group's objects."""
    t = type(v)
    if code == "object_nested":
        import msgspec

        if t is dict:
            return {k: msgspec.json.encode(x).decode() if type(x) is dict or (
                type(x) is list and any(type(y) is dict for y in x)) else x for k, x in v.items()}
        if t is list:
            return [fix_value(code, o) if type(o) is dict else o for o in v]
        return v
    if t is dict:
        return {k: fix_value(code, x) for k, x in v.items()}
    if t is list and v and all(type(o) is dict for o in v):
        return [fix_value(code, o) for o in v]
    if code == "string_too_long" and t is str:
        return cut_text(v, MAX_TEXT_BYTES)
    if code == "number_out_of_range" and t in (int, float):
        return str(v) if t is int else repr(v)
    if code == "list_too_long" and t is list:
        return v[:MAX_LIST]
    if code == "list_item_too_long" and t is list:
        return [cut_text(x, MAX_LIST_ITEM_BYTES) if type(x) is str else x for x in v]
    return v


def _json_type(v) -> str:
    return {list: "list", dict: "object", str: "text", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(v), type(v).__name__)
