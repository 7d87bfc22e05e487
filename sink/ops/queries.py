"""What operators ask about: per-partition offsets and lag, from Kafka's admin
API and the local store. Used by the daemon (to answer over its socket) and by
the CLI when no daemon runs; both produce the same rows, with the daemon's own
rules for which topics it consumes and where a partition resumes (sink/pipeline/intake.py)."""

from __future__ import annotations

import time
from typing import Optional

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from mulog.connection import Connection
from mulog.exitcodes import Exit

from sink.pipeline.intake import matching_topics, resume_point


class QueryError(Exception):
    """Kafka could not answer in time; the message says what was asked."""

    exit_code = Exit.UNREACHABLE  # also when the daemon asked (sink/ops/control.py passes it on)


class QueryRefused(QueryError):
    """Kafka answered no: a topic that does not exist, or one the principal may not see."""

    exit_code = Exit.CONDITION


def admin_client(conn: Connection) -> AdminClient:
    import logging

    quiet = logging.getLogger("mtga.query.kafka")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    return conn.admin({"logger": quiet, "socket.connection.setup.timeout.ms": 5000})


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


def partitions(admin: AdminClient, topics: list[str], pattern: Optional[str], deadline: float,
               conn: Optional[Connection] = None) -> list[tuple[str, int]]:
    try:
        md = admin.list_topics(timeout=_left(deadline))
    except KafkaException as e:
        raise QueryError(f"Kafka did not list its topics: {e}") from None
    if pattern:
        names = matching_topics(pattern, md.topics)
    else:
        names = [t for t in topics if t in md.topics]
        for t in (t for t in topics if t not in md.topics):  # missing, or hidden from this principal
            _refused(admin, t, deadline, conn)
    out = []
    for t in names:
        for p in sorted(md.topics[t].partitions):
            out.append((t, p))
    return out


def _refused(admin: AdminClient, topic: str, deadline: float, conn: Optional[Connection]) -> None:
    """Raise QueryRefused saying why ``topic`` is not listed (mulog/access.py)."""
    from mulog.access import denial

    try:
        err = admin.list_topics(topic, timeout=_left(deadline)).topics[topic].error
    except (KafkaException, KeyError) as e:
        raise QueryError(f"Kafka did not describe topic {topic}: {e}") from None
    line = denial(err, conn, "Describe", topic) if err is not None and conn is not None else None
    raise QueryRefused(line or f"topic {topic} is not listed by Kafka ({err.str() if err else 'no error given'})")


def watermarks(admin: AdminClient, tps: list[tuple[str, int]], deadline: float) -> dict:
    """(topic, partition) -> (low, high), from the admin API's ListOffsets."""
    if not tps:
        return {}
    res = {}
    for spec_name, spec in (("low", OffsetSpec.earliest()), ("high", OffsetSpec.latest())):
        futs = admin.list_offsets({TopicPartition(t, p): spec for t, p in tps}, request_timeout=_left(deadline))
        for tp, f in futs.items():
            try:
                r = f.result(timeout=_left(deadline))
            except Exception as e:
                raise QueryError(f"Kafka did not give the {spec_name} watermark of {tp.topic}[{tp.partition}]: {e}") from None
            res.setdefault((tp.topic, tp.partition), {})[spec_name] = r.offset
    return {k: (v["low"], v["high"]) for k, v in res.items()}


def group_offsets(admin: AdminClient, group: str, tps: list[tuple[str, int]], deadline: float) -> dict:
    """(topic, partition) -> the group's committed offset (absent when none)."""
    if not tps:
        return {}
    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in tps])]
    try:
        futs = admin.list_consumer_group_offsets(req, request_timeout=_left(deadline))
        res = futs[group].result(timeout=_left(deadline))
    except Exception as e:
        raise QueryError(f"Kafka did not give the offsets of group {group}: {e}") from None
    return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions if tp.offset >= 0}


def offset_rows(conn: Connection, group: str, topics: list[str], pattern: Optional[str], local: dict,
                timeout: float, admin: Optional[AdminClient] = None) -> list[dict]:
    """One row per partition of the consumed topics.

    ``current`` is the offset this host would resume the partition from: the newer
    of the locally stored offset and the group's committed offset (``source`` says
    which: local, group or none), the rule applied on assignment. With several
    hosts in a group, a host's local offsets of partitions another host took over
    are stale; the group's then wins, so every host shows the same rows as the
    group's view (``kafka-consumer-groups --describe``). ``lag`` is
    ``high - current`` (``high - low`` when nothing was consumed yet).
    """
    deadline = time.monotonic() + timeout
    admin = admin or admin_client(conn)
    tps = partitions(admin, topics, pattern, deadline, conn)
    # partitions stored locally but no longer in the metadata (deleted topics) are left out
    wm = watermarks(admin, tps, deadline)
    group_off = group_offsets(admin, group, tps, deadline)
    rows = []
    for i, (t, p) in enumerate(tps):
        low, high = wm[(t, p)]
        cur, src = resume_point(local.get((t, p)), group_off.get((t, p)))
        base = cur if cur is not None else low
        rows.append({"#": i, "topic": t, "partition": p, "low": low, "high": high, "current": cur,
                     "lag": max(0, high - max(base, low)), "source": src, "group": group_off.get((t, p))})
    return rows


def caught_up(rows: list[dict]) -> bool:
    """offset-checker's rows say mtga is done: every partition stored locally with
    lag 0. A partition no event reached is empty and has nothing to store."""
    return bool(rows) and all(x["lag"] == 0 and (x["source"] == "local" or x["high"] == x["low"]) for x in rows)
