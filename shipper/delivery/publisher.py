"""Publisher: framed lines -> Kafka, one message per line.

Each line is produced as is (no newline). Where it comes from (host, path, file
identity, byte offset, app_id, log_name) travels in its key, and the partition
is picked from the file identity, so a file's lines stay in order in one
partition (the key form, mulog/wire.py); with ``kafka.wire_format: headers``,
or while a topic's partitions are unknown, the key is the file identity and the
six fields are headers (the headers form, placed in the same partition).

Speed: ``produce()`` is called with positional arguments and, for every line but
the last of a read chunk, without a delivery callback; the last line carries the
chunk (shipper/files/acks.py). The idempotent producer keeps a partition's messages in
order, and ``enable.gapless.guarantee`` turns any failure that could leave a hole
before an acknowledged message into a fatal error, so one acknowledgement per
chunk is enough (shipper/config.py does not let ``kafka.producer`` change either,
nor acks=all or the partitioner). Delivery reports are read here and handed to
the file's acks: acknowledged, refused (sent again) or purged at the stop. Fatal
errors arrive through ``error_cb``.

Memory: the bytes and messages handed to the producer and not yet acknowledged are
counted here; reading pauses (``room()`` is False) well before librdkafka's own
queue limits, so the queue stays bounded while Kafka is away and nothing is
dropped. A ``BufferError`` all the same makes ``send`` wait and retry the line.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from confluent_kafka import KafkaError, KafkaException

from mulog import wire
from mulog.access import denial, writes_refused
from mulog.config import ConfigError
from mulog.connection import Connection
from mulog.kafkalog import Fold

from shipper.delivery import forms
from shipper.files.acks import Chunk
from shipper.files.framing import Frame
from mulog.runtime.instrument import Instruments
from shipper.files.tailer import Tailer

log = logging.getLogger("shipper.publisher")
kafka_log = logging.getLogger("shipper.kafka")

MSG_OVERHEAD = 256  # bytes librdkafka keeps per message besides the payload (key, headers, bookkeeping)
REPLACE_S = 5.0  # how long a producer turned away as a whole waits before a new one tries again
_PURGED = frozenset((KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT))
_UNREACHABLE = frozenset((KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE,
                          KafkaError._TIMED_OUT))


class _QuietExperimental(logging.Filter):
    """librdkafka warns at every start that enable.gapless.guarantee is 'experimental'."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "gapless.guarantee is experimental" not in record.getMessage()


kafka_log.addFilter(_QuietExperimental())


class Stopping(Exception):
    """Raised out of ``send`` when the shipper stops while waiting for room."""


class _Replaced(Exception):
    """The producer was replaced while a chunk's lines waited for room in its queue."""


class Publisher:
    def __init__(self, conn: Connection, producer_conf: dict, counters: Instruments,
                 should_stop: Callable[[], bool], on_fatal: Callable[[str], None], topics: list[str] = (),
                 wire_format: str = "key"):
        conf = dict(producer_conf)
        self.key_form = wire_format == "key"
        self.nparts: dict[str, tuple[int, float]] = {}  # topic -> (partitions, when looked up)
        conf["error_cb"] = self._on_error
        self.fold = Fold(kafka_log)  # repeated client errors said once a minute, and when Kafka answers again
        conf.update(self.fold.client_conf(conf))
        self.c = counters
        self.should_stop = should_stop
        self.on_fatal = on_fatal
        max_msgs = int(conf.get("queue.buffering.max.messages", 100_000))
        max_kb = int(conf.get("queue.buffering.max.kbytes", 1_048_576))
        # keep well under librdkafka's limits: one more chunk must always fit
        self.max_msgs = max(1000, int(max_msgs * 0.8))
        self.max_bytes = max(2 << 20, int(max_kb * 1024 * 0.8))
        self.inflight_msgs = 0
        self.inflight_bytes = 0
        self.down_since: float | None = None  # time.monotonic() when Kafka became unreachable
        self.down_at: float | None = None  # the same moment as time.time(), for the status
        self.down_errors = 0  # client errors since (mulog/kafka_state.py)
        self.contacted = False  # a broker answered once (a metadata request or an acknowledgement)
        self.fatal = ""
        self.conn = conn
        self.denied: str | None = None  # what to fix while Kafka turns the shipper away (mulog/access.py)
        self.topics = sorted(set(topics))  # the inputs' topics (named when Kafka refuses every write)
        self.conf = conf
        self.acked_here = 0  # acknowledgements from this producer (a new one after a refusal starts at 0)
        self.replace_at: float | None = None  # when a producer turned away as a whole is replaced
        self.replacing = False
        try:
            self.producer = conn.producer(conf)
        except KafkaException as e:
            err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
            raise ConfigError(None, "kafka.producer", f"the Kafka client refuses it: {err.str() if err else e}") \
                from None
        self._produce = self.producer.produce

    # --------------------------------------------------------------- sending
    def room(self) -> bool:
        """True while another read chunk may be handed to the producer."""
        return self.inflight_bytes < self.max_bytes and self.inflight_msgs < self.max_msgs

    def send(self, t: Tailer, frame: Frame) -> None:
        """Produce every line of ``frame``; the last one carries the chunk."""
        lines = frame.lines
        n = len(lines)
        c = self.c
        if n == 0:
            t.acks.nothing_to_send(frame.end)
            c.lines_read.value += frame.empty
            c.lines_empty.value += frame.empty
            return
        nbytes = sum(map(len, lines)) + n * MSG_OVERHEAD
        chunk = t.acks.chunk(frame.end, n, nbytes, self.report)
        self.inflight_msgs += n
        self.inflight_bytes += nbytes
        try:
            self._send(t, frame, chunk)
        except KafkaException as e:
            err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else KafkaError(KafkaError._FAIL, str(e))
            if err.fatal():
                self._fatal(err.str())
            self.report(chunk, err)  # the chunk counts as refused: the tailer goes back and sends it again
            return
        except _Replaced:
            # its first lines went to the producer replaced meanwhile (purged, or delivered unreported):
            # refused, so that the tailer reads the chunk again and the new producer sends all of it
            self.report(chunk, KafkaError(KafkaError._FAIL, "the Kafka producer was replaced while the lines "
                                                            "waited for room"))
            return
        self._cuts(t, frame)
        c.lines_sent.value += n
        c.lines_read.value += n + frame.empty
        c.bytes_sent.value += frame.end - frame.start

    def _partition(self, t: Tailer):
        """The partition of the tailer's file in the key form, or None (the headers
        form then: the topic's partitions unknown for now)."""
        n = forms.partitions(self.nparts, t.topic, time.monotonic(), self._lookup)
        if not n:
            return None
        p = t.partition
        if p is None or p[0] != t.topic or p[1] != n:
            p = t.partition = (t.topic, n, wire.partition(t.key, n))
        return p[2]

    def _lookup(self, topic: str) -> int:
        """The topic's partition count from the broker (0: not known now; blocks up to 1 s)."""
        try:
            md = self.producer.list_topics(topic, timeout=1).topics.get(topic)
        except KafkaException:
            return 0
        return len(md.partitions) if md is not None and md.error is None else 0

    def _send(self, t: Tailer, frame: Frame, chunk: Chunk) -> None:
        if self.key_form and t.key_prefix is not None:
            part = self._partition(t)
            if part is not None:
                return forms.send_keyed(self._produce, self._wait_room, t, frame, chunk, part)
        forms.send_headers(self._produce, self._wait_room, t, frame, chunk)

    def _cuts(self, t: Tailer, frame: Frame) -> None:
        if frame.offsets is not None:
            mx = t.input.max_line_bytes
            for off, full in frame.cuts:
                self.c.lines_cut("line cut: %s at offset %d is %d bytes, longer than max_line_bytes=%d; "
                                 "sent its first %d bytes", t.path, off, full, mx, mx)
            self.c.lines_empty.value += frame.empty

    def _wait_room(self) -> None:
        self.c.producer_queue_full("producer queue full (%d lines, %d bytes waiting for Kafka): waiting for room",
                          len(self.producer), self.inflight_bytes)
        producer = self.producer
        while True:
            served = self.poll(0.05)
            if self.producer is not producer:
                raise _Replaced()  # the rest of the chunk must not go to the old one (send)
            if self.should_stop():
                raise Stopping()
            if served:
                return

    def report(self, chunk: Chunk, err) -> None:
        """The delivery report of a chunk's last line (or its failure to be produced)."""
        self.inflight_msgs -= chunk.n
        self.inflight_bytes -= chunk.nbytes
        acks = chunk.acks
        if err is None:
            self.c.lines_acked.value += chunk.n
            self.acked_here += 1
            acks.acked(chunk)
            self.contacted = True
            if self.denied is not None:
                log.info("Kafka accepts the shipper's lines again")
                self.denied = None
            if self.down_since is not None:
                self._back()
        elif err.code() in _PURGED and not self.replacing:
            acks.dropped(chunk)  # never sent (the stop): read again at the next start
        elif self._denied(err, acks.owner.topic):  # said once per change, with what to fix
            acks.refuse(chunk, err.str())
            self.c.chunk_errors.add(1)
        elif acks.refuse(chunk, err.str()):
            t = acks.owner
            self.c.chunk_errors("Kafka refused lines of %s (%s, offsets up to %d): %s; they will be sent again",
                                t.path, t.identity, chunk.end, err)
        else:
            self.c.chunk_errors.add(1)  # the same refusal, said once for the file

    # --------------------------------------------------------------- polling
    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports and errors (a fatal error may surface here as an
        exception: it is reported through ``on_fatal``)."""
        if self.replace_at is not None and time.monotonic() >= self.replace_at:
            self._replace()
        try:
            return self.producer.poll(timeout)
        except (KafkaException, SystemError) as e:
            self._raised(e)
            return 0

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for acknowledgements; returns messages left."""
        deadline = time.monotonic() + timeout
        left = len(self.producer)
        while left and time.monotonic() < deadline:
            try:
                self.producer.flush(min(0.5, max(0.0, deadline - time.monotonic())))
            except (KafkaException, SystemError) as e:
                self._raised(e)
                if self.fatal:
                    break
            left = len(self.producer)
        return left

    def _raised(self, e: Exception) -> None:
        err = e.args[0] if isinstance(e, KafkaException) and e.args else None
        cause = e.__cause__ or e.__context__
        if err is None and isinstance(cause, KafkaException) and cause.args:
            err = cause.args[0]
        if isinstance(err, KafkaError):
            if err.fatal():
                self._fatal(err.str())
            else:
                self.c.kafka_errors("Kafka: %s", err.str())
        else:
            self._fatal(str(e))

    def _fatal(self, text: str) -> None:
        line = writes_refused(self.conn, text, self.topics) if self.acked_here == 0 else None
        if line is not None:  # no line of this producer was written: a new one, once allowed, sends them all
            self._say_denied(line)
            if self.replace_at is None:
                self.replace_at = time.monotonic() + REPLACE_S
            return
        if not self.fatal:
            self.fatal = f"fatal Kafka producer error: {text}"
            log.error("%s", self.fatal)
            self.on_fatal(self.fatal)

    def _replace(self) -> None:
        """A new producer in place of one that Kafka turned away as a whole; what the
        old one held is refused (read again from the files and sent by the new one)."""
        old = self.producer
        self.replacing = True
        try:
            old.purge(in_queue=True, in_flight=True, blocking=False)
            old.flush(5)
        except (KafkaException, RuntimeError, SystemError):
            pass
        finally:
            self.replacing = False
        self.producer = self.conn.producer(self.conf)
        self._produce = self.producer.produce
        self.replace_at = None
        self.acked_here = 0
        log.info("a new Kafka producer: the refused lines are sent again")

    def _back(self) -> None:
        log.info("Kafka reachable again after %.1fs (%d client errors meanwhile); %d lines waiting to be "
                 "acknowledged", time.monotonic() - self.down_since, self.down_errors, self.inflight_msgs)
        self.down_since = self.down_at = None
        self.down_errors = 0

    def probe(self, timeout: float) -> bool:
        """Ask a broker for metadata (blocks up to ``timeout`` s): True when one answered.
        Tells readiness before any line is sent, and a broker back while nothing waits."""
        try:
            self.producer.list_topics(timeout=timeout)
        except (KafkaException, SystemError):
            return False
        self.contacted = True
        if self.down_since is not None:
            self._back()
        return True

    def queued(self) -> int:
        return len(self.producer)

    def _denied(self, err: KafkaError, topic: str | None = None) -> bool:
        """Keep (and say, once per change) what to fix when Kafka turns the shipper away."""
        line = denial(err, self.conn, "Write", topic)
        if line is None:
            return False
        self._say_denied(line)
        return True

    def _say_denied(self, line: str) -> None:
        """Said once for what is refused, whatever error of the client told it (the
        part in parentheses): a refused topic, then the refused producer id, is one."""
        if self.denied is None or line.split(" (", 1)[0] != self.denied.split(" (", 1)[0]:
            log.error("%s; the lines wait and are sent again", line)
        self.denied = line

    def _on_error(self, err: KafkaError) -> None:
        self._denied(err)
        if err.fatal():
            self._fatal(err.str())
            return
        if err.code() in _UNREACHABLE:
            if self.down_since is None:
                self.down_since, self.down_at, self.down_errors = time.monotonic(), time.time(), 0
                self.c.kafka_unreachable("Kafka unreachable (%s); lines are kept and reading pauses when %d MB "
                                         "are waiting", err.str(), self.max_bytes >> 20)
        else:
            self.c.kafka_errors.add(1)
        if self.down_since is not None:
            self.down_errors += 1
        self.fold.error(err)

    def close(self) -> None:
        # purge what is left (positions were saved only up to acknowledged lines)
        try:
            self.producer.purge(in_queue=True, in_flight=True, blocking=False)
            self.producer.poll(0)
        except (KafkaException, RuntimeError, SystemError):
            pass


__all__ = ["Publisher", "Stopping"]
