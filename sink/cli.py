"""The ``mtga`` command line (thin: parsing and printing only)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mulog import logs
from mulog.cli import UserError, run

from . import config, daemon

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Kafka game events into ThinkingData LogBus files.")


@app.callback()
def _group() -> None:
    """Commands are listed below."""


ConfigOpt = typer.Option(None, "-c", "--config", help="configuration file (YAML)")
StateOpt = typer.Option(None, "--state-dir", help="state folder (overrides state_dir)")


def _abs(p: Optional[Path]) -> Optional[str]:
    return str(p.expanduser().resolve()) if p is not None else None


def load(cfg: Optional[Path], state_dir: Optional[Path] = None, require_topics: bool = False,
         **flags) -> config.MtgaSettings:
    """Configuration from the file (if any) with command-line flags over it."""
    o: dict = {}
    k: dict = {}
    if flags.get("topic"):
        k["topics"] = list(flags["topic"])
        k["topic_pattern"] = None
    if flags.get("topic_pattern"):
        k["topic_pattern"] = flags["topic_pattern"]
        k["topics"] = []
    if flags.get("group_id"):
        k["group_id"] = flags["group_id"]
    if flags.get("bootstrap_servers"):
        k["bootstrap_servers"] = flags["bootstrap_servers"]
    if flags.get("from_beginning"):
        k["auto_offset_reset"] = "earliest"
    if k:
        o["kafka"] = k
    if state_dir is not None:
        o["state_dir"] = _abs(state_dir)
    if flags.get("settings_dir") is not None:
        o["settings_dir"] = _abs(flags["settings_dir"])
    if flags.get("output_dir") is not None:
        o["output"] = {"dir": _abs(flags["output_dir"])}
    if flags.get("workers") is not None:
        o["workers"] = flags["workers"]
    s = config.load(cfg, o, require_topics=require_topics)
    if flags.get("bootstrap_servers"):
        s.bootstrap_servers = flags["bootstrap_servers"]  # a flag wins over KAFKA_BOOTSTRAP_SERVERS
    return s


@app.command("check-config")
def check_config(cfg: Optional[Path] = ConfigOpt) -> None:
    """Validate the configuration file and print a summary."""
    s = config.load(cfg)
    topics = s.conf.kafka.topics or [s.conf.kafka.topic_pattern]
    typer.echo(f"{cfg}: ok (topics {', '.join(topics)}, group {s.conf.kafka.group_id}, "
               f"state in {s.state_dir}, output in {s.output_dir})")


@app.command()
def start(
    cfg: Optional[Path] = ConfigOpt,
    daemonize: bool = typer.Option(False, "--daemon", "-d", help="run in the background (pid file, log file)"),
    topic: Optional[List[str]] = typer.Option(None, "--topic", help="topic to consume (repeatable)"),
    topic_pattern: Optional[str] = typer.Option(None, "--topic-pattern", help="regular expression of topics"),
    group_id: Optional[str] = typer.Option(None, "--group-id", help="consumer group"),
    settings_dir: Optional[Path] = typer.Option(None, "--settings-dir", help="folder of per-app settings"),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="output folder (LogBus reads it)"),
    state_dir: Optional[Path] = StateOpt,
    bootstrap_servers: Optional[str] = typer.Option(None, "--bootstrap-servers", help="Kafka brokers"),
    from_beginning: bool = typer.Option(False, "--from-beginning",
                                        help="without a stored offset, start at the earliest event"),
    workers: Optional[int] = typer.Option(None, "--workers", help="transform processes (0 = one per core)"),
) -> None:
    """Start the consumer (in the foreground, or detached with --daemon)."""
    from .service import run_foreground

    s = load(cfg, state_dir, require_topics=True, topic=topic, topic_pattern=topic_pattern, group_id=group_id,
             settings_dir=settings_dir, output_dir=output_dir, bootstrap_servers=bootstrap_servers,
             from_beginning=from_beginning, workers=workers)
    pid = daemon.running_pid(s.pid_file)
    if pid is not None:
        raise UserError(f"mtga already runs (pid {pid}, state dir {s.state_dir})")
    lc = s.conf.log

    def main(ready) -> int:
        logs.setup(lc.level, s.log_file if (daemonize or lc.file) else None, lc.max_bytes, lc.backups)
        pf = daemon.PidFile(s.pid_file)
        try:
            pf.acquire()
        except daemon.AlreadyRunning as e:
            ready(str(e))
            raise UserError(str(e)) from None
        try:
            return run_foreground(s, ready)
        finally:
            pf.release()

    if daemonize:
        ok, msg = daemon.detach(s.log_file, main)
        if not ok:
            raise UserError(f"mtga did not start: {msg}")
        typer.echo(f"mtga started (pid {msg}); log {s.log_file}")
        return
    raise typer.Exit(main(lambda err: None))


@app.command()
def stop(cfg: Optional[Path] = ConfigOpt, state_dir: Optional[Path] = StateOpt,
         timeout: float = typer.Option(60.0, "--timeout", help="seconds to wait for a clean exit")) -> None:
    """Stop the running daemon (SIGTERM, then wait for its final checkpoint)."""
    s = load(cfg, state_dir)
    pid, ok = daemon.stop(s.pid_file, timeout)
    if pid is None:
        typer.echo("mtga is not running")
        return
    if not ok:
        raise UserError(f"mtga (pid {pid}) did not stop within {timeout:.0f}s; it is still running")
    typer.echo(f"mtga stopped (pid {pid})")


@app.command()
def restart(ctx: typer.Context, cfg: Optional[Path] = ConfigOpt, state_dir: Optional[Path] = StateOpt,
            timeout: float = typer.Option(60.0, "--timeout", help="seconds to wait for a clean exit")) -> None:
    """Stop the daemon (if it runs) and start it again in the background."""
    stop(cfg, state_dir, timeout)
    ctx.invoke(start, cfg=cfg, daemonize=True, state_dir=state_dir, topic=None, topic_pattern=None,
               group_id=None, settings_dir=None, output_dir=None, bootstrap_servers=None,
               from_beginning=False, workers=None)


@app.command()
def status(cfg: Optional[Path] = ConfigOpt, state_dir: Optional[Path] = StateOpt) -> None:
    """Say whether the daemon runs, and its pid."""
    s = load(cfg, state_dir)
    pid = daemon.running_pid(s.pid_file)
    if pid is None:
        typer.echo(f"mtga is not running (state dir {s.state_dir})")
        raise typer.Exit(1)
    typer.echo(f"mtga is running (pid {pid}, state dir {s.state_dir})")


main = run(app, "mtga")
