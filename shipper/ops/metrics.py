"""Prometheus metrics of ``shipper tail`` (``metrics.enabled``; default port 9465,
mulog/runtime/skeleton.py).

Read at scrape time, in the HTTP server's thread, from the snapshot the loop
publishes every few hundred milliseconds (shipper/stats.py): every counter of the
program, and gauges of the producer's queue, Kafka, and each followed file. The
scrape never touches live tailers or descriptors, and the read/send path does no
extra work for it.
"""

from __future__ import annotations

import time
from typing import Callable

from mulog.runtime.health import Check, loop_check
from mulog.runtime.instrument import Instruments

from shipper.stats import ShipperSnapshot


def samples(snap: ShipperSnapshot, inst: Instruments):
    files = snap.files
    yield from inst.samples_from(snap.counters)
    yield ("shipper_files_open", "gauge", "Files open for reading", (), [((), snap.files_open)])
    yield ("shipper_files_tracked", "gauge", "Files followed (open, idle or draining)", (), [((), len(files))])
    yield ("shipper_producer_queue_lines", "gauge", "Lines handed to the producer and not yet acknowledged", (),
           [((), snap.queue_lines)])
    yield ("shipper_producer_queue_bytes", "gauge", "Bytes (with per-line overhead) waiting for Kafka", (),
           [((), snap.queue_bytes)])
    yield ("shipper_kafka_up", "gauge", "0 while Kafka is unreachable, else 1", (), [((), 1 if snap.kafka_up else 0)])
    yield ("shipper_bytes_behind", "gauge", "Bytes of all followed files not yet acknowledged by Kafka", (),
           [((), snap.bytes_behind)])
    labels = ("path", "file")  # the identity too: a draining rotated file may still carry the path
    yield ("shipper_file_bytes_behind", "gauge", "File size minus the delivered offset", labels,
           [((f.path, f.identity), f.behind) for f in files])
    yield ("shipper_file_delivered_offset", "gauge", "Byte offset up to which Kafka acknowledged every line",
           labels, [((f.path, f.identity), f.delivered) for f in files])
    yield ("shipper_file_size_bytes", "gauge", "File size when the figures were taken", labels,
           [((f.path, f.identity), f.size) for f in files])
    yield ("shipper_snapshot_age_seconds", "gauge", "Seconds since the loop last published these figures (grows "
           "while the loop is stuck)", (), [((), max(0.0, time.time() - snap.taken))])


def health(snap: ShipperSnapshot) -> list[Check]:
    """``/health``: the loop publishes its snapshot every few hundred ms."""
    return [loop_check(snap.taken)]


def ready(snap: ShipperSnapshot, bootstrap: str) -> list[Check]:
    """``/ready``: the loop ticks, positions are saved, a broker answered and Kafka is not down."""
    if snap.kafka_denied:
        kafka = (False, snap.kafka_denied)
    elif not snap.kafka_contacted:
        kafka = (False, f"no broker at {bootstrap} has answered yet")
    elif not snap.kafka_up:
        kafka = (False, f"unreachable ({bootstrap}); {snap.queue_lines} lines waiting")
    else:
        kafka = (True, f"reachable ({bootstrap}); {snap.queue_lines} lines waiting")
    return [
        loop_check(snap.taken),
        ("state", snap.save_errors == 0, "positions saved" if snap.save_errors == 0
         else f"the last {snap.save_errors} position save(s) failed"),
        ("kafka", *kafka),
        ("running", not snap.stopping, "stopping" if snap.stopping else "running"),
    ]


def routes(snapshot: Callable[[], ShipperSnapshot], bootstrap: str = "") -> dict:
    """``/health`` and ``/ready``, from the loop's last snapshot."""
    return {"/health": lambda: health(snapshot()), "/ready": lambda: ready(snapshot(), bootstrap)}
