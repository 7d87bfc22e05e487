"""What ``metadata.<app_id>.json`` and ``filter.<app_id>.json`` may say, as
msgspec Structs (decoding checks the keys and their types; ``__post_init__``
what depends on several of them). conf/settings/*.24.json document each key.

Beside the track line, an event may give the lines of ThinkingData's data
model (``events.<log_name>``): a first event (``first_check_id``), an updatable
event (``event_id`` with ``update``), user-table operations (``user``), or a
user deletion (``delete_user``); ``track: false`` writes no track line.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

import msgspec

from sink.ta.rules import FIXES, NAME, NAME_TEXT

CoerceType = Literal["string", "number", "int", "bool"]


class EventNameConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    prefix: str = "t_"
    names: dict[str, str] = {}


class TimeConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    field: Optional[str] = None
    unit: Literal["s", "ms", "string"] = "s"
    time_zone: str = "+00:00"
    zone_offset: bool = False  # add the preset property #zone_offset (hours from UTC of #time)


class PropsConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    types: dict[str, CoerceType] = {}
    rename: dict[str, str] = {}
    drop: list[str] = []


# a user property's value: a log field's name, or a constant (a number, a boolean)
Source = Union[str, int, float, bool]


class UserConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The user-table operations an event gives: user property -> log field
    (a list: the fields of the same names), or a constant for ``set``,
    ``set_once`` and ``add`` (``"pay_count": 1``)."""

    set: Union[dict[str, Source], list[str]] = {}
    set_once: Union[dict[str, Source], list[str]] = {}
    add: Union[dict[str, Source], list[str]] = {}
    append: Union[dict[str, str], list[str]] = {}
    uniq_append: Union[dict[str, str], list[str]] = {}
    unset: list[str] = []  # user properties emptied (no field: the SDKs write 0)


class CapsConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """ThinkingData's project caps (its documentation's defaults); a new event
    name or property name beyond its cap is refused."""

    events: int = 500
    event_properties: int = 1000
    user_properties: int = 500


class EventOverride(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    account_id: Union[str, None, msgspec.UnsetType] = msgspec.UNSET
    distinct_id: Union[str, None, msgspec.UnsetType] = msgspec.UNSET
    ip: Union[str, None, msgspec.UnsetType] = msgspec.UNSET
    time: Union[TimeConf, msgspec.UnsetType] = msgspec.UNSET
    properties: Union[PropsConf, msgspec.UnsetType] = msgspec.UNSET
    event_name: Union[str, msgspec.UnsetType] = msgspec.UNSET
    track: bool = True  # false: the event gives no track line (only its user operations)
    first_check_id: Union[str, list[str], None] = None  # field(s) whose value makes it a first event
    event_id: Union[str, list[str], None] = None  # field(s) giving the #event_id of an updatable event
    update: Literal["update", "overwrite"] = "update"  # track_update or track_overwrite (with event_id)
    user: UserConf = msgspec.field(default_factory=UserConf)
    delete_user: bool = False  # the event deletes its user (user_del)

    def __post_init__(self):
        if self.first_check_id is not None and self.event_id is not None:
            raise ValueError("first_check_id and event_id: an event is either a first event or an updatable one")
        if not self.track and (self.first_check_id is not None or self.event_id is not None):
            raise ValueError("first_check_id and event_id need the track line (track: true)")


class Metadata(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    event_name: EventNameConf = msgspec.field(default_factory=EventNameConf)
    account_id: Optional[str] = None
    distinct_id: Optional[str] = None
    ip: Optional[str] = None
    time: TimeConf = msgspec.field(default_factory=TimeConf)
    properties: PropsConf = msgspec.field(default_factory=PropsConf)
    events: dict[str, EventOverride] = {}
    caps: CapsConf = msgspec.field(default_factory=CapsConf)
    fix: dict[str, str] = {}  # rule -> how to fix an event that breaks it (sink.ta.rules.FIXES) instead of refusing it

    def __post_init__(self):
        for rule, how in self.fix.items():
            if rule not in FIXES:
                raise ValueError(f"fix: {rule!r} is not a rule mtga can fix; expected one of {', '.join(FIXES)}")
            if how not in (FIXES[rule], "refuse"):
                raise ValueError(f"fix.{rule}: expected {FIXES[rule]!r} or 'refuse', got {how!r}")


class Condition(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    field: str
    in_: Optional[list[Any]] = msgspec.field(default=None, name="in")
    not_in: Optional[list[Any]] = None
    exists: Optional[bool] = None

    def __post_init__(self):
        if sum(x is not None for x in (self.in_, self.not_in, self.exists)) != 1:
            raise ValueError("each condition needs exactly one of in, not_in, exists")


class FilterConf(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    keep: Optional[list[str]] = None
    drop: list[str] = []
    where: list[Condition] = []


# user_* line types, in the order an event's lines are written (after its track line)
OPS = (("set", "user_set"), ("set_once", "user_setOnce"), ("add", "user_add"), ("append", "user_append"),
       ("uniq_append", "user_uniq_append"), ("unset", "user_unset"))


class Model:
    """What lines an event of one rule gives besides a plain track line."""

    __slots__ = ("track", "track_type", "key_top", "key_fields", "ops", "delete_user")

    def __init__(self, track: bool, track_type: bytes, key_top: Optional[bytes], key_fields: tuple,
                 ops: tuple, delete_user: bool):
        self.track, self.track_type, self.key_top, self.key_fields = track, track_type, key_top, key_fields
        self.ops, self.delete_user = ops, delete_user


def compile_model(ov: Optional[EventOverride]) -> Optional[Model]:
    """None for a plain track line (the fast paths take it), else its Model."""
    if ov is None:
        return None
    ops = []
    for key, typ in OPS:
        spec = getattr(ov.user, key)
        if not spec:
            continue
        if typ == "user_unset":
            ops.append((typ, tuple((p, None, 0) for p in spec)))
            continue
        pairs = spec.items() if isinstance(spec, dict) else ((p, p) for p in spec)
        ops.append((typ, tuple((p, src, None) if type(src) is str else (p, None, src) for p, src in pairs)))
    if ov.track and ov.first_check_id is None and ov.event_id is None and not ops and not ov.delete_user:
        return None
    fields = ov.first_check_id if ov.first_check_id is not None else ov.event_id
    if fields is not None:
        fields = (fields,) if isinstance(fields, str) else tuple(fields)
        top = b"#first_check_id" if ov.first_check_id is not None else b"#event_id"
    ttype = b"track" if ov.event_id is None else b"track_" + ov.update.encode()
    return Model(ov.track, ttype, top if fields else None, fields or (), tuple(ops), ov.delete_user)


def user_conf_problem(user: UserConf) -> Optional[tuple[str, str]]:
    """(key, what was expected) of the first mistake in an event's ``user``."""
    seen: dict[str, str] = {}
    for key, typ in OPS:
        spec = getattr(user, key)
        pairs = spec.items() if isinstance(spec, dict) else ((p, p) for p in spec)
        for prop, src in pairs:
            if not NAME.match(prop):
                return f"user.{key}", f"user property names matching {NAME_TEXT}, got {prop!r}"
            if typ in ("user_append", "user_uniq_append", "user_unset") and type(src) is not str:
                return f"user.{key}.{prop}", "a log field's name"
            if type(src) is str and not src:
                return f"user.{key}.{prop}", "a log field's name, got an empty text"
            if typ == "user_add" and type(src) is bool:
                return f"user.{key}.{prop}", "a log field's name or a number (user_add adds numbers)"
            other = seen.get(prop.lower())
            if other is not None and other != key:
                return f"user.{key}.{prop}", f"one operation per user property (it is in user.{other} too)"
            seen[prop.lower()] = key
    return None
