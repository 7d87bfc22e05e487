"""PropertyTypes: per app, the kind each property was first written with (the
type guard's memory, sink/ta/typeguard.py). Keys ``pt/<app>\\0<lower-case name>``,
values the kind as text."""

from __future__ import annotations

from typing import Iterable

from .db import Batch, StateDB

_PREFIX = b"pt/"


def _key(app: str, name: str) -> bytes:
    return _PREFIX + app.encode() + b"\x00" + name.lower().encode()


class PropertyTypes:
    def __init__(self, db: StateDB):
        self.db = db

    def all(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for k, v in self.db.scan(_PREFIX):
            app, name = k[len(_PREFIX):].split(b"\x00", 1)
            out.setdefault(app.decode(), {})[name.decode()] = v.decode()
        return out

    def put_many(self, entries: Iterable[tuple[str, str, str]], sync: bool = False) -> int:
        """Store (app, name, kind) entries; returns how many."""
        b = Batch()
        n = 0
        for app, name, kind in entries:
            b.put(_key(app, name), kind.encode())
            n += 1
        if n:
            self.db.write(b, sync=sync)
        return n

    def forget(self, app: str, name: str) -> bool:
        k = _key(app, name)
        if self.db.get(k) is None:
            return False
        b = Batch()
        b.delete(k)
        self.db.write(b, sync=True)
        return True
