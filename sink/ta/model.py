"""ThinkingData's data model beyond the plain track line: what else an event
gives, compiled from ``events.<log_name>`` (sink/ta/conf.py), and the user-table
lines built from an event.

- a first event: a ``track`` line with ``#first_check_id`` (TA keeps the first
  line of each id);
- an updatable event: ``track_update`` / ``track_overwrite`` with ``#event_id``;
- user-table operations: ``user_set``, ``user_setOnce``, ``user_add`` (numbers
  only), ``user_append`` / ``user_uniq_append`` (lists), ``user_unset`` (as the
  SDKs write it: ``{"name": 0}``), ``user_del`` (no properties); no
  ``#event_name`` on any of them.

User properties have their own types (TA's user table), learned by the type
guard in the table ``user_table(app)``, apart from the event properties; the
event names of an app are counted in ``event_table(app)`` (project caps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import msgspec

from sink.ta.conf import OPS, CapsConf, Model
from sink.ta.properties import checked, coerce
from sink.ta.rules import MAX_ID_CHARS, Fail, short
from sink.ta.uuids import uuid_of

if TYPE_CHECKING:
    from collections import Counter

    from sink.ta.typeguard import TypeGuard

_encode = msgspec.json.encode

USER_TYPES = frozenset(t for _, t in OPS) | {"user_del"}
TRACK_TYPES = frozenset(("track", "track_update", "track_overwrite"))
_NEEDS = {"user_add": "number", "user_append": "list", "user_uniq_append": "list"}  # the kind an op takes


def user_table(app: str) -> str:
    """The type guard's table of an app's user properties."""
    return app + ".user"


def event_table(app: str) -> str:
    """The type guard's table of an app's event names (kind ``event``)."""
    return app + ".event"


def named(guard: "TypeGuard", app: str, rule) -> bool:
    """Whether the rule's event name is counted in its app's event names
    (cached on the rule for the guard's state)."""
    if rule.named_for == guard.changes:
        return True
    names = guard.kinds.get(event_table(app))
    if names is not None and rule.event_low in names:
        rule.named_for = guard.changes
        return True
    return False


def event_key(model: Model, logs: dict) -> bytes:
    """``#first_check_id`` / ``#event_id`` as JSON text: the fields' values as
    text, joined with ``_``; a missing or empty one fails (``event_id``)."""
    parts = []
    for f in model.key_fields:
        v = logs.get(f)
        t = type(v)
        if t is str and v:
            parts.append(v)
        elif (t is int or t is float) and t is not bool:
            parts.append(str(int(v)) if t is float and v.is_integer() else str(v))
        else:
            what = "missing" if v is None else ("empty" if v == "" else f"a {type(v).__name__} ({short(v)})")
            raise Fail(f"event_id: {model.key_top.decode()} field {f!r} is {what}, expected a text or a number")
    text = "_".join(parts)
    if len(text) > MAX_ID_CHARS:
        raise Fail(f"event_id: {model.key_top.decode()} from {', '.join(model.key_fields)} is {len(text)} "
                   f"characters; ThinkingData takes at most {MAX_ID_CHARS}")
    return _encode(text)


class NoLine(Exception):
    """An event that gives no line: counted as filtered out, with why."""


def event_lines(model: Model, rule, app: str, logs: dict, guard: "TypeGuard", fixed: "Counter",
                props: Optional[bytes], tm: bytes, ids: tuple, key: Optional[bytes], position: int) -> bytes:
    """The lines of an event whose rule gives more than a plain track line: its
    track line (``props``: its properties; a first or an updatable event), then
    its user operations, each with its own #uuid (``key``: the source key; None:
    no #uuid). The last line carries the event's own (line 0): recovery counts
    an event written once it finds that line."""
    acc, did, ip = ids
    out = []
    if model.track:
        extra = b'"%s":%s,' % (model.key_top, event_key(model, logs)) if model.key_top else b""
        out.append((b'{"#type":"%s","#event_name":%s,"#time":"%s",%s%s' % (
            model.track_type, rule.event_name_json, tm, _ids(acc, did, ip), extra), props))
    learn: list = []
    who = _ids(acc, did, None)
    for typ, p in user_lines(model, rule, logs, app, guard, fixed, learn):
        out.append((b'{"#type":"%s","#time":"%s",%s' % (typ, tm, who), p))
    if not out:
        raise NoLine("no line: none of the fields of its user operations is in the event")
    if learn:
        guard.learn(user_table(app), learn)
    n = len(out) - 1
    if key is not None:
        return b"\n".join(b'%s"#uuid":"%s","properties":%s}' % (head, uuid_of(key, position, n - i), p)
                          for i, (head, p) in enumerate(out))
    return b"\n".join(b'%s"properties":%s}' % (head, p) for head, p in out)


def _ids(acc, did, ip) -> bytes:
    """The id keys of a line (and ``#ip``), each left out when empty (None)."""
    out = b"" if acc is None else b'"#account_id":%s,' % acc
    if did is not None:
        out += b'"#distinct_id":%s,' % did
    if ip is not None:
        out += b'"#ip":%s,' % ip
    return out


def user_lines(model: Model, rule, logs: dict, app: str, guard: "TypeGuard", fixed: "Counter",
               learn: list) -> list[tuple[bytes, bytes]]:
    """(#type, properties JSON) of each user operation an event gives, in order;
    an operation whose fields are all missing or null gives no line. What the
    user table learns goes to ``learn`` as (name, kind)."""
    out = []
    table = user_table(app)
    cap = rule.caps.user_properties
    for typ, props in model.ops:
        vals = {}
        for prop, field, const in props:
            if field is None:
                v = const
            else:
                v = logs.get(field)
                if v is None:
                    continue
                t = rule.types.get(field)
                if t is not None:
                    v = coerce(v, t, field)
            if typ == "user_unset":
                vals[prop] = 0
                continue
            need = _NEEDS.get(typ)
            if need == "number" and (type(v) not in (int, float)):
                raise Fail(f"property_type: user_add {prop!r} takes numbers; field {field!r} is {short(v)}")
            if need == "list" and type(v) is not list:
                raise Fail(f"property_type: {typ} {prop!r} takes lists; field {field!r} is {short(v)}")
            v = checked(rule, prop, v, fixed)
            if need is None:
                v = guard.check(table, prop, v, learn, cap)
            else:
                _held(guard, table, prop, need, typ, learn, cap)
            vals[prop] = v
        if vals:
            out.append((typ.encode(), _encode(vals)))
    if model.delete_user:
        out.append((b"user_del", b"{}"))
    return out


def _held(guard: "TypeGuard", table: str, prop: str, need: str, typ: str, learn: list, cap: int) -> None:
    """A user_add or append: the property is (or becomes) of the kind it takes."""
    have = guard.kind(table, prop)
    if have is None:
        if guard.frozen and prop.lower() in guard.frozen:
            guard.unknown(table, prop)
        guard.new_name(table, prop, learn, cap)
        learn.append((prop, need))
    elif have != need:
        raise Fail(f"type_conflict: {typ} on {prop!r}, a {have} in app {table.split('.')[0]}'s user table "
                   f"(learned from its first value); {typ} takes a {need}")


def schema_sizes(guard: "TypeGuard", lookup) -> dict[str, dict[str, tuple[int, int]]]:
    """App -> cap -> (names held, the app's cap) for ``events``,
    ``event_properties`` and ``user_properties``; ``lookup``: app -> its
    settings (the caps of its metadata; TA's defaults without)."""
    out = {}
    for app, sizes in guard.sizes().items():
        caps = getattr(getattr(lookup(app), "metadata", None), "caps", None) or CapsConf()
        out[app] = {k: (n, getattr(caps, k)) for k, n in sizes.items()}
    return out
