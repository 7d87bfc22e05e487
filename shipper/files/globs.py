"""Which files an input wants and what they are called: pure functions of paths.

``glob_match`` answers for a path what ``glob.glob(pattern, recursive=True)``
would answer, without listing anything, so that a file can be judged by a name
it no longer has (the old name of a renamed file) and an inotify event can be
judged without globbing every input.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from pathlib import PurePath
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from shipper.config import Input

_MAGIC = re.compile(r"[*?[]")


def has_magic(s: str) -> bool:
    return _MAGIC.search(s) is not None


def watch_root(pattern: str) -> tuple[str, bool]:
    """The folder to watch for a glob and whether sub-folders must be watched too.

    ``/a/b/*.log`` -> (``/a/b``, False); ``/a/**/x.log`` and ``/a/*/x.log`` ->
    (``/a``, True): a wildcard in a folder part needs the whole subtree.
    """
    parts = PurePath(pattern).parts
    fixed: list[str] = []
    for p in parts[:-1]:
        if has_magic(p):
            return str(PurePath(*fixed)) if fixed else "/", True
        fixed.append(p)
    return (str(PurePath(*fixed)) if fixed else "/"), False


def glob_match(pattern: str, path: str) -> bool:
    """Whether ``glob.glob(pattern, recursive=True)`` would list ``path``."""
    pp, sp = pattern.split("/"), path.split("/")

    def part(name: str, p: str) -> bool:
        if name.startswith(".") and not p.startswith("."):
            return False  # glob's wildcards leave hidden names alone
        return fnmatch.fnmatchcase(name, p)

    def m(i: int, j: int) -> bool:
        if i == len(pp):
            return j == len(sp)
        if pp[i] == "**":  # zero or more folders (or anything, at the end)
            return m(i + 1, j) or (j < len(sp) and not sp[j].startswith(".") and m(i, j + 1))
        return j < len(sp) and part(sp[j], pp[i]) and m(i + 1, j + 1)

    return m(0, 0)


def excluded(inp: "Input", path: str) -> bool:
    name = os.path.basename(path)
    for pat in inp.exclude:
        if "/" in pat:
            if fnmatch.fnmatchcase(path, pat):
                return True
        elif fnmatch.fnmatchcase(name, pat):
            return True
    return False


def wanted_by(inp: "Input", path: str) -> bool:
    """Whether ``inp`` would ship the file at ``path`` (its globs, its exclusions)."""
    return any(glob_match(p, path) for p in inp.paths) and not excluded(inp, path)


def owner(inputs: Iterable["Input"], path: str) -> "Input | None":
    """The first input that wants ``path`` (a file matched by several belongs to the first)."""
    return next((i for i in inputs if wanted_by(i, path)), None)


def log_name_for(path: str, log_name: str | None, pattern: re.Pattern | None) -> str | None:
    """The log_name of a file: the fixed name, or the pattern's ``log_name`` group
    matched against the file name (None when it does not match)."""
    if pattern is None:
        return log_name
    m = pattern.search(PurePath(path).name)
    if not m:
        return None
    return m.group("log_name") or None


@functools.lru_cache(maxsize=256)
def _pattern(p: str) -> re.Pattern:
    return re.compile(p)


def log_name_of(inp: "Input", path: str) -> str | None:
    """The log_name ``inp`` gives the file at ``path`` (None: its name does not match the pattern)."""
    return log_name_for(path, inp.log_name, _pattern(inp.log_name_pattern) if inp.log_name_pattern else None)
