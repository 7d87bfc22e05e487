"""mtga's query commands: offset-checker, kafka-lag, failure-queue-count,
clear-failure-queue, status. A query asks the running daemon over its control
socket (sink/ops/options.py's ``ask``), or reads the stores when none runs."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import typer

from mulog.cli import EXIT_TIMEOUT, UserError
from mulog.exitcodes import Exit

from sink import config
from sink.ops.options import BootstrapOpt, ConfigOpt, JsonOpt, StateOpt, ask, load, note, offline_store, print_json

def _offset_rows(s: config.MtgaConfig) -> tuple[list, str]:
    from offsets import PartitionOffsets

    from sink.ops import queries

    res = ask(s, "offsets")
    if res is not None:
        return res["rows"], "daemon"
    db = offline_store(s)
    local = {}
    if db is not None:
        with db:
            local = PartitionOffsets(db).all()
    k = s.conf.kafka
    topics = list(k.topics) or ([] if k.topic_pattern else sorted({t for t, _ in local}))
    note(f"mtga is not running: current offsets read from {s.state_dir / 'db'}, watermarks from Kafka")
    try:
        rows = queries.offset_rows(s.connection, k.group_id, topics, k.topic_pattern, local,
                                   s.conf.control.timeout_s)
    except queries.QueryError as e:
        raise UserError(f"{e} (Kafka at {s.bootstrap_servers})" if e.exit_code == EXIT_TIMEOUT else str(e),
                        code=e.exit_code) from None
    return rows, "store"


def offset_checker(cfg: Optional[Path] = ConfigOpt, state_dir: Optional[Path] = StateOpt,
                   bootstrap_servers: Optional[str] = BootstrapOpt, as_json: bool = JsonOpt) -> None:
    """Per partition of every consumed topic: Low, High, Current (stored) offset and Lag."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    s = load(cfg, state_dir, bootstrap_servers=bootstrap_servers)
    rows, _ = _offset_rows(s)
    if as_json:
        print_json(rows)
        return
    t = Table(box=box.MARKDOWN, show_edge=True)
    for col in ("#", "Topic", "Partition", "Low", "High", "Current", "Lag"):
        t.add_column(col, justify="left")
    grouped = False
    for r in rows:
        cur = "-" if r["current"] is None else str(r["current"])
        if r["source"] == "group":
            cur += " *"
            grouped = True
        t.add_row(str(r["#"]), r["topic"], str(r["partition"]), str(r["low"]), str(r["high"]), cur, str(r["lag"]))
    t.add_row("", "Total", "", "", "", "", str(sum(r["lag"] for r in rows)))
    con = Console(width=200, file=io.StringIO(), color_system=None)
    con.print(t)
    # the Markdown box draws blank top and bottom edges: print only the table's lines
    typer.echo("\n".join(line.rstrip() for line in con.file.getvalue().splitlines() if line.strip()))
    if grouped:
        typer.echo("* Current is the consumer group's committed offset (no local offset, or an older one: "
                   "another host of the group has worked on the partition since)")


def kafka_lag(cfg: Optional[Path] = ConfigOpt, state_dir: Optional[Path] = StateOpt,
              bootstrap_servers: Optional[str] = BootstrapOpt, as_json: bool = JsonOpt) -> None:
    """The total lag of this consumer, as one number."""
    s = load(cfg, state_dir, bootstrap_servers=bootstrap_servers)
    rows, _ = _offset_rows(s)
    lag = sum(r["lag"] for r in rows)
    if as_json:
        print_json({"lag": lag})
    else:
        typer.echo(str(lag))


def failure_queue_count(cfg: Optional[Path] = ConfigOpt, state_dir: Optional[Path] = StateOpt,
                        by_reason: bool = typer.Option(False, "--by-reason", help="counts per reason code"),
                        as_json: bool = JsonOpt) -> None:
    """Events waiting in the failure queue, as one number (or per reason)."""
    from offsets import FailureQueue

    s = load(cfg, state_dir)
    res = ask(s, "fq_count", by_reason=by_reason)
    if res is None:
        db = offline_store(s)
        if db is None:
            res = {"count": 0, "by_reason": {}} if by_reason else {"count": 0}
        else:
            with db:
                fq = FailureQueue(db)
                res = {"count": fq.count()}
                if by_reason:
                    res["by_reason"] = fq.count_by_reason()
        note(f"mtga is not running: read from {s.state_dir / 'db'}")
    if as_json:
        print_json(res)
    elif by_reason:
        for reason, n in res["by_reason"].items():
            typer.echo(f"{n}\t{reason}")
        typer.echo(f"{res['count']}\ttotal")
    else:
        typer.echo(str(res["count"]))


def clear_failure_queue(cfg: Optional[Path] = ConfigOpt, state_dir: Optional[Path] = StateOpt,
                        yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
                        reason: Optional[str] = typer.Option(None, "--reason", help="only entries with this reason code"),
                        as_json: bool = JsonOpt) -> None:
    """Remove events from the failure queue (all, or one reason code)."""
    from offsets import FailureQueue, StateDB

    s = load(cfg, state_dir)
    what = f"failure-queue entries with reason {reason!r}" if reason else "every failure-queue entry"
    if not yes and not typer.confirm(f"Remove {what} (state {s.state_dir})?", default=False):
        raise UserError("nothing removed")
    res = ask(s, "fq_clear", confirm=True, reason=reason)
    if res is None:
        if not (s.state_dir / "db" / "CURRENT").exists():
            res = {"removed": 0}
        else:
            with StateDB(s.state_dir / "db", "mtga") as db:
                res = {"removed": FailureQueue(db).clear(reason=reason)}
    if as_json:
        print_json(res)
    else:
        typer.echo(f"removed {res['removed']}")


def status(cfg: Optional[Path] = ConfigOpt, state_dir: Optional[Path] = StateOpt, as_json: bool = JsonOpt) -> None:
    """Running or not, Kafka reachable or not; pid, uptime, events/s, partitions, last
    checkpoint, failure queue. Exit 0 when it runs and works, 1 when it does not run or
    is stalled, 3 while it cannot reach Kafka (docs/operations.md#exit-codes)."""
    import datetime as dt

    from mulog.kafka_state import describe
    from mulog.kafka_state import exit_code as kafka_exit

    from offsets import FailureQueue, PartitionOffsets

    s = load(cfg, state_dir)
    res = ask(s, "status")
    if res is None:
        out = {"running": False, "state_dir": str(s.state_dir), "failure_queue": 0, "stored_partitions": 0}
        db = offline_store(s)
        if db is not None:
            with db:
                out["failure_queue"] = FailureQueue(db).count()
                out["stored_partitions"] = len(PartitionOffsets(db).all())
        if as_json:
            print_json(out)
        else:
            typer.echo(f"mtga is not running (state dir {s.state_dir}); failure queue {out['failure_queue']}, "
                       f"{out['stored_partitions']} partition offset(s) stored")
        raise typer.Exit(Exit.CONDITION)
    res["running"] = True
    kafka = res.get("kafka") or {"bootstrap": s.bootstrap_servers, "reachable": None}
    problems = [k for k in ("stalled", "checkpoint_error", "sink_error") if res.get(k)]
    rc = kafka_exit(kafka) or (Exit.CONDITION if problems else Exit.OK)
    if as_json:
        print_json(res)
        raise typer.Exit(rc)

    def ts(v):
        return dt.datetime.fromtimestamp(v).strftime("%Y-%m-%d %H:%M:%S") if v else "never"

    # the first line says what matters most: a script or a person reading one line learns it
    typer.echo(f"mtga is running (pid {res['pid']}, up {dt.timedelta(seconds=int(res['uptime_s']))}, "
               f"group {res['group']}, {res['workers']} worker(s)"
               + (f", {res['worker_restarts']} worker restart(s)" if res.get("worker_restarts") else "")
               + (f", version {res['version']}" if res.get("version") else "") + ")"
               + (f" but {describe(kafka)}" if kafka.get("reachable") is False else ""))
    if kafka.get("reachable") is not False:  # else the first line said it
        typer.echo(f"  kafka: {describe(kafka)}")
    typer.echo(f"  events/s (last minute): {res['events_per_s']:.0f}")
    typer.echo(f"  events: consumed {res['consumed']}, written {res['written']}, filtered {res['filtered']}, "
               f"failed {res['failed']}, retried ok {res['retried_ok']}")
    if res.get("fixed"):
        fixed = ", ".join(f"{rule} {n}" for rule, n in sorted(res["fixed"].items()))
        typer.echo(f"  fixed as the apps' settings say: {fixed}")
    typer.echo(f"  partitions assigned: {len(res['partitions'])} {' '.join(res['partitions'])}")
    typer.echo(f"  last checkpoint: {ts(res['last_checkpoint'])}")
    typer.echo(f"  failure queue: {res['failure_queue']}")
    for k in problems:
        typer.echo(f"  {k.replace('_', ' ').upper()}: {res[k]}")
    raise typer.Exit(rc)


COMMANDS = {
    "offset-checker": offset_checker,
    "kafka-lag": kafka_lag,
    "failure-queue-count": failure_queue_count,
    "clear-failure-queue": clear_failure_queue,
    "status": status,
}
