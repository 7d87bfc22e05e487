"""The data of the cases, generated once and cached in bench/work/data/, and the
settings folder of a tree."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import time
from pathlib import Path

from .common import REPO, WORK, BenchError, say

DATA_VERSION = 2  # bump when the generated data changes shape (2: recent event times)
LINE_FIELDS = 11  # first fields of a sample event: about 200 bytes per line


def _generate(path: Path, lines) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    t0 = time.monotonic()
    with open(tmp, "wb") as f:
        for chunk in iter(lambda: list(itertools.islice(lines, 10_000)), []):
            f.write(b"\n".join(chunk) + b"\n")
    tmp.rename(path)
    say(f"generated {path.relative_to(REPO)} ({path.stat().st_size / 2**20:.0f} MB) in "
        f"{time.monotonic() - t0:.1f}s")
    return path


def envelopes_file(n: int) -> Path:
    """N envelopes over apps 24, 25, 26 and six log_names (about 35 fields each)."""
    from mulog import sample

    return _generate(WORK / "data" / f"envelopes-{n}-v{DATA_VERSION}.jsonl",
                     sample.envelopes(n, app_ids=(24, 25, 26), seed=7))


def lines_file(n: int) -> Path:
    """N log lines of about 200 bytes: sample events cut to their first LINE_FIELDS fields."""
    import random

    import msgspec

    from mulog import sample

    enc = msgspec.json.Encoder()

    def gen():
        rnd = random.Random(11)
        for i in range(n):
            ev = sample.event(rnd, i, "log_item")
            yield enc.encode(dict(itertools.islice(ev.items(), LINE_FIELDS)))

    return _generate(WORK / "data" / f"lines-{n}-v{DATA_VERSION}.log", gen())


def settings_dir(dst: Path, root: Path = REPO) -> Path:
    """conf/settings' files of app 24 in the tree ``root``, copied for apps 24, 25 and 26
    (each tree's own: a baseline's settings parser may not know a newer key)."""
    src = root / "conf" / "settings"
    dst.mkdir(parents=True, exist_ok=True)
    for kind in ("metadata", "filter"):
        f = src / f"{kind}.24.json"
        if f.exists():
            for app in (24, 25, 26):
                shutil.copyfile(f, dst / f"{kind}.{app}.json")
    if not (dst / "metadata.24.json").exists():
        raise BenchError(f"{src}/metadata.24.json is missing")
    return dst


# the user-table operations of transform_user_ops: three of the sample's six log_names
USER_OPS = {
    "log_pay": {"user": {"add": {"total_pay": "pay_amount", "pay_count": 1}, "set": {"vip_level": "vip_level"}}},
    "log_login": {"account_id": "role_id", "distinct_id": "account_name",
                  "user": {"set_once": {"first_server": "server_id"}, "set": {"last_login_ip": "ip"}}},
    "log_role_up": {"user": {"set": {"role_level": "role_level"}}},
}


def user_ops_settings(dst: Path, root: Path = REPO) -> Path:
    """settings_dir's, with USER_OPS added to each app's events."""
    sys.path.insert(0, str(root))
    try:
        from mulog import cjson
    finally:
        sys.path.pop(0)
    settings_dir(dst, root)
    for app in (24, 25, 26):
        f = dst / f"metadata.{app}.json"
        meta = cjson.loads(f.read_bytes())
        meta.setdefault("events", {}).update(USER_OPS)
        f.write_text(json.dumps(meta))
    return dst
