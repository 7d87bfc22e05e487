"""Both wire forms of a shipper line in one topic (docs/wire-format.md): the
headers form of shippers not upgraded yet and the key form, interleaved line by
line within a file as a host's shipper is upgraded in mid-file (and a line sent
again in the other form after a restart). librdkafka's consistent_random
partitioner and mulog/wire.py's partition agree, so each file stays in one
partition; mtga, SIGKILLed twice, writes every line once."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from confluent_kafka import Producer

from mulog import sample, wire
from sink.ta.uuids import source_key, uuid_of
from support.mtga import Mtga, output_lines, wait_for, write_conf, write_settings

pytestmark = pytest.mark.kafka

HOSTS = ("game-01", "game-02")


def test_the_partition_of_a_file_is_the_same_in_both_forms(kafka, topic_factory):
    """200 file identities keyed alone (librdkafka's consistent_random places
    them) land where wire.partition puts the key form's lines."""
    topic = topic_factory(partitions=7)
    p = Producer({"bootstrap.servers": kafka, "partitioner": "consistent_random"})
    got = {}

    def dr(err, msg):
        assert err is None, err
        got[msg.key()] = msg.partition()

    idents = [f"fd01:{i:x}:{i * 7919:08x}:0".encode() for i in range(200)]
    for ident in idents:
        p.produce(topic, b"{}", ident, on_delivery=dr)
    assert p.flush(30) == 0
    assert {k: wire.partition(k, 7) for k in idents} == got
    assert len(set(got.values())) == 7


def test_a_topic_of_both_forms_interleaved_every_line_once_across_sigkills(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=3)
    write_settings(tmp_path / "settings", (24,))
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", checkpoint={"interval_s": 1}, workers=2)
    files = [(h, f"fd01:{i}:{h[-1]}{i:07x}:0", f"/var/log/game/log_{i}.log") for h in HOSTS for i in range(3)]
    rnd = random.Random(27)
    lines = list(sample.bare_lines(6000, seed=27))
    p = Producer({"bootstrap.servers": kafka, "partitioner": "consistent_random", "linger.ms": 20,
                  "enable.idempotence": True})
    want: set = set()
    forms: Counter = Counter()
    pos = {f: 0 for f in files}

    def send(n: int) -> None:
        for _ in range(n):
            f = files[rnd.randrange(len(files))]
            host, ident, path = f
            line = lines[len(want) % len(lines)]
            off = pos[f]
            pos[f] += len(line) + 1
            want.add(uuid_of(source_key((host.encode(), ident.encode())), off).decode())
            for again in range(2 if rnd.random() < 0.05 else 1):  # sent again after a restart, maybe upgraded
                if rnd.random() < 0.5:
                    key = wire.prefix(host, ident, 24, "log_item", path) + b"%d" % off
                    p.produce(topic, line, key, wire.partition(ident.encode(), 3))
                    forms["key"] += 1
                else:
                    hdrs = {"host": host, "path": path, "file": ident, "offset": str(off), "app_id": "24",
                            "log_name": "log_item"}
                    p.produce(topic, line, ident.encode(), headers=hdrs)
                    forms["headers"] += 1
        assert p.flush(30) == 0

    out = tmp_path / "out"
    m = Mtga(conf).start()
    try:
        for k in range(3):
            send(2000)
            if k < 2:
                wait_for(lambda: len(output_lines(out, running=True)) > 1000 * (k + 1), 60, "lines written")
                m.kill()
                m = Mtga(conf).start()
        wait_for(lambda: len(output_lines(out, running=True)) >= len(want), 120, "every line written", every=0.5)
        assert m.term() == 0, m.output()
    finally:
        if m.alive():
            m.kill()
    got = Counter(json.loads(x)["#uuid"] for x in output_lines(out))
    twice = {u: n for u, n in got.items() if n > 1}
    print(f"\nboth forms interleaved: {forms['key']} key-form and {forms['headers']} headers-form messages for "
          f"{len(want)} lines; {len(set(got))} written, {len(want - set(got))} lost, {len(twice)} twice")
    assert forms["key"] > 2000 and forms["headers"] > 2000 and sum(forms.values()) > len(want)
    assert set(got) == want and not twice
