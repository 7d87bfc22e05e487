"""The daemon around the pipeline: signals, the control socket and metrics.

SIGTERM/SIGINT stop (final checkpoint, exit 0); SIGHUP makes every app's
settings be checked again before the next batch. The control socket's status
and the metrics read the snapshot the loop publishes (``Service.snapshot``);
commands that need the state database run on the loop's thread
(``Service.call``). A bug in the pipeline is logged once with its traceback
and ends the process with exit code 1; the offsets stored are those of the
batches delivered before it, so a supervisor's restart loses nothing.
"""

from __future__ import annotations

import logging
import time

from mulog import version
from mulog.config import EXIT_CONFIG, ConfigError
from mulog.fleet import host_name
from mulog.runtime import allocator, signals
from mulog.runtime.skeleton import Skeleton

from sink.config import MtgaConfig
from sink.pipeline.service import Service
from sink.pipeline.snapshot import MtgaSnapshot

log = logging.getLogger("mtga")


def status(snap: MtgaSnapshot, group: str, bootstrap: str = "") -> dict:
    """The ``status`` answer, from a snapshot."""
    from mulog.kafka_state import reach

    v = snap.counters
    return {
        "version": version(),
        "pid": snap.pid,
        "started": snap.started,
        "uptime_s": round(time.time() - snap.started, 1),
        "events_per_s": snap.events_per_s,
        "consumed": v["events_consumed"],
        "written": v["events_written"],
        "filtered": v["events_filtered"],
        "failed": v["events_failed"],
        "retried_ok": v["events_retried_ok"],
        "fixed": snap.fixed,
        "partitions": [f"{t}[{p}]" for t, p in snap.partitions],
        "last_checkpoint": snap.last_checkpoint,
        "failure_queue": snap.failure_queue,
        "stalled": snap.stalled,
        "checkpoint_error": snap.checkpoint_error,
        "retry_error": snap.retry_error,
        "sink_error": snap.sink_error,
        "sink_bytes": snap.sink_bytes,
        "workers": snap.workers,
        "worker_restarts": snap.worker_restarts,
        "group": group,
        "kafka": reach(bootstrap, snap.kafka_contacted, snap.kafka_down_since, snap.kafka_down_errors,
                       denied=snap.kafka_denied),
        "counters": v,
    }


def control_handlers(svc: Service) -> dict:
    """The control socket's commands (run on the socket's threads)."""
    from sink.ops import queries

    s = svc.s
    admin = []
    timeout = max(1.0, s.conf.control.timeout_s - 2.0)

    def offsets(req):
        if not admin:
            admin.append(queries.admin_client(s.connection))
        k = s.conf.kafka
        rows = queries.offset_rows(s.connection, k.group_id, list(k.topics), k.topic_pattern,
                                   svc.snapshot.local_offsets, timeout, admin=admin[0])
        return {"rows": rows, "source": "daemon"}

    def fq_count(req):
        if req.get("by_reason"):
            return svc.call(lambda: {"count": svc.fq.size, "by_reason": svc.fq.count_by_reason()}, timeout)
        return {"count": svc.snapshot.failure_queue}

    def fq_clear(req):
        if req.get("confirm") is not True:
            raise ValueError('clearing the failure queue needs "confirm": true')
        reason = req.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ValueError("reason must be a string")
        n = svc.call(lambda: svc.fq.clear(reason=reason), timeout)
        log.warning("failure queue: %d entr%s removed over the control socket%s", n, "y" if n == 1 else "ies",
                    f" (reason {reason})" if reason else "")
        return {"removed": n}

    def schema(req):
        return {"apps": svc.call(lambda: {a: dict(k) for a, k in svc.guard.kinds.items() if k}, timeout)}

    def schema_forget(req):
        app, prop = req.get("app"), req.get("property")
        if not isinstance(app, str) or not isinstance(prop, str):
            raise ValueError('expected {"app": "24", "property": "amount"}')

        def forget():
            hit = svc.guard.forget(app, prop)
            return svc.types.forget(app, prop) or hit

        forgot = svc.call(forget, timeout)
        if forgot:
            log.warning("type guard: the type of %r in app %s forgotten over the control socket", prop, app)
        return {"forgot": forgot}

    return {
        "schema": schema,
        "schema_forget": schema_forget,
        "ping": lambda req: "pong",
        "status": lambda req: status(svc.snapshot, s.conf.kafka.group_id, s.bootstrap_servers),
        "offsets": offsets,
        "lag": lambda req: {"lag": sum(r["lag"] for r in offsets(req)["rows"])},
        "fq_count": fq_count,
        "fq_clear": fq_clear,
    }


def run_foreground(s: MtgaConfig, ready=None) -> int:
    """Run until SIGTERM/SIGINT. ``ready(None)`` is called once the consumer is
    open, or ``ready(error, exit_code)`` when it could not start."""
    from sink.ops.control import ControlServer
    from sink.ops.metrics import routes, samples

    allocator.tune()
    try:
        svc = Service(s)
        server = ControlServer(s.socket_path, control_handlers(svc))
    except Exception as e:
        if ready:
            ready(str(e))
        raise

    signals.handle(svc.request_stop, svc.request_recheck)
    server.start()
    skeleton = Skeleton("mtga", s.connection, host_name(s.conf.host))
    beat = skeleton.beat(s.conf.fleet, heartbeat_figures(svc), watch=True)
    try:
        skeleton.serve_metrics(s.conf.metrics, lambda: samples(svc, beat), routes(svc))
    except OSError as e:
        if ready:
            ready(f"metrics: {e.strerror or e}")
        server.stop()
        skeleton.close(clean=False)
        svc.shutdown()
        return 1
    try:
        svc.open()
    except Exception as e:
        code = EXIT_CONFIG if isinstance(e, ConfigError) else 1
        if code == EXIT_CONFIG:
            log.error("not started: %s", e)
        else:
            log.exception("not started: an unexpected error (a bug; please report it)")
        if ready:
            ready(str(e), code)
        server.stop()
        skeleton.close(clean=False)
        svc.shutdown(clean=False)
        return code
    if ready:
        ready(None)
    allocator.settled()
    clean = False
    try:
        svc.run()
        clean = True
    except Exception:
        log.exception("stopping after an unexpected error (a bug; please report it). The offsets stored are "
                      "those of the batches written before it: a restart goes on from there")
        return 1
    finally:
        server.stop()
        skeleton.close(clean)
    return 0


def heartbeat_figures(svc: Service):
    """What this process's fleet record (mulog/fleet.py) says, from the loop's snapshot."""

    def figures() -> dict:
        snap = svc.snapshot
        return {"partitions": len(snap.partitions), "lag": sum(snap.lags.values()),
                "failure_queue": snap.failure_queue, "last_checkpoint": snap.last_checkpoint,
                "stalled": bool(snap.stalled or snap.checkpoint_error), "events_per_s": round(snap.events_per_s, 1)}

    return figures
