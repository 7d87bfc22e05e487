"""The type guard: one type per property name per app, as ThinkingData keeps it.

TA fixes a property's type from its first value and stores later values of
another type as null, silently. mtga learns the kind of each property of an app
from the first value it writes, keeps it (offsets.PropertyTypes, in the state
database), and holds later events to it: a value that converts without loss
(``"12"`` for a number, ``12`` for a text, ``"true"`` for a boolean) is
converted; any other goes to the failure queue as ``type_conflict``. Names are
compared without case, as TA does. Properties whose type the app's settings
give (``properties.types``) are pinned: coerced to it, never learned.

Kinds: string, number, boolean, time (a text ``yyyy-MM-dd HH:mm:ss[.SSS]``),
list, object, object_group. A time is also a text: a property learned as
string takes time-shaped texts too; one learned as time takes only those.

Worker processes each hold a copy (``replace``) and report what they learned
(``take_learned``); the loop's copy is the one that is stored and shared
(sink/pipeline/workers.py decides, in batch order, which learning counts).
"""

from __future__ import annotations

import re
from typing import Optional

from sink.ta.rules import MAX_NUMBER, TIME_TEXT, Fail, short

KINDS = ("string", "number", "boolean", "time", "list", "object", "object_group")
PINNED = {"string": "string", "number": "number", "int": "number", "bool": "boolean"}  # settings type -> kind
_NUMBER = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")


def kind_of(v) -> str:
    t = type(v)
    if t is str:
        return "time" if TIME_TEXT.match(v) else "string"
    if t is bool:
        return "boolean"
    if t is int or t is float:
        return "number"
    if t is list:
        return "object_group" if v and all(type(x) is dict for x in v) else "list"
    if t is dict:
        return "object"
    return type(v).__name__


_NO = object()
_CAPS = {"": ("property_cap", "event property"), "user": ("user_property_cap", "user property"),
         "event": ("event_cap", "event name")}


def _table(table: str) -> str:
    app, _, kind = table.partition(".")
    return f"app {app}'s user table" if kind == "user" else f"app {app}"


def convert(v, kind: str):
    """``v`` as a value of ``kind`` when that loses nothing, else _NO."""
    t = type(v)
    if kind == "number":
        if t is str and _NUMBER.match(v):
            n = float(v)
            if not -MAX_NUMBER <= n <= MAX_NUMBER:
                return _NO
            if n.is_integer() and "." not in v and "e" not in v.lower():
                return int(v)
            return n
    elif kind == "string":
        if t is int:
            return str(v)
        if t is float:
            return repr(v)
        if t is bool:
            return "true" if v else "false"
    elif kind == "boolean":
        if t is str and v in ("true", "false"):
            return v == "true"
    return _NO


class TypeGuard:
    def __init__(self, kinds: Optional[dict] = None):
        self.kinds: dict[str, dict[str, str]] = kinds if kinds is not None else {}  # app -> lower name -> kind
        self.version = 0  # the loop's count of changes (what a worker's copy was made from)
        self.changes = 0  # every change here, for caches of what was checked against ``kinds``
        # (app, name, kind) learned here: since take_learned() in the loop, since replace() in a worker
        self.learned: list[tuple[str, str, str]] = []
        self.spelling: dict[str, dict[str, str]] = {}  # app -> lower name -> the name as events spell it
        self.frozen: frozenset = frozenset()  # lower names not learned now (unknown, they fail the event: unknown())

    def replace(self, kinds: dict, version: int) -> None:
        """The kinds as the loop knows them (in a worker process)."""
        self.kinds = kinds
        self.version = version
        self.learned = []
        self.changes += 1

    def kind(self, app: str, name: str) -> Optional[str]:
        k = self.kinds.get(app)
        return None if k is None else k.get(name.lower())

    def check(self, app: str, name: str, v, learn: list, cap: int = 0):
        """``v`` held to the kind learned for ``name`` in table ``app`` (converted
        without loss where it can be); raises Fail(type_conflict). A property not
        learned yet is added to ``learn`` as (name, kind), learned once the event
        is written; beyond ``cap`` names (0: no cap) it is refused. An object's
        sub-properties (and those of an object group's objects) have kinds of
        their own, learned as ``name.sub``."""
        kinds = self.kinds.get(app)
        low = name.lower()
        want = None if kinds is None else kinds.get(low)
        spelled = self.spelling.get(app)
        if spelled is None:
            spelled = self.spelling[app] = {}
        if low not in spelled:
            spelled[low] = name
            self.changes += 1
        have = kind_of(v)
        if want is None:
            if self.frozen and low in self.frozen:
                self.unknown(app, name)
            if cap:
                self.new_name(app, name, learn, cap)
            learn.append((name, have))
        elif have == want or (want == "string" and have == "time"):
            pass
        else:
            c = convert(v, want)
            if c is _NO:
                raise Fail(f"type_conflict: {name!r} is a {want} in {_table(app)} (learned from its first value); "
                           f"this value is a {have} ({short(v)}), which ThinkingData would store as null")
            return c
        if have == "object":
            return self._subs(app, name, v, learn)
        if have == "object_group":
            return [self._subs(app, name, o, learn) for o in v]
        return v

    def _subs(self, app: str, name: str, obj: dict, learn: list) -> dict:
        out = {}
        for k, x in obj.items():
            out[k] = x if x is None else self.check(app, f"{name}.{k}", x, learn)
        return out

    def unknown(self, app: str, name: str) -> None:
        """A ``frozen`` name not known: the event fails (it waits for a new one to teach it)."""
        raise Fail(f"type_conflict: {name!r} has no type in {_table(app)} now (forgotten?); this event was refused "
                   f"for its type before, so it teaches none: it waits until a new event teaches one")

    def new_name(self, table: str, name: str, learn: list, cap: int) -> None:
        """A name not learned yet in ``table``: refused when the table holds
        ``cap`` names already (those of ``learn``, this event's, counted)."""
        kinds = self.kinds.get(table)
        have = sum(1 for k in kinds if "." not in k) if kinds else 0
        have += sum(1 for n, _ in learn if "." not in n)
        if have >= cap:
            code, what = _CAPS[table.rpartition(".")[2] if "." in table else ""]
            raise Fail(f"{code}: {name!r} would be {what} number {have + 1} of app {table.split('.')[0]}; its cap "
                       f"is {cap} (metadata caps; ThinkingData drops what passes its project's cap)")

    def learn(self, app: str, learned: list) -> None:
        """An event was written: what it showed first becomes the rule."""
        kinds = self.kinds.setdefault(app, {})
        for name, kind in learned:
            low = name.lower()
            if low not in kinds:
                kinds[low] = kind
                self.learned.append((app, low, kind))
                self.version += 1
                self.changes += 1

    def sizes(self) -> dict[str, dict[str, int]]:
        """App -> the names it holds against each project cap: ``events``,
        ``event_properties``, ``user_properties`` (an object's sub-properties
        are not counted)."""
        out: dict[str, dict[str, int]] = {}
        for table, kinds in self.kinds.items():
            app, _, kind = table.partition(".")
            key = {"": "event_properties", "user": "user_properties", "event": "events"}.get(kind)
            if key is not None:
                row = out.setdefault(app, {"events": 0, "event_properties": 0, "user_properties": 0})
                row[key] = sum(1 for k in kinds if "." not in k)
        return out

    def take_learned(self) -> list:
        out, self.learned = self.learned, []
        return out

    def forget(self, app: str, name: str) -> bool:
        kinds = self.kinds.get(app)
        if not kinds or kinds.pop(name.lower(), None) is None:
            return False
        self.version += 1
        self.changes += 1
        return True

    def conflicts(self, assumed: list) -> bool:
        """Whether a worker's learning (``assumed``, in batch order after what is
        here) disagrees with a kind known here; if not, it is learned here."""
        for app, low, kind in assumed:
            have = self.kind(app, low)
            if have is not None and have != kind:
                return True
        for app, low, kind in assumed:
            self.learn(app, [(low, kind)])
        return False
