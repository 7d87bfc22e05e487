"""Both programs against a secured Kafka (`kafka-local start --secure`: TLS from a
private CA, SCRAM users, mutual TLS, ACLs that deny by default): the pipeline
exact, every mtga command with the daemon running and stopped, the fleet, /ready;
a principal without ACLs and a wrong password told apart in one line each; the
secrets found nowhere in what the run printed, logged or served."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from support.cli import run_cli
from support.installed import write_sample_logs
from support.mtga import Mtga, count_lines, uuid_counts, wait_for, write_settings
from support.shipper import ShipperProc

from kafkalocal.ports import free_port
from mulog import sample, wire

pytestmark = pytest.mark.kafka

PATTERN = r"^(?P<log_name>[a-z][a-z0-9_]*?)\.log$"


def _shipper_conf(tmp: Path, bootstrap: str, connection: dict, topic: str, port: int) -> Path:
    p = tmp / "shipper.yml"
    p.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": bootstrap, "connection": connection},
        "state_dir": str(tmp / "sstate"),
        "inputs": [{"paths": [str(tmp / "logs" / "*.log")], "topic": topic, "app_id": 24,
                    "log_name_pattern": PATTERN}],
        "metrics": {"enabled": True, "port": port},
        "fleet": {"interval_s": 1},
        "checkpoint_interval_s": 0.2,
    }))
    return p


def _mtga_conf(tmp: Path, bootstrap: str, connection: dict, topic: str, port: int) -> Path:
    write_settings(tmp / "settings", (24,))
    p = tmp / "mtga.yml"
    p.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": bootstrap, "connection": connection, "topics": [topic],
                  "group_id": f"g-{topic}"},
        "state_dir": str(tmp / "mstate"), "settings_dir": str(tmp / "settings"), "output": {"dir": str(tmp / "out")},
        "checkpoint": {"interval_s": 1}, "log": {"file": str(tmp / "mtga.log")},
        "metrics": {"enabled": True, "port": port}, "fleet": {"interval_s": 1},
    }))
    return p


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def _ready(port: int) -> bool:
    return _get(port, "/ready")[0] == 200


def _ready_says(port: int, said: str) -> None:
    """/ready answers 503 with ``said`` (within the few seconds its snapshot takes)."""
    code, body = wait_for(lambda: (r := _get(port, "/ready"))[1].count(said) and r, 10, f"/ready to say {said!r}")
    assert code == 503, body


def _topic(secure_kafka, partitions: int = 3) -> str:
    return secure_kafka.create_topic(f"mulog_sec_{uuid.uuid4().hex[:10]}", partitions)


def _exact(out: Path, total: int) -> None:
    counts = uuid_counts(out)
    assert len(counts) == total, f"{total - len(counts)} lost"
    assert max(counts.values()) == 1, "a line written twice"
    assert count_lines(out) == total


def test_the_pipeline_and_every_command_over_scram_with_the_secrets_out_of_sight(secure_kafka, tmp_path,
                                                                                 monkeypatch):
    sk = secure_kafka
    topic = _topic(sk)
    total = write_sample_logs(tmp_path / "logs", per_file=500)
    sport, mport = free_port(), free_port()
    # the shipper reads its password from a file, mtga from the environment
    sconf = _shipper_conf(tmp_path, sk.sasl_bootstrap, sk.connection("shipper"), topic, sport)
    mconn = dict(sk.connection("mtga"), **{"sasl.password": "${MTGA_KAFKA_PASSWORD}"})
    mconf = _mtga_conf(tmp_path, sk.sasl_bootstrap, mconn, topic, mport)
    env = {"MTGA_KAFKA_PASSWORD": sk.password("mtga")}
    monkeypatch.setenv("MTGA_KAFKA_PASSWORD", sk.password("mtga"))  # this process reads mtga.yml too
    secrets = [sk.password("shipper"), sk.password("mtga")]
    seen: list[str] = []

    def cli(*args: str, rc: int = 0) -> str:
        r = run_cli(*args, env=env, timeout=60)
        seen.append(r.stdout + r.stderr)
        assert r.returncode == rc, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        return r.stdout

    cli("shipper", "check-config", "-c", str(sconf), "--print")
    cli("mtga", "check-config", "-c", str(mconf), "--print")
    shipper = ShipperProc(sconf, tmp_path / "shipper.log").start()
    try:
        _pipeline_and_commands(tmp_path, shipper, Mtga(mconf, env=env).start(), sconf, mconf, cli, seen, sport,
                               mport, total, env)
    finally:
        shipper.kill_if_alive()
    assert all(s not in text for s in secrets for text in seen), "a secret was printed, logged or served"
    assert "<redacted>" in seen[0] and "<redacted>" in seen[1]


def _pipeline_and_commands(tmp_path, shipper, mtga, sconf, mconf, cli, seen, sport, mport, total, env) -> None:
    try:
        wait_for(lambda: count_lines(tmp_path / "out") >= total or not mtga.alive(), 120,
                 "every line through the secured Kafka into mtga's output")
        wait_for(lambda: _ready(sport) and _ready(mport), 30, "/ready 200 from both programs")
        for port in (sport, mport):
            seen += [_get(port, "/ready")[1], _get(port, "/metrics")[1], _get(port, "/health")[1]]

        def fleet_roles() -> set:
            r = run_cli("mtga", "fleet", "-c", str(mconf), "--json", env=env, timeout=60)
            rows = json.loads(r.stdout)["hosts"] if r.returncode == 0 else []
            return {x["role"] for x in rows if x["state"] == "up"}

        wait_for(lambda: fleet_roles() >= {"shipper", "mtga"}, 30, "both heartbeats in mtga fleet")
        # the commands with the daemon running (through its control socket)
        rows = json.loads(cli("mtga", "offset-checker", "-c", str(mconf), "--json"))
        assert sum(r["lag"] for r in rows) == 0 and len(rows) == 3, rows
        cli("mtga", "kafka-lag", "-c", str(mconf))
        cli("mtga", "failure-queue-count", "-c", str(mconf))
        cli("mtga", "status", "-c", str(mconf), "--json")
        cli("mtga", "fleet", "-c", str(mconf), "--json")
        cli("shipper", "status", "-c", str(sconf), "--json")
    finally:
        assert mtga.term() == 0
        seen.append(mtga.output())
    try:
        # the same with the daemon stopped (each command makes its own clients)
        rows = json.loads(cli("mtga", "offset-checker", "-c", str(mconf), "--json"))
        assert sum(r["lag"] for r in rows) == 0 and len(rows) == 3, rows
        cli("mtga", "kafka-lag", "-c", str(mconf))
        cli("mtga", "failure-queue-count", "-c", str(mconf))
        fleet = json.loads(cli("mtga", "fleet", "-c", str(mconf), "--json"))
        assert {x["role"] for x in fleet["hosts"]} >= {"shipper", "mtga"}
    finally:
        rc_ship = shipper.stop()
    _exact(tmp_path / "out", total)
    assert rc_ship == 0, shipper.log()[-2000:]
    seen += [shipper.log(), (tmp_path / "mtga.log").read_text(errors="replace")]
    seen += [f.read_text(errors="replace") for f in (tmp_path / "sstate").glob("*.json")]


def test_a_principal_without_acls_and_a_wrong_password_are_told_apart(secure_kafka, tmp_path):
    sk = secure_kafka
    topic = _topic(sk, partitions=1)
    total = write_sample_logs(tmp_path / "logs", per_file=100)
    port = free_port()
    # no ACL: one line naming the principal, the operation, the topic and the ACL to add
    conf = _shipper_conf(tmp_path, sk.sasl_bootstrap, sk.connection("nobody"), topic, port)
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        said = f"User:nobody is not allowed to Write topic {topic} at {sk.sasl_bootstrap}"
        sh.wait_log(said, timeout=30)
        _ready_says(port, said)
        assert sh.log().count(said) == 1, "said once, not for every refused chunk"
        sk.grant("User:nobody", "topic", topic, ["Write", "Describe"])
        sh.wait_log("Kafka accepts the shipper's lines again", timeout=60)
        wait_for(lambda: _ready(port), 30, "/ready 200 once the ACL is there")
    finally:
        assert sh.stop() == 0
        sk.revoke("User:nobody", "topic", topic, ["Write", "Describe"])
    assert "Traceback" not in sh.log()
    got = _read_all(sk, topic)
    assert len(got) == total and len(set(got)) == total, "a line lost or sent twice"

    # a wrong password: authentication, not authorization
    conn = dict(sk.connection("shipper"), **{"sasl.password": "not-the-password"})
    (tmp_path / "w").mkdir()
    conf = _shipper_conf(tmp_path / "w", sk.sasl_bootstrap, conn, topic, port)
    sh = ShipperProc(conf, tmp_path / "w.log").start()
    try:
        said = f"Kafka at {sk.sasl_bootstrap} did not accept the credentials of User:shipper: authentication failed"
        sh.wait_log(said, timeout=30)
        _ready_says(port, said)
    finally:
        sh.stop()
    assert "Traceback" not in sh.log() and "not-the-password" not in sh.log()

    # mtga without ACLs: the group or the topic refused, in one line, /ready 503
    mport = free_port()
    (tmp_path / "m").mkdir()
    mconf = _mtga_conf(tmp_path / "m", sk.sasl_bootstrap, sk.connection("nobody"), topic, mport)
    m = Mtga(mconf).start()
    try:
        log = tmp_path / "m" / "mtga.log"
        wait_for(lambda: log.exists() and "User:nobody is not allowed to Read" in log.read_text(), 30,
                 "mtga to say what the ACLs refuse")
        _ready_says(mport, "User:nobody is not allowed to Read")
    finally:
        assert m.term() == 0
    assert "Traceback" not in log.read_text()
    for command in ("offset-checker", "kafka-lag", "fleet"):  # each one line and exit 1, never a traceback
        r = run_cli("mtga", command, "-c", str(mconf), timeout=60)
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 1 and last.startswith("mtga: User:nobody is not allowed to "), (command, r.stderr)
        assert "Traceback" not in r.stderr


def test_a_topic_that_does_not_exist_is_said_as_such(secure_kafka, tmp_path):
    sk = secure_kafka
    topic = f"mulog_sec_missing_{uuid.uuid4().hex[:8]}"  # allowed by mtga's ACLs, never created
    port = free_port()
    m = Mtga(_mtga_conf(tmp_path, sk.sasl_bootstrap, sk.connection("mtga"), topic, port)).start()
    try:
        _ready_says(port, f"topic {topic} does not exist at {sk.sasl_bootstrap}")
    finally:
        assert m.term() == 0
    r = run_cli("mtga", "offset-checker", "-c", str(tmp_path / "mtga.yml"), timeout=60)
    assert r.returncode == 1 and f"mtga: topic {topic} does not exist at {sk.sasl_bootstrap}" in r.stderr, r.stderr


def test_mutual_tls_with_client_certificates(secure_kafka, tmp_path):
    sk = secure_kafka
    topic = _topic(sk)
    total = write_sample_logs(tmp_path / "logs", per_file=200)
    sport, mport = free_port(), free_port()
    sconf = _shipper_conf(tmp_path, sk.tls_bootstrap, sk.connection("shipper", via="mtls"), topic, sport)
    mconf = _mtga_conf(tmp_path, sk.tls_bootstrap, sk.connection("mtga", via="mtls"), topic, mport)
    shipper = ShipperProc(sconf, tmp_path / "shipper.log").start()
    mtga = Mtga(mconf).start()
    try:
        wait_for(lambda: count_lines(tmp_path / "out") >= total or not mtga.alive(), 120,
                 "every line through mutual TLS")
        wait_for(lambda: _ready(sport) and _ready(mport), 30, "/ready 200 from both programs")
    finally:
        assert mtga.term() == 0
        assert shipper.stop() == 0
    _exact(tmp_path / "out", total)


def _read_all(sk, topic: str) -> list[tuple[str, str]]:
    """(path, offset) of every message in ``topic``, read as mtga."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(dict(sk.client_conf("mtga"), **{"group.id": f"g-{topic}-check", "enable.auto.commit": False}))
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
        out: list = []
        deadline = time.monotonic() + 60
        while len(out) < hi - lo and time.monotonic() < deadline:
            for m in c.consume(1000, 1):
                if m.error() is None:  # the six fields: in the key form's key, or in headers
                    h = wire.fields(m.key()) if m.key() and not m.headers() else \
                        {k: v.decode() for k, v in m.headers() or []}
                    out.append((h.get("path", ""), h.get("offset", "")))
        return out
    finally:
        c.close()


def test_the_kafka_output_over_scram_with_least_privilege(secure_kafka, tmp_path):
    """The Kafka output's producer over SASL_SSL/SCRAM: without Write on its
    transactional id mtga says what is denied and writes nothing; once granted
    (Write on the output topic, Write and Describe on the ids ``mtga-``), every
    event once, read committed."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    sk = secure_kafka
    topic, out = _topic(sk), sk.create_topic(f"ta_sec_{uuid.uuid4().hex[:10]}", 3)
    conf = _mtga_conf(tmp_path, sk.sasl_bootstrap, sk.connection("mtga"), topic, free_port())
    doc = yaml.safe_load(conf.read_text())
    doc["output"]["kafka"] = {"topic": out, "timeout_s": 5}
    conf.write_text(yaml.safe_dump(doc))
    p = Producer(sk.admin_conf())
    for e in sample.envelopes(600, app_ids=(24,)):
        p.produce(topic, e)
    assert p.flush(30) == 0
    sk.grant("mtga", "topic", out, ["WRITE", "DESCRIBE"])
    m = Mtga(conf).start()
    try:
        log = tmp_path / "mtga.log"
        said = wait_for(lambda: log.exists() and next((ln for ln in log.read_text().splitlines()
                                                       if "transactional id authorization failed" in ln.lower()), None),
                        60, "mtga to say the transactional id is denied")
        assert "User:mtga is not allowed to Write transactional id mtga-" in said and \
               "kafka-acls --add --allow-principal User:mtga --operation Write --operation Describe " \
               "--transactional-id mtga-" in said, said
        sk.grant("mtga", "transactional_id", "mtga-", ["WRITE", "DESCRIBE"], "PREFIXED")

        def committed() -> int:
            c = Consumer(dict(sk.admin_conf(), **{"group.id": f"r-{uuid.uuid4().hex[:6]}",
                                                  "isolation.level": "read_committed", "enable.auto.commit": False}))
            try:
                c.assign([TopicPartition(out, i, 0) for i in range(3)])
                n, quiet = 0, 0
                while quiet < 3:
                    ms = c.consume(1000, 0.5)
                    n += sum(1 for x in ms if x.error() is None)
                    quiet = 0 if ms else quiet + 1
                return n
            finally:
                c.close()

        wait_for(lambda: committed() >= 600, 120, "the 600 events in the output topic", every=2)
        assert m.term() == 0, m.output()
    finally:
        if m.alive():
            m.kill()
    assert committed() == 600
