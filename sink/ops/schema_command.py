"""``mtga schema``: the property types the type guard learned (sink/ta/typeguard.py),
app by app, beside those the settings pin; ``mtga schema forget APP PROPERTY``
lets the next value of a property teach it again."""

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


def _pinned(s, apps) -> dict:
    """app -> lower name -> kind, from each app's properties.types."""
    from sink.ta.settings import SettingsStore
    from sink.ta.typeguard import PINNED

    store = SettingsStore(s.settings_dir)
    out = {}
    for a in apps:
        st = store.get(a)
        md = getattr(st, "metadata", None)
        if md is not None:
            p = md.properties
            out[a] = {p.rename.get(k, k).lower(): PINNED[t] for k, t in p.types.items()}
    return out


@app.callback(invoke_without_command=True)
def schema(ctx: typer.Context, cfg: Optional[Path] = ConfigOpt, state_dir: Optional[Path] = StateOpt,
           app_id: Optional[str] = typer.Option(None, "--app", help="only this app"),
           as_json: bool = typer.Option(False, "--json", help="print JSON instead of text")) -> None:
    """Per app, each property's type: learned from its first value, or pinned by the settings."""
    if ctx.invoked_subcommand is not None:
        return
    s = load(cfg, state_dir)
    learned = _learned(s)
    apps = set(learned)
    if s.settings_dir.is_dir():
        apps |= {f.name.split(".")[1] for f in s.settings_dir.glob("metadata.*.json")}
    apps = [app_id] if app_id is not None else sorted(apps)
    pinned = _pinned(s, apps)
    rows = []
    for a in apps:
        names = sorted(set(learned.get(a, {})) | set(pinned.get(a, {})))
        for n in names:
            pin = pinned.get(a, {}).get(n)
            rows.append({"app": a, "property": n, "type": pin or learned[a][n],
                         "source": "pinned" if pin else "learned"})
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no property types learned or pinned yet")
        return
    w = max(len(r["property"]) for r in rows)
    for r in rows:
        typer.echo(f"{r['app']:>6}  {r['property']:<{w}}  {r['type']:<12}  {r['source']}")


@app.command("forget")
def forget(app_id: str = typer.Argument(..., metavar="APP"), prop: str = typer.Argument(..., metavar="PROPERTY"),
           cfg: Optional[Path] = ConfigOpt, state_dir: Optional[Path] = StateOpt) -> None:
    """Forget what was learned of a property: its next value written teaches its type again."""
    s = load(cfg, state_dir)
    res = ask(s, "schema_forget", app=app_id, property=prop)
    if res is None:
        from offsets import PropertyTypes, StateDB

        if not (s.state_dir / "db" / "CURRENT").exists():
            res = {"forgot": False}
        else:
            with StateDB(s.state_dir / "db", "mtga") as db:
                res = {"forgot": PropertyTypes(db).forget(app_id, prop)}
    if not res["forgot"]:
        raise UserError(f"app {app_id} has no learned type for {prop!r}")
    typer.echo(f"forgot the type of {prop!r} in app {app_id}; its next value written teaches it again")
