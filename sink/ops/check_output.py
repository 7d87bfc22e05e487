"""``mtga check-output``: LogBus files checked against ThinkingData's data rules
(sink/ta/rules.py), file names and every line, whoever wrote them.

A folder is walked for its files; a file's folder is taken as its app (mtga
writes ``<output>/<app id>/log.*``), so the one-type-per-property rule is
checked across the files of a folder. ``#time`` is checked against the window
TA takes around now; a line without ``#zone_offset`` is given the benefit of
the widest time zone (14 hours).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional

import msgspec

from sink.ta.rules import (FUTURE_S, LINE_REASONS, MAX_ID_CHARS, NAME, NAME_TEXT, PAST_S, REASONS, TIME_TEXT, TOP_LEVEL,
                      duplicate_names, name_problem, short, value_problem)
from sink.ta.model import USER_TYPES
from sink.ta.typeguard import kind_of

FILE_NAME = re.compile(r"^(?:[A-Za-z0-9_.-]+\.)?log\.\d{4}-\d{2}-\d{2}(?:-\d{2})?(?:_\d+)?$")
TYPES = frozenset(("track", "track_update", "track_overwrite", "user_set", "user_setOnce", "user_add",
                   "user_unset", "user_append", "user_uniq_append", "user_del"))
EXAMPLES = 3
_ZONE_SLACK_S = 14 * 3600
_LEFT_OUT_EMPTY = ("#account_id", "#distinct_id", "#ip")  # as ThinkingData's SDKs do


class Report:
    def __init__(self):
        self.files = 0
        self.lines = 0
        self.bad_lines = 0
        self.counts: Counter = Counter()  # rule -> times broken
        self.examples: dict[str, list[str]] = {}  # rule -> first "file:line: detail"

    def add(self, code: str, where: str, detail: str) -> None:
        self.counts[code] += 1
        ex = self.examples.setdefault(code, [])
        if len(ex) < EXAMPLES:
            ex.append(f"{where}: {detail}")

    def as_json(self) -> dict:
        return {"files": self.files, "lines": self.lines, "lines_breaking_rules": self.bad_lines,
                "rules": {code: {"count": n, "meaning": LINE_REASONS.get(code) or REASONS.get(code),
                                 "examples": self.examples[code]} for code, n in self.counts.most_common()}}


def files_of(paths: Iterable[str]) -> list[Path]:
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file())
        else:
            out.append(p)
    return out


def check(paths: Iterable[str], now: Optional[float] = None) -> Report:
    """Every file under ``paths`` and every line of it. Raises OSError for a
    path that cannot be read."""
    now = time.time() if now is None else now
    r = Report()
    kinds: dict[Path, dict[str, tuple[str, str]]] = {}  # folder -> lower name -> (kind, where first seen)
    for f in files_of(paths):
        r.files += 1
        if not FILE_NAME.match(f.name):
            r.add("file_name", str(f), f"{f.name!r} is not log.YYYY-MM-DD[-HH][_N] (with an optional prefix)")
        seen = kinds.setdefault(f.parent, {})
        with open(f, "rb") as fh:
            for n, raw in enumerate(fh, 1):
                r.lines += 1
                problems = line_problems(raw, now, seen, f"{f}:{n}")
                if problems:
                    r.bad_lines += 1
                    for code, detail in problems:
                        r.add(code, f"{f}:{n}", detail)
    return r


def line_problems(raw: bytes, now: float, seen: dict, where: str) -> list[tuple[str, str]]:
    """(rule, detail) of every rule one line breaks."""
    out: list[tuple[str, str]] = []
    try:
        d = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError) as e:
        return [("line_json", f"not JSON: {e}")]
    if type(d) is not dict:
        return [("line_json", "not a JSON object")]
    repeated = repeated_keys(raw)
    if repeated:
        out.append(("repeated_key", f"keys written twice in one object: {', '.join(map(repr, repeated))}"))
    extra = sorted(k for k in d if k not in TOP_LEVEL)
    if extra:
        out.append(("top_level", f"keys {extra} are not ThinkingData's top-level keys"))
    typ = d.get("#type")
    if typ not in TYPES:
        out.append(("top_level", f"#type {short(typ)} is none of {', '.join(sorted(TYPES))}"))
    track = typ is None or str(typ).startswith("track")
    if track:
        en = d.get("#event_name")
        if type(en) is not str or not NAME.match(en):
            out.append(("event_name", f"#event_name {short(en)} breaks {NAME_TEXT}"))
    ids = [d.get("#account_id"), d.get("#distinct_id")]
    for k, v in zip(("#account_id", "#distinct_id"), ids):
        if v is not None and type(v) is not str:
            out.append(("identity", f"{k} is a {type(v).__name__}, expected a text"))
        elif type(v) is str and len(v) > MAX_ID_CHARS:
            out.append(("id_too_long", f"{k} is {len(v)} characters; ThinkingData takes at most {MAX_ID_CHARS}"))
    if not any(type(v) is str and v for v in ids):
        out.append(("identity", "#account_id and #distinct_id are both empty"))
    for k in _LEFT_OUT_EMPTY:
        if d.get(k) == "":
            out.append(("empty_id", f"{k} is an empty text (a value to ThinkingData): leave it out"))
    props = d.get("properties")
    if type(props) is not dict:
        out.append(("top_level", "properties is missing or not an object"))
        props = {}
    out += _time_problems(d.get("#time"), props.get("#zone_offset"), now)
    u = d.get("#uuid")
    if u is not None:
        try:
            if type(u) is not str or str(uuid.UUID(u)) != u.lower():
                raise ValueError
        except ValueError:
            out.append(("uuid", f"#uuid {short(u)} is not a standard UUID"))
    out += type_problems(d, typ, props)
    table = "" if track else "user:"  # TA's user table keeps types of its own
    for k, v in props.items():
        p = name_problem(k, top=track) or (None if v is None else value_problem(k, v))
        if p is not None:
            out.append(p)
            continue
        if v is None or typ == "user_unset":
            continue
        low, kind = table + k.lower(), kind_of(v)
        first = seen.get(low)
        if first is None:
            seen[low] = (kind, where)
        elif first[0] != kind and not (first[0] == "string" and kind == "time"):
            out.append(("type_conflict", f"{k!r} is a {kind} here, a {first[0]} at {first[1]} (ThinkingData "
                                          f"stores it as null)"))
    p = duplicate_names(props)
    if p is not None:
        out.append(p)
    return out


def type_problems(d: dict, typ, props: dict) -> list[tuple[str, str]]:
    """(type_rule, detail) of the rules of the line's own ``#type``."""
    out = []
    if typ in ("track_update", "track_overwrite"):
        if type(d.get("#event_id")) is not str or not d["#event_id"]:
            out.append(f"{typ} without an #event_id (the event it updates)")
    elif "#event_id" in d:
        out.append(f"#event_id on a {typ} line (only track_update and track_overwrite take it)")
    if "#first_check_id" in d and (typ != "track" or type(d["#first_check_id"]) is not str or not d["#first_check_id"]):
        out.append(f"#first_check_id {short(d['#first_check_id'])} on a {typ} line (a track line's non-empty text)")
    if typ in USER_TYPES:
        if "#event_name" in d:
            out.append(f"#event_name on a {typ} line (user operations have none)")
        need = {"user_add": (int, float), "user_append": (list,), "user_uniq_append": (list,)}.get(typ)
        for k, v in props.items():
            if need is not None and (type(v) not in need):
                out.append(f"{typ} {k!r} is {short(v)}, expected a {'number' if typ == 'user_add' else 'list'}")
        if typ == "user_del" and props:
            out.append(f"user_del with properties {sorted(props)[:5]} (it takes none)")
    return [("type_rule", x) for x in out]


def repeated_keys(raw: bytes) -> list[str]:
    """The keys written twice in one JSON object of ``raw`` (a decoder keeps only one)."""
    found: list[str] = []

    def pairs(items):
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            found.extend(sorted({k for k in keys if keys.count(k) > 1}))
        return dict(items)

    json.loads(raw, object_pairs_hook=pairs)
    return found


def _time_problems(t, zone, now: float) -> list[tuple[str, str]]:
    if type(t) is not str or not TIME_TEXT.match(t):
        return [("time", f"#time {short(t)} is not yyyy-MM-dd HH:mm:ss[.SSS]")]
    try:
        local = dt.datetime.strptime(t[:19], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return [("time", f"#time {t!r} is not a day and time of the calendar")]
    slack = _ZONE_SLACK_S
    sec = local.replace(tzinfo=dt.timezone.utc).timestamp()
    if type(zone) in (int, float) and -24 < zone < 24:
        sec -= zone * 3600
        slack = 0
    if sec < now - PAST_S - slack or sec > now + FUTURE_S + slack:
        days = (now - sec) / 86400
        when = f"{days:.0f} days in the past" if days > 0 else f"{-days:.1f} days in the future"
        return [("time_out_of_range", f"#time {t!r} is {when}; ThinkingData takes from 3 years in the past to "
                                      f"3 days in the future")]
    return []


def print_report(r: Report, echo) -> None:
    echo(f"{r.files} file(s), {r.lines} line(s); {r.bad_lines} line(s) break ThinkingData's rules")
    for code, n in r.counts.most_common():
        echo(f"{n:>8}  {code}: {LINE_REASONS.get(code) or REASONS.get(code)}")
        for ex in r.examples[code]:
            echo(f"          {ex}")
