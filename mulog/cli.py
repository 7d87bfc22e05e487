"""What both command-line programs share: user errors become one line and an
exit code, never a traceback."""

from __future__ import annotations

import os
import sys
from typing import Callable

import typer
import typer.main

from offsets import StateError

from mulog import version
from mulog.config import EXIT_CONFIG, ConfigError
from mulog.exitcodes import Exit

# the table is mulog/exitcodes.py's; these names stay for the code that uses them
EXIT_ERROR = Exit.CONDITION
EXIT_TIMEOUT = Exit.UNREACHABLE
EXIT_UNREACHABLE = Exit.UNREACHABLE


class UserError(Exception):
    """An error whose message is for the user; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


def process_age() -> float:
    """Seconds since this process was started (so a time budget includes start-up)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(") ", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def checked(report, prog: str) -> None:
    """Say a preflight report's findings (mulog/preflight.py) on stderr; exit 2 on an error."""
    report.say(prog, lambda line: typer.echo(line, err=True))
    if report.errors:
        raise typer.Exit(EXIT_CONFIG)


def version_option(prog: str):
    """The ``--version`` option of a program's top-level callback."""

    def show(value: bool) -> None:
        if value:
            typer.echo(f"{prog} {version()}")
            raise typer.Exit()

    return typer.Option(False, "--version", is_eager=True, callback=show, help="Show the version and exit.")


_PLACEHOLDERS = {"str": "TEXT", "int": "N", "float": "NUMBER", "Path": "PATH"}


def _conventional(cmd):
    """Help as command-line programs write it: no type after a flag, an upper-case
    placeholder after an option that takes a value."""
    for p in cmd.params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
        elif p.param_type_name == "option" and p.metavar is None:
            kind = p.bare_type().removeprefix("list[").rstrip("]")
            p.metavar = _PLACEHOLDERS.get(kind, kind.upper())
    made = cmd.get_help_option

    def help_option(ctx):
        opt = made(ctx)
        if opt is not None:
            opt.metavar = ""
        return opt

    cmd.get_help_option = help_option
    for sub in getattr(cmd, "commands", {}).values():
        _conventional(sub)
    return cmd


def run(app: typer.Typer, prog: str) -> Callable[[], None]:
    def main() -> None:
        try:
            _conventional(typer.main.get_command(app))(prog_name=prog, standalone_mode=True)
        except ConfigError as e:
            print(f"{prog}: config error: {e}", file=sys.stderr)
            sys.exit(EXIT_CONFIG)
        except StateError as e:
            print(f"{prog}: {e}", file=sys.stderr)
            sys.exit(EXIT_ERROR)
        except UserError as e:
            print(f"{prog}: {e}", file=sys.stderr)
            sys.exit(e.code)
        except OSError as e:  # a path that is not a folder, a permission, a full disk: one line, no traceback
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            print(f"{prog}: {e.strerror or e}{where}", file=sys.stderr)
            sys.exit(EXIT_ERROR)
        except Exception as e:  # a Kafka client error no command caught: one line too
            line = kafka_error(e)
            if line is None:
                raise
            print(f"{prog}: {line[0]}", file=sys.stderr)
            sys.exit(line[1])

    return main


def kafka_error(e: BaseException) -> tuple[str, Exit] | None:
    """(message, exit code) of an error of the Kafka client, or None for any other
    exception: a broker that did not answer is UNREACHABLE, anything else CONDITION."""
    from mulog.kafkalog import AWAY_CODES

    kafka = sys.modules.get("confluent_kafka")  # imported by whoever raised it
    if kafka is None or not isinstance(e, kafka.KafkaException):
        return None
    err = e.args[0] if e.args and isinstance(e.args[0], kafka.KafkaError) else None
    if err is None:
        return f"Kafka: {e}", Exit.CONDITION
    if err.name() in AWAY_CODES:
        return f"Kafka did not answer: {err.str()}", Exit.UNREACHABLE
    return f"Kafka: {err.str()}", Exit.CONDITION
