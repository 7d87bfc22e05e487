"""``mtga logbus-config``: a LogBus2 ``daemon.json`` for mtga's output folder.

The apps are the folders under ``output.dir`` (what mtga has written) and the
apps named in ``--app-id-map``. The TA project's APPID is not the game's app
id: the operator maps them, and an unmapped app gets a placeholder and a note.
LogBus2 takes one pipeline (``datasource`` entry) per APPID, so the apps mapped
to one APPID share one, a ``file_patterns`` entry per app folder. The patterns
match the names LogBusWriter gives (sink/pipeline/writer.py):
``[<prefix>.]log.YYYY-MM-DD`` daily, ``...-HH`` hourly, ``_N`` appended when
``output.max_bytes`` splits them.

Every pipeline has ``add_uuid`` off (mtga's ``#uuid`` is how ThinkingData drops
a copy: docs/delivery.md) and LogBus2's removal settings on, so LogBus2
deletes what it has read and mtga never does. The keys are those of
ThinkingData's LogBus2 guide (docs/logbus.md cites it).

JSON goes to standard output alone; notes go to standard error.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Optional

import typer

from mulog.cli import UserError
from mulog.exitcodes import Exit

from sink import config
from sink.ops.options import ConfigOpt, load, note

URL_PLACEHOLDER = "REPLACE_WITH_RECEIVER_URL"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # an app folder's name, as output.prefix is checked
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GLOB = frozenset("*?[]")
_HOURS = {"day": 24, "hour": 1}
_PERIOD_H = {"daily": 24, "hourly": 1}
# keys this command writes itself, per pipeline and at the top
_SOURCE_OWN = ("type", "file_patterns", "app_id", "add_uuid", "unit_remove", "offset_remove", "remove_dirs")
_TOP_OWN = ("datasource", "push_url")
_NO_UUID = ("add_uuid: mtga's lines carry a deterministic #uuid already, by which ThinkingData drops a copy "
            "written twice after a crash (docs/delivery.md); LogBus2 must not add or replace it")


def appid_placeholder(app: str) -> str:
    return f"REPLACE_WITH_TA_APPID_OF_APP_{app}"


def _bad(msg: str) -> UserError:
    return UserError(msg, code=Exit.CONFIG)


def parse_map(items: List[str]) -> dict[str, str]:
    """``APP=TA_APPID`` pairs; a malformed or contradicting one is a mistake (exit 2)."""
    out: dict[str, str] = {}
    for item in items:
        app, eq, appid = item.partition("=")
        app, appid = app.strip(), appid.strip()
        if not eq or not app or not appid:
            raise _bad(f"--app-id-map {item!r}: expected APP=TA_APPID (the game's app id, then the TA "
                       f"project's APPID)")
        if not _NAME.match(app):
            raise _bad(f"--app-id-map {item!r}: an app id is a folder name under output.dir: only letters, "
                       f"digits, '_', '-' and '.'")
        if any(c.isspace() or c in '"\\' for c in appid):
            raise _bad(f"--app-id-map {item!r}: a TA APPID has no spaces, quotes or backslashes")
        if out.get(app, appid) != appid:
            raise _bad(f"--app-id-map: app {app} mapped twice, to {out[app]} and to {appid}")
        out[app] = appid
    return out


def parse_sets(items: List[str], flag: str) -> dict[str, object]:
    """``KEY=VALUE`` pairs; VALUE is read as JSON (4, true, "gzip") or else taken as text."""
    out: dict[str, object] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not _KEY.match(key):
            raise _bad(f"{flag} {item!r}: expected KEY=VALUE, KEY made of letters, digits and '_'")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out[key] = value
    return out


def name_glob(prefix: str, rotation: str, max_bytes: int) -> str:
    """The glob of the file names LogBusWriter gives with these settings."""
    stamp = "????-??-??" if rotation == "daily" else "????-??-??-??"
    head = f"{prefix}.log." if prefix else "log."
    return head + stamp + ("_*" if max_bytes > 0 else "")


def _app_key(app: str):
    return (0, int(app), app) if app.isdigit() else (1, 0, app)


def app_folders(out: Path) -> list[str]:
    """The app folders mtga wrote under ``out`` (hidden ones left out)."""
    return sorted((p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")), key=_app_key)


def _check_sets(source_set: dict[str, object], top_set: dict[str, object]) -> None:
    for flag, given, own in (("--source-set", source_set, _SOURCE_OWN), ("--set", top_set, _TOP_OWN)):
        for key, value in given.items():
            if key == "add_uuid" and value is not False:
                raise _bad(_NO_UUID)
            if key in own or key in _TOP_OWN:
                hint = {"push_url": ", use --push-url", "unit_remove": ", use --remove-unit",
                        "offset_remove": ", use --remove-after"}.get(key, "")
                raise _bad(f"{flag} {key}: written by this command{hint}")


def _retention(unit: str, after: int, rotation: str) -> dict[str, object]:
    """LogBus2's removal settings; none with ``after`` 0."""
    if unit not in _HOURS:
        raise _bad(f"--remove-unit {unit!r}: expected day or hour (LogBus2's unit_remove)")
    if after < 0:
        raise _bad(f"--remove-after {after}: expected 0 (LogBus2 deletes nothing) or more")
    if after == 0:
        return {}
    least = 2 * _PERIOD_H[rotation]
    if after * _HOURS[unit] < least:
        raise _bad(f"--remove-after {after} {unit}: shorter than two {rotation} periods ({least} h); mtga may "
                   f"still be appending to a file that young")
    return {"unit_remove": unit, "offset_remove": after, "remove_dirs": False}


def build(s: config.MtgaConfig, push_url: Optional[str], app_map: dict[str, str], remove_unit: str,
          remove_after: int, source_set: dict[str, object],
          top_set: dict[str, object]) -> tuple[dict, list[str]]:
    """The ``daemon.json`` document and the notes for standard error."""
    notes: list[str] = []
    o = s.conf.output
    _check_sets(source_set, top_set)
    removal = _retention(remove_unit, remove_after, o.rotation)
    if push_url and not re.match(r"^https?://[^\s/]+", push_url):
        raise _bad(f"--push-url {push_url!r}: expected an http:// or https:// URL (LogBus2's push_url)")
    out = s.output_dir.expanduser().resolve()
    where = f"output.dir in {s.file}" if s.file else "output.dir"
    if not out.exists():
        raise _bad(f"output folder {out} does not exist ({where}); start mtga first, or create it, so LogBus2 "
                   f"has a folder to read")
    if not out.is_dir():
        raise _bad(f"output folder {out} is not a folder ({where})")
    if _GLOB & set(str(out)):
        raise _bad(f"output folder {out} has a glob character (* ? [ ]) in its path; LogBus2's file_patterns "
                   f"would read it as a pattern: move the output folder")

    found = app_folders(out)
    for app in found:
        if _GLOB & set(app):
            raise _bad(f"folder {out / app} has a glob character (* ? [ ]) in its name; it is no app folder "
                       f"of mtga's: move it out of the output folder")
    apps = sorted(set(found) | set(app_map), key=_app_key)
    if not apps:
        raise _bad(f"no app folder under {out} and no --app-id-map: nothing for LogBus2 to read (give "
                   f"--app-id-map APP=TA_APPID for the apps mtga will write)")
    glob = name_glob(o.prefix, o.rotation, o.max_bytes)
    pipelines: dict[str, dict] = {}  # TA APPID -> its datasource entry
    for app in apps:
        if app not in found:
            notes.append(f"app {app}: no folder {out / app} yet; LogBus2 reads it once mtga writes there")
        appid = app_map.get(app)
        if appid is None:
            appid = appid_placeholder(app)
            notes.append(f"app {app}: no --app-id-map {app}=TA_APPID; its app_id is the placeholder {appid}, "
                         f"replace it with the TA project's APPID")
        p = pipelines.setdefault(appid, {"type": "file", "file_patterns": [], "app_id": appid,
                                         "add_uuid": False, **removal, **source_set})
        p["file_patterns"].append(str(out / app / glob))
    for appid, p in pipelines.items():
        if len(p["file_patterns"]) > 1:
            notes.append(f"{len(p['file_patterns'])} apps go to TA APPID {appid}: one pipeline reads their "
                         f"folders (LogBus2 takes an APPID once)")
    if not push_url:
        push_url = URL_PLACEHOLDER
        notes.append(f"no --push-url; push_url is the placeholder {URL_PLACEHOLDER}, replace it with the "
                     f"receiver's URL")
    if not removal:
        notes.append("--remove-after 0: LogBus2 deletes nothing and mtga deletes nothing; the output folder "
                     "only grows")
    return {"datasource": list(pipelines.values()), "push_url": push_url, **top_set}, notes


def logbus_config(
    cfg: Optional[Path] = ConfigOpt,
    push_url: Optional[str] = typer.Option(None, "--push-url", help="the ThinkingData receiver's URL"),
    app_id_map: Optional[List[str]] = typer.Option(
        None, "--app-id-map", help="APP=TA_APPID: the TA project's APPID of a game app id (repeatable)"),
    remove_after: int = typer.Option(7, "--remove-after", help="LogBus2 deletes a file this many units old "
                                                               "(offset_remove; 0: never)"),
    remove_unit: str = typer.Option("day", "--remove-unit", help="day or hour (unit_remove)"),
    source_set: Optional[List[str]] = typer.Option(
        None, "--source-set", help="KEY=VALUE added to every pipeline, VALUE read as JSON, e.g. "
                                   "http_compress=gzip (repeatable)"),
    top_set: Optional[List[str]] = typer.Option(
        None, "--set", help="KEY=VALUE added at the top, VALUE read as JSON, e.g. cpu_limit=4 (repeatable)"),
) -> None:
    """Print a LogBus2 daemon.json for mtga's output: one pipeline per TA APPID,
    its file_patterns matching the files mtga writes, add_uuid off, removal on."""
    s = load(cfg)
    doc, notes = build(s, push_url, parse_map(app_id_map or []), remove_unit, remove_after,
                       parse_sets(source_set or [], "--source-set"), parse_sets(top_set or [], "--set"))
    for n in notes:
        note(n)
    typer.echo(json.dumps(doc, indent=2))
