"""Per-app settings: ``metadata.<app_id>.json`` and ``filter.<app_id>.json``.

Both are commented JSON (see mulog.cjson). ``metadata`` says how an event of
the app becomes a ThinkingData track line; ``filter`` says which events are
kept. conf/settings/*.24.json document each key.

``SettingsStore`` loads an app's files on first use and reloads them when they
change on disk (checked at most every ``check_interval`` seconds). A broken
file never replaces good settings already loaded: the store keeps the last
good ones and logs why. An app without good settings yields a ``Problem``
that the transform turns into a failure with that reason.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import msgspec

from mulog import cjson
from mulog.config import ConfigError, convert
from mulog.files import signature

from sink.ta.conf import CapsConf, FilterConf, Metadata, Model, PropsConf, TimeConf, compile_model, user_conf_problem
from sink.ta.rules import NAME, NAME_TEXT, name_problem
from sink.ta.times import SecondFormatter, parse_zone
from sink.ta.typeguard import PINNED

log = logging.getLogger("mtga.settings")

APP_ID_RE = re.compile(r"^[0-9]{1,18}$")

# ----------------------------------------------------------------- compiled rules


@dataclass
class Rule:
    """How one (app, log_name) becomes a track line: everything precomputed."""

    log_name: str
    event_name: str
    event_name_json: bytes
    account_field: Optional[str]
    distinct_field: Optional[str]
    ip_field: Optional[str]
    time_field: Optional[str]
    time_unit: str
    seconds_field: Optional[str]  # time_field when its unit is whole seconds
    tz: dt.tzinfo
    types: dict[str, str]
    rename: dict[str, str]
    drop: frozenset
    special: frozenset  # keys that need the slow path (types, rename, drop)
    # epoch second -> b"YYYY-MM-DD HH:MM:SS" in the rule's zone
    seconds: "SecondFormatter"
    zone_offset: bool = False
    fix: dict = field(default_factory=dict)  # rule code -> fix (only those the app chose)
    pinned: dict = field(default_factory=dict)  # lower-case property name -> kind its settings type gives
    # (key layout, value types) -> how the fast path takes it (see transform.py), valid for ``plans_for``
    plans: dict = field(default_factory=dict)
    plans_for: int = -1
    shape: object = None  # typed.Shape, valid for ``shape_for``
    shape_for: int = -1
    event_low: str = ""  # event_name in lower case (TA compares names without case)
    named_for: int = -1  # the type guard's changes when the event name was last found counted
    model: Optional[Model] = None  # the lines besides a plain track line (sink/ta/model.py); None: just that
    caps: CapsConf = field(default_factory=CapsConf)


@dataclass
class AppSettings:
    app_id: str
    metadata: Metadata
    filter: FilterConf
    keep: Optional[frozenset]
    drop: frozenset
    where: list
    rules: dict = field(default_factory=dict)
    stamp: tuple = ()

    def rule(self, log_name: str) -> Union[Rule, str]:
        """The compiled rule for ``log_name``, or a failure reason."""
        r = self.rules.get(log_name)
        if r is None:
            r = self.rules[log_name] = self._compile(log_name)
        return r

    def _compile(self, log_name: str) -> Union[Rule, str]:
        md = self.metadata
        ov = md.events.get(log_name)

        def pick(name):
            if ov is not None:
                v = getattr(ov, name)
                if v is not msgspec.UNSET:
                    return v
            return getattr(md, name)

        if ov is not None and ov.event_name is not msgspec.UNSET:
            name = ov.event_name
        else:
            name = md.event_name.names.get(log_name) or md.event_name.prefix + log_name
        if not NAME.match(name):
            return f"event_name: {name!r} (from log_name {log_name!r}) breaks ThinkingData's rule {NAME_TEXT}"
        tconf: TimeConf = pick("time")
        props: PropsConf = pick("properties")
        return Rule(
            log_name=log_name,
            event_name=name,
            event_name_json=msgspec.json.encode(name),
            account_field=pick("account_id"),
            distinct_field=pick("distinct_id"),
            ip_field=pick("ip"),
            time_field=tconf.field,
            time_unit=tconf.unit,
            seconds_field=tconf.field if tconf.unit == "s" else None,
            tz=(tz := parse_zone(tconf.time_zone)),
            seconds=SecondFormatter(tz),
            types=dict(props.types),
            rename=dict(props.rename),
            drop=frozenset(props.drop),
            special=frozenset(props.types) | frozenset(props.rename) | frozenset(props.drop),
            zone_offset=tconf.zone_offset,
            fix={k: v for k, v in md.fix.items() if v != "refuse"},
            pinned={props.rename.get(k, k).lower(): PINNED[t] for k, t in props.types.items()},
            event_low=name.lower(),
            model=compile_model(ov),
            caps=md.caps,
        )

    def filtered(self, log_name: str, logs: dict) -> Optional[str]:
        """Why the event is filtered out, or None when it is kept."""
        if log_name in self.drop:
            return "log_name dropped"
        if self.keep is not None and log_name not in self.keep:
            return "log_name not kept"
        for c in self.where:
            v = logs.get(c.field, _MISSING)
            if c.exists is not None:
                if (v is not _MISSING) != c.exists:
                    return f"where {c.field} exists={c.exists}"
            elif c.in_ is not None:
                if v is _MISSING or v not in c.in_:
                    return f"where {c.field} in"
            elif c.not_in is not None:
                if v is not _MISSING and v in c.not_in:
                    return f"where {c.field} not_in"
        return None


_MISSING = object()


@dataclass(frozen=True)
class Problem:
    """An app without usable settings; ``reason`` goes to the failure queue."""

    reason: str


def load_app(folder: Path, app_id: str) -> AppSettings:
    """Load and validate an app's settings files; raises ConfigError."""
    mpath = folder / f"metadata.{app_id}.json"
    fpath = folder / f"filter.{app_id}.json"
    md = _read(mpath, Metadata, required=True)
    flt = _read(fpath, FilterConf, required=False) or FilterConf()
    # validate what compiling would find, so mistakes surface at load time
    try:
        parse_zone(md.time.time_zone)
        for name, ov in md.events.items():
            if ov.time is not msgspec.UNSET:
                parse_zone(ov.time.time_zone)
    except ValueError as e:
        raise ConfigError(mpath, None, str(e)) from None
    names = [(f"event_name.names.{k}", v) for k, v in md.event_name.names.items()]
    names += [(f"events.{k}.event_name", ov.event_name) for k, ov in md.events.items()
              if ov.event_name is not msgspec.UNSET]
    for key, name in names:
        if not NAME.match(name):
            raise ConfigError(mpath, key, f"expected an event name matching {NAME_TEXT}, got {name!r}")
    for name, ov in md.events.items():
        p = user_conf_problem(ov.user)
        if p is not None:
            raise ConfigError(mpath, f"events.{name}.{p[0]}", f"expected {p[1]}")
    for key in ("events", "event_properties", "user_properties"):
        if getattr(md.caps, key) < 1:
            raise ConfigError(mpath, f"caps.{key}", f"expected a number of at least 1, got {getattr(md.caps, key)}")
    for k in list(md.properties.rename.values()):
        if name_problem(k):
            raise ConfigError(mpath, "properties.rename", f"expected property names matching {NAME_TEXT} (or one "
                                                          f"of ThinkingData's preset properties), got {k!r}")
    return AppSettings(
        app_id=app_id, metadata=md, filter=flt,
        keep=frozenset(flt.keep) if flt.keep is not None else None,
        drop=frozenset(flt.drop), where=list(flt.where),
        stamp=(signature(mpath), signature(fpath)),
    )


SETTINGS_FILE = re.compile(r"^(metadata|filter)\.(.*)\.json$")


def check_folder(folder: Path) -> tuple[list[str], list[ConfigError]]:
    """Every app's settings in ``folder`` loaded as mtga would: (the app ids
    that load, one ConfigError per app or file that does not)."""
    ids: dict[str, Path] = {}
    problems: list[ConfigError] = []
    try:
        names = sorted(os.listdir(folder))
    except OSError as e:
        return [], [ConfigError(folder, None, f"cannot list the settings folder ({e.strerror})")]
    for name in names:
        m = SETTINGS_FILE.match(name)
        if m is None:
            continue
        if not APP_ID_RE.match(m.group(2)):
            problems.append(ConfigError(folder / name, None, f"expected a file named {m.group(1)}.<app id>.json, "
                                                             f"the app id in digits"))
            continue
        ids.setdefault(m.group(2), folder / name)
    good = []
    for app_id in sorted(ids, key=int):
        try:
            load_app(folder, app_id)
        except ConfigError as e:
            problems.append(e)
        else:
            good.append(app_id)
    return good, problems


def _read(path: Path, type_, required: bool):
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if required:
            raise ConfigError(path, None, "file not found") from None
        return None
    except OSError as e:
        raise ConfigError(path, None, f"cannot read it ({e.strerror})") from None
    if not raw.strip():
        raise ConfigError(path, None, "the file is empty; expected a JSON object")
    try:
        data = cjson.loads(raw)
    except cjson.CommentedJSONError as e:
        raise ConfigError(path, None, f"JSON syntax error at {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(path, None, "expected a JSON object at the top level")
    return convert(data, type_, path)


class SettingsStore:
    """App id -> AppSettings (or Problem), loaded lazily, reloaded on change.

    With ``keep_dir``, a copy of every settings file that loaded well is kept
    there. When a file later breaks or disappears, the last good settings stay in
    use: from memory, or from the kept copy when this process never loaded them
    (each worker process has its own store; a restart too). The kept copy is what
    makes them all agree.
    """

    def __init__(self, folder: Path, check_interval: float = 2.0, keep_dir: Optional[Path] = None):
        self.folder = Path(folder)
        self.check_interval = check_interval
        self.keep_dir = Path(keep_dir) if keep_dir else None
        self._apps: dict[str, Union[AppSettings, Problem]] = {}
        self._checked: dict[str, float] = {}
        self.reloads = 0

    def _stamps(self, app_id: str) -> tuple:
        return (signature(self.folder / f"metadata.{app_id}.json"), signature(self.folder / f"filter.{app_id}.json"))

    def _keep(self, app_id: str) -> None:
        if self.keep_dir is None:
            return
        try:
            self.keep_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            for name in (f"metadata.{app_id}.json", f"filter.{app_id}.json"):
                src, dst = self.folder / name, self.keep_dir / name
                try:
                    data = src.read_bytes()
                except FileNotFoundError:
                    dst.unlink(missing_ok=True)
                    continue
                if dst.exists() and dst.read_bytes() == data:
                    continue
                tmp = dst.with_name(f".{name}.{os.getpid()}")
                tmp.write_bytes(data)
                os.replace(tmp, dst)
        except OSError as e:
            log.warning("could not keep a copy of app %s's settings in %s: %s", app_id, self.keep_dir, e)

    def _kept(self, app_id: str) -> Optional[AppSettings]:
        if self.keep_dir is None or not (self.keep_dir / f"metadata.{app_id}.json").exists():
            return None
        try:
            return load_app(self.keep_dir, app_id)
        except ConfigError:
            return None

    def get(self, app_id: str) -> Union[AppSettings, Problem]:
        cur = self._apps.get(app_id)
        now = time.monotonic()
        last = self._checked.get(app_id)
        if cur is not None and last is not None and now - last < self.check_interval:
            return cur
        self._checked[app_id] = now
        if cur is not None and isinstance(cur, AppSettings):
            if self._stamps(app_id) == cur.stamp:
                return cur
        if not APP_ID_RE.match(app_id):
            p = Problem(f"app_id: {app_id!r} is not an app id (expected digits)")
            self._apps[app_id] = p
            return p
        try:
            new = load_app(self.folder, app_id)
        except ConfigError as e:
            kept = cur if isinstance(cur, AppSettings) else self._kept(app_id)
            if kept is not None:
                log.warning("settings of app %s not reloaded, keeping the last good ones%s: %s", app_id,
                            "" if kept is cur else f" (kept in {self.keep_dir})", e)
                kept.stamp = self._stamps(app_id)
                self._apps[app_id] = kept
                return kept
            reason = f"no_settings: {e}" if e.expected == "file not found" and "metadata." in str(e.file) \
                else f"bad_settings: {e}"
            if not isinstance(cur, Problem) or cur.reason != reason:
                log.warning("app %s has no usable settings: %s", app_id, e)
            p = Problem(reason)
            self._apps[app_id] = p
            return p
        if cur is not None:
            log.info("settings of app %s reloaded", app_id)
            self.reloads += 1
        self._keep(app_id)
        self._apps[app_id] = new
        return new

    def invalidate(self) -> None:
        """Check every app's files again on next use (the retry loop calls this)."""
        self._checked.clear()
