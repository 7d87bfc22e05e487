"""The broker: topics, watermarks, producing a file; a local one started when none is given."""

from __future__ import annotations

import itertools
import os
import time
import uuid
from pathlib import Path

from .common import REPO, BenchError, say


class Kafka:
    def __init__(self, bootstrap: str):
        from confluent_kafka import Consumer
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap, "logger": quiet_logger()})
        self.wm = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks",
                            "logger": quiet_logger()})
        self.topics: list[str] = []
        try:
            self.admin.list_topics(timeout=15)
        except Exception as e:
            self.wm.close()
            raise BenchError(f"cannot reach Kafka at {bootstrap}: {e}") from None

    def topic(self, prefix: str, partitions: int = 3) -> str:
        from confluent_kafka.admin import NewTopic

        name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
        fut = self.admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        try:
            fut[name].result(timeout=30)
        except Exception as e:
            raise BenchError(f"cannot create topic {name} at {self.bootstrap}: {e}") from None
        self.topics.append(name)
        deadline = time.monotonic() + 30
        while len(self.partitions(name)) < partitions:  # metadata visible to clients
            if time.monotonic() > deadline:
                raise BenchError(f"topic {name} did not appear in the metadata")
            time.sleep(0.1)
        self.highs(name)  # every partition has a leader that answers
        return name

    def partitions(self, topic: str) -> list[int]:
        md = self.wm.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return []
        return sorted(t.partitions)

    def highs(self, topic: str, timeout: float = 30) -> dict[int, int]:
        """High watermark per partition (retried while leaders move, e.g. right after creation)."""
        from confluent_kafka import KafkaException, TopicPartition

        deadline = time.monotonic() + timeout
        while True:
            try:
                return {p: self.wm.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                        for p in self.partitions(topic)}
            except KafkaException as e:
                if time.monotonic() > deadline:
                    raise BenchError(f"cannot read the watermarks of {topic}: {e}") from None
                time.sleep(0.2)

    def total(self, topic: str) -> int:
        return sum(self.highs(topic).values())

    def committed(self, topic: str, timeout: float = 120) -> int:
        """Messages a read_committed reader sees in ``topic`` (transactions' markers and
        aborted messages aside)."""
        from confluent_kafka import Consumer, TopicPartition

        highs = self.highs(topic)
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"bench-count-{uuid.uuid4().hex[:8]}",
                      "isolation.level": "read_committed", "enable.auto.commit": False, "logger": quiet_logger()})
        try:
            parts = [TopicPartition(topic, p, 0) for p, hi in highs.items() if hi > 0]
            c.assign(parts)
            n = 0
            deadline = time.monotonic() + timeout
            while parts and time.monotonic() < deadline:
                ms = c.consume(10_000, 0.5)
                n += sum(1 for m in ms if m.error() is None)
                if not ms and all(tp.offset >= highs[tp.partition] - 1 for tp in c.position(parts)):
                    break
            return n
        finally:
            c.close()

    def produce_file(self, topic: str, path: Path, count: int) -> None:
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.bootstrap, "logger": quiet_logger(),
                      "linger.ms": 20, "compression.type": "snappy",
                      "enable.idempotence": True, "queue.buffering.max.messages": 500_000,
                      "batch.num.messages": 10_000})
        errors = []

        def dr(err, msg):
            if err is not None:
                errors.append(err)

        with open(path, "rb") as f:
            for line in itertools.islice(f, count):
                while True:
                    try:
                        p.produce(topic, line.rstrip(b"\n"), on_delivery=dr)
                        break
                    except BufferError:
                        p.poll(0.05)
                p.poll(0)
        if p.flush(300) or errors:
            raise BenchError(f"producing the events to {topic} failed: {errors[:1] or 'flush timed out'}")

    def cleanup(self) -> None:
        if self.topics:
            for f in self.admin.delete_topics(self.topics).values():
                try:
                    f.result(timeout=30)
                except Exception:
                    pass
            self.topics = []
        self.wm.close()


def quiet_logger():
    """librdkafka's own log lines (connection retries and such) stay out of the report."""
    import logging

    lg = logging.getLogger("bench.kafka")
    if not lg.handlers:
        lg.addHandler(logging.NullHandler())
        lg.propagate = False
    return lg


def start_broker() -> tuple[str, object]:
    """(bootstrap, cluster we started or None)."""
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        say(f"using the broker at {env} (KAFKA_BOOTSTRAP_SERVERS)")
        return env, None
    import kafkalocal

    cl = kafkalocal.Cluster(REPO / ".kafka-local" / "bench")
    was_running = cl.running() is not None
    try:
        st = cl.start(brokers=1)
    except kafkalocal.KafkaLocalError as e:
        raise BenchError(f"cannot start the local Kafka broker: {e}") from None
    return st.bootstrap, (None if was_running else cl)
