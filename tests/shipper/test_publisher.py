"""The publisher (shipper/delivery/publisher.py) against the real broker: delivery
reports sorted back to their files."""

import pytest

from support.tailers import tailer_on

pytestmark = pytest.mark.kafka


def test_the_publisher_sorts_delivery_reports(kafka, tmp_path):
    """Real KafkaError values through the publisher's report handler: an
    acknowledgement moves the position, a purge holds it quietly, a refusal holds
    it and asks for a resend (logged and counted once per file)."""
    from confluent_kafka import KafkaError

    from mulog.connection import Connection
    from shipper.delivery.publisher import Publisher

    t = tailer_on(tmp_path, b"a\nb\nc\n")
    pub = Publisher(Connection(kafka), {}, t.counters, lambda: False, lambda msg: None)
    try:
        chunks = [t.acks.chunk(end, 1, 2, pub.report) for end in (2, 4, 6)]
        pub.inflight_msgs, pub.inflight_bytes = 3, 6
        chunks[0](None, None)
        chunks[1](KafkaError(KafkaError._UNKNOWN_PARTITION), None)
        chunks[2](KafkaError(KafkaError._PURGE_QUEUE), None)
        assert t.delivered == 2 and t.acks.refused == KafkaError(KafkaError._UNKNOWN_PARTITION).str()
        assert (pub.inflight_msgs, pub.inflight_bytes) == (0, 0)
        v = t.counters.values()
        assert (v["lines_acked"], v["chunk_errors"]) == (1, 1)
    finally:
        pub.close()
        t.close()


@pytest.mark.parametrize("form", ["key", "headers"])
def test_a_chunk_cut_by_a_producer_replaced_while_it_waited_for_room_is_sent_again_whole(
        kafka, topic_factory, tmp_path, form):
    """A chunk's lines meet a full producer queue; while they wait, the producer is
    replaced (Kafka turned the old one away as a whole). The rest of the chunk must
    not go to the old producer (its report would never be served, and the file would
    stall) nor to the new one (the report would cover the first lines the old one
    purged): the chunk is refused, and read again and sent whole by the new one."""
    import time

    from mulog.connection import Connection
    from shipper.delivery.publisher import Publisher

    t = tailer_on(tmp_path, b"".join(b"line %d\n" % i for i in range(50)))
    t.topic = topic_factory(partitions=1)
    pub = Publisher(Connection(kafka), {"queue.buffering.max.messages": 10}, t.counters, lambda: False,
                    lambda msg: None, wire_format=form)
    try:
        old = pub.producer
        frame = t.read(time.monotonic())
        assert len(frame.lines) == 50
        pub.replace_at = time.monotonic()  # the next poll, in the wait for room, replaces the producer
        pub.send(t, frame)
        assert pub.producer is not old
        assert t.acks.refused is not None and "replaced" in t.acks.refused, t.acks.refused
        assert (pub.inflight_msgs, pub.inflight_bytes, t.delivered) == (0, 0, 0)
        assert len(pub.producer) == 0  # nothing of the cut chunk went to the new producer
        assert t.counters.values()["lines_sent"] == 0
    finally:
        pub.close()
        t.close()
