"""The ``mtga`` command line (thin: parsing and printing only)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mulog.cli import run

from . import config

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Kafka game events into ThinkingData LogBus files.")



@app.callback()
def _group() -> None:
    """Commands are listed below."""


ConfigOpt = typer.Option(None, "-c", "--config", help="configuration file (YAML)")


@app.command("check-config")
def check_config(cfg: Optional[Path] = ConfigOpt) -> None:
    """Validate the configuration file and print a summary."""
    s = config.load(cfg)
    topics = s.conf.kafka.topics or [s.conf.kafka.topic_pattern]
    typer.echo(f"{cfg}: ok (topics {', '.join(topics)}, group {s.conf.kafka.group_id}, "
               f"state in {s.state_dir}, output in {s.output_dir})")


main = run(app, "mtga")
