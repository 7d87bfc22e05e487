"""A local KRaft cluster: one or more combined broker+controller nodes, their
runtime folder, start, readiness, stop.

Runtime files live in a home folder (``$KAFKA_LOCAL_HOME``, else ``.kafka-local``
in the current folder): ``bootstrap`` (the bootstrap address), ``cluster.json``
(pids and ports), and one ``node-<id>/`` folder per broker with its
``server.properties``, data and ``server.log``."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kafkalocal import secure as sec
from kafkalocal.common import KAFKA_VERSION, LOG4J, KafkaLocalError, log
from kafkalocal.jars import cache_dir, ensure_jars
from kafkalocal.ports import distinct_ports

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


def _start_ticks(pid: int) -> int:
    """When process ``pid`` started, in clock ticks after boot (0 when it is gone):
    with the pid, it names one process, as a pid alone does not once it is reused."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def _runs_with(pid: int, arg: str) -> bool:
    """Whether process ``pid`` was started with ``arg`` among its arguments."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return arg.encode() in f.read().split(b"\0")
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours is not alive
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


@dataclass
class Node:
    id: int
    port: int
    controller_port: int
    pid: int = 0
    started: int = 0  # the process's start time (_start_ticks), which tells it from a later one with its pid
    tls_port: int = 0  # a secured node's mutual-TLS listener (``port`` is then its SASL_SSL one)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class State:
    version: str
    cluster_id: str
    nodes: list[Node] = field(default_factory=list)
    secure: bool = False  # TLS, SASL users and ACLs (kafkalocal/secure.py)

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)


def default_home() -> Path:
    return Path(os.environ.get("KAFKA_LOCAL_HOME") or ".kafka-local").resolve()


class Cluster:
    """A local KRaft cluster of one or more combined broker+controller nodes."""

    def __init__(self, home: Path | str | None = None):
        self.home = Path(home).resolve() if home else default_home()

    # state file -------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.home / "cluster.json"

    def load(self) -> State | None:
        try:
            raw = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return State(raw["version"], raw["cluster_id"], [Node(**n) for n in raw["nodes"]], raw.get("secure", False))

    def save(self, st: State) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(st), indent=1))
        tmp.replace(self.state_file)
        (self.home / "bootstrap").write_text(st.bootstrap + "\n")

    def node_dir(self, node_id: int) -> Path:
        return self.home / f"node-{node_id}"

    def _runs(self, n: Node) -> bool:
        """Whether node ``n``'s saved pid is its broker, alive. Once the broker is gone
        (killed, crashed, the machine restarted) its pid may be given to any other
        process, which is neither this node nor to be signalled. (A state saved
        without the start time: the broker's command line names the node's file.)"""
        if not (n.pid and _alive(n.pid)):
            return False
        if n.started:
            return _start_ticks(n.pid) == n.started
        return _runs_with(n.pid, str(self.node_dir(n.id) / "server.properties"))

    # queries ----------------------------------------------------------------
    def running(self) -> State | None:
        """The saved state if every node's process is alive, else None."""
        st = self.load()
        if st and st.nodes and all(self._runs(n) for n in st.nodes):
            return st
        return None

    def bootstrap(self) -> str:
        st = self.running()
        if not st:
            raise KafkaLocalError(f"no local Kafka runs from {self.home}")
        return st.bootstrap

    # start ------------------------------------------------------------------
    def start(self, brokers: int = 1, port: int | None = None, secure: bool = False) -> State:
        if secure and brokers != 1:
            raise KafkaLocalError("--secure starts one broker")
        st = self.running()
        if st and st.secure != secure:
            raise KafkaLocalError(f"a {'secured' if st.secure else 'plaintext'} cluster already runs at "
                                  f"{st.bootstrap}; stop it first")
        if st:
            if len(st.nodes) != brokers:
                raise KafkaLocalError(
                    f"a {len(st.nodes)}-broker cluster already runs at {st.bootstrap}; "
                    f"stop it first to start {brokers}"
                )
            if self.wait_ready(st, timeout=15):
                log(f"reusing the running broker(s) at {st.bootstrap}")
                return st
            raise KafkaLocalError(f"processes run for {st.bootstrap} but the cluster does not answer")
        st = self.load()
        if st and any(self._runs(n) for n in st.nodes):
            if len(st.nodes) != brokers:
                raise KafkaLocalError(
                    f"a {len(st.nodes)}-broker cluster partly runs at {st.bootstrap}; stop it first to start {brokers}"
                )
            return self._restart_missing(st)
        if brokers < 1:
            raise KafkaLocalError(f"--brokers: expected at least 1, got {brokers}")
        self._cleanup_stale()
        libs = ensure_jars()
        nodes = [Node(id=i + 1, port=p, controller_port=cp)
                 for i, (p, cp) in enumerate(distinct_ports(brokers, port))]
        if secure:
            sec.prepare(self.home)
            nodes[0].tls_port = sec.pick_tls_port({nodes[0].port, nodes[0].controller_port})
        # Kafka's own form (base64url of a UUID); it may begin with "-", hence --cluster-id=ID below
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        st = State(KAFKA_VERSION, cluster_id, nodes, secure)
        t0 = time.monotonic()
        for n in nodes:
            self._write_properties(st, n)
            self._format(libs, st, n)
        for n in nodes:
            n.pid, n.started = self._spawn(libs, n)
        self.save(st)
        if not self.wait_ready(st, timeout=START_TIMEOUT_S):
            tails = "\n".join(self._log_tail(n) for n in nodes)
            self.stop()
            raise KafkaLocalError(f"the broker did not answer within {START_TIMEOUT_S:.0f}s\n{tails}")
        if secure:
            try:
                sec.after_start(self.home, st.bootstrap, f"127.0.0.1:{nodes[0].tls_port}")
            except Exception:
                self.stop()
                raise
        log(f"{brokers} broker(s) ready at {st.bootstrap} in {time.monotonic() - t0:.1f}s "
            f"(Apache Kafka {KAFKA_VERSION}, jars from {libs})")
        return st

    def _restart_missing(self, st: State) -> State:
        """Some nodes of the cluster run and others died: start the dead ones again
        on their ports and data (a cluster is never wiped while part of it runs)."""
        dead = [n.id for n in st.nodes if not self._runs(n)]
        log(f"node(s) {', '.join(map(str, dead))} of the cluster at {st.bootstrap} are not running; starting them")
        for node_id in dead:
            self.start_node(node_id, wait=False)
        st = self.load()
        if not self.wait_ready(st, timeout=START_TIMEOUT_S):
            tails = "\n".join(self._log_tail(n) for n in st.nodes if n.id in dead)
            raise KafkaLocalError(f"node(s) {dead} did not come back within {START_TIMEOUT_S:.0f}s\n{tails}")
        log(f"{len(st.nodes)} broker(s) ready at {st.bootstrap}")
        return st

    def nodes_alive(self) -> list[tuple[Node, bool]]:
        """Every node of the saved cluster with whether its process runs."""
        st = self.load()
        return [(n, self._runs(n)) for n in (st.nodes if st else [])]

    def _cleanup_stale(self) -> None:
        st = self.load()
        if st:
            for n in st.nodes:
                if self._runs(n):
                    _terminate(n.pid)
        for d in self.home.glob("node-*"):
            shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(sec.secure_dir(self.home), ignore_errors=True)  # a secured cluster's secrets

    def _write_properties(self, st: State, n: Node) -> None:
        d = self.node_dir(n.id)
        (d / "data").mkdir(parents=True, exist_ok=True)
        rf = min(3, len(st.nodes))
        voters = ",".join(f"{m.id}@127.0.0.1:{m.controller_port}" for m in st.nodes)
        props = {
            "process.roles": "broker,controller",
            "node.id": n.id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{n.port},CONTROLLER://127.0.0.1:{n.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{n.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(d / "data"),
            # defaults suited to tests and demos
            "auto.create.topics.enable": "true",
            "num.partitions": 3,
            "default.replication.factor": rf,
            "min.insync.replicas": 2 if rf >= 3 else 1,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": 2 if rf >= 3 else 1,
            "group.initial.rebalance.delay.ms": 0,
            "log.segment.bytes": 16 * 1024 * 1024,
            "log.retention.hours": 24,
            "log.retention.check.interval.ms": 60000,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "message.max.bytes": 16 * 1024 * 1024,
            "replica.fetch.max.bytes": 16 * 1024 * 1024,
            "unclean.leader.election.enable": "false",
        }
        if st.secure:  # its passwords (PLAIN's users) are in the file: the owner's only
            props.update(sec.broker_properties(self.home, n.port, n.tls_port, n.controller_port))
            os.close(os.open(d / "server.properties", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        text = "".join(f"{k}={v}\n" for k, v in props.items())
        (d / "server.properties").write_text(text)

    def _java(self, libs: Path, main: str, *args: str, heap: str = "768m", logs: Path | None = None) -> list[str]:
        cmd = [
            "java", f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J}",
        ]
        if logs:
            cmd.append(f"-Dkafka.logs.dir={logs}")
        cmd += ["-cp", str(libs / "*"), main, *args]
        return cmd

    def _format(self, libs: Path, st: State, n: Node) -> None:
        d = self.node_dir(n.id)
        cmd = self._java(libs, "kafka.tools.StorageTool", "format", f"--cluster-id={st.cluster_id}",
                         "-c", str(d / "server.properties"), "--ignore-formatted", heap="256m", logs=d)
        if st.secure:
            cmd += sec.format_args(self.home)  # the SCRAM users
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            out = sec.redact(self.home, proc.stdout) if st.secure else proc.stdout
            raise KafkaLocalError(f"formatting KRaft storage of node {n.id} failed:\n{out[-2000:]}")

    def _spawn(self, libs: Path, n: Node) -> tuple[int, int]:
        """Starts node ``n``'s broker: (pid, start time)."""
        d = self.node_dir(n.id)
        out = open(d / "stdout.log", "ab")
        cmd = self._java(libs, "kafka.Kafka", str(d / "server.properties"), logs=d)
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=str(d))
        out.close()
        return proc.pid, _start_ticks(proc.pid)

    def _log_tail(self, n: Node, lines: int = 20) -> str:
        parts = []
        for name in ("stdout.log", "server.log"):
            p = self.node_dir(n.id) / name
            if p.exists():
                parts.append(f"--- node {n.id} {name}:\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts)

    def wait_ready(self, st: State, timeout: float) -> bool:
        """Wait until every node answers a metadata request listing all brokers."""
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        want = {n.id for n in st.nodes}
        while time.monotonic() < deadline:
            if any(n.pid and not self._runs(n) for n in st.nodes):
                return False
            ok = True
            for n in st.nodes:
                try:
                    conf = sec.admin_conf(self.home, n.address) if st.secure else {"bootstrap.servers": n.address}
                    admin = AdminClient(dict(conf, log_level=0, logger=_quiet_logger()))
                    md = admin.list_topics(timeout=3)
                    if {b for b in md.brokers} != want or md.controller_id < 0:
                        ok = False
                except Exception:
                    ok = False
                if not ok:
                    break
            if ok:
                return True
            time.sleep(0.3)
        return False

    # node control, for fault tests ------------------------------------------
    def stop_node(self, node_id: int, sig: int = signal.SIGTERM, wait: bool = True) -> None:
        st = self.load()
        n = next(n for n in st.nodes if n.id == node_id)
        if self._runs(n):
            if sig == signal.SIGTERM:
                _terminate(n.pid)
            else:
                os.kill(n.pid, sig)
                if wait:
                    _wait_gone(n.pid, STOP_TIMEOUT_S)

    def start_node(self, node_id: int, wait: bool = True) -> None:
        st = self.load()
        n = next(n for n in st.nodes if n.id == node_id)
        if self._runs(n):
            return
        n.pid, n.started = self._spawn(cache_dir() / "libs", n)
        self.save(st)
        if wait and not self.wait_ready(st, timeout=START_TIMEOUT_S):
            raise KafkaLocalError(f"node {node_id} did not come back\n{self._log_tail(n)}")

    # stop -------------------------------------------------------------------
    def stop(self, keep_data: bool = False) -> bool:
        st = self.load()
        if not st:
            return False
        pids = [n.pid for n in st.nodes if self._runs(n)]
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        # one deadline for all: the last nodes of a quorum may wait for controllers already gone
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for pid in pids:
            if not _wait_gone(pid, max(0.1, deadline - time.monotonic())):
                log(f"pid {pid} did not stop in {STOP_TIMEOUT_S:.0f}s; killing it")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                _wait_gone(pid, 5)
        if not keep_data:
            for n in st.nodes:
                shutil.rmtree(self.node_dir(n.id), ignore_errors=True)
            for f in ("cluster.json", "bootstrap"):
                try:
                    (self.home / f).unlink()
                except FileNotFoundError:
                    pass
            shutil.rmtree(sec.secure_dir(self.home), ignore_errors=True)
        return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not _wait_gone(pid, STOP_TIMEOUT_S):
        log(f"pid {pid} did not stop in {STOP_TIMEOUT_S:.0f}s; killing it")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        _wait_gone(pid, 5)


def _quiet_logger():
    import logging

    lg = logging.getLogger("kafka-local.client")
    lg.addHandler(logging.NullHandler())
    lg.propagate = False
    return lg
