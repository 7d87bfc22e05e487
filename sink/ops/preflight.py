"""What ``mtga check-config`` and ``mtga start`` check before Kafka is
touched, the apps' settings files included (mulog/preflight.py says how
findings are reported)."""

from __future__ import annotations

from mulog import preflight
from mulog.preflight import Report

from sink.config import MtgaConfig
from sink.ta.settings import check_folder


def check(s: MtgaConfig) -> Report:
    r = Report()
    f = s.file
    k = s.conf.kafka
    preflight.bootstrap(r, s.bootstrap_servers, f, "kafka.bootstrap_servers")
    conf = dict(s.consumer, **{"group.id": k.group_id, "auto.offset.reset": k.auto_offset_reset})
    preflight.client(r, "consumer", k.connection, conf, k.consumer, f, "kafka.consumer")
    apps, problems = check_folder(s.settings_dir)
    for e in problems:
        r.add(e)
    if not apps and not problems:
        r.warn(f, "settings_dir", f"{s.settings_dir} holds no metadata.<app id>.json: every event will go to "
                                  f"the failure queue (no_settings)")
    o = s.conf.output.kafka
    if o.topic is not None:
        conf = dict(o.producer, **{"transactional.id": "mtga-check", "enable.idempotence": True, "acks": "all"})
        preflight.client(r, "producer", k.connection, conf, o.producer, f, "output.kafka.producer")
    else:
        preflight.writable_folder(r, s.output_dir, f, "output.dir")
    preflight.writable_folder(r, s.state_dir, f, "state_dir")
    return r
