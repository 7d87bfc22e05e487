"""What ``shipper check-config`` and ``shipper tail`` check before Kafka is
touched (mulog/preflight.py says how findings are reported)."""

from __future__ import annotations

from mulog import preflight
from mulog.preflight import Report

from shipper.config import ShipperConfig


def check(s: ShipperConfig) -> Report:
    r = Report()
    f = s.file
    preflight.bootstrap(r, s.bootstrap_servers, f, "kafka.bootstrap_servers")
    preflight.client(r, "producer", s.conf.kafka.connection, s.producer, s.conf.kafka.producer, f, "kafka.producer")
    for i, inp in enumerate(s.inputs):
        preflight.globs(r, inp.paths, f, f"inputs[{i}].paths")
    preflight.writable_folder(r, s.state_dir, f, "state_dir")
    return r
