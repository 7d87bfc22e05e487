"""The consumer stage: what mtga subscribes to, the rebalance callbacks, and
where an assigned partition resumes.

Owns the Kafka consumer and the set of partitions the group gave this host
(``assigned``: a frozenset, replaced and never mutated, so other threads may
read it). The offsets themselves belong to the checkpoint (sink/pipeline/checkpoint.py):
on assignment this stage asks it for the locally stored offset, picks the resume
point, and tells it where each partition starts; on revocation it hands the
partitions to the pipeline, which drains and checkpoints them before they go.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Callable, Optional

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from mulog.access import denial
from mulog.config import ConfigError
from mulog.kafkalog import Fold

if TYPE_CHECKING:
    from mulog.runtime.instrument import Instruments

    from sink.pipeline.checkpoint import OffsetCheckpoint
    from sink.config import KafkaConf, MtgaConfig

log = logging.getLogger("mtga")

TP = tuple  # (topic, partition)
_UNREACHABLE = frozenset((KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE))


def topic_regex(pattern: str) -> str:
    """``topic_pattern`` as the consumer subscribes to it: anchored at the start
    (librdkafka takes a subscription beginning with ``^`` as a regular expression)."""
    return pattern if pattern.startswith("^") else "^" + pattern


def matching_topics(pattern: str, names) -> list[str]:
    """The topics of ``names`` the consumer's subscription to ``pattern`` takes
    (Kafka's internal ``__`` topics never), sorted."""
    rx = re.compile(topic_regex(pattern))
    return sorted(t for t in names if rx.search(t) and not t.startswith("__"))


def _one(topics: list[str]) -> Optional[str]:
    return topics[0] if len(topics) == 1 else None


def subscription(k: "KafkaConf") -> list[str]:
    return list(k.topics) if k.topics else [topic_regex(k.topic_pattern)]


def resume_point(local: Optional[int], group: Optional[int]) -> tuple[Optional[int], str]:
    """Where a partition goes on: the newer of the locally stored and the group's
    committed offset (another host may have processed it meanwhile), with which
    one it was: "local", "group", or (neither) None and "none"."""
    if local is not None and (group is None or local >= group):
        return local, "local"
    if group is not None:
        return group, "group"
    return None, "none"


class Intake:
    """The consumer, its subscription and its rebalance callbacks."""

    def __init__(self, s: "MtgaConfig", checkpoint: "OffsetCheckpoint", inst: "Instruments",
                 on_revoke: Callable[[list, bool], None]):
        self.s = s
        self.checkpoint = checkpoint
        self.on_revoke = on_revoke  # (keys, lost): drain and checkpoint them before they go
        self.consumer: Optional[Consumer] = None
        self.assigned: frozenset = frozenset()
        self.contacted = False  # the group answered once (an assignment, even an empty one)
        self.down_since: Optional[float] = None  # time.time() when every broker became unreachable
        self.down_errors = 0  # client errors since then (mulog/kafka_state.py)
        self.kafka_errors = inst.kafka_errors
        self.fold = Fold(logging.getLogger("mtga.kafka"))
        self.denied: Optional[str] = None  # what to fix while Kafka turns mtga away (mulog/access.py)  # repeated client errors said once a minute

    @property
    def cooperative(self) -> bool:
        return "cooperative" in str(self.s.consumer.get("partition.assignment.strategy", ""))

    def open(self) -> list[str]:
        """Create the consumer and subscribe; returns the subscription."""
        try:
            self.consumer = self.new_consumer()
        except KafkaException as e:
            err = e.args[0] if e.args and isinstance(e.args[0], KafkaError) else None
            raise ConfigError(self.s.file, "kafka.consumer",
                              f"the Kafka client refuses it: {err.str() if err else e}") from None
        topics = subscription(self.s.conf.kafka)
        self.consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        return topics

    def new_consumer(self) -> Consumer:
        s = self.s
        conf = dict(s.consumer)
        conf.update({
            "group.id": s.conf.kafka.group_id,
            "auto.offset.reset": s.conf.kafka.auto_offset_reset,
            "error_cb": self.error,
            "on_commit": self.checkpoint.on_commit,
        })
        conf.update(self.fold.client_conf(conf))
        return s.connection.consumer(conf)

    def error(self, err: KafkaError) -> None:
        if err.code() in _UNREACHABLE and self.down_since is None:
            self.down_since = time.time()
            self.down_errors = 0
        if self.down_since is not None:
            self.down_errors += 1
        self.kafka_errors.value += 1
        self.fold.error(err)
        k = self.s.conf.kafka
        line = denial(err, self.s.connection, "Read", _one(k.topics), group=k.group_id)
        if line is not None and line != self.denied:
            log.error("%s", line)
            self.denied = line

    def _accepted(self) -> None:
        if self.denied is not None:
            log.info("Kafka accepts mtga again")
            self.denied = None

    # ------------------------------------------------------------ rebalance
    def _group_offsets(self, consumer: Consumer, parts: list) -> dict:
        group = {}
        try:
            for tp in consumer.committed(parts, timeout=10):
                if tp.error is None and tp.offset >= 0:
                    group[(tp.topic, tp.partition)] = tp.offset
        except KafkaException as e:
            log.warning("could not read the group's committed offsets (%s); using local offsets only", e)
        return group

    def _on_assign(self, consumer: Consumer, parts: list) -> None:
        self.contacted = True
        if parts:
            self._accepted()
        self.down_since = None
        self.down_errors = 0
        group = self._group_offsets(consumer, parts)
        chosen = []
        for tp in parts:
            key = (tp.topic, tp.partition)
            local = self.checkpoint.local(key)
            g = group.get(key)
            off, origin = resume_point(local, g)
            self.checkpoint.start(key, off, local, g)
            chosen.append(TopicPartition(tp.topic, tp.partition, OFFSET_INVALID if off is None else off))
            log.info("assigned %s[%d] from %s offset %s%s", tp.topic, tp.partition, origin if off is not None
                     else "reset", off if off is not None else self.s.conf.kafka.auto_offset_reset,
                     f" (local {local}, group {g})" if origin == "group" and local is not None else "")
        self.assigned = self.assigned | {(tp.topic, tp.partition) for tp in parts}
        if self.cooperative:
            consumer.incremental_assign(chosen)
        else:
            consumer.assign(chosen)
        try:  # a pause from an earlier assignment (a stall, then the partition lost) must not stay
            consumer.resume(chosen)
        except KafkaException as e:
            log.warning("resuming the assigned partitions failed: %s", e)

    def _on_revoke(self, consumer: Consumer, parts: list) -> None:
        keys = [(tp.topic, tp.partition) for tp in parts]
        log.info("revoked %s; storing their offsets first", ", ".join(f"{t}[{p}]" for t, p in keys))
        self._give_up(keys, lost=False)

    def _on_lost(self, consumer: Consumer, parts: list) -> None:
        keys = [(tp.topic, tp.partition) for tp in parts]
        log.warning("lost %s without revocation; stored locally, not committed to the group",
                    ", ".join(f"{t}[{p}]" for t, p in keys))
        self._give_up(keys, lost=True)

    def _give_up(self, keys: list, lost: bool) -> None:
        try:
            self.on_revoke(keys, lost)
        finally:
            self.assigned = self.assigned - set(keys)

    # ------------------------------------------------------------ consuming
    def consume(self, n: int, timeout: float) -> list:
        msgs = self.consumer.consume(n, timeout)
        if msgs and self.down_since is not None:
            self._back()
        if msgs and self.denied is not None and msgs[-1].error() is None:
            self._accepted()
        return msgs

    def _back(self) -> None:
        log.info("Kafka reachable again after %.1fs (%d client errors meanwhile)", time.time() - self.down_since,
                 self.down_errors)
        self.down_since = None
        self.down_errors = 0

    def probe_if_down(self, timeout: float = 0.2) -> None:
        """While every broker seemed down: a metadata request (blocks up to ``timeout`` s)
        tells when one answers again, even with nothing to consume."""
        if self.down_since is None or self.consumer is None:
            return
        try:
            self.consumer.list_topics(timeout=timeout)
        except (KafkaException, SystemError):
            return
        self._back()

    def committed(self, keys, timeout: float = 10) -> dict:
        """The group's committed offsets of ``keys`` (raises KafkaException)."""
        out = {}
        for tp in self.consumer.committed([TopicPartition(t, p) for t, p in keys], timeout=timeout):
            if tp.error is None and tp.offset >= 0:
                out[(tp.topic, tp.partition)] = tp.offset
        return out

    def seek(self, key: TP, offset: int) -> None:
        """Raises KafkaException when the consumer cannot seek the partition now."""
        self.consumer.seek(TopicPartition(key[0], key[1], offset))

    def pause(self, keys) -> None:
        self.consumer.pause([TopicPartition(t, p) for t, p in keys])

    def resume(self, keys) -> None:
        self.consumer.resume([TopicPartition(t, p) for t, p in keys])

    def commit(self, offsets: dict, sync: bool):
        """Commit ``{(topic, partition): offset}`` to the group; with ``sync`` the
        per-partition results are returned (else they come to on_commit)."""
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        return self.consumer.commit(offsets=tps, asynchronous=not sync)

    def lags(self, nexts: dict) -> dict:
        """Messages behind the end of each assigned partition, from the watermarks
        the consumer last saw (a partition nothing consumed nor stored yet starts
        where the reset policy says)."""
        lags = {}
        earliest = self.s.conf.kafka.auto_offset_reset == "earliest"
        for t, p in self.assigned:
            try:
                low, high = self.consumer.get_watermark_offsets(TopicPartition(t, p), cached=True)
            except KafkaException:
                continue
            if high < 0:
                continue  # no fetch answered for it yet
            nxt = nexts.get((t, p))
            if nxt is None:
                nxt = low if earliest else high
            lags[(t, p)] = max(0, high - max(nxt, low))
        return lags

    def close(self) -> None:
        """Leave the group (its revocation drains and checkpoints once more)."""
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
