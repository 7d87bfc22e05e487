"""What every mtga command shares: the options, the configuration from the file
with the flags over it, asking the running daemon, the stores read when none
runs, and how notes and JSON are printed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mulog.cli import EXIT_TIMEOUT, UserError, process_age
from mulog.exitcodes import Exit

from sink import config
from sink.ops import daemon

ConfigOpt = typer.Option(None, "-c", "--config", help="configuration file (YAML)")
StateOpt = typer.Option(None, "--state-dir", help="state folder (overrides state_dir)")


def abs_path(p: Optional[Path]) -> Optional[str]:
    return str(p.expanduser().resolve()) if p is not None else None


def load(cfg: Optional[Path], state_dir: Optional[Path] = None, require_topics: bool = False,
         **flags) -> config.MtgaConfig:
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
        o["state_dir"] = abs_path(state_dir)
    if flags.get("settings_dir") is not None:
        o["settings_dir"] = abs_path(flags["settings_dir"])
    if flags.get("output_dir") is not None:
        o["output"] = {"dir": abs_path(flags["output_dir"])}
    if flags.get("output_topic"):
        o.setdefault("output", {})["kafka"] = {"topic": flags["output_topic"]}
    if flags.get("workers") is not None:
        o["workers"] = flags["workers"]
    if flags.get("host"):
        o["host"] = flags["host"]
    s = config.load(cfg, o, require_topics=require_topics)
    if flags.get("bootstrap_servers"):
        s.bootstrap_servers = flags["bootstrap_servers"]  # a flag wins over KAFKA_BOOTSTRAP_SERVERS
    return s



JsonOpt = typer.Option(False, "--json", help="print JSON instead of text")
BootstrapOpt = typer.Option(None, "--bootstrap-servers", help="Kafka brokers (when no daemon runs)")


def ask(s: config.MtgaConfig, cmd: str, **args):
    """The daemon's answer, or None when no daemon runs (the caller reads the stores)."""
    from sink.ops.control import ControlTimeout, ControlUnavailable, Refused, request

    pid = daemon.running_pid(s.pid_file)
    if pid is None:
        return None
    t = s.conf.control.timeout_s
    try:
        # the budget counts from the command's start, not from here
        return request(s.socket_path, cmd, max(0.5, t - process_age()), **args)
    except ControlTimeout:
        raise UserError(f"mtga (pid {pid}) did not answer on {s.socket_path} within {t:.0f}s; it may be stuck "
                        f"or overloaded (see {s.log_file})", code=EXIT_TIMEOUT) from None
    except ControlUnavailable:
        note(f"mtga (pid {pid}) runs but its control socket {s.socket_path} does not answer; "
              f"reading the local store instead")
        return None
    except Refused as e:
        if e.exit_code == Exit.UNREACHABLE:  # Kafka did not answer the daemon: as when no daemon runs
            raise UserError(f"{e} (Kafka at {s.bootstrap_servers}, asked by mtga pid {pid})",
                            code=Exit.UNREACHABLE) from None
        raise UserError(f"mtga refused: {e}", code=e.exit_code or Exit.CONDITION) from None


def note(msg: str) -> None:
    typer.echo(f"note: {msg}", err=True)


def offline_store(s: config.MtgaConfig):
    """The state database opened read-only, or None when nothing was ever stored."""
    from offsets import StateDB, StateMissing

    try:
        return StateDB(s.state_dir / "db", "mtga", read_only=True)
    except StateMissing:
        return None


def print_json(obj) -> None:
    import json

    typer.echo(json.dumps(obj, indent=2, default=str))
