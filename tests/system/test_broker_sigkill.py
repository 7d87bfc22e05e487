"""The broker SIGKILLed under load with shipper and mtga running: every line
reaches mtga's output; the figures (lines in, out, duplicated, lost) are
printed for the record."""


import json
import signal
import threading
import time
from collections import Counter

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

import kafkalocal
from support import mtga as mtga_helpers
from support.shipper import (MARK, ShipperProc, Writer, all_delivered, join_all, read_topic, report, scrape, wait_for,
                             write_conf)

pytestmark = pytest.mark.kafka



PER_WRITER = 37_500



@pytest.mark.slow
def test_broker_sigkill_under_load_with_shipper_and_mtga_nothing_lost(tmp_path):
    """A private one-broker cluster; two game servers write about 3,000 lines/s in
    all for about 25 s; shipper ships them, mtga turns them into LogBus lines. The broker is
    SIGKILLed, stays down 10 s and starts again (same port, same data). Every
    line must reach mtga's output; duplicates (same #uuid) are counted. The
    servers write on until the broker is back, however long the start took."""
    cl = kafkalocal.Cluster(tmp_path / "k")
    bootstrap = cl.start(brokers=1).bootstrap
    sh = m = None
    writers = []
    back = threading.Event()  # the broker started again: the writers may finish
    app_id = 31
    topic = f"mulog_clean_{app_id}"
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=30)
        del admin  # its client would complain on stderr through the outage
        logs = tmp_path / "logs"
        logs.mkdir()
        state = tmp_path / "state"
        port = kafkalocal.free_port()
        conf = write_conf(tmp_path / "shipper.yml", bootstrap=bootstrap, state=state,
                          metrics={"enabled": True, "port": port}, inputs=[
            {"paths": [str(logs / "*.log")], "topic": topic, "app_id": app_id, "log_name": "log_item"}])
        mdir = tmp_path / "mtga"
        mdir.mkdir()
        mtga_helpers.write_settings(mdir / "settings", apps=(app_id,))
        mconf = mtga_helpers.write_conf(mdir, bootstrap, topic, f"g-{topic}", checkpoint={"interval_s": 2},
                                        retry={"initial_backoff_s": 0.5, "max_backoff_s": 2})
        out = mdir / "out"
        sh = ShipperProc(conf, tmp_path / "shipper.log").start()
        m = mtga_helpers.Mtga(mconf).start()
        sh.wait_log("watching ")  # inotify is on
        # two servers, about 1,500 lines/s each, for about 25 s
        writers = [Writer(logs / f"log_k{i}.log", f"k{i}", PER_WRITER, burst=30, pause=0.02, until=back)
                   for i in range(2)]
        for w in writers:
            w.start()
        wait_for(lambda: mtga_helpers.count_lines(out) > 3000, 60, "lines through the whole pipeline")

        cl.stop_node(1, signal.SIGKILL)
        t_kill = time.monotonic()
        written_at_kill = sum(w.written for w in writers)
        sh.wait_log("Kafka unreachable", timeout=30)
        # the metrics show the outage: Kafka down, lines waiting, bytes behind growing
        down = wait_for(lambda: (x := scrape(port))[("shipper_kafka_up", ())] == 0
                        and x[("shipper_producer_queue_lines", ())] > 0 and x, 8, "the outage in the metrics")
        behind = [down[("shipper_bytes_behind", ())]]
        while time.monotonic() - t_kill < 10:  # the outage: both programs must stay up meanwhile
            assert sh.alive(), sh.log()[-3000:]
            assert m.alive(), (mdir / "mtga.log").read_text()[-3000:]
            time.sleep(0.2)
        behind.append(scrape(port)[("shipper_bytes_behind", ())])
        assert behind[-1] > behind[0] > 0, behind
        written_during = sum(w.written for w in writers) - written_at_kill
        cl.start_node(1)
        back.set()
        assert cl.bootstrap() == bootstrap
        t_up = time.monotonic()
        sh.wait_log("Kafka reachable again", timeout=60)
        join_all(writers, timeout=120)
        total = sum(w.count for w in writers)

        def in_output():
            return len({json.loads(x)["#uuid"] for x in mtga_helpers.output_lines(out, running=True)}) >= total

        wait_for(lambda: all_delivered(state, [w.path for w in writers]), 120, "every line in Kafka")
        in_kafka = time.monotonic() - t_up
        after = wait_for(lambda: (x := scrape(port))[("shipper_bytes_behind", ())] == 0 and x, 30, "0 bytes behind")
        assert after[("shipper_kafka_up", ())] == 1 and after[("shipper_producer_queue_lines", ())] == 0
        assert after[("shipper_lines_acked_total", ())] >= total
        wait_for(in_output, 120, "every line in mtga's output", every=1)
        through = time.monotonic() - t_up
        assert sh.stop() == 0
        assert m.term() == 0
        msgs = read_topic(bootstrap, topic)
        fq = mtga_helpers.failure_count(mdir / "state")
    finally:
        back.set()
        for w in writers:
            w.join(1)
        if sh is not None:
            sh.kill_if_alive()
        if m is not None and m.alive():
            m.kill()
        cl.stop()

    # Kafka: every line of each file, by (file, offset)
    by_pos = Counter((mm.headers["file"], int(mm.headers["offset"])) for mm in msgs)
    kafka_marks = Counter(tuple(MARK.match(mm.value).groups()) for mm in msgs)
    assert all(w.count >= PER_WRITER for w in writers)
    want = {(w.tag.encode(), str(n).encode()) for w in writers for n in range(w.count)}
    assert set(kafka_marks) == want, f"{len(want - set(kafka_marks))} lines lost on the way to Kafka"
    # mtga output: every line, a duplicate always with the same #uuid as its original
    rows = [json.loads(x) for x in mtga_helpers.output_lines(out)]
    uuids = Counter(r["#uuid"] for r in rows)
    marker_of = {}
    for r in rows:
        mk = (r["properties"]["w"], r["properties"]["n"])
        assert marker_of.setdefault(r["#uuid"], mk) == mk, "one #uuid for two different lines"
    marks = set(marker_of.values())
    lost = total - len(marks & {(w.tag, n) for w in writers for n in range(w.count)})
    assert fq == 0, f"{fq} events in mtga's failure queue"
    assert len(uuids) == len(marks) == total
    assert lost == 0
    log = sh.log()
    assert "Traceback" not in log
    report("broker SIGKILL 10 s (shipper -> Kafka)", total, len(msgs), len(by_pos), total - len(kafka_marks),
           lines_written_while_down=written_during, bytes_behind_at_restart=int(behind[-1]), s_from_restart_to_all_in_kafka=round(in_kafka, 1))
    report("broker SIGKILL 10 s (Kafka -> mtga output)", total, len(rows), len(uuids), lost,
           failure_queue=fq, s_from_restart_to_all_in_output=round(through, 1))
