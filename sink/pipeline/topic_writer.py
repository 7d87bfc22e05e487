"""The Kafka output: ThinkingData lines into a topic, exactly once, with Kafka
transactions (``output.kafka.topic``; LogBus2's Kafka source reads it with
``read_committed``).

Each line is one message, its value the line, keyed by its ``#account_id``,
else its ``#distinct_id`` (ThinkingData asks that a user's lines stay in one
partition); ``{app_id}`` in the topic's name gives a topic per app. The
producer is transactional (``transactional.id``: one per mtga instance, stable
across its restarts, so a new start fences the one before): the deliver stage
(sink/pipeline/delivery.py) makes each batch one transaction holding its lines
and its consumer offsets, committed with the consumer group's metadata, so a
zombie (a host whose partitions moved on) is fenced by the group and writes
nothing a read_committed reader sees. ``flush`` commits the transaction of a
failure-queue retry round (no offsets).

What does not commit raises SinkError after the transaction is aborted: the
batch is rewound and comes again. A producer fenced or in a fatal state is made
again (``init_transactions`` aborts what the previous one left open).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Optional

import msgspec
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from mulog.access import denial
from mulog.connection import Connection
from sink.pipeline.writer import SinkError

log = logging.getLogger("mtga.output")

_UUID = re.compile(rb'"#uuid":"([0-9a-f-]{36})"')
_ID = re.compile(rb'"#(account_id|distinct_id)":("(?:[^"\\]|\\.)*")')
_ROOM_S = 0.05  # a full producer queue: poll this long, then produce again


def key_of(line: bytes) -> Optional[bytes]:
    """The message key of a line: its #account_id, else its #distinct_id (as text)."""
    acc = did = None
    for m in _ID.finditer(line):
        if m.group(1) == b"account_id":
            acc = m.group(2)
            break
        if did is None:
            did = m.group(2)
    raw = acc if acc is not None else did
    if raw is None:
        return None
    return raw[1:-1] if b"\\" not in raw else msgspec.json.decode(raw).encode()


class TopicWriter:
    """The transactional producer of the Kafka output."""

    transactional = True

    def __init__(self, connection: Connection, topic: str, settings: dict, transactional_id: str,
                 timeout_s: float = 30.0):
        self.connection = connection
        self.template = topic
        self.settings = settings
        self.transactional_id = transactional_id
        self.timeout_s = timeout_s
        self._topics: dict[str, str] = {}
        self.producer = None
        self._consumer = None  # reads the output back (written_since)
        self.in_txn = False
        self.failed: Optional[str] = None  # a delivery report's error in the open transaction
        self.bytes_written = 0
        self.errors = 0
        self.last_error: Optional[str] = None
        self.refused: Optional[str] = None  # what Kafka refuses (mulog/access.py), said once
        self.transactions = 0

    # ------------------------------------------------------------ the producer
    def _producer(self):
        if self.producer is None:
            conf = {"compression.type": "snappy", "linger.ms": 5, **self.settings,
                    "transactional.id": self.transactional_id, "enable.idempotence": True, "acks": "all",
                    "on_delivery": self._delivered}
            p = self.connection.producer(conf)
            try:
                p.init_transactions(self.timeout_s)
            except KafkaException as e:
                self._error("cannot start the transactional producer", e)
            self.producer = p
        return self.producer

    def _delivered(self, err, msg) -> None:
        if err is not None and self.failed is None:
            self.failed = f"{msg.topic()}: {err.str()}"

    def topic(self, app: str) -> str:
        t = self._topics.get(app)
        if t is None:
            t = self._topics[app] = self.template.replace("{app_id}", app)
        return t

    def prepare(self) -> None:
        """Make the producer now: ``init_transactions`` ends what a previous one
        (of this run, dropped, or of the run before) left pending."""
        if self.in_txn:
            self.abort()
        self._producer()

    # ------------------------------------------------------------ transactions
    def begin(self) -> None:
        if self.in_txn:
            return
        p = self._producer()
        try:
            p.begin_transaction()
        except KafkaException as e:
            self._error("cannot begin a transaction", e)
        self.in_txn = True
        self.failed = None

    def write_blob(self, app: str, bufs: list, nlines: int) -> int:
        """Produce ``nlines`` newline-terminated lines (held in ``bufs``) in the open transaction."""
        self.begin()
        data = b"".join(bytes(b) for b in bufs)
        topic = self.topic(app)
        produce, poll = self.producer.produce, self.producer.poll
        for line in data.split(b"\n")[:-1]:
            while True:
                try:
                    produce(topic, line, key_of(line))
                    break
                except BufferError:  # the producer's queue is full: let it send
                    poll(_ROOM_S)
                except KafkaException as e:
                    self._error(f"cannot produce to {topic}", e)
        poll(0)
        self.bytes_written += len(data)
        return len(data)

    def write(self, app: str, lines: list) -> int:
        return self.write_blob(app, [b"\n".join(lines) + b"\n"], len(lines)) if lines else 0

    def commit(self, offsets: Optional[dict] = None, group_metadata=None) -> None:
        """Commit the open transaction, with ``{(topic, partition): next offset}``
        committed for the consumer group of ``group_metadata`` in it."""
        if not self.in_txn:
            self.begin()
        p = self.producer
        try:
            if offsets:
                tps = [TopicPartition(t, part, o) for (t, part), o in offsets.items()]
                p.send_offsets_to_transaction(tps, group_metadata, self.timeout_s)
            p.commit_transaction(self.timeout_s)
        except KafkaException as e:
            self._error("the transaction did not commit", e)
        if self.failed is not None:  # (commit_transaction raises first; kept as a guard)
            self._error("a line was not delivered", None)
        self.in_txn = False
        self.transactions += 1
        self.last_error = None
        if self.refused is not None:
            log.info("the output: Kafka accepts mtga's transactions again")
            self.refused = None

    def abort(self) -> None:
        """Abort the open transaction (nothing of it is visible to a read_committed reader)."""
        if not self.in_txn or self.producer is None:
            self.in_txn = False
            return
        try:
            self.producer.abort_transaction(self.timeout_s)
        except KafkaException as e:
            log.warning("aborting the transaction failed (%s); a new producer fences it", _describe(e))
            self._drop()
        self.in_txn = False

    def flush(self) -> None:
        """Commit a transaction left open (a failure-queue retry round's lines)."""
        if self.in_txn:
            self.commit()

    # ------------------------------------------------------------ reading back
    def _reader(self):
        if self._consumer is None:
            self._consumer = self.connection.consumer({"group.id": f"{self.transactional_id}-reader",
                                                       "isolation.level": "read_committed",
                                                       "enable.auto.commit": False})
        return self._consumer

    def ends(self, topics) -> list[tuple[str, int, int]]:
        """(topic, partition, end offset) of every partition of ``topics`` now."""
        c = self._reader()
        out = []
        try:
            md = c.list_topics(timeout=self.timeout_s).topics
            for t in sorted(set(topics)):
                if t in md and md[t].error is None:
                    for p in sorted(md[t].partitions):
                        out.append((t, p, c.get_watermark_offsets(TopicPartition(t, p), timeout=self.timeout_s)[1]))
        except KafkaException as e:
            self._error("cannot read where the output topics end", e)
        return out

    def written_since(self, ends: list) -> set:
        """(source key, position) of every event whose last line a read_committed
        reader sees in the output past ``ends`` (what a retry round committed)."""
        from sink.ta.uuids import parse

        c = self._reader()
        found: set = set()
        try:
            his = {(t, p): c.get_watermark_offsets(TopicPartition(t, p), timeout=self.timeout_s)[1]
                   for t, p, _o in ends}
            parts = [TopicPartition(t, p, o) for t, p, o in ends if his[(t, p)] > o]
            if not parts:
                return found
            c.assign(parts)
            deadline = time.monotonic() + 4 * self.timeout_s
            while time.monotonic() < deadline:
                m = c.poll(0.5)
                if m is None:
                    pos = c.position(parts)
                    if all(tp.offset >= his[(tp.topic, tp.partition)] - 1 for tp in pos):
                        break  # (the last offset may be a transaction's marker)
                    continue
                if m.error() is None:
                    u = _UUID.search(m.value() or b"")
                    p = parse(u.group(1).decode()) if u else None
                    if p is not None:
                        found.add(p)
            c.unassign()
        except KafkaException as e:
            self._error("cannot read the output topics back", e)
        return found

    def lengths(self) -> dict:
        return {}  # (no files: the recovery record has none)

    def close(self) -> None:
        if self.in_txn:
            self.abort()
        if self.producer is not None:
            self.producer.flush(self.timeout_s)
            self.producer = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # ------------------------------------------------------------ errors
    def _error(self, what: str, e: Optional[KafkaException]):
        self.errors += 1
        detail = self.failed if e is None else _describe(e)
        self.last_error = f"{what}: {detail}"
        err = e.args[0] if e is not None and e.args and isinstance(e.args[0], KafkaError) else None
        refused = None
        if err is not None:
            txn = err.name() == "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
            refused = denial(err, self.connection, "Write", self.transactional_id if txn else None)
        if refused is not None:
            if refused != self.refused:
                log.error("the output: %s", refused)
                self.refused = refused
            detail = refused
            self.last_error = f"{what}: {detail}"
            if err.fatal():
                self._drop()
        elif err is not None and (err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                                                KafkaError.INVALID_PRODUCER_EPOCH)):
            log.error("the output's producer is fenced or failed (%s); a new one is made", detail)
            self._drop()
        raise SinkError(f"sink_write: {self.last_error}")

    def _drop(self) -> None:
        """Leave a producer that cannot go on: the next transaction makes a new one."""
        self.producer = None
        self.in_txn = False


def _describe(e: KafkaException) -> str:
    err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
    return err.str() if err is not None else str(e)
