"""A real Apache Kafka broker (KRaft) on 127.0.0.1, fetched from Maven Central.

Used by `scripts/kafka-local`, by the test suite, by `make demo` and by the
benchmarks: all of them start the broker through this module.

The broker jars (org.apache.kafka:kafka_2.13 and its runtime dependencies) are
copied by Maven (scripts/kafka/pom.xml) into a cache outside git:
``$KAFKA_LOCAL_CACHE`` or ``~/.cache/mulog/kafka/<version>``.

Runtime files live in a home folder (``$KAFKA_LOCAL_HOME`` or ``.kafka-local``
in the repository): ``bootstrap`` (the bootstrap address), ``cluster.json``
(pids and ports), and one ``node-<id>/`` folder per broker with its
``server.properties``, data and ``server.log``.

``start --brokers N`` runs N combined broker+controller nodes (one KRaft
quorum of N voters), each with its own listener and controller ports and data
folder; topics are created with replication factor min(3, N) and, from three
nodes on, ``min.insync.replicas=2``. Kafka's own ``kafka-consumer-groups`` and
``kafka-topics`` run from the same jars plus ``kafka-tools`` (fetched on first
use into ``<cache>/tools``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
POM = HERE / "kafka" / "pom.xml"
LOG4J = HERE / "kafka" / "log4j2.properties"
KAFKA_VERSION = os.environ.get("KAFKA_LOCAL_VERSION", "4.1.1")
MAVEN_CENTRAL = "https://repo1.maven.org/maven2/"

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


class KafkaLocalError(Exception):
    """A failure with a message meant for the user (no traceback)."""


def log(msg: str) -> None:
    print(f"kafka-local: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- jars


def cache_dir() -> Path:
    base = os.environ.get("KAFKA_LOCAL_CACHE")
    if base:
        return Path(base).expanduser() / KAFKA_VERSION
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "mulog" / "kafka" / KAFKA_VERSION


def ensure_jars() -> Path:
    """Return the folder of broker jars, fetching them with Maven when missing."""
    libs = cache_dir() / "libs"
    done = cache_dir() / ".complete"
    if done.exists() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    if shutil.which("mvn") is None:
        raise KafkaLocalError("Maven (mvn) is not installed; it is needed to fetch the Kafka broker jars")
    if shutil.which("java") is None:
        raise KafkaLocalError("java is not installed; the Kafka broker needs Java 17 or newer")
    log(f"fetching Apache Kafka {KAFKA_VERSION} (org.apache.kafka:kafka_2.13) from Maven Central into {libs}")
    tmp = cache_dir() / "libs.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mvn", "-B", "-q", "-f", str(POM), "package",
        f"-Dkafka.version={KAFKA_VERSION}", f"-Dkafka.libdir={tmp}",
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        reach = "reachable" if _reachable("repo1.maven.org", 443) else "NOT reachable"
        raise KafkaLocalError(
            f"could not fetch the Kafka broker from Maven Central ({MAVEN_CENTRAL} is {reach} "
            f"from this machine); Maven said:\n{tail}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    done.write_text(KAFKA_VERSION + "\n")
    n = len(list(libs.glob("*.jar")))
    log(f"fetched {n} jars from Maven Central in {time.monotonic() - t0:.1f}s")
    return libs


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


def tools_dir() -> Path:
    return cache_dir() / "tools"


def ensure_tools() -> Path:
    """Return the folder holding Kafka's command-line tools jar (kafka-tools), fetching
    it with Maven when missing. Its dependencies are the broker's jars (ensure_jars)."""
    ensure_jars()
    d = tools_dir()
    if any(d.glob("kafka-tools-*.jar")):
        return d
    if shutil.which("mvn") is None:
        raise KafkaLocalError("Maven (mvn) is not installed; it is needed to fetch Kafka's tools jar")
    log(f"fetching org.apache.kafka:kafka-tools:{KAFKA_VERSION} from Maven Central into {d}")
    tmp = cache_dir() / "tools.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = ["mvn", "-B", "-q", "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
           f"-Dartifact=org.apache.kafka:kafka-tools:{KAFKA_VERSION}", f"-DoutputDirectory={tmp}"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0 or not any(tmp.glob("kafka-tools-*.jar")):
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise KafkaLocalError(f"could not fetch kafka-tools from Maven Central; Maven said:\n{tail}")
    shutil.rmtree(d, ignore_errors=True)
    tmp.rename(d)
    return d


TOOLS = {
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "topics": "org.apache.kafka.tools.TopicCommand",
}


def tool_command(tool: str, *args: str) -> list[str]:
    """The java command line of one of Kafka's tools (as kafka-<tool>.sh runs it)."""
    libs = ensure_jars()
    tools = ensure_tools()
    return ["java", "-Xmx256m", "-Djava.awt.headless=true", "-cp", f"{libs / '*'}:{tools / '*'}",
            TOOLS[tool], *args]


# ------------------------------------------------------------------------ cluster


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for the ports it picks itself (a connection's local port,
    a bind to port 0): net.ipv4.ip_local_port_range."""
    try:
        lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A port on 127.0.0.1 that nothing uses now, for a broker or a program to
    listen on a moment later. It is chosen outside the kernel's ephemeral range:
    a port from that range, free now, may become the local port of any process's
    next connection before the listener binds it (seconds, for a broker), and
    on a busy machine that happens."""
    lo, hi = _ephemeral_ports()
    pool = [p for p in range(max(1024, lo - 12000), lo)] + [p for p in range(hi + 1, 65536)]
    rnd = random.SystemRandom()
    for _ in range(100):
        p = rnd.choice(pool)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
            return p
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # a crowded machine: any free port
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    """Whether the broker can listen on ``port``. It binds with SO_REUSEADDR (Java's
    default), so the check does too: a port held only by TIME_WAIT connections (those
    of a broker that just stopped) is free, one that something listens on is not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _distinct_ports(brokers: int, first: int | None = None) -> list[tuple[int, int]]:
    """(listener port, controller port) per node, all distinct: ``first``,
    ``first+1``, ... for the listeners when given, free ports otherwise."""
    used: set[int] = set()
    listeners = []
    for i in range(brokers):
        if first:
            p = first + i
            if not _port_free(p):
                raise KafkaLocalError(f"port {p} on 127.0.0.1 is in use")
        else:
            p = free_port()
            while p in used:
                p = free_port()
        used.add(p)
        listeners.append(p)
    out = []
    for p in listeners:
        cp = free_port()
        while cp in used:
            cp = free_port()
        used.add(cp)
        out.append((p, cp))
    return out


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

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class State:
    version: str
    cluster_id: str
    nodes: list[Node] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)


def default_home() -> Path:
    return Path(os.environ.get("KAFKA_LOCAL_HOME") or (REPO / ".kafka-local")).resolve()


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
        return State(raw["version"], raw["cluster_id"], [Node(**n) for n in raw["nodes"]])

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
    def start(self, brokers: int = 1, port: int | None = None) -> State:
        st = self.running()
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
                 for i, (p, cp) in enumerate(_distinct_ports(brokers, port))]
        # Kafka's own form (base64url of a UUID); it may begin with "-", hence --cluster-id=ID below
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        st = State(KAFKA_VERSION, cluster_id, nodes)
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
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise KafkaLocalError(f"formatting KRaft storage of node {n.id} failed:\n{proc.stdout[-2000:]}")

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
                    admin = AdminClient({"bootstrap.servers": n.address, "log_level": 0,
                                         "logger": _quiet_logger()})
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


# ---------------------------------------------------------------------------- cli


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kafka-local", description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", help="runtime folder (default $KAFKA_LOCAL_HOME or .kafka-local)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="start (or reuse) the local broker; prints the bootstrap address last")
    s.add_argument("--port", type=int, help="listener port (default: a free one)")
    s.add_argument("--brokers", type=int, default=1, help="number of brokers (default 1)")
    sub.add_parser("stop", help="stop the local broker(s) and remove their data")
    sub.add_parser("status", help="say whether it runs and where, node by node")
    sub.add_parser("fetch", help="only fetch the broker and tools jars from Maven Central")
    for tool in TOOLS:
        t = sub.add_parser(tool, help=f"run Kafka's kafka-{tool} tool (--bootstrap-server defaults to this cluster)")
        t.add_argument("args", nargs="*", help=f"arguments of kafka-{tool}, e.g. --describe --group mtga")
    argv = list(sys.argv[1:] if argv is None else argv)
    # a tool's own arguments go to it verbatim, in their order
    at = next((i for i, a in enumerate(argv) if a in TOOLS and (i == 0 or argv[i - 1] != "--home")), None)
    tool_args = argv[at + 1:] if at is not None else []
    args = ap.parse_args(argv[:at + 1] if at is not None else argv)
    cl = Cluster(args.home)
    try:
        if args.cmd == "start":
            st = cl.start(brokers=args.brokers, port=args.port)
            print(st.bootstrap)
        elif args.cmd == "stop":
            if cl.stop():
                print("stopped")
            else:
                print("not running")
        elif args.cmd == "status":
            st = cl.running()
            nodes = cl.nodes_alive()
            if st:
                pids = ",".join(str(n.pid) for n in st.nodes)
                print(f"running: {len(st.nodes)} broker(s) at {st.bootstrap} (pids {pids}, Kafka {st.version})")
            elif any(up for _, up in nodes):
                down = [n.id for n, up in nodes if not up]
                print(f"partly running: {len(nodes) - len(down)} of {len(nodes)} broker(s); "
                      f"node(s) {','.join(map(str, down))} down ('start --brokers {len(nodes)}' restarts them)")
            else:
                print("not running")
                return 1
            if len(nodes) > 1 or not st:
                for n, up in nodes:
                    print(f"  node {n.id}: {n.address} (controller port {n.controller_port}) "
                          f"{'pid ' + str(n.pid) if up else 'DOWN'}, data {cl.node_dir(n.id) / 'data'}")
            return 0 if st else 2
        elif args.cmd == "fetch":
            print(ensure_jars())
            print(ensure_tools())
        elif args.cmd in TOOLS:
            rest = tool_args[1:] if tool_args[:1] == ["--"] else tool_args
            if "--bootstrap-server" not in rest and not any(a.startswith("--bootstrap-server=") for a in rest):
                alive = [n.address for n, up in cl.nodes_alive() if up]  # a node down is what one often looks into
                if not alive:
                    raise KafkaLocalError(f"no local Kafka runs from {cl.home}")
                rest = ["--bootstrap-server", ",".join(alive), *rest]
            return subprocess.call(tool_command(args.cmd, *rest))
    except KafkaLocalError as e:
        log(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
