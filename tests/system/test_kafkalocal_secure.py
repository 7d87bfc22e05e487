"""The secured broker of ``kafka-local start --secure``, proven with an independent
client (kcat): TLS from its CA, SASL users (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN),
client certificates, and ACLs that deny what they do not allow.

kcat runs on Debian's librdkafka for PLAIN and mutual TLS. Its SCRAM fails against
Kafka 4 brokers before librdkafka 2.6.1 (a nonce repeated in the client's final
message, which Kafka 4 no longer accepts): for SCRAM, kcat runs on the librdkafka
of the programs' own Kafka client (confluent-kafka's), as they do."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from support.cli import REPO

pytestmark = pytest.mark.kafka

AUTHZ = "authorization failed"


def _programs_librdkafka(tmp: Path) -> dict:
    """An environment that makes kcat load confluent-kafka's own librdkafka."""
    import confluent_kafka

    libs = sorted((Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs").glob("librdkafka*.so*"))
    if not libs:  # a confluent-kafka built on the system's librdkafka: kcat's own is that one
        return {}
    d = tmp / "librdkafka"
    d.mkdir(exist_ok=True)
    link = d / "librdkafka.so.1"
    if not link.exists():
        link.symlink_to(libs[0])
    return {"LD_LIBRARY_PATH": str(d)}


@pytest.fixture(scope="module")
def kcat(secure_kafka, tmp_path_factory):
    """``kcat(user, *args, via="sasl"|"mtls"|"plaintext", mechanism=..., password=None,
    stdin=None)``: kcat's result, with ``user``'s settings in a file (0600) it reads."""
    tmp = tmp_path_factory.mktemp("kcat")
    scram_env = _programs_librdkafka(tmp)

    def run(user: str, *args: str, via: str = "sasl", mechanism: str = "SCRAM-SHA-512",
            password: str | None = None, stdin: str | None = None, timeout: float = 60):
        conf = {}
        if via == "sasl":
            conf = secure_kafka.client_conf(user, "sasl", mechanism)
            if password is not None:
                conf["sasl.password"] = password
        elif via == "mtls":
            conf = secure_kafka.client_conf(user, "mtls")
            if user is None:  # TLS without a certificate
                conf = {k: v for k, v in conf.items() if k not in ("ssl.certificate.location", "ssl.key.location")}
        else:
            conf = {"bootstrap.servers": secure_kafka.sasl_bootstrap if via == "plaintext" else secure_kafka.tls_bootstrap}
        f = tmp / f"{uuid.uuid4().hex}.conf"
        fd = os.open(f, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("".join(f"{k}={v}\n" for k, v in conf.items() if k != "bootstrap.servers"))
        env = dict(os.environ, **(scram_env if mechanism.startswith("SCRAM") and via == "sasl" else {}))
        cmd = ["kcat", "-F", str(f), "-b", conf["bootstrap.servers"], "-X", "message.timeout.ms=15000", *args]
        try:
            return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, env=env)
        finally:
            f.unlink()

    return run


@pytest.fixture
def topics(secure_kafka):
    """``topics(prefix)``: a new topic made by the admin, removed after the test."""
    made = []

    def make(prefix: str = "mulog_t") -> str:
        made.append(secure_kafka.create_topic(f"{prefix}_{uuid.uuid4().hex[:10]}"))
        return made[-1]

    yield make
    secure_kafka.delete_topics(made)


def _produce(kcat, user, topic, lines, extra=(), **kw):
    return kcat(user, "-P", "-t", topic, "-X", "enable.idempotence=true", *extra,
                stdin="".join(f"{x}\n" for x in lines), **kw)


def _read_all(kcat, topic) -> list[str]:
    r = kcat("admin", "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n", mechanism="PLAIN")
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_the_shipper_over_scram_sha_512_writes_its_topics_and_no_other(kcat, topics):
    mine, other = topics("mulog_t"), topics("other")
    r = _produce(kcat, "shipper", mine, ["one", "two"])
    assert r.returncode == 0, r.stderr
    assert _read_all(kcat, mine) == ["one", "two"]
    r = _produce(kcat, "shipper", other, ["no"])
    assert r.returncode != 0 and AUTHZ in r.stderr.lower(), r.stderr
    assert _read_all(kcat, other) == []
    # the fleet's topic, compacted (a record has a key), made by the admin at start
    r = _produce(kcat, "shipper", "mulog_fleet", ["shipper/test:beat"], extra=("-K", ":"))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "PLAIN"])
def test_scram_sha_256_and_plain_work_too(kcat, topics, mechanism):
    topic = topics()
    r = _produce(kcat, "shipper", topic, [mechanism], mechanism=mechanism)
    assert r.returncode == 0, r.stderr
    assert _read_all(kcat, topic) == [mechanism]


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_a_wrong_password_is_refused(kcat, secure_kafka, mechanism):
    r = kcat("shipper", "-L", mechanism=mechanism, password=secure_kafka.password("shipper") + "x")
    assert r.returncode != 0
    assert "Authentication failed" in r.stderr, r.stderr
    assert "Metadata for" not in r.stdout
    ok = kcat("shipper", "-L", mechanism=mechanism)  # and the right one is taken
    assert ok.returncode == 0 and "Metadata for" in ok.stdout, ok.stderr


def test_mutual_tls_takes_the_certificates_name(kcat, topics):
    topic = topics()
    r = _produce(kcat, "shipper", topic, ["by certificate"], via="mtls")
    assert r.returncode == 0, r.stderr
    assert _read_all(kcat, topic) == ["by certificate"]
    r = _produce(kcat, "nobody", topic, ["no"], via="mtls")  # CN=nobody: authenticated, allowed nothing
    assert r.returncode != 0 and AUTHZ in r.stderr.lower(), r.stderr
    r = kcat(None, "-L", via="mtls")  # no certificate at all: the handshake fails
    assert r.returncode != 0 and "Metadata for" not in r.stdout
    assert "certificate" in r.stderr, r.stderr
    assert _read_all(kcat, topic) == ["by certificate"]


@pytest.mark.parametrize("port", ["plaintext", "plaintext-tls"])
def test_a_plaintext_client_gets_nothing(kcat, port):
    r = kcat(None, "-L", "-m", "2", via=port)
    assert r.returncode != 0
    assert "Metadata for" not in r.stdout and "mulog_fleet" not in r.stdout


def test_mtga_consumes_with_its_group_and_nobody_cannot(kcat, secure_kafka, topics):
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    topic = topics()
    assert _produce(kcat, "shipper", topic, ["a", "b", "c"]).returncode == 0
    group = f"g-{topic}"
    r = kcat("mtga", "-G", group, "-X", "auto.offset.reset=earliest", "-c", "3", "-f", "%s\n", topic)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == ["a", "b", "c"]
    # mtga reads its group's offsets (what `mtga offsets` asks) with its own rights
    admin = AdminClient(secure_kafka.client_conf("mtga"))
    got = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])])
    assert [tp.offset for tp in got[group].result(timeout=30).topic_partitions] == [3]

    r = kcat("nobody", "-G", group, "-X", "auto.offset.reset=earliest", "-c", "3", topic, mechanism="PLAIN")
    assert r.returncode != 0 and "Group authorization failed" in r.stderr, r.stderr
    r = kcat("nobody", "-C", "-t", topic, "-o", "beginning", "-e", mechanism="PLAIN")
    assert r.returncode != 0 and AUTHZ in r.stderr.lower(), r.stderr
    r = kcat("mtga", "-G", f"other-{topic}", "-c", "1", topic, mechanism="PLAIN")  # not mtga's group
    assert r.returncode != 0 and "Group authorization failed" in r.stderr, r.stderr


def test_an_acl_granted_later_lets_a_client_go_on_and_a_revoked_one_stops_it(kcat, secure_kafka, topics):
    topic = topics("other")
    assert AUTHZ in _produce(kcat, "shipper", topic, ["before"]).stderr.lower()
    secure_kafka.grant("shipper", "topic", topic, ["WRITE", "DESCRIBE"])
    r = _produce(kcat, "shipper", topic, ["after"])
    assert r.returncode == 0, r.stderr
    secure_kafka.revoke("User:shipper", "topic", topic, ["WRITE", "DESCRIBE"])
    r = _produce(kcat, "shipper", topic, ["revoked"])
    assert r.returncode != 0 and AUTHZ in r.stderr.lower(), r.stderr
    assert _read_all(kcat, topic) == ["after"]


def test_the_secrets_are_private_and_never_printed(secure_kafka):
    d = secure_kafka.dir
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for user in ("admin", "shipper", "mtga", "nobody"):
        assert stat.S_IMODE(secure_kafka.password_file(user).stat().st_mode) == 0o600
    for user in ("shipper", "mtga", "nobody"):
        assert stat.S_IMODE(secure_kafka.key(user).stat().st_mode) == 0o600
        assert secure_kafka.certificate(user).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert stat.S_IMODE((secure_kafka.home / "node-1" / "server.properties").stat().st_mode) == 0o600

    # `start --secure` again reuses the broker and prints the settings, and `status` says it is secured
    env = dict(os.environ, PYTHONPATH=str(REPO))
    start = subprocess.run([sys.executable, "-m", "kafkalocal", "--home", str(secure_kafka.home), "start", "--secure"],
                           capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert start.returncode == 0, start.stderr
    assert start.stdout.splitlines()[-1] == secure_kafka.sasl_bootstrap
    assert "reusing" in start.stderr
    for user in ("admin", "shipper", "mtga", "nobody"):
        assert secure_kafka.password(user) not in start.stdout + start.stderr
    assert f'sasl.password: "${{file:{secure_kafka.password_file("shipper")}}}"' in start.stdout
    assert f'ssl.key.location: "{secure_kafka.key("mtga")}"' in start.stdout
    status = subprocess.run([sys.executable, "-m", "kafkalocal", "--home", str(secure_kafka.home), "status"],
                            capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
    assert status.returncode == 0 and f"mutual TLS at {secure_kafka.tls_bootstrap}" in status.stdout

    doc = json.loads((d / "clients.json").read_text())
    assert doc["bootstrap"] == {"sasl_ssl": secure_kafka.sasl_bootstrap, "ssl": secure_kafka.tls_bootstrap}
    assert doc["clients"]["mtga"]["sasl"] == secure_kafka.connection("mtga")
    assert secure_kafka.password("mtga") not in json.dumps(doc)


def test_kafkas_tools_run_as_the_admin(secure_kafka):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "kafkalocal", "--home", str(secure_kafka.home), "topics", "--list"],
                       capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert r.returncode == 0, r.stderr
    assert "mulog_fleet" in r.stdout.split()


def test_a_plaintext_start_is_refused_while_the_secured_broker_runs(secure_kafka):
    import kafkalocal

    with pytest.raises(kafkalocal.KafkaLocalError, match="secured cluster already runs"):
        kafkalocal.Cluster(secure_kafka.home).start()
