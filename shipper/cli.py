"""The ``shipper`` command line (thin: parsing and printing only)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mulog.cli import run

from . import config

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Tail game log files into Kafka.")



@app.callback()
def _group() -> None:
    """Commands are listed below."""


ConfigOpt = typer.Option(None, "-c", "--config", help="configuration file (YAML)")


@app.command("check-config")
def check_config(cfg: Optional[Path] = ConfigOpt) -> None:
    """Validate the configuration file and print a summary."""
    s = config.load(cfg)
    typer.echo(f"{cfg}: ok ({len(s.inputs)} input(s), state in {s.state_dir}, Kafka at {s.bootstrap_servers})")


main = run(app, "shipper")
