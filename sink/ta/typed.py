"""The typed path: once the type guard knows an app's properties, an event is
decoded straight into a Struct made from their kinds. msgspec then checks in C
what the guard and ThinkingData's limits ask of every value (its kind, a text of
at most 512 characters: at most 2 KB; a number within +-9E15; a list of at most
500 elements; a time-shaped text), builds no dict, and encodes the Struct back
as ``properties``. An event that does not fit (a property not learned yet, a
null, a value of another kind, anything too long or too big, a field the
settings coerce, rename or drop, an object) fails the decode and takes the
dict path (sink/ta/transform.py), which learns, converts, fixes or names what is
wrong; the Struct is made again once the guard has learned more.

One Shape per Rule, for the guard's state it was made from (``changes``).
"""

from __future__ import annotations

from typing import Annotated, Optional, Union

import msgspec

from sink.ta.settings import Rule
from sink.ta.rules import MAX_LIST, MAX_NUMBER, TIME_TEXT, name_problem

_Num = Annotated[int, msgspec.Meta(ge=-MAX_NUMBER, le=MAX_NUMBER)]
_Real = Annotated[float, msgspec.Meta(ge=-MAX_NUMBER, le=MAX_NUMBER)]
_List = Annotated[list[Union[Annotated[str, msgspec.Meta(max_length=63)], _Num, _Real, bool]],
                  msgspec.Meta(max_length=MAX_LIST)]
TYPES = {
    "string": Annotated[str, msgspec.Meta(max_length=512)],
    "time": Annotated[str, msgspec.Meta(pattern=TIME_TEXT.pattern)],
    "number": Union[_Num, _Real],
    "boolean": bool,
    "list": _List,
}
UNSET = msgspec.UNSET


class RawEnvelope(msgspec.Struct):
    headers: dict
    logs: msgspec.Raw


decode_envelope = msgspec.json.Decoder(RawEnvelope).decode


class Shape:
    """How the typed path takes one rule's events: the decoder, and the Struct
    attributes of the fields the line's reserved keys come from (None: absent)."""

    __slots__ = ("changes", "decode", "account", "distinct", "ip", "time")

    def __init__(self, changes: int, decode, account, distinct, ip, time):
        self.changes, self.decode = changes, decode
        self.account, self.distinct, self.ip, self.time = account, distinct, ip, time


def shape(rule: Rule, kinds: dict, spelling: dict, changes: int) -> Optional[Shape]:
    """The Shape of ``rule`` for the app's learned ``kinds`` (lower-case name ->
    kind) as events spell them (``spelling``: lower-case name -> name); None when
    nothing is learned yet."""
    fields = []
    attrs: dict[str, str] = {}
    for low, kind in kinds.items():
        name = spelling.get(low)
        t = TYPES.get(kind)
        if name is None or t is None or low in rule.pinned or name in rule.special or name_problem(name):
            continue
        if rule.zone_offset and name == "#zone_offset":
            continue
        attr = f"f{len(fields)}"
        attrs[name] = attr
        fields.append((attr, Union[t, msgspec.UnsetType], UNSET))
    if not fields:
        return None
    cls = msgspec.defstruct(f"Props_{rule.log_name}", fields, kw_only=True, forbid_unknown_fields=True,
                            rename={a: n for n, a in attrs.items()}, gc=False)

    def attr(field: Optional[str]) -> Optional[str]:
        return None if field is None else attrs.get(field)  # not a field: never in an event that fits

    return Shape(changes, msgspec.json.Decoder(cls).decode, attr(rule.account_field), attr(rule.distinct_field),
                 attr(rule.ip_field), attr(rule.time_field))
