"""Kafka stopped for 20 s while lines keep coming, then started again: nothing is
lost, the shipper resumes by itself, and its memory stays bounded (reading
pauses when the producer queue is full). Uses a private broker, since the
session's broker is shared by the other tests."""

import threading
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

import kafkalocal
from support.shipper import (ShipperProc, Writer, all_delivered, by_writer, join_all, read_topic, topic_total, wait_for,
                             write_conf)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

DOWN_S = 20
RSS_LIMIT_MB = 150


def test_broker_down_for_20s_nothing_lost_memory_bounded(tmp_path):
    cl = kafkalocal.Cluster(tmp_path / "k")
    st = cl.start(brokers=1)
    bootstrap = st.bootstrap
    sh = None
    writers = []
    back = threading.Event()  # the broker started again: the writers may finish
    try:
        topic = "down_test"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=30)
        logs = tmp_path / "logs"
        logs.mkdir()
        state = tmp_path / "state"
        conf = write_conf(tmp_path / "shipper.yml", bootstrap=bootstrap, state=state, inputs=[
            {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_item"}])
        sh = ShipperProc(conf, tmp_path / "shipper.log").start()
        sh.wait_log("watching ")  # inotify is on
        # three game servers, about 1,500 lines/s each (about 3 MB/s in all), for about 30 s and on
        # until the broker is back (so through the whole outage, however long the start took)
        writers = [Writer(logs / f"log_d{i}.log", f"d{i}", 45_000, burst=30, pause=0.02, until=back)
                   for i in range(3)]
        for w in writers:
            w.start()
        wait_for(lambda: topic_total(bootstrap, topic) > 5000, 30, "lines in Kafka before the stop")

        cl.stop_node(1)
        t_down = time.monotonic()
        written_at_stop = sum(w.written for w in writers)
        rss = []
        while time.monotonic() - t_down < DOWN_S:  # the outage itself: sample memory meanwhile
            rss.append(sh.rss_kb())
            assert sh.alive(), sh.log()[-2000:]
            time.sleep(0.2)
        written_during = sum(w.written for w in writers) - written_at_stop
        assert written_during > 0, "no line written during the outage"
        sh.wait_log("Kafka unreachable")
        cl.start_node(1)
        back.set()
        assert cl.bootstrap() == bootstrap  # same port, same data
        t_up = time.monotonic()

        sh.wait_log("Kafka reachable again", timeout=60)
        join_all(writers, timeout=120)
        total = sum(w.count for w in writers)
        while not all_delivered(state, [w.path for w in writers]):
            rss.append(sh.rss_kb())
            assert time.monotonic() - t_up < 120, "not caught up within 120 s of the restart"
            time.sleep(0.2)
        caught_up = time.monotonic() - t_up
        assert sh.stop() == 0
        peak_mb = max(rss + [sh.peak_rss_kb]) / 1024
        msgs = read_topic(bootstrap, topic)
    finally:
        back.set()
        for w in writers:
            w.join(1)
        if sh is not None:
            sh.kill_if_alive()
        cl.stop()
    log = sh.log()
    got = by_writer(msgs)
    dups = 0
    for w in writers:
        assert set(got[w.tag]) == set(range(w.count)), f"{w.tag}: lines lost"
        dups += len(got[w.tag]) - w.count
    assert len(msgs) == total + dups
    print(f"\nbroker down {DOWN_S}s while {written_during} lines were written; {total} lines in all, none lost, "
          f"{dups} repeated; caught up {caught_up:.1f}s after the restart; shipper RSS peak {peak_mb:.0f} MB")
    assert peak_mb < RSS_LIMIT_MB
    assert "stats:" in log and "Traceback" not in log
