"""The real broker started by kafkalocal: produce 10,000
snappy-compressed messages, consume them back, check every payload and the
watermarks; and check what an independent client (kcat) sees."""

import shutil
import subprocess

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from support.cli import REPO

pytestmark = pytest.mark.kafka

N = 10_000


def test_produce_consume_10000_snappy(kafka, topic_factory):
    topic = topic_factory(partitions=3)
    p = Producer({"bootstrap.servers": kafka, "compression.type": "snappy", "enable.idempotence": True,
                  "acks": "all", "linger.ms": 20})
    sent = {}
    errors = []

    def dr(err, msg):
        if err is not None:
            errors.append(err)

    for i in range(N):
        payload = b'{"n": %d, "log": "line %d with some padding to compress"}' % (i, i)
        sent[i] = payload
        p.produce(topic, payload, key=str(i % 17).encode(), on_delivery=dr)
        p.poll(0)
    assert p.flush(60) == 0
    assert not errors

    c = Consumer({"bootstrap.servers": kafka, "group.id": f"smoke-{topic}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, i, 0) for i in range(3)])
    got = {}
    per_partition = {0: 0, 1: 0, 2: 0}
    while len(got) < N:
        msgs = c.consume(num_messages=2000, timeout=10)
        assert msgs, f"consumer stalled at {len(got)}"
        for m in msgs:
            assert m.error() is None
            n = int(m.value().split(b",")[0].split(b":")[1])
            assert n not in got
            got[n] = m.value()
            per_partition[m.partition()] += 1
    assert got == sent
    for part, count in per_partition.items():
        low, high = c.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
        assert (low, high) == (0, count)
    c.close()


def test_kcat_sees_what_we_produced(kafka, topic_factory):
    assert shutil.which("kcat"), "kcat is not installed (scripts/ensure-tools installs it)"
    topic = topic_factory(partitions=1)
    p = Producer({"bootstrap.servers": kafka, "compression.type": "snappy"})
    for i in range(100):
        p.produce(topic, b"msg-%d" % i)
    assert p.flush(30) == 0
    out = subprocess.run(["kcat", "-b", kafka, "-C", "-t", topic, "-e", "-q", "-o", "beginning"],
                         capture_output=True, timeout=60, check=True).stdout
    assert out.splitlines() == [b"msg-%d" % i for i in range(100)]


def test_start_twice_reuses_the_running_broker(kafka_cluster, kafka):
    if kafka_cluster is None:
        pytest.skip("suite uses an external broker")
    st = kafka_cluster.start(brokers=1)
    assert st.bootstrap == kafka
    assert (kafka_cluster.home / "bootstrap").read_text().strip() == kafka


def test_cli_status_reports_where(kafka_cluster, kafka):
    if kafka_cluster is None:
        pytest.skip("suite uses an external broker")
    r = subprocess.run([str(REPO / "scripts" / "kafka-local"), "--home", str(kafka_cluster.home), "status"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert kafka in r.stdout and "running" in r.stdout


def test_a_cluster_id_that_begins_with_a_dash_formats(tmp_path, monkeypatch):
    """Kafka's cluster ids are base64url and one in 64 begins with "-"; the storage
    tool must not take it for an option."""
    import base64
    import uuid

    import kafkalocal

    real = uuid.uuid4

    def dashed():
        while True:
            u = real()
            if base64.urlsafe_b64encode(u.bytes).startswith(b"-"):
                return u

    monkeypatch.setattr(uuid, "uuid4", dashed)
    cl = kafkalocal.Cluster(tmp_path / "kl")
    try:
        st = cl.start(brokers=1)
        assert st.cluster_id.startswith("-")
        p = Producer({"bootstrap.servers": st.bootstrap})
        p.produce("dash", b"x")
        assert p.flush(30) == 0
    finally:
        cl.stop()
