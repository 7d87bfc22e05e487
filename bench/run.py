#!/usr/bin/env python3
"""Benchmarks of shipper and mtga against their references, in one run.

    python bench/run.py [--quick] [--json] [--cases a,b,...]

Starts (or reuses) a local Kafka broker (``.kafka-local/bench``, or the one in
KAFKA_BOOTSTRAP_SERVERS), generates realistic data once (cached in bench/work/),
runs each case as real processes against the same broker and data, and prints a
table: case, items, seconds, rate, peak RSS, reference, ratio (this rate divided
by the reference's rate, measured in the same run). ``--json`` prints the same as
one JSON object on the last line of standard output. Full runs are saved to
bench/results/<UTC time>-<rev>.json and bench/results/latest.json; quick and
partial runs to bench/work/results/. What each case measures: see CASES below
and the README's "Benchmarks" section.

``--baseline REV`` runs the cases that run this project's code (CODE_CASES) also
on the code of the git revision REV, exported to bench/work/base-<sha>/, in the
same run, against the same broker and data, alternating base and this tree run by
run; the report gives both rates, both rates per CPU second and new / base.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "work"
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent

QUICK = {"events": 20_000, "lines": 50_000}
FULL = {"events": 1_000_000, "lines": 2_000_000}
DATA_VERSION = 2  # bump when the generated data changes shape (2: recent event times)
LINE_FIELDS = 11  # first fields of a sample event: about 200 bytes per line
POLL_S = 0.05
IDLE_WINDOW_S = 20.0  # shipper_idle_*: the idle window measured
IDLE_PROBES = 10  # shipper_idle_*: lines appended one by one to random files, each awaited in Kafka

# name -> (reference, what is measured); the order is the order of the table
CASES: dict[str, tuple[str | None, str]] = {
    "shipper": ("shipper_kcat",
                "`shipper tail` process on the N-line file (fresh state, from the beginning, fresh 3-partition "
                "topic): from spawn until its position store (read-only, checkpoint every 0.2 s) says "
                "delivered offset == file size"),
    "shipper_kcat": (None, "`kcat -P -z snappy -l FILE` into a fresh 3-partition topic: from spawn to exit "
                           "(kcat exits once every message is acknowledged)"),
    "shipper_kcat_headers": ("shipper_kcat",
                             "as shipper_kcat, but with the Kafka key and the six headers shipper sends (host, path, "
                             "file, offset, app_id, log_name; static values of the same sizes): what the message "
                             "format costs kcat (ratio = cost factor)"),
    "shipper_rsyslog": ("shipper_kcat",
                        "private `rsyslogd -n` with imfile + omkafka (snappy) on the same file, fresh 3-partition "
                        "topic: from spawn until the topic's high watermarks add up to N"),
    "shipper_otelcol": ("shipper_kcat",
                        "OpenTelemetry Collector (bench/peers/otelcol-filelog-kafka.yaml: filelog from the "
                        "beginning with file_storage -> batch -> kafka, raw body, snappy) on the same file, fresh "
                        "3-partition topic and storage dir: from spawn until the topic's high watermarks add up "
                        "to N. Its messages have no key and no headers (shipper sends a key and six headers: see "
                        "shipper_kcat_headers), and the value is the line as a JSON string (the raw encoding "
                        "sends only byte bodies as they are and JSON-serializes the receiver's string body: quoted, "
                        "its quotes escaped, 232 bytes for a 202-byte line)"),
    "shipper_idle_1000": (None, "`shipper tail` following 1,000 files of one line each, once all are in Kafka: "
                                "its CPU over IDLE_WINDOW_S seconds with nothing written (items = files; per CPU s "
                                "= files kept per CPU second), open descriptors, and the time from appending a line "
                                "to a random file to that line in Kafka (IDLE_PROBES appends)"),
    "shipper_idle_10000": (None, "as shipper_idle_1000 with 10,000 files"),
    "mtga": ("mtga_kcat_consume",
             "`mtga start` (workers=1, checkpoint.interval_s=0.5, batch_size 5000) on the pre-produced topic "
             "(3 partitions), fresh group and state: from the first output line until every partition's offset "
             "stored in RocksDB (read-only) equals its high watermark"),
    "mtga_kcat_consume": (None, "`kcat -C -e -o beginning` of the same topic into a file: from the first byte "
                                "written until kcat exits at the end of every partition (the read limit)"),
    "mtga_naive": ("mtga_kcat_consume",
                   "bench/naive.py: confluent-kafka consume(5000), json.loads, track dict, uuid5, json.dumps, "
                   "buffered write per app: from the first output byte until it exits after N events"),
    "mtga_2_workers": ("mtga", "as mtga with workers=2 (ratio = scaling factor)"),
    "mtga_shipped": ("mtga", "as mtga on the topic the shipper case filled: the N log lines, each with the "
                             "shipper's key and six headers (app 24, log_name log_item), as mtga meets them "
                             "behind shipper (ratio = per-event cost of that format against envelopes)"),
    "mtga_otelcol": ("mtga_kcat_consume",
                     "OpenTelemetry Collector (bench/peers/otelcol-kafka-file.yaml: kafka, fresh group, earliest, "
                     "text body -> batch -> file, OTLP JSON, one line per batch) on the pre-produced topic, no "
                     "transform: from spawn (group join included) until the file holds N log records (counted "
                     "by their \"body\" keys)"),
    "mtga_rsyslog": ("mtga_kcat_consume",
                     "private `rsyslogd -n` with imkafka (fresh group, earliest) -> omfile, each payload as it "
                     "came on a line of its own, no transform: from spawn (group join included) until the file "
                     "holds N lines"),
    "mtga_quix": ("mtga_kcat_consume",
                  "bench/peers/quix_app.py: a Quix Streams 3.28 application (fresh group, earliest) doing "
                  "bench/naive.py's transform (json.loads, track dict, uuid5, json.dumps) into one file through a "
                  "BatchingSink (written at each 5 s checkpoint): from spawn (group join included) until it exits "
                  "after N outputs; run with the Python of $QUIX_PYTHON or bench/work/peers/quix-venv"),
    "transform": ("transform_naive",
                  "sink.transform.Transformer(SettingsStore(dir).get).run_batch(items) on every envelope in "
                  "batches, no Kafka, one process: only the calls are timed"),
    "transform_2_workers": ("transform",
                            "sink.workers.Pool(dir, 2) on batches of 5,000 (two in flight, results grouped per app) "
                            "as mtga's loop drives it, no Kafka: wall time of the batches (ratio = scaling factor "
                            "of the workers without the broker sharing the cores)"),
    "transform_naive": (None, "bench/naive.py's naive_line on every envelope, no Kafka, one process: only the "
                              "calls are timed"),
}
# a second comparison reported as an extra field, e.g. shipper's "ratio_shipper_kcat_headers"
ALSO = {"shipper": "shipper_kcat_headers"}
# the cases that run this project's code, and so run on the baseline too (--baseline)
CODE_CASES = ("shipper", "shipper_idle_1000", "shipper_idle_10000", "mtga", "mtga_2_workers", "mtga_shipped",
              "transform", "transform_2_workers")
PACKAGES = ("mulog", "offsets", "shipper", "sink")  # the project's top-level packages
RUN_ORDER = ["transform_naive", "transform", "transform_2_workers", "shipper_kcat", "shipper_kcat_headers", "shipper", "shipper_rsyslog",
             "shipper_otelcol", "shipper_idle_1000", "shipper_idle_10000",
             "mtga_kcat_consume", "mtga", "mtga_2_workers", "mtga_shipped", "mtga_naive", "mtga_otelcol", "mtga_rsyslog",
             "mtga_quix"]
PEERS = HERE / "peers"  # the OpenTelemetry Collector peer: its builder manifest and configurations
OTELCOL_PLACES = (WORK / "peers" / "otelcol-peer", Path("/work/peers/otelcol/build/otelcol-peer"))
QUIX_VENV = WORK / "peers" / "quix-venv"  # Quix Streams pins its own confluent-kafka: a virtual environment of its own


class BenchError(Exception):
    """A failure with a message meant for the user (no traceback)."""


class Skip(Exception):
    """The case cannot run here; the message says why."""


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ processes


def _children(pid: int) -> list[int]:
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


TICK = os.sysconf("SC_CLK_TCK")


def _mem(pid: int) -> tuple[int, int]:
    """(resident bytes now, peak resident bytes since exec) of one process."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for ln in f:
                if ln.startswith(b"VmHWM:"):
                    hwm = int(ln.split()[1]) * 1024
                elif ln.startswith(b"VmRSS:"):
                    rss = int(ln.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


def _cpu(pid: int) -> float | None:
    """User + system seconds of one process (its own, not its children's)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            rest = f.read().rsplit(b") ", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / TICK
    except (OSError, ValueError, IndexError):
        return None


class ProcMonitor(threading.Thread):
    """Polls a process tree (the process and all its descendants) every ``every`` s.

    Memory: the peak is the larger of the tree's summed VmRSS at any sample and
    the largest VmHWM (the kernel's exact high-water mark since exec) of any one
    of its processes. (getrusage's ru_maxrss is no use here: it keeps the
    forking parent's high-water mark across exec.)
    CPU: the last user + system seconds seen of every process of the tree.
    """

    def __init__(self, pid: int, every: float = POLL_S):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak = 0
        self.cpu: dict[int, float] = {}
        self.done = threading.Event()

    def sample(self) -> None:
        total, top, todo, seen = 0, 0, [self.pid], set()
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            rss, hwm = _mem(p)
            total += rss
            top = max(top, hwm)
            c = _cpu(p)
            if c is not None:
                self.cpu[p] = max(c, self.cpu.get(p, 0.0))
            todo.extend(_children(p))
        self.peak = max(self.peak, total, top)

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.every)


class Proc:
    """A measured child process: reaped with wait4 for its own resource usage."""

    def __init__(self, cmd: list, log: Path | None = None, stdout=None, env: dict | None = None,
                 cwd: Path | None = None):
        self.cmd = [str(c) for c in cmd]
        self.log = log
        out = stdout if stdout is not None else open(log, "ab") if log else subprocess.DEVNULL
        self.t0 = time.monotonic()
        try:
            self.p = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=env, cwd=cwd, start_new_session=True)
        except OSError as e:
            raise BenchError(f"cannot run {self.cmd[0]}: {e.strerror}") from None
        finally:
            if stdout is None and log:
                out.close()
        self.pid = self.p.pid
        self.rc: int | None = None
        self.ended: float | None = None
        self.rusage = None
        self.mon = ProcMonitor(self.pid)
        self.mon.start()
        LIVE.add(self)

    def alive(self) -> bool:
        if self.rc is not None:
            return False
        pid, status, ru = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self._reaped(status, ru)
        return False

    def _reaped(self, status: int, ru) -> None:
        self.ended = time.monotonic()
        self.rc = os.waitstatus_to_exitcode(status)
        self.p.returncode = self.rc
        self.rusage = ru
        self.mon.done.set()
        LIVE.discard(self)

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.cmd, timeout)
            time.sleep(0.01)
        return self.rc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.wait(10)
        return self.rc

    @property
    def peak_rss_mb(self) -> float:
        return round(self.mon.peak / 2**20, 1)

    @property
    def cpu_s(self) -> float | None:
        """CPU seconds of the tree: the larger of two lower bounds, wait4's (the process and the
        descendants it reaped) and the polled sum (every process seen, up to its last sample)."""
        polled = sum(self.mon.cpu.values())
        waited = self.rusage.ru_utime + self.rusage.ru_stime if self.rusage is not None else 0.0
        return round(max(polled, waited), 3)

    def log_tail(self, n: int = 15) -> str:
        if not self.log or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


LIVE: set[Proc] = set()


# ------------------------------------------------------------------ data


def git_rev() -> tuple[str, bool]:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip() != ""
        return rev or "unknown", dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


class Code:
    """The project code a case runs: this tree's or the baseline's.

    ``env`` is None for this tree in a run without --baseline: the programs run as
    installed in this Python's environment, as they always did. Otherwise the tree
    comes first on PYTHONPATH (ahead of the editable install, for the programs and
    every process they start) and in BENCH_CODE (read by bench/transform_loop.py).
    """

    def __init__(self, side: str, root: Path, env: dict | None):
        self.side, self.root, self.env = side, root, env

    @classmethod
    def of(cls, side: str, root: Path) -> "Code":
        path = os.pathsep.join(x for x in (str(root), os.environ.get("PYTHONPATH", "")) if x)
        return cls(side, root, {"PYTHONPATH": path, "BENCH_CODE": str(root)})

    def check(self) -> None:
        """Each package imports from this tree with this environment, or BenchError."""
        names = [n for n in PACKAGES if (self.root / n / "__init__.py").exists()]
        if "sink" not in names:
            raise BenchError(f"{self.root} holds no sink package")
        code = ("import importlib, json, sys; "
                "print(json.dumps({n: importlib.import_module(n).__file__ for n in sys.argv[1:]}))")
        WORK.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=60,
                           cwd=WORK, env=dict(os.environ, **(self.env or {})))
        if r.returncode != 0:
            raise BenchError(f"the code of {self.root} does not import: {r.stderr.strip()[-500:]}")
        for name, file in json.loads(r.stdout.strip().splitlines()[-1]).items():
            if not Path(file).resolve().is_relative_to(self.root / name):
                raise BenchError(f"{name} imports from {file}, not from {self.root}")


def export_rev(rev: str) -> tuple[str, Path]:
    """(full sha, folder) of git revision ``rev`` of this repository, exported once
    (``git archive``) to bench/work/base-<sha>/ and kept for later runs."""
    try:
        r = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=REPO,
                           capture_output=True, text=True, timeout=30)
    except OSError as e:
        raise BenchError(f"--baseline needs git: {e.strerror}") from None
    sha = r.stdout.strip()
    if r.returncode != 0 or not sha:
        raise BenchError(f"--baseline {rev}: not a commit of the repository at {REPO}")
    root = WORK / f"base-{sha[:12]}"
    if (root / ".exported").exists():
        return sha, root
    tmp = WORK / f"base-{sha[:12]}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    tmp.mkdir(parents=True)
    archive = subprocess.Popen(["git", "archive", "--format=tar", sha], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", str(tmp)], stdin=archive.stdout, capture_output=True)
    archive.stdout.close()
    err = archive.stderr.read().decode(errors="replace")
    if archive.wait() != 0 or untar.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BenchError(f"cannot export {rev} ({sha[:12]}): {err.strip() or untar.stderr.decode(errors='replace')}")
    (tmp / ".exported").write_text(sha + "\n")
    tmp.rename(root)
    say(f"exported {rev} ({sha[:12]}) to {root.relative_to(REPO)}")
    return sha, root


def _generate(path: Path, lines) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    t0 = time.monotonic()
    with open(tmp, "wb") as f:
        for chunk in iter(lambda: list(itertools.islice(lines, 10_000)), []):
            f.write(b"\n".join(chunk) + b"\n")
    tmp.rename(path)
    say(f"generated {path.relative_to(REPO)} ({path.stat().st_size / 2**20:.0f} MB) in "
        f"{time.monotonic() - t0:.1f}s")
    return path


def envelopes_file(n: int) -> Path:
    """N envelopes over apps 24, 25, 26 and six log_names (about 35 fields each)."""
    from mulog import sample

    return _generate(WORK / "data" / f"envelopes-{n}-v{DATA_VERSION}.jsonl",
                     sample.envelopes(n, app_ids=(24, 25, 26), seed=7))


def lines_file(n: int) -> Path:
    """N log lines of about 200 bytes: sample events cut to their first LINE_FIELDS fields."""
    import random

    import msgspec

    from mulog import sample

    enc = msgspec.json.Encoder()

    def gen():
        rnd = random.Random(11)
        for i in range(n):
            ev = sample.event(rnd, i, "log_item")
            yield enc.encode(dict(itertools.islice(ev.items(), LINE_FIELDS)))

    return _generate(WORK / "data" / f"lines-{n}-v{DATA_VERSION}.log", gen())


def settings_dir(dst: Path, root: Path = REPO) -> Path:
    """conf/settings' files of app 24 in the tree ``root``, copied for apps 24, 25 and 26
    (each tree's own: a baseline's settings parser may not know a newer key)."""
    src = root / "conf" / "settings"
    dst.mkdir(parents=True, exist_ok=True)
    for kind in ("metadata", "filter"):
        f = src / f"{kind}.24.json"
        if f.exists():
            for app in (24, 25, 26):
                shutil.copyfile(f, dst / f"{kind}.{app}.json")
    if not (dst / "metadata.24.json").exists():
        raise BenchError(f"{src}/metadata.24.json is missing")
    return dst


# ------------------------------------------------------------------ kafka


class Kafka:
    def __init__(self, bootstrap: str):
        from confluent_kafka import Consumer
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap, "logger": quiet_logger()})
        self.wm = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks",
                            "logger": quiet_logger()})
        self.topics: list[str] = []
        try:
            self.admin.list_topics(timeout=15)
        except Exception as e:
            self.wm.close()
            raise BenchError(f"cannot reach Kafka at {bootstrap}: {e}") from None

    def topic(self, prefix: str, partitions: int = 3) -> str:
        from confluent_kafka.admin import NewTopic

        name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
        fut = self.admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        try:
            fut[name].result(timeout=30)
        except Exception as e:
            raise BenchError(f"cannot create topic {name} at {self.bootstrap}: {e}") from None
        self.topics.append(name)
        deadline = time.monotonic() + 30
        while len(self.partitions(name)) < partitions:  # metadata visible to clients
            if time.monotonic() > deadline:
                raise BenchError(f"topic {name} did not appear in the metadata")
            time.sleep(0.1)
        self.highs(name)  # every partition has a leader that answers
        return name

    def partitions(self, topic: str) -> list[int]:
        md = self.wm.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return []
        return sorted(t.partitions)

    def highs(self, topic: str, timeout: float = 30) -> dict[int, int]:
        """High watermark per partition (retried while leaders move, e.g. right after creation)."""
        from confluent_kafka import KafkaException, TopicPartition

        deadline = time.monotonic() + timeout
        while True:
            try:
                return {p: self.wm.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                        for p in self.partitions(topic)}
            except KafkaException as e:
                if time.monotonic() > deadline:
                    raise BenchError(f"cannot read the watermarks of {topic}: {e}") from None
                time.sleep(0.2)

    def total(self, topic: str) -> int:
        return sum(self.highs(topic).values())

    def produce_file(self, topic: str, path: Path, count: int) -> None:
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.bootstrap, "logger": quiet_logger(),
                      "linger.ms": 20, "compression.type": "snappy",
                      "enable.idempotence": True, "queue.buffering.max.messages": 500_000,
                      "batch.num.messages": 10_000})
        errors = []

        def dr(err, msg):
            if err is not None:
                errors.append(err)

        with open(path, "rb") as f:
            for line in itertools.islice(f, count):
                while True:
                    try:
                        p.produce(topic, line.rstrip(b"\n"), on_delivery=dr)
                        break
                    except BufferError:
                        p.poll(0.05)
                p.poll(0)
        if p.flush(300) or errors:
            raise BenchError(f"producing the events to {topic} failed: {errors[:1] or 'flush timed out'}")

    def cleanup(self) -> None:
        if self.topics:
            for f in self.admin.delete_topics(self.topics).values():
                try:
                    f.result(timeout=30)
                except Exception:
                    pass
            self.topics = []
        self.wm.close()


def quiet_logger():
    """librdkafka's own log lines (connection retries and such) stay out of the report."""
    import logging

    lg = logging.getLogger("bench.kafka")
    if not lg.handlers:
        lg.addHandler(logging.NullHandler())
        lg.propagate = False
    return lg


def start_broker() -> tuple[str, object]:
    """(bootstrap, cluster we started or None)."""
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        say(f"using the broker at {env} (KAFKA_BOOTSTRAP_SERVERS)")
        return env, None
    sys.path.insert(0, str(REPO / "scripts"))
    import kafka_local

    cl = kafka_local.Cluster(REPO / ".kafka-local" / "bench")
    was_running = cl.running() is not None
    try:
        st = cl.start(brokers=1)
    except kafka_local.KafkaLocalError as e:
        raise BenchError(f"cannot start the local Kafka broker: {e}") from None
    return st.bootstrap, (None if was_running else cl)


# ------------------------------------------------------------------ runner


class Bench:
    def __init__(self, args, bootstrap: str, base: Code | None = None):
        self.args = args
        # this tree, and the baseline's tree with --baseline (both then run with their tree on PYTHONPATH)
        self.new = Code("new", REPO, None) if base is None else Code.of("new", REPO)
        self.base = base
        self.code = self.new  # the code of the case running now
        self.kafka = Kafka(bootstrap)
        self.n_events = args.events
        self.n_lines = args.lines
        self.run_dir = WORK / f"run-{os.getpid()}"
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)
        self._settings: dict[str, Path] = {}
        self.env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap, PYTHONUNBUFFERED="1")
        self.results: dict[str, dict] = {}
        self._lines: Path | None = None
        self._envelopes: Path | None = None
        self._event_topic: str | None = None
        self._event_highs: dict[int, int] = {}
        self._shipped_topic: str | None = None

    @property
    def settings(self) -> Path:
        """The settings folder for the code of the case running now."""
        side = self.code.side
        if side not in self._settings:
            self._settings[side] = settings_dir(self.run_dir / f"settings-{side}", self.code.root)
        return self._settings[side]

    # data, made on first use --------------------------------------------------
    @property
    def lines(self) -> Path:
        if self._lines is None:
            self._lines = lines_file(self.n_lines)
        return self._lines

    @property
    def envelopes(self) -> Path:
        if self._envelopes is None:
            self._envelopes = envelopes_file(self.n_events)
        return self._envelopes

    @property
    def event_topic(self) -> str:
        """One topic (3 partitions) with the N envelopes, read by every mtga-side case."""
        if self._event_topic is None:
            t = self.kafka.topic("events", 3)
            t0 = time.monotonic()
            self.kafka.produce_file(t, self.envelopes, self.n_events)
            self._event_highs = self.kafka.highs(t)
            if sum(self._event_highs.values()) != self.n_events:
                raise BenchError(f"{t} holds {sum(self._event_highs.values())} events, expected {self.n_events}")
            say(f"produced {self.n_events:,} events to {t} in {time.monotonic() - t0:.1f}s")
            self._event_topic = t
        return self._event_topic

    @property
    def shipped_topic(self) -> str:
        """The topic the last `shipper` run filled (the N lines with the shipper's key and
        six headers; app 24, log_name log_item); a `shipper` run first if there was none."""
        if self._shipped_topic is None:
            say("mtga_shipped: running shipper once for its topic")
            r = self.case_shipper()
            if r["check"] != "ok":
                raise BenchError(f"the shipper run for mtga_shipped failed its check: {r['check']}")
        return self._shipped_topic

    def tmp(self, name: str) -> Path:
        d = self.run_dir / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def exe(self, name: str) -> Path:
        p = BIN / name
        if not p.exists():
            raise BenchError(f"{p} is missing: install the project into this Python's environment (`make venv`)")
        return p

    @property
    def code_env(self) -> dict:
        """The environment of a process that runs the project's code: self.code's."""
        return dict(self.env, **self.code.env) if self.code.env else self.env

    def timeout(self, n: int) -> float:
        return 120 + n / 2000

    # running -----------------------------------------------------------------
    def run(self, names: list[str]) -> None:
        for name in RUN_ORDER:
            if name not in names:
                continue
            ref, what = CASES[name]
            res = {"case": name, "items": None, "seconds": None, "rate": None, "peak_rss_mb": None,
                   "reference": ref, "ratio": None}
            # with a baseline: base, new, base, new, ... so that the machine's moods hit both alike
            sides = [self.base, self.new] if self.base is not None and name in CODE_CASES else [self.new]
            runs: dict[str, list] = {c.side: [] for c in sides}
            failed: dict[str, str] = {}
            try:
                for i in range(self.args.repeat):
                    for code in sides:
                        if code.side in failed:
                            continue
                        try:
                            runs[code.side].append(self._run_once(name, code, i))
                        except BenchError as e:
                            failed[code.side] = str(e)
                            say(f"case {name}{self._label(code)} FAILED: {e}")
                        except Skip:
                            raise
                        except Exception as e:  # a bug or an unexpected failure: report it, run the other cases
                            if os.environ.get("BENCH_DEBUG"):
                                raise
                            failed[code.side] = f"{type(e).__name__}: {e}"
                            say(f"case {name}{self._label(code)} FAILED: {type(e).__name__}: {e} "
                                f"(BENCH_DEBUG=1 shows the traceback)")
                    if len(failed) == len(sides):
                        break
            except Skip as e:
                res["skipped"] = str(e)
                say(f"case {name} skipped: {e}")
            else:
                if "new" in failed:
                    res["error"] = failed["new"]
                else:
                    res.update(_fastest(runs["new"]))
                if "base" in runs:
                    res["baseline"] = {"error": failed["base"]} if "base" in failed else _fastest(runs["base"])
            res["what"] = what
            self.results[name] = res
        for name, r in self.results.items():
            ref = self.results.get(r["reference"]) if r["reference"] else None
            if r["rate"] and ref and ref.get("rate"):
                r["ratio"] = round(r["rate"] / ref["rate"], 3)
            also = self.results.get(ALSO.get(name, ""))
            if r["rate"] and also and also.get("rate"):
                r[f"ratio_{also['case']}"] = round(r["rate"] / also["rate"], 3)
            if self.base is not None:
                b = r.setdefault("baseline", None)
                r["vs_base"] = r["vs_base_per_cpu_s"] = None
                if b and b.get("rate") and r["rate"]:
                    r["vs_base"] = round(r["rate"] / b["rate"], 3)
                if b and b.get("rate_per_cpu_s") and r.get("rate_per_cpu_s"):
                    r["vs_base_per_cpu_s"] = round(r["rate_per_cpu_s"] / b["rate_per_cpu_s"], 3)
                if b and b.get("rate") is not None:
                    b["rate"] = round(b["rate"], 1)
                    b["seconds"] = round(b["seconds"], 3)
            if r["rate"] is not None:
                r["rate"] = round(r["rate"], 1)
            if r["seconds"] is not None:
                r["seconds"] = round(r["seconds"], 3)

    def _label(self, code: Code) -> str:
        return f" (baseline {self.args.baseline})" if code.side == "base" else ""

    def _run_once(self, name: str, code: Code, i: int) -> dict:
        label = self._label(code)
        say(f"case {name}{label}" + (f" (run {i + 1} of {self.args.repeat})" if self.args.repeat > 1 else "")
            + " ...")
        self.code = code
        try:
            r = getattr(self, "case_" + name)()
        finally:
            self.code = self.new
        r["rate"] = r["items"] / r["seconds"]
        say(f"case {name}{label}: {r['items']:,} in {r['seconds']:.2f}s = {r['rate']:,.0f}/s, "
            f"peak RSS {r['peak_rss_mb']} MB, {r['cpu_s']} CPU s")
        return r

    def _check_topic(self, topic: str, n: int) -> str:
        got = self.kafka.total(topic)
        return "ok" if got == n else f"topic holds {got} messages, expected {n}"

    # shipper side ------------------------------------------------------------
    def case_shipper_kcat(self) -> dict:
        return self._kcat_produce("shipper_kcat", [])

    def case_shipper_kcat_headers(self) -> dict:
        import socket
        import zlib

        path = self.lines
        st = path.stat()
        with open(path, "rb") as f:
            ident = f"{st.st_dev:x}:{st.st_ino:x}:{zlib.crc32(f.read(1024)):08x}"
        extra = ["-k", ident]
        for k, v in (("host", socket.gethostname()), ("path", str(path)), ("file", ident),
                     ("offset", str(st.st_size)), ("app_id", "24"), ("log_name", "log_item")):
            extra += ["-H", f"{k}={v}"]
        return self._kcat_produce("shipper_kcat_headers", extra)

    def _kcat_produce(self, name: str, extra: list) -> dict:
        kcat = shutil.which("kcat")
        if not kcat:
            raise Skip("kcat is not installed (Debian: apt-get install kcat; or scripts/ensure-tools)")
        path, n = self.lines, self.n_lines
        topic = self.kafka.topic(name, 3)
        d = self.tmp(name)
        p = Proc([kcat, "-P", "-b", self.kafka.bootstrap, "-t", topic, "-z", "snappy", *extra, "-l", path],
                 log=d / "kcat.log")
        try:
            rc = p.wait(self.timeout(n))
        except subprocess.TimeoutExpired:
            p.stop(signal.SIGKILL)
            raise BenchError(f"kcat -P did not finish in {self.timeout(n):.0f}s") from None
        if rc != 0:
            raise BenchError(f"kcat -P exited with {rc}: {p.log_tail(5)}")
        return {"items": n, "seconds": p.ended - p.t0, "peak_rss_mb": p.peak_rss_mb, "cpu_s": p.cpu_s,
                "bytes": path.stat().st_size, "check": self._check_topic(topic, n)}

    def case_shipper(self) -> dict:
        path, n = self.lines, self.n_lines
        size = path.stat().st_size
        topic = self.kafka.topic("shipper", 3)
        d = self.tmp("shipper")
        conf = {
            "kafka": {"bootstrap_servers": self.kafka.bootstrap},
            "state_dir": str(d / "state"),
            "inputs": [{"paths": [str(path)], "topic": topic, "app_id": 24, "log_name": "log_item",
                        "start_at": "beginning"}],
            "checkpoint_interval_s": 0.2,
            "stats_interval_s": 5,
            "log": {"file": str(d / "shipper.log"), "level": "info"},
        }
        (d / "shipper.yml").write_text(json.dumps(conf, indent=1))
        cmd = [self.exe("shipper"), "tail", "-c", d / "shipper.yml"]
        cmd = self.profiled("shipper", cmd)
        p = Proc(cmd, log=d / "stdout.log", env=self.code_env)
        db = d / "state" / "db"
        t_kafka = None
        next_wm = 0.0
        deadline = time.monotonic() + self.timeout(n)
        try:
            while True:
                if not p.alive():
                    raise BenchError(f"shipper exited with {p.rc}:\n{_tail(d / 'shipper.log')}{p.log_tail(5)}")
                now = time.monotonic()
                if now > deadline:
                    raise BenchError(f"shipper did not deliver the file in {self.timeout(n):.0f}s")
                if t_kafka is None and now >= next_wm:
                    if self.kafka.total(topic) >= n:
                        t_kafka = time.monotonic()
                    next_wm = now + 0.1
                if shipper_delivered(db) >= size:
                    t_done = time.monotonic()
                    break
                time.sleep(POLL_S)
        finally:
            p.stop(signal.SIGTERM, 30)
        if t_kafka is None and self.kafka.total(topic) >= n:
            t_kafka = t_done
        self._shipped_topic = topic  # read by mtga_shipped
        return {"items": n, "seconds": t_done - p.t0, "peak_rss_mb": p.peak_rss_mb, "cpu_s": p.cpu_s,
                "bytes": size, "seconds_in_kafka": None if t_kafka is None else round(t_kafka - p.t0, 3),
                "check": self._check_topic(topic, n)}

    def case_shipper_idle_1000(self) -> dict:
        return self._shipper_idle(1000)

    def case_shipper_idle_10000(self) -> dict:
        return self._shipper_idle(10_000)

    def _shipper_idle(self, n: int) -> dict:
        import random

        window, settle, probes = IDLE_WINDOW_S, 5.0, IDLE_PROBES
        if self.args.quick:  # the shape of the report, in seconds
            n, window, settle, probes = n // 10, 3.0, 1.0, 3
        d = self.tmp(f"shipper_idle_{n}")
        logs = d / "logs"
        logs.mkdir()
        with open(self.lines, "rb") as f:
            line = f.readline()
        for i in range(n):
            (logs / f"f{i:05d}.log").write_bytes(line)
        topic = self.kafka.topic(f"idle{n}", 3)
        conf = {
            "kafka": {"bootstrap_servers": self.kafka.bootstrap},
            "state_dir": str(d / "state"),
            "inputs": [{"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_item"}],
            "stats_interval_s": 30,
            "log": {"file": str(d / "shipper.log"), "level": "info"},
        }
        (d / "shipper.yml").write_text(json.dumps(conf, indent=1))
        p = Proc([self.exe("shipper"), "tail", "-c", d / "shipper.yml"], log=d / "stdout.log", env=self.code_env)
        deadline = time.monotonic() + self.timeout(n * 20)
        try:
            while self.kafka.total(topic) < n:
                if not p.alive():
                    raise BenchError(f"shipper exited with {p.rc}:\n{_tail(d / 'shipper.log')}{p.log_tail(5)}")
                if time.monotonic() > deadline:
                    raise BenchError(f"the {n} files' lines were not in Kafka after {self.timeout(n * 20):.0f}s")
                time.sleep(0.2)
            t_all = time.monotonic() - p.t0
            time.sleep(settle)  # what follows the start (checkpoints, closings) is not the idle cost
            c0, t0 = _cpu(p.pid), time.monotonic()
            time.sleep(window)
            c1, t1 = _cpu(p.pid), time.monotonic()
            fds = len(os.listdir(f"/proc/{p.pid}/fd"))
            lat = []
            rnd = random.Random(n)
            for k in range(probes):
                before = self.kafka.total(topic)
                with open(logs / f"f{rnd.randrange(n):05d}.log", "ab") as f:
                    f.write(line)
                t = time.monotonic()
                while self.kafka.total(topic) <= before:
                    if time.monotonic() - t > 30:
                        raise BenchError(f"an appended line was not in Kafka within 30s (probe {k + 1})")
                    time.sleep(0.01)
                lat.append(time.monotonic() - t)
        finally:
            p.stop(signal.SIGTERM, 60)
        if p.rc != 0:
            raise BenchError(f"shipper exited with {p.rc} at its stop:\n{_tail(d / 'shipper.log')}")
        cpu = c1 - c0
        lat.sort()
        return {"items": n, "seconds": t1 - t0, "peak_rss_mb": p.peak_rss_mb, "cpu_s": round(cpu, 3),
                "core_pct_idle": round(100 * cpu / (t1 - t0), 2), "open_fds": fds,
                "latency_median_s": round(lat[len(lat) // 2], 3), "latency_max_s": round(lat[-1], 3),
                "seconds_to_all_in_kafka": round(t_all, 2), "check": self._check_topic(topic, n + probes)}

    def case_shipper_rsyslog(self) -> dict:
        rsyslogd = rsyslogd_exe()
        path, n = self.lines, self.n_lines
        d = self.tmp("shipper_rsyslog")
        topic = f"bench_rsyslog_{uuid.uuid4().hex[:8]}"  # created below once the config checks out
        conf = d / "rsyslog.conf"
        conf.write_text(rsyslog_conf(d, path, topic, self.kafka.bootstrap))
        chk = subprocess.run([rsyslogd, "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=60)
        if chk.returncode != 0:
            lines = [ln for ln in (chk.stdout + chk.stderr).splitlines() if ln.strip()]
            why = next((ln for ln in lines if "omkafka" in ln or "error" in ln.lower()), lines[-1] if lines else "")
            raise Skip(f"rsyslogd cannot load the imfile + omkafka configuration (Debian package rsyslog-kafka "
                       f"missing?): {why.strip()}")
        topic = self.kafka.topic("rsyslog", 3)
        conf.write_text(rsyslog_conf(d, path, topic, self.kafka.bootstrap))
        p = Proc([rsyslogd, "-n", "-f", conf, "-i", d / "rsyslogd.pid"], log=d / "stdout.log", cwd=d)
        return self._until_in_kafka(p, "rsyslogd", topic, path, n,
                                    lambda: f"{p.log_tail(5)} {_tail(d / 'internal.log')}")

    def _until_in_kafka(self, p: "Proc", name: str, topic: str, path: Path, n: int, why) -> dict:
        """A peer shipping ``path``: timed from its spawn until ``topic`` holds ``n``
        messages, then stopped; ``why()`` tells what it said when it failed."""
        deadline = time.monotonic() + self.timeout(n)
        try:
            while True:
                if not p.alive():
                    raise BenchError(f"{name} exited with {p.rc}: {why()}")
                if time.monotonic() > deadline:
                    raise BenchError(f"{name} did not ship the file in {self.timeout(n):.0f}s "
                                     f"({self.kafka.total(topic)} of {n} lines in Kafka)")
                if self.kafka.total(topic) >= n:
                    t_done = time.monotonic()
                    break
                time.sleep(0.1)  # polling the watermarks: the peer tells nothing else
        finally:
            p.stop(signal.SIGTERM, 30)
        return {"items": n, "seconds": t_done - p.t0, "peak_rss_mb": p.peak_rss_mb, "cpu_s": p.cpu_s,
                "bytes": path.stat().st_size, "check": self._check_topic(topic, n)}

    def case_shipper_otelcol(self) -> dict:
        otelcol = otelcol_exe()
        path, n = self.lines, self.n_lines
        d = self.tmp("shipper_otelcol")
        topic = self.kafka.topic("otelcol", 3)
        env = dict(self.env, PEER_FILE=str(path), PEER_STORAGE_DIR=str(d / "storage"),
                   PEER_BROKERS=first_broker(self.kafka.bootstrap), PEER_TOPIC=topic)
        p = Proc([otelcol, "--config", PEERS / "otelcol-filelog-kafka.yaml"], log=d / "otelcol.log", env=env, cwd=d)
        return self._until_in_kafka(p, "the collector", topic, path, n, lambda: p.log_tail(8))

    # mtga side ---------------------------------------------------------------
    def _first_output(self, p: Proc, out: Path, deadline: float, what: str) -> float:
        """Wait for the first non-empty file under ``out``; its time."""
        while True:
            if _any_bytes(out):
                return time.monotonic()
            if not p.alive():
                if _any_bytes(out):
                    return p.ended
                raise BenchError(f"{what} exited with {p.rc} before writing anything: {p.log_tail(8)}")
            if time.monotonic() > deadline:
                raise BenchError(f"{what} wrote nothing in {self.timeout(self.n_events):.0f}s: {p.log_tail(8)}")
            time.sleep(0.02)

    def case_mtga_kcat_consume(self) -> dict:
        kcat = shutil.which("kcat")
        if not kcat:
            raise Skip("kcat is not installed (Debian: apt-get install kcat; or scripts/ensure-tools)")
        topic, n = self.event_topic, self.n_events
        d = self.tmp("mtga_kcat_consume")
        out = d / "out"
        out.mkdir()
        with open(out / "topic.jsonl", "wb") as f:
            p = Proc([kcat, "-C", "-b", self.kafka.bootstrap, "-t", topic, "-e", "-o", "beginning", "-q"],
                     stdout=f)
        deadline = time.monotonic() + self.timeout(n)
        t_first = self._first_output(p, out, deadline, "kcat -C")
        try:
            rc = p.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.stop(signal.SIGKILL)
            raise BenchError("kcat -C did not reach the end of the topic in time") from None
        if rc != 0:
            raise BenchError(f"kcat -C exited with {rc}")
        got = _count_lines(out)
        shutil.rmtree(d, ignore_errors=True)
        return {"items": n, "seconds": p.ended - t_first, "seconds_total": round(p.ended - p.t0, 3),
                "peak_rss_mb": p.peak_rss_mb, "cpu_s": p.cpu_s,
                "check": "ok" if got == n else f"{got} lines read, expected {n}"}

    def _mtga(self, workers: int, profile_name: str, shipped: bool = False) -> dict:
        if shipped:
            topic, n = self.shipped_topic, self.n_lines
            highs = self.kafka.highs(topic)
        else:
            topic, n = self.event_topic, self.n_events
            highs = self._event_highs
        d = self.tmp(profile_name)
        import yaml

        conf = {
            "kafka": {"bootstrap_servers": self.kafka.bootstrap, "group_id": f"bench-{uuid.uuid4().hex[:8]}",
                      "topics": [topic], "auto_offset_reset": "earliest"},
            "state_dir": str(d / "state"),
            "settings_dir": str(self.settings),
            "output": {"dir": str(d / "out")},
            "checkpoint": {"interval_s": 0.5},
            "workers": workers,
            "log": {"file": str(d / "mtga.log"), "level": "info"},
        }
        for path, value in self.args.mtga_set:
            node = conf
            for k in path[:-1]:
                node = node.setdefault(k, {})
            node[path[-1]] = yaml.safe_load(value)
        (d / "mtga.yml").write_text(yaml.safe_dump(conf))
        cmd = self.profiled(profile_name, [self.exe("mtga"), "start", "-c", d / "mtga.yml"])
        p = Proc(cmd, log=d / "stdout.log", env=self.code_env)
        deadline = time.monotonic() + self.timeout(n)
        try:
            t_first = self._first_output(p, d / "out", deadline, "mtga")
            wall_first = time.time() - (time.monotonic() - t_first)
            while True:
                if not p.alive():
                    raise BenchError(f"mtga exited with {p.rc}:\n{_tail(d / 'mtga.log')}")
                if time.monotonic() > deadline:
                    raise BenchError(f"mtga did not store all offsets in {self.timeout(n):.0f}s "
                                     f"(stored {mtga_stored(d / 'state' / 'db', topic)})")
                stored = mtga_stored(d / "state" / "db", topic)
                if all(stored.get(part, 0) >= hi for part, hi in highs.items()):
                    t_done = time.monotonic()
                    break
                time.sleep(0.1)
        finally:
            p.stop(signal.SIGTERM, 60)
        # after it stopped: the last write (max mtime), what was written, what failed
        last_write = max((f.stat().st_mtime for f in (d / "out").rglob("log.*")), default=wall_first)
        got = _count_lines(d / "out")
        failed = mtga_failures(d / "state" / "db")
        check = "ok"
        if got != n or failed:
            check = f"{got} lines written, {failed} failed, expected {n} lines"
        if p.rc != 0:
            check = f"mtga exited with {p.rc} after SIGTERM; " + check
        r = {"items": n, "seconds": t_done - t_first, "seconds_total": round(t_done - p.t0, 3),
             "seconds_to_last_write": round(max(0.0, last_write - wall_first), 3),
             "peak_rss_mb": p.peak_rss_mb, "cpu_s": p.cpu_s, "workers": workers, "check": check}
        if not self.args.keep_work:
            shutil.rmtree(d / "out", ignore_errors=True)
        return r

    def case_mtga(self) -> dict:
        return self._mtga(1, "mtga")

    def case_mtga_2_workers(self) -> dict:
        return self._mtga(2, "mtga_2_workers")

    def case_mtga_shipped(self) -> dict:
        return self._mtga(1, "mtga_shipped", shipped=True)

    def case_mtga_naive(self) -> dict:
        topic, n = self.event_topic, self.n_events
        d = self.tmp("mtga_naive")
        out = d / "out"
        cmd = [sys.executable, HERE / "naive.py", "--bootstrap", self.kafka.bootstrap, "--topic", topic,
               "--group", f"bench-naive-{uuid.uuid4().hex[:8]}", "--count", str(n), "--out", out,
               "--timeout", str(self.timeout(n))]
        p = Proc(cmd, log=d / "naive.log", env=self.env)
        t_first, got = self._until_exit(p, "the naive consumer", d, out, n)
        return {"items": n, "seconds": p.ended - t_first, "seconds_total": round(p.ended - p.t0, 3),
                "peak_rss_mb": p.peak_rss_mb, "cpu_s": p.cpu_s,
                "check": "ok" if got == n else f"{got} lines written, expected {n}"}

    def _until_exit(self, p: "Proc", name: str, d: Path, out: Path, n: int) -> tuple:
        """A consumer that exits by itself after ``n`` events: (its first output, the
        lines written in ``out``); ``d`` is removed."""
        deadline = time.monotonic() + self.timeout(n)
        try:
            t_first = self._first_output(p, out, deadline, name)
            rc = p.wait(max(1.0, deadline - time.monotonic()) + 10)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{name} did not finish in time") from None
        finally:
            p.stop(signal.SIGKILL)
        if rc != 0:
            raise BenchError(f"{name} exited with {rc}: {p.log_tail(8)}")
        got = _count_lines(out)
        shutil.rmtree(d, ignore_errors=True)
        return t_first, got

    def case_mtga_otelcol(self) -> dict:
        otelcol = otelcol_exe()
        topic, n = self.event_topic, self.n_events
        d = self.tmp("mtga_otelcol")
        out = d / "out"
        out.mkdir()
        file = out / "otelcol.jsonl"
        env = dict(self.env, PEER_BROKERS=first_broker(self.kafka.bootstrap), PEER_TOPIC=topic,
                   PEER_GROUP=f"bench-otelcol-{uuid.uuid4().hex[:8]}", PEER_OUT=str(file))
        p = Proc([otelcol, "--config", PEERS / "otelcol-kafka-file.yaml"], log=d / "otelcol.log", env=env, cwd=d)
        return self._until_written(p, "the collector", RecordCounter(file), "records", n)

    def case_mtga_rsyslog(self) -> dict:
        rsyslogd = rsyslogd_exe()
        topic, n = self.event_topic, self.n_events
        d = self.tmp("mtga_rsyslog")
        out = d / "out"
        out.mkdir()
        file = out / "rsyslog.jsonl"
        conf = d / "rsyslog.conf"
        conf.write_text(rsyslog_consume_conf(d, file, topic, f"bench-rsyslog-{uuid.uuid4().hex[:8]}",
                                             self.kafka.bootstrap))
        chk = subprocess.run([rsyslogd, "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=60)
        if chk.returncode != 0:
            raise Skip(f"rsyslogd cannot load the imkafka + omfile configuration (Debian package rsyslog-kafka "
                       f"missing?): {(chk.stdout + chk.stderr).strip()[-300:]}")
        p = Proc([rsyslogd, "-n", "-f", conf, "-i", d / "rsyslogd.pid"], log=d / "stdout.log", cwd=d)
        return self._until_written(p, "rsyslogd", RecordCounter(file), "lines", n)

    def _until_written(self, p: "Proc", name: str, counter: "RecordCounter", what: str, n: int) -> dict:
        """A peer writing ``counter``'s file, timed from its spawn until the file holds
        ``n`` records or lines (``what``), then stopped; the file is removed after."""
        deadline = time.monotonic() + self.timeout(n)
        t_first = None
        try:
            while True:
                if not p.alive():
                    raise BenchError(f"{name} exited with {p.rc}: {p.log_tail(8)}")
                if time.monotonic() > deadline:
                    raise BenchError(f"{name} did not write the {n} {what} in {self.timeout(n):.0f}s "
                                     f"({getattr(counter, what)} written)")
                if counter.update() and t_first is None:
                    t_first = time.monotonic()
                if getattr(counter, what) >= n:
                    t_done = time.monotonic()
                    break
                time.sleep(POLL_S)
        finally:
            p.stop(signal.SIGTERM, 30)
        counter.update()  # whatever it wrote at its stop counts too
        got = getattr(counter, what)
        if not self.args.keep_work:
            shutil.rmtree(counter.path.parent, ignore_errors=True)
        return {"items": n, "seconds": t_done - p.t0, "seconds_total": round(t_done - p.t0, 3),
                "seconds_from_first_output": round(t_done - t_first, 3), "output_lines": counter.lines,
                "peak_rss_mb": p.peak_rss_mb, "cpu_s": p.cpu_s,
                "check": "ok" if got == n else f"{got} {what} written, expected {n}"}

    def case_mtga_quix(self) -> dict:
        python = quix_python()
        topic, n = self.event_topic, self.n_events
        d = self.tmp("mtga_quix")
        out = d / "out"
        out.mkdir()
        cmd = [python, PEERS / "quix_app.py", "--bootstrap", self.kafka.bootstrap, "--topic", topic,
               "--group", f"bench-quix-{uuid.uuid4().hex[:8]}", "--count", str(n), "--out", out / "quix.jsonl"]
        p = Proc(cmd, log=d / "quix.log", env=dict(self.env, PYTHONPATH=""), cwd=d)
        t_first, got = self._until_exit(p, "the Quix Streams app", d, out, n)
        return {"items": n, "seconds": p.ended - p.t0, "seconds_total": round(p.ended - p.t0, 3),
                "seconds_from_first_output": round(p.ended - t_first, 3), "peak_rss_mb": p.peak_rss_mb,
                "cpu_s": p.cpu_s, "check": "ok" if got == n else f"{got} lines written, expected {n}"}

    # transform ---------------------------------------------------------------
    def _transform(self, mode: str) -> dict:
        n = self.n_events
        d = self.tmp("transform_" + mode)
        cmd = [sys.executable, HERE / "transform_loop.py", "--mode", mode, "--data", self.envelopes,
               "--count", str(n), "--settings", self.settings]
        cmd = self.profiled({"transform": "transform", "pool": "transform_2_workers"}.get(mode, "transform_naive"),
                            cmd)
        with open(d / "result.json", "wb") as f:
            p = Proc(cmd, stdout=f, env=self.code_env)
        try:
            rc = p.wait(self.timeout(n))
        except subprocess.TimeoutExpired:
            p.stop(signal.SIGKILL)
            raise BenchError(f"the transform loop did not finish in {self.timeout(n):.0f}s") from None
        text = (d / "result.json").read_text(errors="replace")
        try:
            r = json.loads(text.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise BenchError(f"the transform loop exited with {rc}: {text[-500:]}") from None
        check = "ok" if r["ok"] == n else f"{r['ok']} of {n} ok; first failure: {r['first_failure']}"
        return {"items": r["items"], "seconds": r["seconds"], "peak_rss_mb": p.peak_rss_mb,
                "cpu_s": round(r["cpu_seconds"], 3) if r["cpu_seconds"] is not None else p.cpu_s,
                "cpu_s_process": p.cpu_s, "check": check}

    def case_transform(self) -> dict:
        return self._transform("transform")

    def case_transform_2_workers(self) -> dict:
        return self._transform("pool")

    def case_transform_naive(self) -> dict:
        return self._transform("naive")

    # profiling ---------------------------------------------------------------
    def profiled(self, name: str, cmd: list) -> list:
        if name not in self.args.profile:
            return cmd
        prof = BIN / "pyinstrument"
        if not prof.exists():
            raise BenchError("--profile needs pyinstrument (pip install -e '.[dev]')")
        outdir = WORK / "profiles"
        outdir.mkdir(parents=True, exist_ok=True)
        target = outdir / f"{name}.txt"
        say(f"profiling {name} with pyinstrument into {target.relative_to(REPO)} (its figures are slowed down)")
        return [prof, "-r", "text", "-o", target, *cmd]

    def close(self) -> None:
        for p in list(LIVE):
            p.stop(signal.SIGKILL, 10)
        try:
            self.kafka.cleanup()
        finally:
            if not self.args.keep_work:
                shutil.rmtree(self.run_dir, ignore_errors=True)


def rsyslog_conf(d: Path, path: Path, topic: str, bootstrap: str) -> str:
    brokers = ", ".join(f'"{b.strip()}"' for b in bootstrap.split(","))
    return f"""# private rsyslogd for the benchmark: imfile -> omkafka, nothing else
global(workDirectory="{d}" maxMessageSize="64k")
module(load="imfile" mode="inotify")
module(load="omkafka")
template(name="bench_raw" type="string" string="%msg%")
ruleset(name="bench_kafka") {{
  action(type="omkafka" broker=[{brokers}] topic="{topic}" template="bench_raw"
         partitions.auto="on" confParam=["compression.codec=snappy"])
}}
input(type="imfile" file="{path}" tag="bench" ruleset="bench_kafka" freshStartTail="off")
# rsyslogd's own messages
action(type="omfile" file="{d}/internal.log")
"""


def rsyslogd_exe() -> str:
    """rsyslogd's path; or Skip."""
    rsyslogd = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if os.access("/usr/sbin/rsyslogd", os.X_OK)
                                            else None)
    if not rsyslogd:
        raise Skip("rsyslogd is not installed (bench/peers/install rsyslog; Debian: apt-get install rsyslog "
                   "rsyslog-kafka)")
    return rsyslogd


def rsyslog_consume_conf(d: Path, out: Path, topic: str, group: str, bootstrap: str) -> str:
    """bench/peers' rsyslog-imkafka-omfile.conf: each message's payload on a line of its own."""
    brokers = ", ".join(f'"{b.strip()}"' for b in bootstrap.split(","))
    return f"""# private rsyslogd for the benchmark: imkafka -> omfile, nothing else
global(workDirectory="{d}" maxMessageSize="64k")
module(load="imkafka")
template(name="peer_line" type="string" string="%rawmsg%\\n")
ruleset(name="peer_file") {{
  action(type="omfile" file="{out}" template="peer_line" ioBufferSize="64k")
}}
input(type="imkafka" broker=[{brokers}] topic="{topic}" consumergroup="{group}" ruleset="peer_file"
      confParam=["auto.offset.reset=earliest"])
# rsyslogd's own messages
action(type="omfile" file="{d}/internal.log")
"""


def otelcol_exe() -> Path:
    """The OpenTelemetry Collector binary: $OTELCOL, else the first of OTELCOL_PLACES that exists; or Skip."""
    why = "the OpenTelemetry Collector is not built: see bench/peers/ and README 'Benchmarks'"
    env = os.environ.get("OTELCOL")
    if env:
        if os.access(env, os.X_OK) and Path(env).is_file():
            return Path(env)
        raise Skip(f"OTELCOL={env} is not an executable file; {why}")
    for p in OTELCOL_PLACES:
        if os.access(p, os.X_OK) and p.is_file():
            return p
    raise Skip(why)


def quix_python() -> str:
    """The Python that has Quix Streams: $QUIX_PYTHON, else QUIX_VENV's; or Skip."""
    how = (f"python -m venv {QUIX_VENV.relative_to(REPO)} && {QUIX_VENV.relative_to(REPO)}/bin/pip install "
           "quixstreams==3.28.1 (README 'Benchmarks')")
    python = os.environ.get("QUIX_PYTHON") or str(QUIX_VENV / "bin" / "python")
    if not os.access(python, os.X_OK):
        raise Skip(f"Quix Streams is not installed: {how}")
    ok = subprocess.run([python, "-c", "import quixstreams"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if ok.returncode != 0:
        raise Skip(f"{python} cannot import quixstreams: {how}")
    return python


def first_broker(bootstrap: str) -> str:
    """One host:port of a bootstrap list (the peer configurations take one: enough to find the cluster)."""
    return bootstrap.split(",")[0].strip()


class RecordCounter:
    """Log records in a growing OTLP JSON file (the collector's file exporter: one line per batch).

    Each poll reads only what was added since the last one, up to its last complete
    line, and counts the ``"body":`` keys in it: one per log record, exactly (inside a
    JSON string a quote is escaped, so the body's own text cannot hold the key)."""

    KEY = b'"body":'

    def __init__(self, path: Path):
        self.path, self.pos, self.records, self.lines = path, 0, 0, 0

    def update(self) -> bool:
        """Counts what was added; True when the file holds any bytes."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return False
        with f:
            f.seek(self.pos)
            tail = b""
            for block in iter(lambda: f.read(1 << 22), b""):
                block = tail + block
                cut = block.rfind(b"\n") + 1
                self.records += block.count(self.KEY, 0, cut)
                self.lines += block.count(b"\n", 0, cut)
                self.pos += cut
                tail = block[cut:]
        return self.pos > 0 or len(tail) > 0


def shipper_delivered(db: Path) -> int:
    from offsets import FilePositions, StateDB, StateError

    if not (db / "CURRENT").exists():
        return 0
    try:
        with StateDB(db, "shipper", read_only=True) as s:
            return sum(p.offset for p in FilePositions(s).all())
    except StateError:
        return 0


def mtga_stored(db: Path, topic: str) -> dict[int, int]:
    from offsets import PartitionOffsets, StateDB, StateError

    if not (db / "CURRENT").exists():
        return {}
    try:
        with StateDB(db, "mtga", read_only=True) as s:
            return {p: o for (t, p), o in PartitionOffsets(s).all().items() if t == topic}
    except StateError:
        return {}


def mtga_failures(db: Path) -> int:
    from offsets import FailureQueue, StateDB, StateError

    try:
        with StateDB(db, "mtga", read_only=True) as s:
            return FailureQueue(s).count()
    except StateError:
        return -1


def _any_bytes(folder: Path) -> bool:
    try:
        for e in os.scandir(folder):
            if e.is_dir(follow_symlinks=False):
                if _any_bytes(Path(e.path)):
                    return True
            elif e.stat(follow_symlinks=False).st_size > 0:
                return True
    except OSError:
        pass
    return False


def _count_lines(folder: Path) -> int:
    n = 0
    for f in folder.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    n += block.count(b"\n")
    return n


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _fastest(runs: list[dict]) -> dict:
    """The fastest of a case's runs, with the rates of all of them and its rate per CPU second."""
    best = dict(max(runs, key=lambda r: r["rate"]))
    if len(runs) > 1:
        best["rates_of_runs"] = [round(r["rate"], 1) for r in runs]
    if best.get("cpu_s"):
        best["rate_per_cpu_s"] = round(best["items"] / best["cpu_s"], 1)
    return best


# ------------------------------------------------------------------ output


def table(report: dict) -> str:
    head = ("case", "items", "seconds", "rate/s", "peak RSS MB", "CPU s", "per CPU s", "reference", "ratio")
    with_base = bool(report.get("baseline"))
    if with_base:
        head += ("base rate/s", "base per CPU s", "vs base", "per CPU vs base")
    rows = []
    for r in report["cases"]:
        if r.get("skipped") or r.get("error"):
            if with_base:  # the reason goes below the table
                row = (r["case"], "-", "-", "-", "-", "-", "-", r["reference"] or "-",
                       "skipped" if r.get("skipped") else "ERROR")
            else:
                note = f"skipped: {r['skipped']}" if r.get("skipped") else f"ERROR: {r['error'].splitlines()[0]}"
                row = (r["case"], "-", "-", "-", "-", "-", "-", r["reference"] or "-", note)
        else:
            row = (r["case"], f"{r['items']:,}", f"{r['seconds']:.2f}", f"{r['rate']:,.0f}",
                   f"{r['peak_rss_mb']:.0f}", "-" if r.get("cpu_s") is None else f"{r['cpu_s']:.1f}",
                   "-" if r.get("rate_per_cpu_s") is None else f"{r['rate_per_cpu_s']:,.0f}",
                   r["reference"] or "-",
                   "-" if r["ratio"] is None else f"{r['ratio']:.2f}")
        if with_base:
            b = r.get("baseline") or {}
            row += ("-" if b.get("rate") is None else f"{b['rate']:,.0f}",
                    "-" if b.get("rate_per_cpu_s") is None else f"{b['rate_per_cpu_s']:,.0f}",
                    "ERROR" if b.get("error") else "-" if r.get("vs_base") is None else f"{r['vs_base']:.2f}×",
                    "-" if r.get("vs_base_per_cpu_s") is None else f"{r['vs_base_per_cpu_s']:.2f}×")
        rows.append(row)
    w = [max([len(h)] + [len(row[i]) for row in rows if len(row[i]) < 40]) for i, h in enumerate(head)]
    right = {1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12}

    def fmt(row):
        return "  ".join(c.rjust(w[i]) if i in right and not c.startswith(("skipped", "ERROR")) else c.ljust(w[i])
                         for i, c in enumerate(row)).rstrip()

    lines = [fmt(head), fmt(tuple("-" * x for x in w))] + [fmt(r) for r in rows]
    extra = []
    for r in report["cases"]:
        notes = []
        if with_base and r.get("skipped"):
            notes.append(f"skipped: {r['skipped']}")
        if with_base and r.get("error"):
            notes.append(f"ERROR: {r['error'].splitlines()[0]}")
        if r.get("seconds_total") is not None:
            notes.append(f"{r['seconds_total']:.2f}s including start-up")
        for k, v in r.items():
            if k.startswith("ratio_") and v is not None:
                notes.append(f"{v:.2f} x {k[len('ratio_'):]}")
        if r.get("core_pct_idle") is not None:
            notes.append(f"idle: {r['core_pct_idle']:.2f} % of a core, {r['open_fds']} descriptors open, an appended "
                         f"line in Kafka after {r['latency_median_s']:.2f}s (median) / {r['latency_max_s']:.2f}s "
                         f"(max); all files in Kafka {r['seconds_to_all_in_kafka']:.1f}s after the start")
        if r.get("seconds_in_kafka") is not None:
            notes.append(f"all lines in Kafka after {r['seconds_in_kafka']:.2f}s")
        if r.get("seconds_to_last_write") is not None:
            notes.append(f"last line written {r['seconds_to_last_write']:.2f}s after the first")
        if r.get("rates_of_runs"):
            notes.append("rates of the runs " + ", ".join(f"{x:,.0f}" for x in r["rates_of_runs"]))
        if r.get("check") not in (None, "ok"):
            notes.append(f"CHECK: {r['check']}")
        b = r.get("baseline") or {}
        if b.get("error"):
            notes.append(f"BASELINE ERROR: {b['error'].splitlines()[0]}")
        if b.get("core_pct_idle") is not None:
            notes.append(f"baseline idle: {b['core_pct_idle']:.2f} % of a core, {b['open_fds']} descriptors open, "
                         f"appended line in Kafka after {b['latency_median_s']:.2f}s / {b['latency_max_s']:.2f}s")
        if b.get("rates_of_runs"):
            notes.append("baseline rates of the runs " + ", ".join(f"{x:,.0f}" for x in b["rates_of_runs"]))
        if b.get("check") not in (None, "ok"):
            notes.append(f"BASELINE CHECK: {b['check']}")
        if notes:
            extra.append(f"  {r['case']}: " + "; ".join(notes))
    hdr = (f"{report['cores']} cores, rev {report['rev']}{' (dirty)' if report.get('dirty') else ''}, "
           f"{report['events']:,} events / {report['lines']:,} lines{', quick' if report['quick'] else ''}")
    if with_base:
        bl = report["baseline"]
        hdr += f"; baseline {bl['rev']} = {bl['sha'][:10]} (vs base = rate / the baseline's rate)"
    return "\n".join([hdr, ""] + lines + ([""] + extra if extra else []))


def save(report: dict, full: bool) -> Path:
    folder = RESULTS if full else WORK / "results"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    vs = f"-vs-{report['baseline']['sha'][:10]}" if report.get("baseline") else ""
    path = folder / f"{stamp}-{report['rev']}{vs}.json"
    text = json.dumps(report, indent=1) + "\n"
    path.write_text(text)
    (folder / "latest.json").write_text(text)
    return path


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"small data ({QUICK['events']:,} events, {QUICK['lines']:,} lines): seconds, not figures")
    ap.add_argument("--json", action="store_true", help="print the report as one JSON object on the last line")
    ap.add_argument("--cases", help="comma-separated cases to run (default all): " + ",".join(CASES))
    ap.add_argument("--events", type=int, help="events for the mtga and transform cases")
    ap.add_argument("--lines", type=int, help="lines for the shipper cases")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each case this many times and report its fastest run (default 1)")
    ap.add_argument("--profile", default="",
                    help="comma-separated cases to run under pyinstrument (mtga, mtga_2_workers, shipper, transform); "
                         "text reports go to bench/work/profiles/")
    ap.add_argument("--mtga-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key of the mtga cases' configuration, e.g. kafka.batch_size=10000 or "
                         "kafka.consumer.queued.max.messages.kbytes=16384 (repeatable; the value is read as YAML)")
    ap.add_argument("--baseline", metavar="REV",
                    help="run the cases that run the project's code (" + ",".join(CODE_CASES) + ") also on the "
                         "code of git revision REV, alternating with this tree's, and compare (vs base)")
    ap.add_argument("--keep-broker", action="store_true", help="leave a broker this run started running")
    ap.add_argument("--keep-work", action="store_true", help="keep bench/work/run-*/ (configs, logs, outputs)")
    args = ap.parse_args(argv)
    size = QUICK if args.quick else FULL
    args.events = args.events or size["events"]
    args.lines = args.lines or size["lines"]
    if args.events < 1 or args.lines < 1 or args.repeat < 1:
        ap.error("--events, --lines and --repeat must be at least 1")
    if args.cases:
        args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
        bad = [c for c in args.cases if c not in CASES]
        if bad:
            ap.error(f"unknown case(s) {', '.join(bad)}; known: {', '.join(CASES)}")
    else:
        args.cases = list(CASES)
    args.profile = [c.strip() for c in args.profile.split(",") if c.strip()]
    if args.baseline is not None and args.profile:
        ap.error("--profile and --baseline do not go together (profiled runs are slowed down)")
    if args.baseline is not None and (not args.baseline.strip() or args.baseline.startswith("-")):
        ap.error(f"--baseline expects a git revision, got {args.baseline!r}")
    sets = []
    for item in args.mtga_set:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            ap.error(f"--mtga-set expects KEY=VALUE, got {item!r}")
        key = key.strip()
        if key.startswith("kafka.consumer."):  # librdkafka keys hold dots themselves
            sets.append((["kafka", "consumer", key[len("kafka.consumer."):]], value))
        else:
            sets.append((key.split("."), value))
    args.mtga_set = sets
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import confluent_kafka  # noqa: F401
        import msgspec  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as e:
        say(f"{e.name} is not importable by {sys.executable}: run it with the project's virtualenv "
            f"(`make bench`, or .venv/bin/python bench/run.py)")
        return 2
    sys.path.insert(0, str(REPO))
    rev, dirty = git_rev()
    cluster = None
    bench = None
    started = dt.datetime.now(dt.timezone.utc)
    load_before = os.getloadavg()
    baseline = None
    try:
        base = None
        if args.baseline is not None:
            sha, root = export_rev(args.baseline)
            base = Code.of("base", root)
            for code in (base, Code.of("new", REPO)):
                code.check()
            baseline = {"rev": args.baseline, "sha": sha, "tree": str(root)}
        bootstrap, cluster = start_broker()
        bench = Bench(args, bootstrap, base)
        bench.run(args.cases)
    except BenchError as e:
        say(str(e))
        return 2
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        if bench is not None:
            bench.close()
        if cluster is not None and not args.keep_broker:
            say("stopping the broker this run started (--keep-broker keeps it)")
            cluster.stop()
    report = {
        "cores": os.cpu_count(),
        "rev": rev,
        "dirty": dirty,
        "quick": args.quick,
        "repeat": args.repeat,
        "events": args.events,
        "lines": args.lines,
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        "cases": [bench.results[c] for c in CASES if c in bench.results],
    }
    if baseline:
        report["baseline"] = baseline
    if args.mtga_set:
        report["mtga_set"] = {".".join(k): v for k, v in args.mtga_set}
    full = not args.quick and set(args.cases) == set(CASES) and not args.profile and not args.mtga_set \
        and args.events == FULL["events"] and args.lines == FULL["lines"]
    path = save(report, full)
    print(table(report))
    print(f"\nsaved {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    if args.json:
        print(json.dumps(report, separators=(",", ":")))
    bad = [r["case"] for r in report["cases"] if r.get("error") or r.get("check") not in (None, "ok")
           or (r.get("baseline") or {}).get("error") or (r.get("baseline") or {}).get("check") not in (None, "ok")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
