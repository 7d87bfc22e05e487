"""Loading configuration files into typed objects, with one-line errors.

Each program declares its configuration as msgspec Structs (keys documented in
place, in the example files under conf/). ``load`` reads YAML, validates it
against the Struct and turns any mistake into a ConfigError that names the
file, the key and what was expected.
"""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

import msgspec
import yaml

from mulog.exitcodes import Exit

T = TypeVar("T")

EXIT_CONFIG = Exit.CONFIG


class ConfigError(Exception):
    """A configuration mistake: ``<file>: <key>: <what was expected>``."""

    def __init__(self, file: str | os.PathLike | None, key: str | None, expected: str):
        self.file = str(file) if file is not None else None
        self.key = key
        self.expected = expected
        parts = [p for p in (self.file, key) if p]
        super().__init__(": ".join(parts + [expected]))


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def _describe(msg: str) -> tuple[str, str]:
    """Turn a msgspec message into (key suffix, expectation)."""
    m = re.match(r"Expected `(.+?)`, got `(.+?)`", msg)
    if m:
        want = m.group(1).replace(" | ", " or ").replace("array", "a list").replace("object", "a mapping")
        return "", f"expected {want}, got {m.group(2)}"
    m = re.match(r"Object contains unknown field `(.+?)`", msg)
    if m:
        return m.group(1), "unknown key (check the spelling against the documented keys)"
    m = re.match(r"Object missing required field `(.+?)`", msg)
    if m:
        return m.group(1), "required key is missing"
    m = re.match(r"Invalid enum value (.+)", msg)
    if m:
        return "", f"invalid value {m.group(1)}"
    m = re.match(r"([a-z_][a-z0-9_.]*): (.+)", msg, re.S)
    if m:  # our own checks say "<key>: <what was expected>"
        return m.group(1), m.group(2)
    return "", msg[0].lower() + msg[1:] if msg else "invalid value"


def _choices(type_: Any, path: str) -> list[str] | None:
    """The allowed values of a Literal-typed key, found along ``path``."""
    t = type_
    for part in re.findall(r"[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\[\.\.\.\]", path):
        if part.startswith("["):  # [n]: a list item; [...]: a mapping's value
            args = typing.get_args(t)
            t = (args[-1] if part == "[...]" else args[0]) if args else None
            continue
        try:
            t = typing.get_type_hints(t).get(part)
        except TypeError:
            return None
        if t is None:
            return None
    if typing.get_origin(t) is typing.Literal:
        return [str(a) for a in typing.get_args(t)]
    return None


def _key_from_path(path: str | None) -> str:
    if not path:
        return ""
    key = path.lstrip(".")
    return key


def convert(data: Any, type_: type[T], file: str | os.PathLike | None = None, prefix: str = "") -> T:
    """Validate plain data (from YAML or JSON) into ``type_``."""
    try:
        return msgspec.convert(data, type_, str_keys=True)
    except msgspec.ValidationError as e:
        m = _AT.match(str(e))
        path = _key_from_path(m.group("path"))
        extra, expected = _describe(m.group("msg"))
        if expected.startswith("invalid value"):
            choices = _choices(type_, path)
            if choices:
                expected = f"expected one of {', '.join(choices)}; got {expected[len('invalid value '):]}"
        key = ".".join(p for p in (prefix, path, extra) if p).replace(".[", "[")
        raise ConfigError(file, key or None, expected) from None


def read_yaml(path: str | os.PathLike) -> Any:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(p, None, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(p, None, "is a folder, expected a YAML file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(p, None, f"cannot read it ({e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(p, None, yaml_problem(e, text)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(p, None, f"expected a mapping of keys at the top level, got {type(data).__name__}")
    return interpolate(data, p)


_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_VAR = re.compile(r"^(?:env:)?([A-Za-z_][A-Za-z0-9_]*)$")


def interpolate(data: Any, file: Path, key: str = "") -> Any:
    """``${VAR}`` (or ``${env:VAR}``) in a string value becomes the environment
    variable's value, ``${file:PATH}`` the content of the file at PATH (relative
    to the configuration file's folder; one trailing newline dropped), ``$${``
    a literal ``${``. The error of a reference that cannot be read names the
    variable or the file, never a value."""
    if isinstance(data, dict):
        return {k: interpolate(v, file, f"{key}.{k}" if key else str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate(v, file, f"{key}[{i}]") for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data

    def value(m: re.Match) -> str:
        if m.group(0) == "$${":
            return "${"
        ref = m.group(1).strip()
        var = _VAR.match(ref)
        if var:
            got = os.environ.get(var.group(1))
            if got is None:
                raise ConfigError(file, key, f"environment variable {var.group(1)} is not set")
            return got
        if ref.startswith("file:") and ref[5:].strip():
            path = Path(os.path.expanduser(ref[5:].strip()))
            path = path if path.is_absolute() else Path(file).parent / path
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(file, key, f"cannot read {path} ({getattr(e, 'strerror', None) or e})") from None
            return text[:-1] if text.endswith("\n") else text
        raise ConfigError(file, key, f"expected ${{VAR}}, ${{env:VAR}} or ${{file:PATH}}, got ${{{ref}}}")

    return _REF.sub(value, data)


def yaml_problem(e: yaml.YAMLError, text: str) -> str:
    """PyYAML's error on one line, with the line it names and the one before
    (where the mistake often is: a missing ':' is found on the next line)."""
    problem = getattr(e, "problem", None) or str(e)
    mark = getattr(e, "problem_mark", None)
    if mark is None:
        return f"YAML syntax error: {problem}"
    lines = text.splitlines()
    shown = [f"line {n + 1}: {lines[n].strip()!r}" for n in (mark.line - 1, mark.line) if 0 <= n < len(lines)]
    context = getattr(e, "context", None)
    context_mark = getattr(e, "context_mark", None)
    also = f" ({context} at line {context_mark.line + 1})" if context and context_mark else ""
    return (f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem}{also}; "
            + "; ".join(shown))


def load(path: str | os.PathLike, type_: type[T]) -> T:
    """Read and validate a YAML configuration file."""
    return convert(read_yaml(path), type_, path)


# keys whose value is a secret: never printed (check-config --print, logs, errors)
SECRET_KEY = re.compile(r"password|secret|token|credential|(^|\.)key\.pem$|(^|\.)pem$|oauthbearer\.config",
                        re.I)
REDACTED = "<redacted>"


def redacted(data: Any) -> Any:
    """``data`` (plain dicts and lists) with the value of every secret key replaced."""
    if isinstance(data, dict):
        return {k: REDACTED if isinstance(k, str) and SECRET_KEY.search(k) and v not in (None, "")
                else redacted(v) for k, v in data.items()}
    if isinstance(data, list):
        return [redacted(v) for v in data]
    return data


def dump(conf: Any, **over: Any) -> str:
    """A configuration Struct as YAML, every default filled in, secrets redacted;
    ``over`` sets top-level sections' keys to the values in effect."""
    data = msgspec.to_builtins(conf)
    for section, values in over.items():
        data[section] = {**data.get(section, {}), **values}
    return yaml.safe_dump(redacted(data), sort_keys=False, allow_unicode=True)


def resolve(base: Path, value: str | None) -> Path | None:
    """A path from a config file: ``~`` expanded, relative to the file's folder."""
    if value is None or value == "":
        return None
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p).resolve()


def bootstrap_override(configured: str) -> str:
    """``KAFKA_BOOTSTRAP_SERVERS``, where set, overrides the configured servers."""
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    return env or configured


def layered(path: str | os.PathLike | None, overrides: dict | None, build: Callable[[dict, Path | None], T]) -> T:
    """The configuration file at ``path`` (none: all defaults) with ``overrides``
    (command-line flags, nested like the file's keys) merged over it, validated
    by ``build(data, file)``: a flag is checked exactly like the key it stands for."""
    file = Path(path) if path else None
    data = read_yaml(file) if file else {}
    if overrides:
        data = merge(data, overrides)
    return build(data, file)


def merge(base: dict, over: dict) -> dict:
    """``over`` merged into ``base`` recursively (command-line flags over a file)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out
