"""mtga paths the other tests do not take. Real broker, real ``mtga``
processes, real signals; delivery counted line by line by #uuid."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from mtga_helpers import (MTGA, Mtga, produce, stored_offsets, uuid_counts, uuid_of, wait_for, write_conf,
                          write_settings)
from mulog import sample

pytestmark = pytest.mark.kafka

APPS = (24, 25, 26)


def mtga(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([MTGA, *args], capture_output=True, text=True, timeout=timeout)


def cli_json(conf: Path, *args: str):
    """``mtga ARGS -c CONF --json`` -> (parsed stdout, stderr); a failed command fails the test."""
    r = mtga(*args, "-c", str(conf), "--json")
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return json.loads(r.stdout), r.stderr


def produce_rr(bootstrap: str, topic: str, payloads: list, partitions: int) -> list:
    """Produce round robin over ``partitions`` (each gets its share) and wait;
    returns (partition, offset) of each payload in order."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    out: list = [None] * len(payloads)

    def dr(i):
        def cb(err, msg):
            assert err is None, err
            out[i] = (msg.partition(), msg.offset())
        return cb

    for i, pl in enumerate(payloads):
        p.produce(topic, pl, partition=i % partitions, on_delivery=dr(i))
        p.poll(0)
    assert p.flush(60) == 0 and None not in out
    return out


def ends_of(topic: str, where) -> dict:
    """{(topic, partition): end offset} of the produced (partition, offset) pairs."""
    ends: dict = {}
    for p, o in where:
        ends[(topic, p)] = max(ends.get((topic, p), 0), o + 1)
    return ends


@pytest.fixture
def named_topics(kafka):
    """``make({name: partitions})`` creates topics with exactly these names; deleted at the end."""
    admin = AdminClient({"bootstrap.servers": kafka})
    made: list = []

    def make(spec: dict) -> None:
        futs = admin.create_topics([NewTopic(n, num_partitions=k, replication_factor=1) for n, k in spec.items()])
        for n, f in futs.items():
            f.result(timeout=30)
            made.append(n)

    yield make
    if made:
        for f in admin.delete_topics(made).values():
            try:
                f.result(timeout=30)
            except Exception:
                pass


# ----------------------------------------------------------------------------- kafka.topic_pattern


def test_topic_pattern_consumes_the_matching_topics_only_and_the_queries_list_only_them(kafka, named_topics,
                                                                                          tmp_path):
    """The subscription to ``mp_<r>_[0-9]+`` is anchored at the start: it takes
    mp_<r>_1 and mp_<r>_2 but not zz_mp_<r>_1 (which the pattern matches only
    unanchored). Every event of the two is written once, none of the third;
    offset-checker and kafka-lag list exactly the two topics' partitions, from
    the running daemon (over its socket) and from the store after it stopped."""
    r = uuid.uuid4().hex[:8]
    t1, t2, other = f"mp_{r}_1", f"mp_{r}_2", f"zz_mp_{r}_1"
    named_topics({t1: 2, t2: 3, other: 2})
    pattern = rf"mp_{r}_[0-9]+"
    assert re.search(pattern, other) and not re.match(pattern, other)
    where = {t: produce_rr(kafka, t, list(sample.envelopes(n, app_ids=APPS, seed=s)), k)
             for t, n, s, k in ((t1, 600, 1, 2), (t2, 900, 2, 3), (other, 500, 3, 2))}
    want = {uuid_of(t, p, o) for t in (t1, t2) for p, o in where[t]}
    foreign = {uuid_of(other, p, o) for p, o in where[other]}
    parts = sorted([(t1, p) for p in range(2)] + [(t2, p) for p in range(3)])
    ends = {**ends_of(t1, where[t1]), **ends_of(t2, where[t2])}
    assert sorted(ends) == parts

    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, t1, f"g-{r}", checkpoint={"interval_s": 1},
                      kafka={"topics": [], "topic_pattern": pattern})
    m = Mtga(conf).start()
    try:
        wait_for(lambda: set(uuid_counts(tmp_path / "out", running=True)) >= want, 60,
                 "every event of the two matching topics written")
        wait_for(lambda: stored_offsets(tmp_path / "state") == ends, 30, "the end of every partition stored")
        # answered by the daemon over its socket (no "not running" note)
        rows, err = cli_json(conf, "offset-checker")
        assert "not running" not in err, err
        assert sorted((x["topic"], x["partition"]) for x in rows) == parts, rows
        assert all(x["current"] == x["high"] == ends[(x["topic"], x["partition"])] and x["lag"] == 0
                   for x in rows), rows
        lag, err = cli_json(conf, "kafka-lag")
        assert lag == {"lag": 0} and "not running" not in err, (lag, err)
        st, _ = cli_json(conf, "status")
        assert st["partitions"] == [f"{t}[{p}]" for t, p in parts]
    finally:
        assert m.term() == 0, m.output()

    counts = uuid_counts(tmp_path / "out")
    assert set(counts) == want and max(counts.values()) == 1, "lost, repeated or foreign events"
    assert not foreign & set(counts)
    log = (tmp_path / "mtga.log").read_text()
    assert f"consuming ^{pattern} as group g-{r}" in log
    assert sorted(set(re.findall(r"assigned (\S+)\[(\d+)\]", log))) == [(t, str(p)) for t, p in parts]
    assert other not in log

    # stopped: the same questions answered from the store (and Kafka), with a backlog of 7 on t1
    produce(kafka, t1, list(sample.envelopes(7, app_ids=APPS, seed=4)))
    rows, err = cli_json(conf, "offset-checker")
    assert "mtga is not running" in err, err
    assert sorted((x["topic"], x["partition"]) for x in rows) == parts, rows
    assert all(x["current"] == ends[(x["topic"], x["partition"])] and x["source"] == "local" for x in rows), rows
    assert sum(x["high"] - x["current"] for x in rows) == 7
    lag, err = cli_json(conf, "kafka-lag")
    assert lag == {"lag": 7} and "mtga is not running" in err, (lag, err)


