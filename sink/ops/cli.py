"""The ``mtga`` command line (thin: parsing and printing only)."""

from __future__ import annotations

import inspect
import logging
import os
import typing
from pathlib import Path
from typing import List, Optional

import typer

from mulog import examples
from mulog.runtime import logs
from mulog.cli import UserError, checked, kafka_error, run, version_option
from mulog.config import dump
from mulog.exitcodes import Exit

from sink import config
from sink.ops import daemon
from sink.ops import schema_command
from sink.ops.logbus import logbus_config
from sink.ops.options import ConfigOpt, StateOpt, abs_path, load
from sink.ops.query_commands import COMMANDS

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Kafka game events into ThinkingData LogBus files.")


@app.callback()
def _group(_version: bool = version_option("mtga")) -> None:
    """Commands are listed below."""


@app.command("check-config")
def check_config(cfg: Optional[Path] = ConfigOpt,
                 show: bool = typer.Option(False, "--print", help="print the configuration in effect, every "
                                                                  "default filled in, secrets redacted")) -> None:
    """Check the configuration and every app's settings as `mtga start` does
    before it starts (exit 2 on a mistake, one line each) and print a summary."""
    from sink.ops.preflight import check

    s = load(cfg, require_topics=True)
    checked(check(s), "mtga")
    if show:
        typer.echo(dump(s.conf, kafka={"bootstrap_servers": s.bootstrap_servers}), nl=False)
        return
    topics = s.conf.kafka.topics or [s.conf.kafka.topic_pattern]
    typer.echo(f"{cfg}: ok (topics {', '.join(topics)}, group {s.conf.kafka.group_id}, "
               f"state in {s.state_dir}, output in {s.output_dir})")


@app.command("init")
def init(folder: Path = typer.Argument(..., help="folder to write the example files into"),
         force: bool = typer.Option(False, "--force", help="replace files that exist")) -> None:
    """Write the example configuration and per-app settings into FOLDER, each key documented in place."""
    for p in examples.write("mtga", folder, force):
        typer.echo(f"wrote {p}")
    typer.echo(f"edit them, then: mtga check-config -c {Path(folder) / 'mtga.yml'}")


@app.command()
def start(
    cfg: Optional[Path] = ConfigOpt,
    daemonize: bool = typer.Option(False, "--daemon", "-d", help="run in the background (pid file, log file)"),
    topic: Optional[List[str]] = typer.Option(None, "--topic", help="topic to consume (repeatable)"),
    topic_pattern: Optional[str] = typer.Option(None, "--topic-pattern", help="regular expression of topics"),
    group_id: Optional[str] = typer.Option(None, "--group-id", help="consumer group"),
    settings_dir: Optional[Path] = typer.Option(None, "--settings-dir", help="folder of per-app settings"),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="output folder (LogBus reads it)"),
    output_topic: Optional[str] = typer.Option(None, "--output-topic", help="write the lines to this Kafka topic, "
                                               "in transactions, instead of files ({app_id}: a topic per app)"),
    state_dir: Optional[Path] = StateOpt,
    bootstrap_servers: Optional[str] = typer.Option(None, "--bootstrap-servers", help="Kafka brokers"),
    from_beginning: bool = typer.Option(False, "--from-beginning",
                                        help="without a stored offset, start at the earliest event"),
    workers: Optional[int] = typer.Option(None, "--workers", help="transform processes (0 = one per core)"),
    host: Optional[str] = typer.Option(None, "--host", help="this process's name in the fleet view (default: the "
                                                            "machine's name)"),
) -> None:
    """Start the consumer (in the foreground, or detached with --daemon)."""
    given = {k: v for k, v in locals().items() if k in START_FLAGS}  # the flags alone: no other local exists yet
    from sink.ops.preflight import check
    from sink.ops.runtime import run_foreground

    s = load(require_topics=True, **given)
    pid = daemon.running_pid(s.pid_file)
    if pid is not None:
        raise UserError(f"mtga already runs (pid {pid}, state dir {s.state_dir})")
    checked(check(s), "mtga")
    lc = s.conf.log

    def main(ready) -> int:
        logs.setup(lc.level, s.log_file if (daemonize or lc.file) else None, lc.max_bytes, lc.backups,
                   lc.format)
        for note in notes:
            logging.getLogger("mtga").warning("%s", note)
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

    notes = _save_start(s, given)
    if daemonize:
        ok, msg, code = daemon.detach(s.log_file, main)
        if not ok:
            raise UserError(f"mtga did not start: {msg}", code=code)
        typer.echo(f"mtga started (pid {msg}); log {s.log_file}")
        return
    raise typer.Exit(main(lambda *_: None))


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


START_FILE = "mtga.start.json"
# the flags of `mtga start` that `mtga restart` gives again (all but --daemon), and those that are paths
START_FLAGS = tuple(p for p in inspect.signature(start).parameters if p != "daemonize")
PATH_FLAGS = frozenset(p for p, hint in typing.get_type_hints(start).items() if hint == Optional[Path])


def _save_start(s: config.MtgaConfig, given: dict) -> list[str]:
    """Keep the flags of this start (0600) in the state folder, paths made
    absolute; returns notes on modes it had to tighten."""
    import json

    from offsets import ensure_private_dir

    notes = ensure_private_dir(s.state_dir)
    path = s.state_dir / START_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({k: abs_path(v) if k in PATH_FLAGS else v for k, v in given.items()}, f)
    os.replace(tmp, path)
    return notes


@app.command()
def restart(ctx: typer.Context, cfg: Optional[Path] = ConfigOpt, state_dir: Optional[Path] = StateOpt,
            timeout: float = typer.Option(60.0, "--timeout", help="seconds to wait for a clean exit")) -> None:
    """Stop the daemon (if it runs) and start it again in the background, with the
    configuration and flags of its last start."""
    import json

    s = load(cfg, state_dir)
    try:
        args = json.loads((s.state_dir / START_FILE).read_text())
    except (OSError, ValueError):
        args = {"cfg": abs_path(cfg), "state_dir": abs_path(state_dir)}
    stop(cfg, state_dir, timeout)
    ctx.invoke(start, daemonize=True, **{k: Path(v) if k in PATH_FLAGS and v else v
                                         for k, v in args.items() if k in START_FLAGS})


@app.command("fleet")
def fleet(cfg: Optional[Path] = ConfigOpt,
          role: Optional[str] = typer.Option(None, "--role", help="only this role: shipper or mtga"),
          silent: bool = typer.Option(False, "--silent", help="only processes that went silent"),
          bootstrap_servers: Optional[str] = typer.Option(None, "--bootstrap-servers", help="Kafka brokers"),
          as_json: bool = typer.Option(False, "--json", help="print JSON instead of text")) -> None:
    """Every shipper and mtga that published a heartbeat (the fleet topic): up,
    silent (no record for 3 of its intervals: killed, frozen, or gone) or stopped."""
    import json

    import msgspec

    from mulog.fleet import Refused, read

    s = load(cfg, bootstrap_servers=bootstrap_servers)
    try:
        beats = read(s.connection, s.conf.fleet.topic)
    except Refused as e:
        raise UserError(str(e), code=Exit.CONDITION) from None
    except Exception as e:
        said = kafka_error(e)
        if said is None:
            raise
        raise UserError(f"fleet topic {s.conf.fleet.topic} not read: {said[0]} (Kafka at {s.bootstrap_servers})",
                        code=said[1]) from None
    rows = [r for r in beats if (role is None or r.role == role) and (not silent or r.state == "silent")]
    if as_json:
        typer.echo(json.dumps({"topic": s.conf.fleet.topic, "hosts": msgspec.to_builtins(rows)}))
        return
    typer.echo(f"{'role':8} {'host':24} {'state':8} {'last seen':>10} {'pid':>8}  figures")
    for r in rows:
        figs = " ".join(f"{k}={v}" for k, v in sorted(r.figures.items()))
        typer.echo(f"{r.role:8} {r.host:24} {r.state:8} {r.age_s:>9.0f}s {r.pid:>8}  {figs}")
    if not rows:
        typer.echo(f"no heartbeat in {s.conf.fleet.topic}")


@app.command("check-output")
def check_output(paths: List[Path] = typer.Argument(..., help="LogBus files, or folders of them"),
                 as_json: bool = typer.Option(False, "--json", help="print JSON instead of text")) -> None:
    """Check LogBus files (names and every line) against ThinkingData's data rules;
    exit code 1 when anything breaks one."""
    import json

    from sink.ops.check_output import check, print_report

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UserError(f"no such file or folder: {', '.join(missing)}")
    r = check(str(p) for p in paths)
    if as_json:
        typer.echo(json.dumps(r.as_json(), indent=2))
    else:
        print_report(r, typer.echo)
    if r.counts:
        raise typer.Exit(Exit.CONDITION)


for _name, _fn in COMMANDS.items():
    app.command(_name)(_fn)
app.add_typer(schema_command.app, name="schema")
app.command("logbus-config")(logbus_config)

main = run(app, "mtga")
