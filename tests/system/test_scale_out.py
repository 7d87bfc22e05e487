"""Scale-out: several mtga hosts in one consumer group. Real broker, real processes.

Each host is an ``mtga start`` process with its own configuration, state folder
(RocksDB offsets, failure queue) and output folder, as on separate machines.
Events are identified by their deterministic ``#uuid`` (topic, partition,
offset), so the union of the hosts' outputs says what was lost or repeated.
A partition leader lost under load: tests/system/test_broker_failover.py."""


from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import kafkalocal
from mulog import sample
from mulog.connection import Connection
from sink.ops import queries
from support.hosts import APPS, Host
from support.mtga import count_lines, stored_offsets, uuid_counts, uuid_of, wait_for

pytestmark = pytest.mark.kafka












class Feeder(threading.Thread):
    """Produces ``payloads`` at about ``rate`` per second, round robin over ``partitions``
    (every partition gets its share); ``where[i]`` = (partition, offset)."""

    def __init__(self, bootstrap: str, topic: str, payloads: list[bytes], rate: int, partitions: int):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.payloads, self.rate = bootstrap, topic, payloads, rate
        self.partitions = partitions
        self.where: list = [None] * len(payloads)
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            p = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 10, "enable.idempotence": True,
                          "compression.type": "snappy"})

            def dr(i):
                def cb(err, msg):
                    if err is not None:
                        self.error = err
                    else:
                        self.where[i] = (msg.partition(), msg.offset())
                return cb

            step = max(1, self.rate // 10)
            for start in range(0, len(self.payloads), step):
                t0 = time.monotonic()
                for i in range(start, min(start + step, len(self.payloads))):
                    p.produce(self.topic, self.payloads[i], partition=i % self.partitions, on_delivery=dr(i))
                p.flush(60)
                self.sent = min(start + step, len(self.payloads))
                time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))  # pacing the load, not synchronising
            assert p.flush(60) == 0
        except BaseException as e:  # reported by the test
            self.error = e

    def finish(self, timeout: float = 120) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the feeder did not finish"
        assert self.error is None, self.error
        assert all(w is not None for w in self.where)

    def ends(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for p, o in self.where:
            out[p] = max(out.get(p, 0), o + 1)
        return out



def events(n: int, seed: int) -> list[bytes]:
    return list(sample.envelopes(n, app_ids=APPS, seed=seed))



_ADMINS: dict[str, AdminClient] = {}



def group_offsets(bootstrap: str, group: str, topic: str, parts: int) -> dict[int, int]:
    """The group's committed offsets from the admin API (ListConsumerGroupOffsets)."""
    admin = _ADMINS.get(bootstrap) or _ADMINS.setdefault(bootstrap, queries.admin_client(Connection(bootstrap)))
    res = queries.group_offsets(admin, group, [(topic, p) for p in range(parts)], time.monotonic() + 20)
    return {p: o for (_, p), o in res.items()}



def wait_split(hosts: list[Host], parts: int, timeout: float = 60) -> list[set[int]]:
    """Wait until the hosts' partitions are disjoint, cover the topic, and none is idle."""
    def split():
        sets = [h.partitions() for h in hosts]
        if any(not s for s in sets):
            return None
        union = set().union(*sets)
        if union == set(range(parts)) and sum(len(s) for s in sets) == parts:
            return sets
        return None
    return wait_for(split, timeout, f"{parts} partitions split between {', '.join(h.name for h in hosts)}",
                    every=0.5)



def union_counts(*hosts: Host, running: bool = False) -> Counter:
    c: Counter = Counter()
    for h in hosts:
        c.update(uuid_counts(h.out, running))
    return c



def consumer_groups_describe(bootstrap: str, group: str) -> list[dict]:
    """Rows of Kafka's own ``kafka-consumer-groups --describe`` (ConsumerGroupCommand)."""
    r = subprocess.run(kafkalocal.tool_command("consumer-groups", "--bootstrap-server", bootstrap, "--describe",
                                                "--group", group),
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = []
    head = None
    for ln in r.stdout.splitlines():
        f = ln.split()
        if f[:1] == ["GROUP"]:
            head = f
        elif head and len(f) == len(head) and f[0] == group:
            rows.append(dict(zip(head, f)))
    assert rows, r.stdout
    return rows



def test_two_hosts_split_partitions_views_agree_and_sigterm_hands_over_exactly_once(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=6)
    group = f"g-{topic}"
    a = Host(tmp_path / "host-a", kafka, topic, group)
    b = Host(tmp_path / "host-b", kafka, topic, group)
    first, second = events(12_000, seed=21), events(18_000, seed=22)
    t0 = time.monotonic()
    try:
        feed1 = Feeder(kafka, topic, first, rate=3000, partitions=6)
        feed1.start()
        a.start()
        wait_for(lambda: a.partitions() == set(range(6)) and len(stored_offsets(a.state)) == 6, 60,
                 "host a to take all 6 partitions and store their offsets", every=0.5)
        b.start()  # joins the group: a gives up three partitions (cooperative rebalance)
        pa, pb = wait_split([a, b], 6)
        print(f"\nsplit: host a {sorted(pa)}, host b {sorted(pb)}")
        assert len(pa) == len(pb) == 3
        # b took its partitions over from the offsets a committed when it gave them up
        took = {p for p, origin, _ in b.assigned_from(topic) if origin == "group"}
        assert took == pb, b.assigned_from(topic)
        feed1.finish()
        ends1 = feed1.ends()
        wait_for(lambda: group_offsets(kafka, group, topic, 6) == ends1, 60,
                 "every partition's end committed to the group")

        # ---- one view of progress: each host's offset-checker and the group's, nothing moving
        adm = group_offsets(kafka, group, topic, 6)
        cgc = {int(r["PARTITION"]): r for r in consumer_groups_describe(kafka, group)}
        rows = {}
        for h in (a, b):
            rc, rr, err = h.cli_json("offset-checker")
            assert rc == 0, err
            rows[h.name] = {r["partition"]: r for r in rr}
        for p in range(6):
            g = cgc[p]
            for h in (a, b):
                r = rows[h.name][p]
                # current = the newer of the local and the group's offset: the same on every host
                assert (r["current"], r["high"], r["lag"]) == (adm[p], ends1[p], 0), (h.name, r)
            assert (int(g["CURRENT-OFFSET"]), int(g["LOG-END-OFFSET"]), int(g["LAG"])) == (adm[p], ends1[p], 0), g
        owners = defaultdict(set)
        for p, g in cgc.items():
            owners[g["CONSUMER-ID"]].add(p)
        assert sorted(map(sorted, owners.values())) == sorted([sorted(pa), sorted(pb)])
        stale = {p: rows["host-a"][p]["source"] for p in pb}
        print(f"offset-checker on both hosts == group (admin API) == kafka-consumer-groups --describe for 6 "
              f"partitions, total lag 0; on host a, the partitions b owns come from: {stale}")

        # ---- hand-over by SIGTERM in mid-stream
        feed2 = Feeder(kafka, topic, second, rate=3000, partitions=6)
        b_then, a_then = count_lines(b.out), count_lines(a.out)
        feed2.start()
        wait_for(lambda: feed2.sent > 4000 and count_lines(b.out) > b_then + 1000 and count_lines(a.out) > a_then + 1000,
                 60, "both hosts in mid-stream")
        assert a.term() == 0, a.m.output()
        a_final = {p: o for (t, p), o in stored_offsets(a.state).items() if p in pa}
        wait_for(lambda: b.partitions() == set(range(6)), 60, "host b to take all 6 partitions", every=0.5)
        resumed = {p: n for p, origin, n in b.assigned_from(topic) if p in pa}
        assert resumed == a_final, (resumed, a_final)  # b resumed exactly where a stopped
        feed2.finish()
        total = len(first) + len(second)
        wait_for(lambda: count_lines(a.out) + count_lines(b.out) >= total, 120, "every event written")
        assert b.term() == 0, b.m.output()
    finally:
        a.stop_if_alive()
        b.stop_if_alive()

    want = {uuid_of(topic, p, o) for p, o in feed1.where + feed2.where}
    ca, cb = uuid_counts(a.out), uuid_counts(b.out)
    both = ca + cb
    lost = want - set(both)
    repeated = {u: c for u, c in both.items() if c > 1}
    print(f"SIGTERM hand-over: {total} events in; host a wrote {sum(ca.values())}, host b {sum(cb.values())}; "
          f"{len(lost)} lost, {len(repeated)} repeated; b resumed a's partitions at {resumed}; "
          f"{time.monotonic() - t0:.1f}s")
    assert not lost
    assert not repeated
    assert set(both) == want



@pytest.mark.parametrize("interval_s", [2, 10])
def test_sigkilled_host_partitions_move_duplicates_only_in_its_checkpoint_window(kafka, topic_factory, tmp_path,
                                                                                  interval_s):
    """Host a SIGKILLed in mid-stream (3,000 events/s over 6 partitions): host b
    resumes a's partitions from the offsets a last committed, so what a wrote
    since is written twice, and nothing else: the file output's bound, at most
    a's share of the rate for one checkpoint interval (and the commit after it),
    measured for two intervals."""
    topic = topic_factory(partitions=6)
    group = f"g-{topic}"
    a = Host(tmp_path / "host-a", kafka, topic, group, checkpoint={"interval_s": interval_s})
    b = Host(tmp_path / "host-b", kafka, topic, group, checkpoint={"interval_s": interval_s})
    payloads = events(3000 * (3 * interval_s + 8), seed=31)
    t0 = time.monotonic()
    try:
        a.start()
        b.start()
        pa, pb = wait_split([a, b], 6)  # before any event: status shows assigned partitions at once
        print(f"\nsplit of an empty topic: host a {sorted(pa)}, host b {sorted(pb)}")
        feed = Feeder(kafka, topic, payloads, rate=3000, partitions=6)
        feed.start()
        # kill a after it stored and mirrored at least one checkpoint of its own partitions
        wait_for(lambda: feed.sent > 8000 and len({p for (t, p) in stored_offsets(a.state)} & pa) == len(pa),
                 60 + interval_s, "host a in mid-stream with its offsets stored")
        # then just after one of its checkpoints, and most of an interval later: near the bound
        seen = stored_offsets(a.state)
        wait_for(lambda: stored_offsets(a.state) != seen, 30 + interval_s, "host a's next checkpoint")
        time.sleep(0.8 * interval_s)
        assert feed.is_alive(), "the stream ended before the kill"
        a.kill()
        t_kill = time.monotonic()
        killed_stored = {p: o for (t, p), o in stored_offsets(a.state).items() if p in pa}
        killed_group = {p: o for p, o in group_offsets(kafka, group, topic, 6).items() if p in pa}
        wait_for(lambda: b.partitions() == set(range(6)), 60, "host b to take a's partitions", every=0.5)
        moved_s = time.monotonic() - t_kill
        feed.finish()
        wait_for(lambda: set(union_counts(a, b, running=True)) >= {uuid_of(topic, p, o) for p, o in feed.where}, 120,
                 "every event written")
        assert b.term() == 0, b.m.output()
    finally:
        a.stop_if_alive()
        b.stop_if_alive()

    index = {uuid_of(topic, p, o): (p, o) for p, o in feed.where}
    ca, cb = uuid_counts(a.out), uuid_counts(b.out)
    both = ca + cb
    lost = set(index) - set(both)
    dups = {index[u] for u, c in both.items() if c > 1}
    resumed = {p: n for p, origin, n in b.assigned_from(topic) if p in pa}
    # b resumed a's partitions from what a had mirrored to the group before it died
    assert resumed == killed_group, (resumed, killed_group)
    # a stores locally, then commits: the group is never ahead of the local store
    assert all(killed_group[p] <= killed_stored[p] for p in pa), (killed_group, killed_stored)
    # the duplicates are exactly what a wrote at or after the offsets b resumed from
    window = {index[u] for u in ca if index[u][0] in pa and index[u][1] >= killed_group[index[u][0]]}
    assert dups == window
    assert max(both.values()) <= 2
    a_rate = 3000 * len(pa) / 6
    print(f"checkpoint every {interval_s}s, host a's share {a_rate:.0f} events/s: {len(dups)} written twice "
          f"(bound {a_rate * interval_s:.0f} for one interval)")
    assert len(dups) <= a_rate * (interval_s + 3)  # one interval, and the commit that follows a checkpoint
    print(f"SIGKILL of host a: {len(payloads)} events in; a wrote {sum(ca.values())}, b {sum(cb.values())}; "
          f"{len(lost)} lost; {len(dups)} duplicated, all in a's partitions at/after the group offsets "
          f"{killed_group} (a's local store: {killed_stored}); a's partitions moved {moved_s:.1f}s after the kill; "
          f"after #uuid de-duplication {len(both)} == {len(index)} input; {time.monotonic() - t0:.1f}s")
    assert not lost
    assert set(both) == set(index)



def test_frozen_host_loses_its_partitions_rejoins_and_nothing_is_lost(kafka, topic_factory, tmp_path):
    """A host stalled longer than the session timeout (SIGSTOP: a VM pause, swapping)
    loses its partitions to the other host without a revocation; when it runs
    again it finds them lost, stores what it did locally only, rejoins and gets
    a share again."""
    topic = topic_factory(partitions=6)
    group = f"g-{topic}"
    a = Host(tmp_path / "host-a", kafka, topic, group)
    b = Host(tmp_path / "host-b", kafka, topic, group)
    payloads = events(24_000, seed=51)
    t0 = time.monotonic()
    try:
        a.start()
        b.start()
        pa, pb = wait_split([a, b], 6)
        feed = Feeder(kafka, topic, payloads, rate=3000, partitions=6)
        feed.start()
        wait_for(lambda: feed.sent > 6000 and len({p for (t, p) in stored_offsets(a.state)} & pa) == len(pa),
                 60, "host a in mid-stream with its offsets stored")
        a.m.proc.send_signal(signal.SIGSTOP)
        t_stop = time.monotonic()
        try:
            g_stop = {p: o for p, o in group_offsets(kafka, group, topic, 6).items() if p in pa}
            wait_for(lambda: b.partitions() == set(range(6)), 60, "host b to take the frozen host's partitions",
                     every=0.5)
            moved_s = time.monotonic() - t_stop
            # b never had a's partitions before: offsets for them in its store come from a checkpoint since
            wait_for(lambda: pa <= {p for (t, p) in stored_offsets(b.state)}, 60,
                     "host b to checkpoint the partitions it took over")
        finally:
            a.m.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: "without revocation" in a.log(), 60, "host a to find its partitions lost")
        pa2, pb2 = wait_split([a, b], 6)
        feed.finish()
        wait_for(lambda: set(union_counts(a, b, running=True)) >= {uuid_of(topic, p, o) for p, o in feed.where}, 120,
                 "every event written")
        wait_for(lambda: group_offsets(kafka, group, topic, 6) == feed.ends(), 60, "the group at the end")
        assert a.term() == 0, a.m.output()
        assert b.term() == 0, b.m.output()
    finally:
        a.stop_if_alive()
        b.stop_if_alive()

    index = {uuid_of(topic, p, o): (p, o) for p, o in feed.where}
    both = union_counts(a, b)
    lost = set(index) - set(both)
    dups = {index[u] for u, c in both.items() if c > 1}
    lost_line = next(ln for ln in a.log().splitlines() if "without revocation" in ln)
    # what b re-did: only a's partitions, from the offsets a had mirrored before it froze
    assert all(p in pa and o >= g_stop[p] for p, o in dups), sorted(dups)[:5]
    print(f"\nSIGSTOP of host a (had {sorted(pa)}): b took them {moved_s:.1f}s later; after SIGCONT a logged "
          f"'{lost_line[lost_line.index('lost '):]}' and rejoined: a {sorted(pa2)}, b {sorted(pb2)}; "
          f"{len(index)} events in, {len(lost)} lost, {len(dups)} duplicated (a's partitions at/after the group "
          f"offsets {g_stop}); {time.monotonic() - t0:.1f}s")
    assert not lost and set(both) == set(index)



def test_stale_local_offset_never_rereads_newer_of_local_and_group_wins(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=3)
    group = f"g-{topic}"
    a = Host(tmp_path / "host-a", kafka, topic, group)
    b = Host(tmp_path / "host-b", kafka, topic, group)
    where: list = []

    def feed(n, seed):
        f = Feeder(kafka, topic, events(n, seed), rate=100_000, partitions=3)
        f.start()
        f.finish()
        where.extend(f.where)
        ends = {}
        for p, o in where:
            ends[p] = max(ends.get(p, 0), o + 1)
        return ends

    def run_until_stored(h: Host, ends: dict):
        h.start()
        try:
            wait_for(lambda: {p: o for (t, p), o in stored_offsets(h.state).items()} == ends, 60,
                     f"{h.name} to store the end of every partition")
        finally:
            assert h.term() == 0, h.m.output()

    ends1 = feed(1500, 41)
    run_until_stored(a, ends1)            # a: batch 1
    ends2 = feed(1500, 42)
    run_until_stored(b, ends2)            # b (new host): batch 2, from the group's offsets
    assert {(p, o, n) for p, o, n in b.assigned_from(topic)} == {(p, "group", ends1[p]) for p in range(3)}
    ends3 = feed(1500, 43)
    a_before = len(a.assigned_from(topic))
    run_until_stored(a, ends3)            # a again: its local offsets (ends1) are older than the group's
    back = a.assigned_from(topic)[a_before:]
    assert sorted(back) == [(p, "group", ends2[p]) for p in range(3)], back
    for p in range(3):
        assert f"assigned {topic}[{p}] from group offset {ends2[p]} (local {ends1[p]}, group {ends2[p]})" in a.log()
    print(f"\nstale local offsets on host a {ends1}, group {ends2}: resumed from the group's (newer)")

    # the other way round: the group is behind the local store (a lost commit, an operator's reset)
    admin = AdminClient({"bootstrap.servers": kafka})
    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, ends1[p]) for p in range(3)])]
    admin.alter_consumer_group_offsets(req)[group].result(timeout=30)
    assert group_offsets(kafka, group, topic, 3) == ends1
    a_before = len(a.assigned_from(topic))
    a.start()
    try:
        # nothing new to read: the next checkpoint mirrors the local offsets to the group again
        wait_for(lambda: group_offsets(kafka, group, topic, 3) == ends3, 30, "the group to hold a's offsets again")
        ends4 = feed(1500, 44)
        wait_for(lambda: {p: o for (t, p), o in stored_offsets(a.state).items()} == ends4, 60,
                 "host a to store the end of every partition")
    finally:
        assert a.term() == 0, a.m.output()
    back = a.assigned_from(topic)[a_before:]
    assert sorted(back) == [(p, "local", ends3[p]) for p in range(3)], back
    assert group_offsets(kafka, group, topic, 3) == ends4
    print(f"group rewound to {ends1} under host a's local {ends3}: resumed from the local offsets (newer), "
          f"and mirrored them to the group before any new event")

    ca, cb = uuid_counts(a.out), uuid_counts(b.out)
    both = ca + cb
    want = {uuid_of(topic, p, o) for p, o in where}
    index = {uuid_of(topic, p, o): (p, o) for p, o in where}
    # b wrote batch 2 only; a batches 1, 3 and 4; nothing twice, nothing missing
    assert {index[u] for u in cb} == {(p, o) for p, o in where if ends1.get(p, 0) <= o < ends2[p]}
    assert set(both) == want and max(both.values()) == 1
    print(f"{len(where)} events: host a wrote {sum(ca.values())}, host b {sum(cb.values())}; 0 lost, 0 repeated")
