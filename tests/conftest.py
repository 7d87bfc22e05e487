"""Shared fixtures: one real Kafka broker per test session, started by
kafkalocal (the same code as `scripts/kafka-local start`), unless
KAFKA_BOOTSTRAP_SERVERS points at one already."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import kafkalocal  # noqa: E402

# A broker given from outside is read here once and taken out of the environment:
# the programs the tests start must use the servers their test configured (some
# tests run brokers of their own), as they would without the variable.
EXTERNAL_BOOTSTRAP = os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", "").strip()


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


def run_cli(*args: str, env: dict | None = None, timeout: float = 60, input: str | None = None):
    """Run a console script of this project as a real process.

    ``env`` entries override the environment; a value of None removes the variable.
    """
    e = dict(os.environ)
    # this tree's code, whatever checkout the virtualenv's editable install points at
    e["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO), e.get("PYTHONPATH")) if x)
    for k, v in (env or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    exe = Path(sys.executable).parent / args[0]
    return subprocess.run([str(exe), *args[1:]], capture_output=True, text=True, timeout=timeout, env=e,
                          input=input)


class SmallDisk:
    """A size-limited tmpfs mounted on ``path`` (needs root, as on the CI machines)."""

    def __init__(self, path: Path, size: str):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(self.path)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail(f"cannot mount a tmpfs for the disk-full test (root needed): {r.stderr.strip()}")

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def umount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


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


def _system_tool(name: str) -> str:
    exe = shutil.which(name, path=os.pathsep.join((os.environ.get("PATH", ""), "/usr/sbin", "/sbin")))
    if exe is None:
        pytest.fail(f"{name} is missing (Debian package e2fsprogs)")
    return exe


class PrivateExt4:
    """A small ext4 file system of its own on ``path``: an image file made with
    mkfs.ext4 and loop-mounted (needs root, as on the CI machines). No other
    process makes files on it, so what ext4 hands out there is up to the test:
    a new file in a folder gets the lowest free inode of the folder's group, and
    a file deleted (and closed by every process) gives its inode to the next file
    made in its folder. (A tmpfs does not: it numbers its inodes on and on.)"""

    def __init__(self, image: Path, path: Path, size: str):
        self.image, self.path = Path(image), Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.image, "wb") as f:
            f.truncate(_bytes(size))
        # with its journal (the default): without one, ext4 holds back inodes freed moments ago
        r = subprocess.run([_system_tool("mkfs.ext4"), "-q", "-F", "-m", "0", str(self.image)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail(f"mkfs.ext4 failed: {r.stderr.strip()}")
        r = subprocess.run(["mount", "-t", "ext4", "-o", "loop", str(self.image), str(self.path)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail(f"cannot loop-mount an ext4 image for the test (root needed): {r.stderr.strip()}")

    def umount(self) -> None:
        if subprocess.run(["umount", str(self.path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)  # the loop device goes with it
        self.image.unlink(missing_ok=True)


def _bytes(size: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    return int(size[:-1]) * units[size[-1].lower()] if size[-1].lower() in units else int(size)


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
