"""Shared fixtures: one real Kafka broker per test session, started by
kafkalocal (the same code as `scripts/kafka-local start`), unless
KAFKA_BOOTSTRAP_SERVERS points at one already; file systems of a test's own.

Every test that needs a broker carries the ``kafka`` marker, so that
``pytest -m "not kafka"`` runs without one: a test that uses a broker fixture
without the marker stops the run at collection, one that starts a broker
(kafkalocal.Cluster.start) fails."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

import kafkalocal
from support.cli import REPO
from support.disks import PrivateExt4, SmallDisk

# A broker given from outside is read here once and taken out of the environment:
# the programs the tests start must use the servers their test configured (some
# tests run brokers of their own), as they would without the variable.
EXTERNAL_BOOTSTRAP = os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", "").strip()


BROKER_FIXTURES = frozenset(("kafka", "kafka_cluster", "topic_factory", "secure_kafka"))


def pytest_collection_modifyitems(config, items):
    """A test that uses a broker fixture must say so with the ``kafka`` marker (so that
    ``pytest -m "not kafka"`` runs without one): the run stops at collection otherwise."""
    unmarked = [it.nodeid for it in items
                if BROKER_FIXTURES & set(getattr(it, "fixturenames", ())) and it.get_closest_marker("kafka") is None]
    if unmarked:
        raise pytest.UsageError("tests that use a Kafka broker without the kafka marker (add "
                                "pytestmark = pytest.mark.kafka):\n  " + "\n  ".join(unmarked))


@pytest.fixture(autouse=True)
def _brokers_only_for_kafka_tests(request, monkeypatch):
    """A broker started by a test (kafkalocal.Cluster) also needs the kafka marker."""
    if request.node.get_closest_marker("kafka") is None:
        def refused(*_a, **_k):
            raise pytest.UsageError(f"{request.node.nodeid} starts a Kafka broker without the kafka marker")

        monkeypatch.setattr(kafkalocal.Cluster, "start", refused)


@pytest.fixture(scope="session")
def kafka_cluster(request):
    """The local cluster object (None when KAFKA_BOOTSTRAP_SERVERS is given)."""
    if EXTERNAL_BOOTSTRAP:
        yield None
        return
    capman = request.config.pluginmanager.getplugin("capturemanager")
    # KAFKA_LOCAL_HOME lets two suites run side by side, each with its own broker
    cl = kafkalocal.Cluster(os.environ.get("KAFKA_LOCAL_HOME") or (REPO / ".kafka-local" / "pytest"))
    with capman.global_and_fixture_disabled():  # the broker's start-up lines belong in the log
        print()
        try:
            cl.start(brokers=1)
        except kafkalocal.KafkaLocalError as e:
            pytest.exit(f"cannot start the local Kafka broker: {e}", returncode=3)
    yield cl
    cl.stop()


@pytest.fixture(scope="session")
def kafka(kafka_cluster) -> str:
    """Bootstrap address of the session's broker."""
    if kafka_cluster is None:
        return EXTERNAL_BOOTSTRAP
    return kafka_cluster.bootstrap()


@pytest.fixture(scope="session")
def secure_kafka(request):
    """A secured broker of the session's own (``kafka-local start --secure``, in the
    suite's home + ``-secure``): a kafkalocal.secure.Secured, with ``sasl_bootstrap``,
    ``tls_bootstrap``, ``ca``, ``password_file(user)``, ``certificate(user)``,
    ``key(user)``, ``connection(user, via, mechanism)`` (a program's
    ``kafka.connection``), ``client_conf(...)``, ``admin_conf()``, ``create_topic(name)``,
    ``grant(...)`` and ``revoke(...)``. Users: admin (super user), shipper, mtga and
    nobody (no ACL); the ACLs allow topics named ``mulog_*``, groups ``mtga*`` and ``g-*``."""
    from kafkalocal.secure import Secured

    capman = request.config.pluginmanager.getplugin("capturemanager")
    home = (os.environ.get("KAFKA_LOCAL_HOME") or str(REPO / ".kafka-local" / "pytest")) + "-secure"
    cl = kafkalocal.Cluster(home)
    with capman.global_and_fixture_disabled():
        print()
        try:
            cl.start(brokers=1, secure=True)
        except kafkalocal.KafkaLocalError as e:
            pytest.exit(f"cannot start the secured local Kafka broker: {e}", returncode=3)
    yield Secured.load(home)
    cl.stop()


@pytest.fixture
def topic_factory(kafka):
    """Create a fresh topic: ``topic_factory(partitions=3) -> name``."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka})
    made = []

    def make(partitions: int = 3, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        fut = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        fut[name].result(timeout=30)
        made.append(name)
        return name

    yield make
    if made:
        for f in admin.delete_topics(made).values():
            try:
                f.result(timeout=30)
            except Exception:
                pass


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(name, size)`` mounts a tmpfs of ``size`` at tmp_path/name."""
    disks = []

    def make(name: str, size: str) -> SmallDisk:
        d = SmallDisk(tmp_path / name, size)
        disks.append(d)
        return d

    yield make
    for d in disks:
        d.umount()


@pytest.fixture
def private_fs(tmp_path):
    """``private_fs(name, size="64m")`` mounts a file system of its own (ext4 on a
    loop device) at tmp_path/name, for tests that need to know which inode a new
    file gets."""
    made = []

    def make(name: str, size: str = "64m") -> PrivateExt4:
        fs = PrivateExt4(tmp_path / f"{name}.ext4", tmp_path / name, size)
        made.append(fs)
        return fs

    yield make
    for fs in made:
        fs.umount()


@pytest.fixture
def refused_port():
    """A port on 127.0.0.1 where a connection is refused for the whole test: bound
    by this process and never listened on, so no other process can take it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]
