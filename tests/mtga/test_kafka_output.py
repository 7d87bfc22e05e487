"""The Kafka output (``output.kafka.topic``): ThinkingData lines into topics in
transactions that also commit the consumer offsets, read back as LogBus2's
Kafka source reads them (``isolation.level=read_committed``), counted line by
line."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from mulog import sample
from support.mtga import Mtga, produce, stored_offsets, uuid_of, wait_for, write_conf, write_settings

pytestmark = pytest.mark.kafka

APPS = (24, 25, 26)


def committed_lines(bootstrap: str, topics: list[str]) -> list:
    """Every message a read_committed reader sees in ``topics``: (topic, key, value)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.monotonic_ns()}",
                  "isolation.level": "read_committed", "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        md = c.list_topics(timeout=10).topics
        parts = [TopicPartition(t, p, 0) for t in topics if t in md for p in md[t].partitions]
        if not parts:
            return []
        ends = {}
        for tp in parts:
            _low, high = c.get_watermark_offsets(tp, timeout=10)
            ends[(tp.topic, tp.partition)] = high
        c.assign(parts)
        out = []
        pos = {k: 0 for k in ends}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # the last stable offset can stop short of the high watermark (control records, open transactions)
            ms = c.consume(1000, 0.5)
            for m in ms:
                if m.error() is None:
                    out.append((m.topic(), m.key(), m.value()))
                    pos[(m.topic(), m.partition())] = m.offset() + 1
            if not ms:
                lso = {k: c.position([TopicPartition(k[0], k[1])])[0].offset for k in ends}
                if all(lso[k] >= ends[k] - 1 or lso[k] >= ends[k] for k in ends):
                    break
        return out
    finally:
        c.close()


def out_topics(prefix: str) -> list[str]:
    return [f"{prefix}-{a}" for a in APPS]


def test_every_event_once_in_its_apps_topic_keyed_by_its_user(kafka, topic_factory, tmp_path):
    """3,000 envelopes of three apps, ``out-{app_id}``: each line once in its
    app's topic, keyed by its #account_id; no file written. The producer's queue
    holds 50 messages, so it is full again and again (BufferError): mtga waits
    for room. The group's committed offsets (committed in the transactions) and
    the local store's are both the ends."""
    topic = topic_factory(partitions=3)
    prefix = f"o{topic}"
    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", checkpoint={"interval_s": 1},
                      output={"dir": str(tmp_path / "out"), "kafka": {
                          "topic": prefix + "-{app_id}", "producer": {"queue.buffering.max.messages": 50}}})
    events = list(sample.envelopes(3000, app_ids=APPS))
    where = produce(kafka, topic, events)
    m = Mtga(conf).start()
    try:
        wait_for(lambda: len(committed_lines(kafka, out_topics(prefix))) >= 3000, 90, "3,000 lines in the topics",
                 every=1)
    finally:
        assert m.term() == 0, m.output()
    got = committed_lines(kafka, out_topics(prefix))
    app_of = {uuid_of(topic, p, o): json.loads(e)["headers"]["app_id"] for e, (p, o) in zip(events, where)}
    uuids = Counter(json.loads(v)["#uuid"] for _t, _k, v in got)
    assert set(uuids) == set(app_of) and max(uuids.values()) == 1 and len(got) == 3000
    for t, k, v in got:
        d = json.loads(v)
        assert (t, k.decode()) == (f"{prefix}-{app_of[d['#uuid']]}", d["#account_id"]), (t, k, d)
    assert not any((tmp_path / "out").rglob("log.*"))
    admin = AdminClient({"bootstrap.servers": kafka})  # kept until the answer: a dropped handle fails the future
    offs = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(f"g-{topic}")])[f"g-{topic}"].result(
        timeout=30)
    ends = {(topic, p): n for p, n in Counter(p for p, _o in where).items()}
    assert {(tp.topic, tp.partition): tp.offset for tp in offs.topic_partitions} == ends
    assert stored_offsets(tmp_path / "state") == ends


def test_two_hosts_killed_six_times_every_event_once(kafka, topic_factory, tmp_path):
    """30,000 events streamed at about 4,000/s through two mtga hosts of one
    group into one output topic; the hosts are SIGKILLed 6 times at random
    moments, each started again at once, one kill while the other host is
    taking over the partitions of the one killed before. A read_committed
    reader sees every event once, keyed by its user."""
    topic = topic_factory(partitions=6)
    out = f"o{topic}"
    group = f"g-{topic}"
    write_settings(tmp_path / "settings", (24,))
    confs = []
    for h in ("a", "b"):
        d = tmp_path / h
        d.mkdir()
        confs.append(write_conf(d, kafka, topic, group, settings_dir=str(tmp_path / "settings"), host=f"host-{h}",
                                checkpoint={"interval_s": 1}, output={"kafka": {"topic": out}},
                                kafka={"consumer": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}}))
    events = list(sample.envelopes(30_000, app_ids=(24,)))
    where: list = []
    done = threading.Event()

    def stream():
        for i in range(0, len(events), 400):  # about 4,000 events a second
            where.extend(produce(kafka, topic, events[i:i + 400]))
            time.sleep(0.1)
        done.set()

    rnd = random.Random(26)
    hosts = [Mtga(c).start() for c in confs]
    feeder = threading.Thread(target=stream, daemon=True)
    try:
        wait_for(lambda: all(h.answers() for h in hosts), 60, "both hosts up")
        feeder.start()
        for k in range(6):
            i = k % 2
            time.sleep(rnd.uniform(0.5, 1.5) if k != 3 else 0.2)  # the 4th: the other host is taking over
            hosts[i].kill()
            hosts[i] = Mtga(confs[i]).start()
        feeder.join(120)
        assert done.is_set(), "the events were not all produced"
        wait_for(lambda: len(committed_lines(kafka, [out])) >= len(events), 180, "every event in the output topic",
                 every=2)
        for h in hosts:
            assert h.term() == 0, h.output()
    finally:
        for h in hosts:
            if h.alive():
                h.kill()
    got = committed_lines(kafka, [out])
    uuids = Counter(json.loads(v)["#uuid"] for _t, _k, v in got)
    want = {uuid_of(topic, p, o) for p, o in where}
    lost, twice = want - set(uuids), {u: n for u, n in uuids.items() if n > 1}
    print(f"\ntwo hosts, 6 SIGKILLs: {len(want)} events, {len(got)} lines read committed, {len(lost)} lost, "
          f"{len(twice)} twice")
    assert not lost and not twice and set(uuids) == want
    assert all(k.decode() == json.loads(v)["#account_id"] for _t, k, v in got)


def test_a_frozen_host_loses_its_partitions_and_nothing_is_doubled(kafka, topic_factory, tmp_path):
    """Host a is SIGSTOPped in mid-stream until host b has its partitions, then
    SIGCONTinued: it finds them lost and goes on with what the group gives it; a
    read_committed reader sees every event once (what a zombie offers is fenced:
    test_a_transaction_with_a_stale_group_generation_is_fenced)."""
    from support.hosts import Host

    topic = topic_factory(partitions=6)
    out = f"o{topic}"
    group = f"g-{topic}"
    over = {"output": {"kafka": {"topic": out}}, "checkpoint": {"interval_s": 1}}
    a = Host(tmp_path / "host-a", kafka, topic, group, **over)
    b = Host(tmp_path / "host-b", kafka, topic, group, **over)
    events = list(sample.envelopes(24_000, app_ids=(24,)))
    where: list = []
    stop_feeding = threading.Event()

    def stream():
        for i in range(0, len(events), 300):
            where.extend(produce(kafka, topic, events[i:i + 300]))
            time.sleep(0.1)
        stop_feeding.set()

    feeder = threading.Thread(target=stream, daemon=True)
    try:
        a.start()
        b.start()
        wait_for(lambda: (a.partitions() or set()) and (b.partitions() or set()), 60, "both hosts with partitions",
                 every=0.5)
        feeder.start()
        wait_for(lambda: len(where) > 3000, 60, "events streaming")
        a.m.proc.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: b.partitions() == set(range(6)), 60, "host b to take the frozen host's partitions",
                     every=0.5)
        finally:
            a.m.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: "without revocation" in a.log(), 60, "host a to find its partitions lost")
        feeder.join(120)
        assert stop_feeding.is_set()
        wait_for(lambda: len(committed_lines(kafka, [out])) >= len(events), 180, "every event in the output topic",
                 every=2)
        assert a.term() == 0, a.m.output()
        assert b.term() == 0, b.m.output()
    finally:
        a.stop_if_alive()
        b.stop_if_alive()
    got = committed_lines(kafka, [out])
    uuids = Counter(json.loads(v)["#uuid"] for _t, _k, v in got)
    want = {uuid_of(topic, p, o) for p, o in where}
    print(f"\nfrozen host: {len(want)} events, {len(got)} lines read committed")
    assert set(uuids) == want and max(uuids.values()) == 1


def test_a_transaction_with_a_stale_group_generation_is_fenced(kafka, topic_factory):
    """The zombie case at its root: a consumer that left the group (its
    partitions moved on) offers a transaction with the group metadata it had:
    the broker refuses its offsets, the writer aborts, and a read_committed
    reader sees none of its lines; the same writer goes on once it has the
    current metadata."""
    from mulog.connection import Connection
    from sink.pipeline.topic_writer import TopicWriter
    from sink.pipeline.writer import SinkError

    src, out = topic_factory(partitions=2), topic_factory(partitions=1)
    group = f"g-{src}"
    produce(kafka, src, [b"x"] * 4)

    def member():
        c = Consumer({"bootstrap.servers": kafka, "group.id": group, "enable.auto.commit": False,
                      "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
        c.subscribe([src])
        wait_for(lambda: c.poll(0.2) is not None or c.assignment(), 30, "an assignment")
        return c

    old = member()
    stale = old.consumer_group_metadata()
    w = TopicWriter(Connection(kafka), out, {}, f"tx-{src}", timeout_s=10)
    w.begin()
    w.write("24", [b'{"#type":"track","#account_id":"a1","n":1}'])
    w.commit({(src, 0): 1}, stale)  # a member of the current generation: committed
    old.close()  # it leaves; the group goes on without it
    new = member()
    w.begin()
    w.write("24", [b'{"#type":"track","#account_id":"a1","zombie":1}'])
    with pytest.raises(SinkError):
        w.commit({(src, 0): 2}, stale)
    w.abort()
    w.begin()
    w.write("24", [b'{"#type":"track","#account_id":"a1","n":2}'])
    w.commit({(src, 0): 2}, new.consumer_group_metadata())
    new.close()
    w.close()
    seen = [v for _t, _k, v in committed_lines(kafka, [out])]
    assert seen == [b'{"#type":"track","#account_id":"a1","n":1}', b'{"#type":"track","#account_id":"a1","n":2}']


def test_a_retry_killed_between_its_commit_and_its_removal_is_not_written_again(kafka, topic_factory, tmp_path):
    """App 27 has no settings: its events wait in the failure queue. With its
    settings back, a retry round commits them to the output topic and is
    SIGKILLed before it removes them; the next start reads the output back,
    finds them written, and removes them instead of writing them again."""
    from support.mtga import failure_count, retry_killed_before_removal

    topic = topic_factory(partitions=2)
    out = f"o{topic}"
    write_settings(tmp_path / "settings", (24,))
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", checkpoint={"interval_s": 1}, workers=1,
                      retry={"initial_backoff_s": 3600, "max_backoff_s": 3600}, output={"kafka": {"topic": out}})
    where = retry_killed_before_removal(kafka, topic, tmp_path, conf)
    assert len(committed_lines(kafka, [out])) == 300  # committed: 150 + 150 by the retry
    m = Mtga(conf, "--bootstrap-servers", kafka).start()
    try:
        wait_for(lambda: failure_count(tmp_path / "state") == 0, 60, "the written entries removed")
        assert "150 of its 150 entries were written to the output (read back) and are removed" in \
            (tmp_path / "mtga.log").read_text()
    finally:
        assert m.term() == 0
    uuids = [json.loads(v)["#uuid"] for _t, _k, v in committed_lines(kafka, [out])]
    assert sorted(uuids) == sorted(uuid_of(topic, p, o) for p, o in where)


@pytest.mark.slow
def test_the_output_topic_deleted_and_the_broker_down_nothing_lost_or_doubled(tmp_path):
    """A private one-broker cluster. The output topic is deleted while mtga runs
    (the broker creates it again on the next write): the events consumed after
    are all in the new topic, once. Then the broker is SIGKILLed in mid-stream,
    down 10 s, and started again: every event once, read committed."""
    import kafkalocal

    cl = kafkalocal.Cluster(tmp_path / "k")
    bootstrap = cl.start(brokers=1).bootstrap
    m = None
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topic, out = "mulog_clean_24", "ta_lines"
        for t in (topic, out):
            admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=1)])[t].result(timeout=30)
        write_settings(tmp_path / "settings", (24,))
        conf = write_conf(tmp_path, bootstrap, topic, f"g-{topic}", checkpoint={"interval_s": 1},
                          output={"kafka": {"topic": out, "timeout_s": 5}})
        m = Mtga(conf, "--bootstrap-servers", bootstrap).start()
        first = produce(bootstrap, topic, list(sample.envelopes(3000, app_ids=(24,), seed=1)))
        wait_for(lambda: len(committed_lines(bootstrap, [out])) >= 3000, 90, "the first 3,000 in the output")
        admin.delete_topics([out])[out].result(timeout=30)
        wait_for(lambda: out not in admin.list_topics(timeout=10).topics, 30, "the output topic gone")
        second = produce(bootstrap, topic, list(sample.envelopes(3000, app_ids=(24,), seed=2, start=3000)))
        wait_for(lambda: len(committed_lines(bootstrap, [out])) >= 3000, 120, "3,000 in the new output topic",
                 every=1)
        after_delete = Counter(json.loads(v)["#uuid"] for _t, _k, v in committed_lines(bootstrap, [out]))
        assert set(after_delete) == {uuid_of(topic, p, o) for p, o in second} and max(after_delete.values()) == 1
        assert not set(after_delete) & {uuid_of(topic, p, o) for p, o in first}

        events = list(sample.envelopes(15_000, app_ids=(24,), seed=3, start=6000))
        third: list = []

        def stream():  # on through the outage: a produce waits for the broker to come back
            for i in range(0, len(events), 300):
                third.extend(produce(bootstrap, topic, events[i:i + 300]))
                time.sleep(0.1)

        feeder = threading.Thread(target=stream, daemon=True)
        feeder.start()
        wait_for(lambda: len(third) >= 3000, 60, "the stream under way")
        wait_for(lambda: len(committed_lines(bootstrap, [out])) > 3000, 60, "its lines in the output")
        cl.stop_node(1, signal.SIGKILL)
        t_kill = time.monotonic()
        while time.monotonic() - t_kill < 10:  # the outage, 10 s: mtga must stay up through all of it
            assert m.alive(), (tmp_path / "mtga.log").read_text()[-3000:]
            time.sleep(0.2)
        cl.start_node(1)
        feeder.join(300)
        assert len(third) == len(events)
        want = {uuid_of(topic, p, o) for p, o in second + third}
        wait_for(lambda: len(committed_lines(bootstrap, [out])) >= len(want), 180, "every event after the outage",
                 every=2)
        assert m.term() == 0, m.output()
        got = Counter(json.loads(v)["#uuid"] for _t, _k, v in committed_lines(bootstrap, [out]))
        lost, twice = want - set(got), [u for u, n in got.items() if n > 1]
        print(f"\noutput topic deleted, then the broker down 10 s: {len(want)} events after the deletion, "
              f"{sum(got.values())} lines read committed, {len(lost)} lost, {len(twice)} twice")
        assert not lost and not twice and set(got) == want
    finally:
        if m is not None and m.alive():
            m.kill()
        cl.stop()
