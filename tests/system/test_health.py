"""``GET /health`` and ``GET /ready`` on the metrics server of each program, over
real HTTP, from real processes: healthy against the real broker, a shipper whose
broker is down, and an mtga stalled by a full disk."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

import kafkalocal
from mulog import sample
from support.mtga import Mtga, produce, wait_for
from support.mtga import write_conf as mtga_conf
from support.mtga import write_settings
from support.shipper import ShipperProc, line, scrape, write_conf

pytestmark = pytest.mark.kafka

APPS = (24, 25, 26)


def get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            assert r.headers["Content-Type"] == "application/json"
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        assert e.headers["Content-Type"] == "application/json"
        return e.code, json.loads(e.read())
    except (urllib.error.URLError, ConnectionError):
        return 0, {}  # not listening yet


def answer_is(port: int, path: str, code: int):
    c, body = get(port, path)
    return (c, body) if c == code else None


def check_body(code: int, body: dict) -> None:
    assert body["status"] == ("ok" if code == 200 else "unavailable")
    assert body["checks"] and all(isinstance(c["ok"], bool) and isinstance(c["detail"], str)
                                  for c in body["checks"].values())
    assert (code == 200) == all(c["ok"] for c in body["checks"].values())


def shipper_conf(tmp_path, bootstrap: str, topic: str, port: int):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_bytes(b"".join(line("a", i) + b"\n" for i in range(200)))
    return write_conf(tmp_path / "shipper.yml", bootstrap=bootstrap, state=tmp_path / "state",
                      metrics={"enabled": True, "host": "127.0.0.1", "port": port},
                      inputs=[{"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "x"}])


def test_shipper_health_and_ready_answer_200(kafka, topic_factory, tmp_path):
    port = kafkalocal.free_port()
    sh = ShipperProc(shipper_conf(tmp_path, kafka, topic_factory(partitions=1), port), tmp_path / "sh.log").start()
    try:
        code, ready = wait_for(lambda: answer_is(port, "/ready", 200), 60, "/ready 200")
        check_body(code, ready)
        assert set(ready["checks"]) == {"loop", "state", "kafka", "running"}
        code, health = get(port, "/health")
        assert code == 200
        check_body(code, health)
        print(f"\nshipper /ready: {json.dumps(ready)}\nshipper /health: {json.dumps(health)}")
        assert scrape(port)[("shipper_kafka_up", ())] == 1  # /metrics served beside them
    finally:
        assert sh.stop() == 0


def test_shipper_with_its_broker_down_is_alive_but_not_ready(tmp_path, refused_port):
    """No broker listens on the configured port: /health 200, /ready 503 saying why."""
    port = kafkalocal.free_port()
    nobody = f"127.0.0.1:{refused_port}"
    sh = ShipperProc(shipper_conf(tmp_path, nobody, "mulog_nowhere", port), tmp_path / "sh.log").start()
    try:
        sh.wait_log(f"metrics at http://127.0.0.1:{port}/metrics")
        sh.wait_log("Kafka unreachable", timeout=30)
        for _ in range(3):  # and it stays so
            code, ready = get(port, "/ready")
            assert code == 503, ready
            check_body(code, ready)
            assert ready["checks"]["kafka"]["ok"] is False and nobody in ready["checks"]["kafka"]["detail"]
            assert ready["checks"]["loop"]["ok"] and ready["checks"]["state"]["ok"]
            code, health = get(port, "/health")
            assert code == 200 and health["checks"]["loop"]["ok"], health
            time.sleep(1)
        print(f"\nshipper, broker down: /ready 503 {json.dumps(ready)}; /health 200")
    finally:
        assert sh.stop() == 0


def test_mtga_health_and_ready_answer_200(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=2)
    write_settings(tmp_path / "settings", APPS)
    produce(kafka, topic, list(sample.envelopes(300, app_ids=APPS, seed=4)))
    port = kafkalocal.free_port()
    m = Mtga(mtga_conf(tmp_path, kafka, topic, f"g-{topic}",
                       metrics={"enabled": True, "host": "127.0.0.1", "port": port})).start()
    try:
        code, ready = wait_for(lambda: answer_is(port, "/ready", 200), 60, "/ready 200")
        check_body(code, ready)
        assert set(ready["checks"]) == {"loop", "state", "kafka", "partitions", "stalled", "running"}
        assert ready["checks"]["partitions"]["detail"].startswith("2 assigned")
        code, health = get(port, "/health")
        assert code == 200
        check_body(code, health)
        print(f"\nmtga /ready: {json.dumps(ready)}\nmtga /health: {json.dumps(health)}")
    finally:
        assert m.term() == 0


def test_stalled_mtga_is_alive_but_not_ready(kafka, topic_factory, tmp_path, small_disk):
    """State and output on a 3 MB disk that fills: batches cannot be stored anywhere
    durable, /ready answers 503 (stalled) while /health stays 200; ready again once
    the disk has room."""
    topic = topic_factory(partitions=3)
    write_settings(tmp_path / "settings", APPS)
    disk = small_disk("disk", "3m")
    port = kafkalocal.free_port()
    conf = mtga_conf(tmp_path, kafka, topic, f"g-{topic}", checkpoint={"interval_s": 1},
                     state_dir=str(disk.path / "state"), output={"dir": str(disk.path / "out")},
                     log={"file": str(tmp_path / "mtga.log")},
                     metrics={"enabled": True, "host": "127.0.0.1", "port": port})
    produce(kafka, topic, list(sample.envelopes(8000, app_ids=APPS, seed=6)))
    m = Mtga(conf).start()
    try:
        code, ready = wait_for(lambda: (a := get(port, "/ready"))[0] == 503
                               and a[1]["checks"]["stalled"]["ok"] is False and a, 90, "/ready 503 (stalled)")
        check_body(code, ready)
        assert "No space left on device" in ready["checks"]["stalled"]["detail"], ready
        code, health = get(port, "/health")
        assert code == 200, health
        print(f"\nmtga stalled: /ready 503 {json.dumps(ready['checks']['stalled'])}; /health 200")
        disk.resize("128m")
        wait_for(lambda: answer_is(port, "/ready", 200), 90, "/ready 200 once the disk has room")
    finally:
        assert m.term() == 0


def test_shipper_ready_follows_its_broker_going_away_and_back(tmp_path):
    """A private one-broker cluster: ready; the broker SIGKILLed: /ready 503 (kafka
    unreachable) while /health stays 200; the broker back: ready again, with no line
    waiting to be acknowledged (the shipper asks a broker for metadata while down)."""
    import signal

    from confluent_kafka.admin import AdminClient, NewTopic

    cl = kafkalocal.Cluster(tmp_path / "k")
    bootstrap = cl.start(brokers=1).bootstrap
    sh = None
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("mulog_h", num_partitions=1, replication_factor=1)])["mulog_h"].result(30)
        del admin
        port = kafkalocal.free_port()
        sh = ShipperProc(shipper_conf(tmp_path, bootstrap, "mulog_h", port), tmp_path / "sh.log").start()
        wait_for(lambda: answer_is(port, "/ready", 200), 60, "/ready 200")
        sh.wait_log("stats:", timeout=30)
        cl.stop_node(1, signal.SIGKILL)
        t0 = time.monotonic()
        code, ready = wait_for(lambda: answer_is(port, "/ready", 503), 60, "/ready 503 with the broker killed")
        took = time.monotonic() - t0
        check_body(code, ready)
        assert ready["checks"]["kafka"]["ok"] is False and "unreachable" in ready["checks"]["kafka"]["detail"]
        assert get(port, "/health")[0] == 200
        cl.start_node(1)
        t1 = time.monotonic()
        wait_for(lambda: answer_is(port, "/ready", 200), 90, "/ready 200 with the broker back")
        print(f"\nshipper: /ready 503 {took:.1f}s after the broker's SIGKILL ({ready['checks']['kafka']}), "
              f"200 again {time.monotonic() - t1:.1f}s after its start")
    finally:
        if sh is not None:
            assert sh.stop() == 0
        cl.stop()
