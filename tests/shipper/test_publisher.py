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
