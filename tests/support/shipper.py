"""Helpers of the shipper tests: a real `shipper tail` process, writers of
realistic log lines, and a reader of everything a topic holds."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from mulog import sample, wire
from support.cli import REPO
from support.mtga import wait_for  # noqa: F401 (the suite's one polling helper, used by shipper tests)

EXE = Path(sys.executable).parent / "shipper"
POOL = list(sample.bare_lines(500, seed=3))


def line(tag: str, n: int) -> bytes:
    """A realistic event (about 640 bytes) that says which writer wrote it and its number."""
    return b'{"w":"%s","n":%d,' % (tag.encode(), n) + POOL[n % len(POOL)][1:]


def parse(payload: bytes) -> tuple[str, int]:
    d = json.loads(payload)
    return d["w"], d["n"]


class ShipperProc:
    """``shipper tail -c CONF`` as a real process, its log in a file."""

    def __init__(self, conf: Path, log: Path, *args: str, env: dict | None = None):
        self.conf, self.log_path, self.args = conf, log, args
        self.env = dict(os.environ)
        self.env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        # the shipper of this tree, whatever checkout the virtualenv's editable install points at
        self.env["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO), self.env.get("PYTHONPATH")) if x)
        self.env.update(env or {})
        self.proc: subprocess.Popen | None = None
        self.peak_rss_kb = 0

    def start(self) -> "ShipperProc":
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(EXE), "tail", "-c", str(self.conf), *self.args], stdout=logf,
                                     stderr=subprocess.STDOUT, env=self.env)
        logf.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 30, count: int = 1) -> None:
        wait_for(lambda: self.log().count(text) >= count or self._died(), timeout, f"'{text}' in the shipper log")
        assert self.log().count(text) >= count, f"shipper exited:\n{self.log()[-3000:]}"

    def _died(self) -> bool:
        return self.proc.poll() is not None

    def rss_kb(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for ln in f:
                    if ln.startswith("VmRSS:"):
                        kb = int(ln.split()[1])
                        self.peak_rss_kb = max(self.peak_rss_kb, kb)
                        return kb
        except OSError:
            pass
        return 0

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"shipper did not stop within {timeout}s after signal {sig}:\n{self.log()[-3000:]}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill_if_alive(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)


def write_conf(path: Path, *, bootstrap: str, state: Path, inputs: list[dict], **top) -> Path:
    conf = {
        "kafka": {"bootstrap_servers": bootstrap},
        "state_dir": str(state),
        "inputs": inputs,
        "rescan_interval_s": 1,
        "checkpoint_interval_s": 0.5,
        "stats_interval_s": 2,
        "shutdown_timeout_s": 15,
        "rotate_wait_s": 2,
    }
    conf.update(top)
    path.write_text(json.dumps(conf, indent=1))  # JSON is YAML
    return path


def scrape(port: int) -> dict:
    """One scrape of ``shipper tail``'s metrics: {(sample name, sorted labels): value}."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def status(state: Path) -> list[dict]:
    """The file rows of ``shipper status --json`` (running or not: exit 0, 1 or 3 print them), [] without a store."""
    r = subprocess.run([str(EXE), "status", "--state-dir", str(state), "--json"], capture_output=True, text=True,
                       timeout=30)
    if not r.stdout.strip():
        return []
    return json.loads(r.stdout)["files"]


def all_delivered(state: Path, files: list[Path]) -> bool:
    """Every file's stored position equals its size (per ``shipper status``)."""
    # the row of the file now at that path (rows of rotated files keep their old path)
    rows = {r["path"]: r for r in status(state) if r["size"] is not None}
    for f in files:
        r = rows.get(str(f))
        if r is None or r["size"] is None or r["delivered"] != r["size"] or r["size"] != f.stat().st_size:
            return False
    return True


_NO_LEADER_YET = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.UNKNOWN_TOPIC_OR_PART}


def topic_total(bootstrap: str, topic: str) -> int:
    """Messages in ``topic`` (sum of the high watermarks). A retriable error (a
    partition whose leader a fresh broker has not elected yet) is retried for 10 s."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "shipper-tests-wm"})
    deadline = time.monotonic() + 10
    try:
        while True:
            md = c.list_topics(topic, timeout=10)
            t = md.topics.get(topic)
            if t is None or t.error is not None:
                return 0
            try:
                return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in t.partitions)
            except KafkaException as e:
                err = e.args[0] if e.args else None
                if not (err is not None and (err.retriable() or err.code() in _NO_LEADER_YET)) \
                        or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        c.close()


@dataclass
class Msg:
    partition: int
    offset: int
    value: bytes
    headers: dict  # the six fields, from the headers or from the key form's key (mulog/wire.py)


def read_topic(bootstrap: str, topic: str, timeout: float = 60) -> list[Msg]:
    """Every message of ``topic``, partition by partition in Kafka order."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "shipper-tests", "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10)
        parts = sorted(md.topics[topic].partitions)
        high = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        got: dict[int, list[Msg]] = defaultdict(list)
        deadline = time.monotonic() + timeout
        while any(len(got[p]) < high[p] for p in parts):
            assert time.monotonic() < deadline, "timed out reading the topic back"
            for m in c.consume(num_messages=10000, timeout=1):
                assert m.error() is None, m.error()
                hdrs = {k: v.decode() for k, v in (m.headers() or [])}
                if not hdrs and m.key() is not None:  # the key form carries the same six fields
                    hdrs = wire.fields(m.key()) or {}
                got[m.partition()].append(Msg(m.partition(), m.offset(), m.value(), hdrs))
        return [m for p in parts for m in got[p]]
    finally:
        c.close()


def lines_of(path: Path) -> list[tuple[int, bytes]]:
    """(offset, line) of every complete line of a file."""
    out, off = [], 0
    data = path.read_bytes()
    for ln in data.split(b"\n")[:-1]:
        if ln:
            out.append((off, ln))
        off += len(ln) + 1
    return out


class Writer(threading.Thread):
    """Appends ``count`` lines tagged ``tag`` to ``path`` in bursts, like a game server.

    ``hook(self, n)`` runs before line ``n`` is written (rotation); ``self.f`` is
    the open file (opened in append mode, so writes after a truncation land at
    the start of the file).

    ``until``: an event the test sets once what it needs the writer for has
    happened (a kill, an outage): the writer goes on past ``count`` lines, at the
    same pace, until it is set, so that it is surely still writing then, however
    slow the machine. ``count`` is then the number of lines written.
    """

    def __init__(self, path: Path, tag: str, count: int, burst: int = 50, pause: float = 0.002,
                 hook: Callable[["Writer", int], None] | None = None, start_at: int = 0,
                 until: threading.Event | None = None):
        super().__init__(daemon=True)
        self.path, self.tag, self.count, self.burst, self.pause, self.hook = path, tag, count, burst, pause, hook
        self.start_at = start_at
        self.until = until
        self.written = 0
        self.error: BaseException | None = None
        self.f = None

    def open(self, path: Path | None = None):
        if self.f is not None:
            self.f.close()
        self.f = open(path or self.path, "ab", buffering=0)
        return self.f

    def _more(self, n: int) -> bool:
        return n < self.start_at + self.count or (self.until is not None and not self.until.is_set())

    def run(self) -> None:
        try:
            self.open()
            buf = []
            n = self.start_at
            while self._more(n):
                if self.hook is not None:
                    if buf:
                        self.f.write(b"".join(buf))
                        buf = []
                    self.hook(self, n)
                buf.append(line(self.tag, n) + b"\n")
                n += 1
                if len(buf) >= self.burst:
                    self.f.write(b"".join(buf))
                    buf = []
                    self.written = n - self.start_at
                    time.sleep(self.pause)
            if buf:
                self.f.write(b"".join(buf))
            self.count = self.written = n - self.start_at
            self.f.close()
        except BaseException as e:  # reported by the test
            self.error = e
            raise


def join_all(writers, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for w in writers:
        w.join(max(0.1, deadline - time.monotonic()))
        assert not w.is_alive(), f"writer {w.tag} did not finish"
        assert w.error is None, f"writer {w.tag} failed: {w.error!r}"


def by_writer(msgs: list[Msg]) -> dict[str, list[int]]:
    """Line numbers per writer tag, in Kafka order."""
    out: dict[str, list[int]] = defaultdict(list)
    for m in msgs:
        tag, n = parse(m.value)
        out[tag].append(n)
    return out


# ------------------------------------------------ what the fault tests count

MARK = re.compile(rb'^\{"w":"([^"]+)","n":(\d+),')


def report(name: str, n_in: int, out: int, distinct: int, lost: int, **more) -> None:
    extra = "".join(f", {k.replace('_', ' ')} {v}" for k, v in more.items())
    print(f"\n{name}: in {n_in}, out {out} ({distinct} distinct), duplicated {out - distinct}, lost {lost}{extra}")


def topic_markers(bootstrap: str, topic: str, timeout: float = 90) -> tuple[Counter, list]:
    """Counter of (writer tag, line number) over every message of ``topic``, and
    the messages whose content is not the line its marker names."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-tests", "enable.auto.commit": False})
    seen: Counter = Counter()
    wrong = []
    try:
        parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
        high = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        done = {p: 0 for p in parts}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        deadline = time.monotonic() + timeout
        while any(done[p] < high[p] for p in parts):
            assert time.monotonic() < deadline, "timed out reading the topic back"
            for m in c.consume(num_messages=10000, timeout=1):
                assert m.error() is None, m.error()
                done[m.partition()] = m.offset() + 1
                v = m.value()
                mk = MARK.match(v)
                if mk is None:
                    wrong.append(v[:80])
                    continue
                tag, n = mk.group(1).decode(), int(mk.group(2))
                if v != line(tag, n):
                    wrong.append(v[:80])
                seen[(tag, n)] += 1
    finally:
        c.close()
    return seen, wrong


# ------------------------------------------------ files on a private file system

def same_inode_file(folder, ino: int, data: bytes, name: str):
    """A new file ``name`` in ``folder`` holding ``data`` that gets inode ``ino``,
    the inode of a file just deleted there (and closed by every process).
    ``folder`` is on a file system of its own (the private_fs fixture): nothing
    else makes files there, and ext4 gives a new file the lowest free inode of
    its folder's group, which is the one just freed."""
    cand = folder / ".new"
    cand.touch()
    got = cand.stat().st_ino
    if got != ino:
        cand.unlink()
        raise AssertionError(f"the new file got inode {got}, not {ino} (the deleted file's): is {folder} on a "
                             f"private file system, and the deleted file closed by every process?")
    cand.write_bytes(data)
    cand.rename(folder / name)
    return folder / name


def fds_on(pid: int, path) -> list[str]:
    """The descriptors process ``pid`` holds on ``path`` (deleted or not)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue  # closed since the listing
        if target in (str(path), f"{path} (deleted)"):
            out.append(fd)
    return out
