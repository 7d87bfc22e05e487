"""ThinkingData's rules for a track line, written from SPEC, used by the tests
to validate every line mtga writes."""

from __future__ import annotations

import datetime
import json
import re
import uuid

NAME = re.compile(r"^[#a-zA-Z][a-zA-Z0-9_]{0,49}$")
TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{3})?$")
RESERVED = {"#type", "#event_name", "#time", "#account_id", "#distinct_id", "#ip", "#uuid", "properties"}


def violations(line: str | bytes) -> list[str]:
    """Every rule the line breaks (empty when it is valid)."""
    try:
        d = json.loads(line)
    except ValueError as e:
        return [f"not JSON: {e}"]
    if not isinstance(d, dict):
        return ["not an object"]
    out = []
    if d.get("#type") != "track":
        out.append("#type is not track")
    en = d.get("#event_name")
    if not isinstance(en, str) or not en:
        out.append("#event_name missing")
    acc, did = d.get("#account_id", ""), d.get("#distinct_id", "")
    if not ((isinstance(acc, str) and acc) or (isinstance(did, str) and did)):
        out.append("neither #account_id nor #distinct_id is a non-empty string")
    for k in ("#account_id", "#distinct_id", "#ip"):
        if k in d and not isinstance(d[k], str):
            out.append(f"{k} is not a string")
    t = d.get("#time")
    if not isinstance(t, str) or not TIME.match(t):
        out.append(f"#time {t!r} is not YYYY-MM-DD HH:MM:SS[.mmm]")
    else:
        try:
            datetime.datetime.strptime(t[:19], "%Y-%m-%d %H:%M:%S")
        except ValueError:
            out.append(f"#time {t!r} is not a real date and time")
    if "#uuid" in d:
        u = d["#uuid"]
        try:
            if not isinstance(u, str) or str(uuid.UUID(u)) != u.lower():
                out.append(f"#uuid {u!r} is not a UUID string")
        except ValueError:
            out.append(f"#uuid {u!r} is not a UUID string")
    extra = set(d) - RESERVED
    if extra:
        out.append(f"unexpected top-level keys {sorted(extra)}")
    props = d.get("properties")
    if not isinstance(props, dict):
        out.append("properties is not an object")
        return out
    for k, v in props.items():
        if not NAME.match(k):
            out.append(f"property name {k!r} breaks {NAME.pattern}")
        if isinstance(v, bool) or isinstance(v, (int, float, str)):
            continue
        if isinstance(v, list) and all(isinstance(x, (str, int, float, bool)) for x in v):
            continue
        out.append(f"property {k!r} has a value of type {type(v).__name__}")
    return out
