"""The fleet view: every shipper and mtga says it is alive.

Each process publishes a small heartbeat record to a compacted Kafka topic
(``fleet.topic``, default ``mulog_fleet``), keyed by ``<role>/<host>``, every
``fleet.interval_s``, and a last record saying "stopped" on a clean stop: its
host, role, version, pid, start time and key figures. The topic keeps the latest
record of each key, so reading it from the beginning gives one row per process
that ever ran (``read``); a row whose last record is older than three intervals
is *silent* (killed, frozen, or its host gone), one that said so is *stopped*.

The heartbeat has its own producer and thread: a broker down means no
heartbeat, never a slower or blocked program (its queue holds a few records and
drops the rest; nothing waits on a delivery). ``Watch`` keeps the table current
in a process (mtga's ``mtga_fleet_silent_hosts`` gauge) from a consumer of its
own, without a group.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Callable, Optional

import msgspec
from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

from mulog import version
from mulog.connection import Connection


SILENT_AFTER = 3  # intervals without a record


class Beat(msgspec.Struct, omit_defaults=True):
    host: str
    role: str
    state: str  # "up" | "stopped"
    version: str
    pid: int
    started: float
    sent: float
    interval_s: float
    figures: dict = {}


class Row(msgspec.Struct):
    """One process of the fleet as its last record says, and its state now."""

    host: str
    role: str
    state: str  # up | silent | stopped
    last_seen: float
    age_s: float
    version: str
    pid: int
    started: float
    figures: dict


def host_name(configured: Optional[str]) -> str:
    return configured or socket.gethostname()


def ensure_topic(conn: Connection, topic: str, log: logging.Logger, timeout: float = 10) -> None:
    """Create the compacted topic if it is missing (a topic that exists is left as it is)."""
    admin = conn.admin({"log_level": 0, "logger": log})
    md = admin.list_topics(timeout=timeout)
    if topic in md.topics:
        return
    f = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=-1,
                                      config={"cleanup.policy": "compact", "segment.ms": "3600000"})])[topic]
    try:
        f.result(timeout=timeout)
    except KafkaException as e:
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise


class Heartbeat:
    """Publishes this process's record every ``interval_s`` from its own thread."""

    def __init__(self, conn: Connection, topic: str, host: str, role: str, interval_s: float,
                 figures: Callable[[], dict], extra: Optional[dict] = None, watch: bool = False):
        self.topic, self.host, self.role, self.interval_s = topic, host, role, interval_s
        self.conn = conn
        self.figures = figures
        self.key = f"{role}/{host}".encode()
        self.log = logging.getLogger(f"{role}.fleet")  # the program's own logger tree
        self.started = time.time()
        conf = {"queue.buffering.max.messages": 10,
                "message.timeout.ms": int(max(1.0, interval_s * SILENT_AFTER) * 1000), "linger.ms": 0,
                "log_level": 0, "logger": self.log}
        conf.update(extra or {})
        self.producer = conn.producer(conf)
        self.sent = 0
        self.dropped = 0
        self.watch = Watch(conn, topic, extra, self.log) if watch else None
        self.silent = 0  # processes of the fleet silent for more than 3 of their intervals (with ``watch``)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-heartbeat", daemon=True)

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def _beat(self, state: str) -> None:
        try:
            figures = self.figures()
        except Exception:  # the figures come from a snapshot; a heartbeat without them still says "alive"
            figures = {}
        b = Beat(self.host, self.role, state, version(), os.getpid(), self.started, time.time(), self.interval_s,
                 figures)
        try:
            self.producer.produce(self.topic, msgspec.json.encode(b), self.key)
            self.sent += 1
        except (BufferError, KafkaException):
            self.dropped += 1  # the broker is away: this heartbeat is lost, the program goes on
        self.producer.poll(0)

    def _run(self) -> None:
        try:
            ensure_topic(self.conn, self.topic, self.log)
        except Exception as e:  # the broker may be down at start: the records wait in the producer
            self.log.info("fleet topic %s not checked (%s); heartbeats go on", self.topic, e)
        while not self._stop.is_set():
            self._beat("up")
            if self.watch is not None:
                try:
                    self.watch.poll(min(0.5, self.interval_s / 2))
                    self.silent = sum(r.state == "silent" for r in self.watch.rows())
                except KafkaException as e:
                    self.log.debug("fleet topic not read: %s", e)
            self._stop.wait(self.interval_s)

    def stop(self, timeout: float = 3.0) -> None:
        """Say "stopped" (a clean stop), waiting at most ``timeout`` for Kafka."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._beat("stopped")
        self.producer.flush(timeout)
        if self.watch is not None:
            self.watch.close()

    def abandon(self) -> None:
        """Stop without a "stopped" record (the process ends on an error: silent, as if killed)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(3.0)
        if self.watch is not None:
            self.watch.close()


def _row(b: Beat, now: float) -> Row:
    age = max(0.0, now - b.sent)
    state = "stopped" if b.state == "stopped" else "silent" if age > SILENT_AFTER * b.interval_s else "up"
    return Row(b.host, b.role, state, b.sent, round(age, 1), b.version, b.pid, b.started, b.figures)


class Watch:
    """The fleet table, read from the topic's beginning and then followed."""

    def __init__(self, conn: Connection, topic: str, extra: Optional[dict] = None,
                 log: Optional[logging.Logger] = None):
        conf = {"group.id": "mulog-fleet-reader", "enable.auto.commit": False,
                "log_level": 0, "logger": log or logging.getLogger("mtga.fleet")}
        conf.update(extra or {})
        self.consumer = conn.consumer(conf)
        self.topic = topic
        self.beats: dict[bytes, Beat] = {}
        self.assigned = False
        self.error = None  # the topic's error in the metadata (missing, or not allowed), while unassigned

    def _assign(self, timeout: float) -> bool:
        md = self.consumer.list_topics(self.topic, timeout=timeout)
        t = md.topics.get(self.topic)
        if t is None or t.error is not None or not t.partitions:
            self.error = t.error if t is not None else None
            return False
        self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in t.partitions])
        self.assigned = True
        return True

    def poll(self, timeout: float = 0.0) -> None:
        """Take the records that arrived (``timeout``: wait at most that long for the first)."""
        if not self.assigned and not self._assign(max(timeout, 1.0)):
            return
        for m in self.consumer.consume(10_000, timeout):
            self._take(m)

    def _take(self, m) -> None:
        if m.error() is not None or m.key() is None:
            return
        try:
            self.beats[m.key()] = msgspec.json.decode(m.value(), type=Beat)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass  # not a heartbeat of ours

    def read_all(self, timeout: float = 10.0) -> None:
        """Read up to the end of the topic as it is now."""
        deadline = time.monotonic() + timeout
        if not self._assign(timeout):
            return
        parts = self.consumer.assignment()
        ends = {tp.partition: self.consumer.get_watermark_offsets(tp, timeout=timeout)[1] for tp in parts}
        done = {p: 0 for p in ends}
        while any(done[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            for m in self.consumer.consume(10_000, 0.5):
                if m.error() is None:
                    done[m.partition()] = m.offset() + 1
                self._take(m)

    def rows(self, now: Optional[float] = None) -> list[Row]:
        now = time.time() if now is None else now
        return sorted((_row(b, now) for b in self.beats.values()), key=lambda r: (r.role, r.host))

    def close(self) -> None:
        self.consumer.close()


class Refused(Exception):
    """The fleet topic is missing, or this principal may not read it (the message says what to fix)."""


def read(conn: Connection, topic: str, timeout: float = 10.0) -> list[Row]:
    w = Watch(conn, topic)
    try:
        w.read_all(timeout)
        if not w.assigned and w.error is not None and w.error.name() != "UNKNOWN_TOPIC_OR_PART":
            from mulog.access import denial  # a missing topic is a fleet that never beat: no rows

            raise Refused(denial(w.error, conn, "Read", topic) or f"fleet topic {topic}: {w.error.str()}")
        return w.rows()
    finally:
        w.close()
