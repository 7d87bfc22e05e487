"""Thirteen per-app settings files an operator could get wrong, one app each,
with words the one line about each must hold."""

from __future__ import annotations

from pathlib import Path

GOOD_META = '{"account_id": "role_id", "time": {"field": "mtime", "unit": "s"}}'

# app id -> ({file name: content}, the file the line names, words the line holds)
BROKEN: dict[int, tuple[dict[str, str], str, str]] = {
    30: ({"metadata.30.json": '{"account_id": "role_id",'}, "metadata.30.json", "JSON syntax error"),
    31: ({"metadata.31.json": '{"time": {"unit": "seconds"}}'}, "metadata.31.json",
         "time.unit: expected one of s, ms, string; got 'seconds'"),
    32: ({"metadata.32.json": GOOD_META, "filter.32.json": '{"drop": "log_debug"}'}, "filter.32.json",
         "drop: expected a list"),
    33: ({"metadata.33.json": '{"acount_id": "role_id"}'}, "metadata.33.json", "acount_id: unknown key"),
    34: ({"filter.34.json": '{"keep": ["log_login"]}'}, "metadata.34.json", "file not found"),
    35: ({"metadata.35.json": '{"time": {"time_zone": "Mars/Phobos"}}'}, "metadata.35.json", "Mars/Phobos"),
    36: ({"metadata.36.json": '{"properties": {"rename": {"a": "#bad name"}}}'}, "metadata.36.json",
         "properties.rename"),
    37: ({"metadata.37.json": '{"properties": {"types": {"x": "decimal"}}}'}, "metadata.37.json",
         "properties.types"),
    38: ({"metadata.38.json": "[1, 2]"}, "metadata.38.json", "expected a JSON object"),
    39: ({"metadata.39.json": GOOD_META, "filter.39.json": '{"where": [{"field": "x"}]}'}, "filter.39.json",
         "exactly one of in, not_in, exists"),
    40: ({"metadata.40.json": '{"fix": {"string_too_long": "truncate"}}'}, "metadata.40.json",
         "fix.string_too_long"),
    41: ({"metadata.41.json": ""}, "metadata.41.json", "the file is empty"),
    42: ({"metadata.42.json": '{"event_name": {"names": {"log_a": "bad name!"}}}'}, "metadata.42.json",
         "event_name.names.log_a"),
}


def write_broken(folder: Path) -> Path:
    """``folder`` with a good app 24 and the thirteen broken apps."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.24.json").write_text(GOOD_META)
    for files, _, _ in BROKEN.values():
        for name, text in files.items():
            (folder / name).write_text(text)
    return folder
