"""The ``shipper`` command line (thin: parsing and printing only)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import typer

from mulog import examples
from mulog.runtime import allocator, logs
from mulog.cli import checked, run, version_option
from mulog.config import dump, resolve

from shipper import config

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Tail game log files into Kafka.")


@app.callback()
def _group(_version: bool = version_option("shipper")) -> None:
    """Commands are listed below."""


ConfigOpt = typer.Option(None, "-c", "--config", help="configuration file (YAML)")


@app.command("check-config")
def check_config(cfg: Optional[Path] = ConfigOpt,
                 show: bool = typer.Option(False, "--print", help="print the configuration in effect, every "
                                                                  "default filled in, secrets redacted")) -> None:
    """Check the configuration as `shipper tail` does before it starts (exit 2 on
    a mistake, one line each) and print a summary."""
    from shipper.ops.preflight import check

    s = config.load_tail(cfg, config.TailFlags())
    checked(check(s), "shipper")
    if show:
        typer.echo(dump(s.conf, kafka={"bootstrap_servers": s.bootstrap_servers}), nl=False)
        return
    typer.echo(f"{cfg}: ok ({len(s.inputs)} input(s), state in {s.state_dir}, Kafka at {s.bootstrap_servers})")


@app.command("init")
def init(folder: Path = typer.Argument(..., help="folder to write the example files into"),
         force: bool = typer.Option(False, "--force", help="replace files that exist")) -> None:
    """Write the example configuration into FOLDER, each key documented in place."""
    for p in examples.write("shipper", folder, force):
        typer.echo(f"wrote {p}")
    typer.echo(f"edit them, then: shipper check-config -c {Path(folder) / 'shipper.yml'}")


@app.command("tail")
def tail(
    cfg: Optional[Path] = ConfigOpt,
    path: Optional[List[str]] = typer.Option(None, "--path", help="glob of files to tail (repeatable)"),
    topic: Optional[str] = typer.Option(None, "--topic", help="Kafka topic"),
    app_id: Optional[int] = typer.Option(None, "--app-id", help="app id sent in the app_id header"),
    log_name: Optional[str] = typer.Option(None, "--log-name", help="log_name sent in the log_name header"),
    state_dir: Optional[str] = typer.Option(None, "--state-dir", help="folder of the position store"),
    bootstrap_servers: Optional[str] = typer.Option(None, "--bootstrap-servers", help="Kafka brokers"),
    from_beginning: bool = typer.Option(False, "--from-beginning",
                                        help="read files never seen before from their beginning"),
    host: Optional[str] = typer.Option(None, "--host", help="this process's name in the host header and the "
                                                            "fleet view (default: the machine's name)"),
) -> None:
    """Tail the configured files into Kafka until SIGTERM/SIGINT."""
    from shipper.ops.preflight import check
    from shipper.service import Shipper

    flags = config.TailFlags(path, topic, app_id, log_name, state_dir, bootstrap_servers, from_beginning, host)
    s = config.load_tail(cfg, flags)
    checked(check(s), "shipper")
    lc = s.conf.log
    logs.setup(lc.level, resolve(s.base, lc.file), lc.max_bytes, lc.backups, lc.format)
    allocator.tune()
    shipper = Shipper(s, reload=lambda: config.load_tail(cfg, flags), config_file=cfg)
    shipper.install_signals()
    allocator.settled()
    raise typer.Exit(shipper.run())


@app.command("status")
def status(
    cfg: Optional[Path] = ConfigOpt,
    state_dir: Optional[str] = typer.Option(None, "--state-dir", help="folder of the position store"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of text"),
) -> None:
    """Running or not, Kafka reachable or not (exit 0 when it runs and reaches Kafka, 1
    when it does not run, 3 while it cannot reach Kafka); then per file: path,
    identity, delivered offset, size, % delivered, last update."""
    from shipper.ops.status import judge, read_live, read_status

    if state_dir:
        folder = Path(state_dir).expanduser().resolve()
    else:
        folder = config.load(cfg).state_dir
    rows = read_status(folder)
    head, code, fields = judge(folder, read_live(folder))
    if as_json:
        typer.echo(json.dumps({**fields, "state_dir": str(folder), "files": [r.as_json() for r in rows]}, indent=1))
        raise typer.Exit(code)
    typer.echo(head)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"shipper positions in {folder}")
    for col, just in (("path", "left"), ("identity", "left"), ("delivered", "right"), ("size", "right"),
                      ("%", "right"), ("last update", "left")):
        table.add_column(col, justify=just)
    for r in rows:
        table.add_row(r.path, r.identity, f"{r.delivered:,}", "gone" if r.size is None else f"{r.size:,}",
                      "-" if r.percent is None else f"{r.percent:.1f}",
                      time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.updated_at)))
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    if rows:
        console.print(table)
    else:
        typer.echo("no file positions stored yet")
    raise typer.Exit(code)


main = run(app, "shipper")
