"""mtga's Prometheus metrics, from the snapshot the loop publishes (and every
counter of its instruments); ``/health`` and ``/ready`` from the same snapshot."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mulog.runtime.health import Check, loop_check

if TYPE_CHECKING:
    from mulog.fleet import Heartbeat

    from sink.pipeline.service import Service
    from sink.pipeline.snapshot import MtgaSnapshot


def samples(svc: "Service", beat: "Heartbeat | None" = None):
    snap = svc.snapshot
    yield from svc.inst.samples()
    yield ("mtga_events_fixed", "counter", "Events fixed as their app's settings say instead of refused, by rule",
           ("rule",), [((code,), n) for code, n in sorted(snap.fixed.items())])
    yield ("mtga_failure_queue_size", "gauge", "Events waiting in the failure queue", (), [((), snap.failure_queue)])
    yield ("mtga_events_failed_by_reason", "counter", "Events sent to the failure queue, by reason code", ("reason",),
           [((code,), n) for code, n in sorted(snap.failed_by.items())])
    yield ("mtga_partition_lag", "gauge", "Messages behind the partition's end", ("topic", "partition"),
           [((t, str(p)), v) for (t, p), v in sorted(snap.lags.items())])
    rows = [(app, cap, n, limit) for app, caps in sorted(snap.schema.items()) for cap, (n, limit) in caps.items()]
    yield ("mtga_schema_names", "gauge", "Names an app holds against ThinkingData's project caps: events, "
           "event_properties, user_properties", ("app", "cap"), [((a, c), n) for a, c, n, _ in rows])
    yield ("mtga_schema_cap", "gauge", "The app's cap of each kind of name (metadata caps)", ("app", "cap"),
           [((a, c), limit) for a, c, _, limit in rows])
    now = time.time()
    age = now - (snap.last_checkpoint or snap.started)
    yield ("mtga_checkpoint_age_seconds", "gauge", "Seconds since offsets were last stored", (), [((), age)])
    yield ("mtga_sink_bytes", "counter", "Bytes written to LogBus files", (), [((), snap.sink_bytes)])
    yield ("mtga_sink_errors", "counter", "Failed writes to LogBus files", (), [((), snap.sink_errors)])
    yield ("mtga_stalled", "gauge", "1 while batches cannot be stored anywhere durable", (),
           [((), 1 if snap.stalled or snap.checkpoint_error else 0)])
    yield ("mtga_transform_workers", "gauge", "Transform processes working (1: the main loop alone)", (),
           [((), snap.workers)])
    yield ("mtga_transform_worker_restarts", "counter", "Transform worker processes started again after dying",
           (), [((), snap.worker_restarts)])
    if beat is not None:
        yield ("mtga_fleet_silent_hosts", "gauge", "Processes of the fleet (shipper and mtga) whose last heartbeat "
               "is older than 3 of their intervals, without a stop record", (), [((), beat.silent)])
    yield ("mtga_snapshot_age_seconds", "gauge", "Seconds since the loop last published these figures (grows "
           "while the loop is stuck)", (), [((), max(0.0, now - snap.taken))])


def health(snap: "MtgaSnapshot") -> list[Check]:
    """``/health``: the loop publishes its snapshot every SNAPSHOT_S."""
    return [loop_check(snap.taken)]


def ready(snap: "MtgaSnapshot", bootstrap: str) -> list[Check]:
    """``/ready``: the loop ticks, the state store is written, a broker answers, partitions
    are assigned, and batches are stored (not stalled)."""
    if snap.kafka_denied:
        kafka = (False, snap.kafka_denied)
    elif not snap.kafka_contacted:
        kafka = (False, f"the group at {bootstrap} has not answered yet")
    elif snap.kafka_down_since is not None:
        kafka = (False, f"unreachable ({bootstrap}) for {time.time() - snap.kafka_down_since:.0f}s")
    else:
        kafka = (True, f"reachable ({bootstrap})")
    parts = snap.partitions
    stall = snap.stalled
    return [
        loop_check(snap.taken),
        ("state", snap.checkpoint_error is None, snap.checkpoint_error or "offsets stored"),
        ("kafka", *kafka),
        ("partitions", bool(parts), f"{len(parts)} assigned: " + ", ".join(f"{t}[{p}]" for t, p in parts[:8])
         + (", ..." if len(parts) > 8 else "") if parts else "none assigned"),
        ("stalled", stall is None, stall or "batches are stored"),
        ("running", not snap.stopping, "stopping" if snap.stopping else "running"),
    ]


def routes(svc: "Service") -> dict:
    """``/health`` and ``/ready``, from ``svc.snapshot``."""
    bootstrap = svc.s.bootstrap_servers
    return {"/health": lambda: health(svc.snapshot), "/ready": lambda: ready(svc.snapshot, bootstrap)}
