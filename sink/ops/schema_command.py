"""``mtga schema``: the property types the type guard learned (sink/ta/typeguard.py),
app by app and table by table (event properties, and the user table's), beside
those the settings pin, and the names each app holds against ThinkingData's
project caps; ``mtga schema forget APP PROPERTY [--user]`` lets the next value
of a property teach it again."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mulog.cli import UserError

from sink.ops.options import ConfigOpt, StateOpt, ask, load, note, offline_store, print_json

app = typer.Typer(add_completion=False, no_args_is_help=False, pretty_exceptions_enable=False,
                  help="The property types learned per app (and those the settings pin).")


def _learned(s) -> dict:
    res = ask(s, "schema")
    if res is not None:
        return res["apps"]
    from offsets import PropertyTypes

    note(f"mtga is not running: read from {s.state_dir / 'db'}")
    db = offline_store(s)
    if db is None:
        return {}
    with db:
        return PropertyTypes(db).all()


def _pinned(s, apps) -> tuple[dict, dict]:
    """(app -> lower name -> kind, from each app's properties.types; app -> its caps)."""
    from sink.ta.conf import CapsConf
    from sink.ta.settings import SettingsStore
    from sink.ta.typeguard import PINNED

    store = SettingsStore(s.settings_dir)
    out, caps = {}, {}
    for a in apps:
        st = store.get(a)
        md = getattr(st, "metadata", None)
        caps[a] = md.caps if md is not None else CapsConf()
        if md is not None:
            p = md.properties
            out[a] = {p.rename.get(k, k).lower(): PINNED[t] for k, t in p.types.items()}
    return out, caps


@app.callback(invoke_without_command=True)
def schema(ctx: typer.Context, cfg: Optional[Path] = ConfigOpt, state_dir: Optional[Path] = StateOpt,
           app_id: Optional[str] = typer.Option(None, "--app", help="only this app"),
           as_json: bool = typer.Option(False, "--json", help="print JSON instead of text")) -> None:
    """Per app, each property's type: learned from its first value, or pinned by the settings."""
    if ctx.invoked_subcommand is not None:
        return
    s = load(cfg, state_dir)
    from sink.ta.typeguard import TypeGuard

    tables = _learned(s)
    apps = {t.split(".")[0] for t in tables}
    if s.settings_dir.is_dir():
        apps |= {f.name.split(".")[1] for f in s.settings_dir.glob("metadata.*.json")}
    apps = [app_id] if app_id is not None else sorted(apps, key=lambda a: (len(a), a))
    pinned, caps = _pinned(s, apps)
    sizes = TypeGuard({t: k for t, k in tables.items() if t.split(".")[0] in apps}).sizes()
    rows, counts = [], []
    for a in apps:
        for table, key in (("event", a), ("user", a + ".user")):
            pins = pinned.get(a, {}) if table == "event" else {}
            learned = tables.get(key, {})
            for n in sorted(set(learned) | set(pins)):
                rows.append({"app": a, "table": table, "property": n, "type": pins.get(n) or learned[n],
                             "source": "pinned" if n in pins else "learned"})
        have = sizes.get(a, {})
        counts.append({"app": a, **{k: [have.get(k, 0), getattr(caps[a], k)]
                                    for k in ("events", "event_properties", "user_properties")}})
    if as_json:
        print_json({"properties": rows, "caps": counts})
        return
    for c in counts:
        typer.echo(f"app {c['app']}: " + ", ".join(f"{k.replace('_', ' ')} {n}/{cap}" + (" (near the cap)" if n > 0.9 * cap else "")
                                                   for k, (n, cap) in c.items() if k != "app"))
    if not rows:
        typer.echo("no property types learned or pinned yet")
        return
    w = max(len(r["property"]) for r in rows)
    for r in rows:
        typer.echo(f"{r['app']:>6}  {r['table']:<5}  {r['property']:<{w}}  {r['type']:<12}  {r['source']}")


@app.command("forget")
def forget(app_id: str = typer.Argument(..., metavar="APP"), prop: str = typer.Argument(..., metavar="PROPERTY"),
           user: bool = typer.Option(False, "--user", help="a user property (TA's user table), not an event property"),
           cfg: Optional[Path] = ConfigOpt, state_dir: Optional[Path] = StateOpt) -> None:
    """Forget what was learned of a property: its next value written teaches its type again."""
    s = load(cfg, state_dir)
    if not app_id.isdigit():
        raise UserError(f"expected an app id in digits, got {app_id!r}")
    table = app_id + ".user" if user else app_id
    res = ask(s, "schema_forget", app=table, property=prop)
    if res is None:
        from offsets import PropertyTypes, StateDB

        if not (s.state_dir / "db" / "CURRENT").exists():
            res = {"forgot": False}
        else:
            with StateDB(s.state_dir / "db", "mtga") as db:
                res = {"forgot": PropertyTypes(db).forget(table, prop)}
    where = f"app {app_id}'s user table" if user else f"app {app_id}"
    if not res["forgot"]:
        raise UserError(f"{where} has no learned type for {prop!r}")
    typer.echo(f"forgot the type of {prop!r} in {where}; its next value written teaches it again")
