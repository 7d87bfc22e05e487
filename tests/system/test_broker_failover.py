"""A three-broker cluster losing a partition leader under load: nothing lost, no
duplicates in Kafka. Real brokers, real processes."""


from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec

import kafkalocal
from support.cli import REPO
from support.hosts import Host
from support.mtga import count_lines, output_lines, stored_offsets, wait_for

pytestmark = pytest.mark.kafka












def _written_lines(out: Path, running: bool = False) -> set[tuple[str, int]]:
    """(writer tag, line number) of every line in mtga's output."""
    got = set()
    for ln in output_lines(out, running):
        p = json.loads(ln)["properties"]
        got.add((p["w"], p["n"]))
    return got



def test_three_brokers_leader_sigkilled_under_load_nothing_lost_no_duplicates_in_kafka(tmp_path):
    from support.shipper import ShipperProc, Writer, all_delivered, join_all, read_topic, topic_total
    from support.shipper import write_conf as shipper_conf

    home = tmp_path / "kafka3"
    cli = [str(REPO / "scripts" / "kafka-local"), "--home", str(home)]
    cl = kafkalocal.Cluster(home)
    sh = None
    host = None
    writers: list = []
    try:
        t0 = time.monotonic()
        r = subprocess.run([*cli, "start", "--brokers", "3"], capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, r.stderr
        bootstrap = r.stdout.strip().splitlines()[-1]
        addrs = bootstrap.split(",")
        nodes = cl.load().nodes
        assert len(addrs) == 3 and len({n.port for n in nodes} | {n.controller_port for n in nodes}) == 6
        assert len({str(cl.node_dir(n.id)) for n in nodes}) == 3
        st = subprocess.run([*cli, "status"], capture_output=True, text=True, timeout=30)
        assert st.returncode == 0 and "running: 3 broker(s)" in st.stdout, st.stdout
        started_s = time.monotonic() - t0

        topic = "mulog_clean_24"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=3)])[topic].result(timeout=30)  # broker defaults

        def topic_md():
            t = admin.list_topics(topic, timeout=10).topics.get(topic)
            return t if t is not None and t.error is None and len(t.partitions) == 3 else None
        md = wait_for(topic_md, 30, "the topic's metadata")
        assert all(len(pm.replicas) == 3 for pm in md.partitions.values())

        def min_isr():
            try:  # a broker the new topic has not reached yet answers UNKNOWN_TOPIC_OR_PART
                fut = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
                return list(fut.values())[0].result(timeout=10)["min.insync.replicas"].value
            except KafkaException:
                return None
        assert wait_for(min_isr, 30, "the topic's configuration") == "2"

        host = Host(tmp_path / "mtga", bootstrap, topic, "mtga")
        host.start()
        logs = tmp_path / "logs"
        logs.mkdir()
        state = tmp_path / "shipper-state"
        sconf = shipper_conf(tmp_path / "shipper.yml", bootstrap=bootstrap, state=state, inputs=[
            {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_item"}])
        sh = ShipperProc(sconf, tmp_path / "shipper.log").start()
        sh.wait_log("watching ")  # inotify is on
        # six game servers, about 400 lines/s each, for about 25 s, and on until the lines after the kill
        # reached mtga (however long the starts took)
        after_kill = threading.Event()
        writers = [Writer(logs / f"game{i}.log", f"g{i}", 10_000, burst=20, pause=0.05, until=after_kill)
                   for i in range(6)]
        for w in writers:
            w.start()
        wait_for(lambda: topic_total(bootstrap, topic) > 3000 and count_lines(host.out) > 1000, 60,
                 "lines flowing through Kafka to mtga")

        # the leader of the busiest partition, from the metadata
        wm = {p: admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest()})
              [TopicPartition(topic, p)].result(timeout=10).offset for p in range(3)}
        busiest = max(wm, key=wm.get)
        md = admin.list_topics(topic, timeout=10)
        before = {p: (pm.leader, list(pm.isrs)) for p, pm in md.topics[topic].partitions.items()}
        victim = before[busiest][0]
        led = sorted(p for p, (ldr, _) in before.items() if ldr == victim)
        stored_at_kill = dict(stored_offsets(host.state))
        out_at_kill = count_lines(host.out)
        cl.stop_node(victim, signal.SIGKILL)
        t_kill = time.monotonic()
        survivors = ",".join(n.address for n in nodes if n.id != victim)
        sadmin = AdminClient({"bootstrap.servers": survivors})

        def new_leaders():
            m = sadmin.list_topics(topic, timeout=5)
            now = {p: (pm.leader, list(pm.isrs)) for p, pm in m.topics[topic].partitions.items()}
            return now if all(now[p][0] not in (victim, -1) for p in led) else None
        after = wait_for(new_leaders, 60, "new leaders for the partitions the killed broker led", every=0.2)
        elected_s = time.monotonic() - t_kill
        st = subprocess.run([*cli, "status"], capture_output=True, text=True, timeout=30)
        assert st.returncode == 2 and "partly running: 2 of 3" in st.stdout, st.stdout
        assert re.search(rf"node {victim}: \S+ .*DOWN", st.stdout), st.stdout
        # Kafka's own view of the group, through the surviving brokers
        cg = subprocess.run([*cli, "consumer-groups", "--describe", "--group", "mtga"], capture_output=True,
                            text=True, timeout=90)
        assert cg.returncode == 0 and len(re.findall(rf"^mtga\s+{topic}\s+\d", cg.stdout, re.M)) == 3, cg.stdout

        def high(p):
            try:
                return sadmin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest()})[
                    TopicPartition(topic, p)].result(timeout=10).offset
            except Exception:  # a new leader answers OFFSET_NOT_AVAILABLE until its high watermark caught up
                return -1
        wait_for(lambda: high(busiest) > wm[busiest] + 500, 90, "production to the new leader")
        produced_s = time.monotonic() - t_kill
        key = (topic, busiest)
        wait_for(lambda: stored_offsets(host.state).get(key, 0) > max(stored_at_kill.get(key, 0), wm[busiest]), 90,
                 "mtga to consume past the kill on that partition")
        consumed_s = time.monotonic() - t_kill
        assert count_lines(host.out) > out_at_kill
        after_kill.set()

        join_all(writers, timeout=180)
        files = [w.path for w in writers]
        total = sum(w.count for w in writers)
        wait_for(lambda: all_delivered(state, files), 120, "every line delivered (shipper status)")
        wait_for(lambda: count_lines(host.out) >= total and len(_written_lines(host.out, running=True)) == total, 120,
                 "every line in mtga's output")
        assert sh.stop() == 0
        assert host.term() == 0, host.m.output()

        msgs = read_topic(survivors, topic)
        per_line = Counter((m.headers["file"], int(m.headers["offset"])) for m in msgs)
        dup_kafka = {k: c for k, c in per_line.items() if c > 1}
        written = _written_lines(host.out)
        out_lines = count_lines(host.out)
        print(f"\n3 brokers ({started_s:.1f}s to start), rf 3, min.insync.replicas 2; leaders before {before}; "
              f"SIGKILL of broker {victim} (leader of {led}) under load; after: {after}; new leader in "
              f"{elected_s:.1f}s, production to it after {produced_s:.1f}s, mtga consuming it after "
              f"{consumed_s:.1f}s; {total} lines written, {len(msgs)} messages in Kafka, "
              f"{len(dup_kafka)} duplicated; mtga output {out_lines} lines, {len(written)} distinct, "
              f"{out_lines - len(written)} duplicates (at least once)")
        assert not dup_kafka, list(dup_kafka.items())[:5]
        assert len(msgs) == total == len(per_line)
        assert all(w.count >= 10_000 for w in writers)
        assert written == {(w.tag, n) for w in writers for n in range(w.count)}
        assert "Traceback" not in sh.log() and "Traceback" not in host.log()
    finally:
        for w in writers:
            w.until.set()
            w.join(5)
        if sh is not None:
            sh.kill_if_alive()
        if host is not None:
            host.stop_if_alive()
        try:
            stop = subprocess.run([*cli, "stop"], capture_output=True, text=True, timeout=120)
        finally:
            cl.stop()  # a no-op when the command did it
    assert stop.returncode == 0 and stop.stdout.strip() == "stopped", stop.stdout + stop.stderr
    assert cl.load() is None and not list(home.glob("node-*"))
