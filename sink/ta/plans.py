"""Plans of the exact path's shortcut: events of one key layout and value types
whose keys are valid property names and whose values have the kinds the type
guard learned are encoded as they are (sink/ta/transform.py); what is to be checked
on each such event is worked out once per layout and cached on the rule."""

from __future__ import annotations

import msgspec

from sink.ta.settings import Rule
from sink.ta.rules import TIME_TEXT, duplicate_names, name_problem
from sink.ta.typeguard import kind_of


def plan_for(kinds: dict, rule: Rule, keys: tuple, types: tuple):
    """How the fast path takes events of this key layout and these value
    types: True (as they are), a tuple of (key, check) to make on each event
    first, or False (the exact path)."""
    if len(rule.plans) > 10_000:
        rule.plans.clear()
    special, pinned = rule.special, rule.pinned
    checks = []
    for k, t in zip(keys, types):
        if k in special or name_problem(k) is not None or (rule.zone_offset and k == "#zone_offset"):
            return False
        low = k.lower()
        want = kinds.get(low)
        if want is None or low in pinned:
            return False  # learned on the exact path first; a pinned one is coerced there
        if t is str:
            if want == "time":
                checks.append((k, _is_time))
            elif want != "string":
                return False
        elif t is dict:
            if want != "object":
                return False
            checks.append((k, _object_check(kinds, low)))
        elif _KIND.get(t) != want:
            return False
    if duplicate_names(keys) is not None:
        return False
    return tuple(checks) or True


def as_they_are(rule: Rule, logs: dict, kinds: dict, changes: int, first: bytes):
    """``properties`` of a flat event encoded as they are (``first``: JSON put
    before them), when the cached plan of its layout lets them be; else None."""
    keys = tuple(logs)
    sig = (keys, tuple(map(type, logs.values())))
    plans = rule.plans
    if rule.plans_for != changes:
        plans.clear()
        rule.plans_for = changes
    plan = plans.get(sig)
    if plan is None:
        plan = plans[sig] = plan_for(kinds, rule, keys, sig[1])
    if plan is not True and (not plan or not holds(plan, logs)):
        return None
    props = _encode(logs)
    if first:
        props = b"{" + first + props[1:] if len(props) > 2 else b"{" + first[:-1] + b"}"
    return props


def holds(plan: tuple, logs: dict) -> bool:
    for k, check in plan:
        if not check(logs[k]):
            return False
    return True


def _is_time(v: str) -> bool:
    return TIME_TEXT.match(v) is not None


def _object_check(kinds: dict, low: str):
    """The check of an object property ``low``: its sub-properties' names, and
    their kinds those the guard learned (types and sizes were checked decoding)."""

    def ok(v: dict) -> bool:
        for k, x in v.items():
            want = kinds.get(f"{low}.{k.lower()}")
            if want is None or name_problem(k, top=False) is not None:
                return False
            have = kind_of(x)
            if have != want and (want != "string" or have != "time"):
                return False
        return duplicate_names(v) is None

    return ok


_encode = msgspec.json.encode
_KIND = {int: "number", float: "number", bool: "boolean", list: "list"}


__all__ = ["as_they_are", "holds", "plan_for"]
