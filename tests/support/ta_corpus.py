"""What the tests of ThinkingData's rules share (tests/mtga/test_rules.py,
tests/unit/sink/ta/test_rules.py): the expected outcomes, the shipped settings,
the batch the pool cuts, mtga's JSON answers."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mulog import cjson
from sink.ta.rules import FIXES
from support.cli import REPO, run_cli

DAY = 86400


DROP = object()  # an expected property that is not in the line


def at8(sec: int) -> str:
    """``sec`` as mtga writes #time in the shipped zone (+08:00)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec + 8 * 3600))


def mtga_json(*args: str, timeout: float = 30):
    """``mtga ARGS --json`` -> (rc, parsed stdout or None, stderr)."""
    r = run_cli("mtga", *args, "--json", timeout=timeout)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        out = None
    return r.returncode, out, r.stderr


def status(conf: Path) -> dict:
    rc, out, _ = mtga_json("status", "-c", str(conf))
    return out if rc == 0 and isinstance(out, dict) else {}


def shipped_settings(folder: Path, plain: str, fixing: str) -> None:
    """The shipped settings of app 24 as app ``plain``; the same choosing every
    fix of sink.ta.rules.FIXES as app ``fixing``."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = (REPO / "conf/settings/metadata.24.json").read_text()
    flt = (REPO / "conf/settings/filter.24.json").read_text()
    (folder / f"metadata.{plain}.json").write_text(meta)
    (folder / f"filter.{plain}.json").write_text(flt)
    md = cjson.loads(meta)
    assert not md.get("fix") and not md["time"].get("zone_offset"), "the shipped settings fix nothing, add nothing"
    (folder / f"metadata.{fixing}.json").write_text(json.dumps(dict(md, fix=dict(FIXES))))
    (folder / f"filter.{fixing}.json").write_text(flt)


@dataclass
class Want:
    """What becomes of one event in one app."""

    kind: str  # "ok" or "refused"
    props: dict = field(default_factory=dict)  # ok: properties that differ from the event's (DROP: left out)
    fixed: dict = field(default_factory=dict)  # ok: rule -> times fixed in this event
    now_time: bool = False  # ok: #time is the processing time (the time fix)
    code: str = ""  # refused: the reason code
    words: str = ""  # refused: words of the reason


def ok(props: Optional[dict] = None) -> Want:
    return Want("ok", props or {})


def fixed(codes, props: Optional[dict] = None, now_time: bool = False) -> Want:
    codes = [codes] if isinstance(codes, str) else codes
    return Want("ok", props or {}, dict(Counter(codes)), now_time)


def refused(code: str, words: str = "") -> Want:
    return Want("refused", code=code, words=words)


# property -> {event index: value}; the first value of each in Kafka order is in the first half of the
# batch (the first worker's chunk), the first in the second half another kind
SPLIT_N = 600


SPLIT = {"mix": {10: 5, 310: "7", 320: "seven", 330: 8},
         "rev": {20: "abc", 305: 12, 315: [1], 325: "x"}}


def split_payloads(app: str, now: int) -> list[bytes]:
    out = []
    for i in range(SPLIT_N):
        logs = {"role_id": f"r{i}", "mtime": now, f"u{i}": i}  # u<i>: a property only this event teaches
        logs.update({k: v[i] for k, v in SPLIT.items() if i in v})
        out.append(json.dumps({"headers": {"app_id": int(app), "log_name": "log_item"}, "logs": logs}).encode())
    return out
