"""Faults for mtga: kills, a full disk, lost or corrupt state, bad settings,
unsafe paths. Real broker, real processes; each test bounded in time. The
figures (events in, out, duplicated, lost) are printed for the record."""

import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import time

import pytest

from mulog import sample
from support.mtga import (MTGA, Mtga, count_lines, failure_count, failure_entries, produce, stored_offsets, uuid_counts,
                          uuid_of, wait_for, write_conf, write_settings)

pytestmark = pytest.mark.kafka

APPS = (24, 25, 26)


def mtga(*args, timeout=60):
    return subprocess.run([MTGA, *args], capture_output=True, text=True, timeout=timeout)


def report(name, n_in, counts, fq=0):
    dups = sum(c - 1 for c in counts.values() if c > 1)
    print(f"\n{name}: in {n_in}, out {len(counts)} distinct (+{dups} duplicate lines), "
          f"failure queue {fq}, lost {n_in - len(counts) - fq}")


@pytest.mark.slow
def test_sigkill_at_10_random_moments_every_event_once_in_output_or_queue(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=3)
    write_settings(tmp_path / "settings", APPS)
    # a SIGKILLed member holds its partitions until its session times out: 6 s (the broker's least), not 30 s
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", checkpoint={"interval_s": 2},
                      kafka={"consumer": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}})
    rnd = random.Random(10)
    events = []
    for i, e in enumerate(sample.envelopes(30_000, app_ids=APPS, seed=21)):
        events.append(b"{broken json %d" % i if rnd.random() < 0.02 else e)
    where = []
    # feed in slices while killing mtga at random moments
    slices = [events[i:i + 3000] for i in range(0, len(events), 3000)]
    held = [0]  # output lines at each kill
    for k in range(10):
        where += produce(kafka, topic, slices[k])
        m = Mtga(conf).start()
        wait_for(lambda: count_lines(tmp_path / "out") > held[-1], 60, "this run of mtga to write lines")
        time.sleep(rnd.uniform(0.0, 3.0))  # the random moment of the kill
        m.kill()
        held.append(count_lines(tmp_path / "out"))
    assert all(b > a for a, b in zip(held, held[1:])), f"each run wrote before its kill: {held}"
    m = Mtga(conf).start()
    valid = {uuid_of(topic, p, o) for (p, o), e in zip(where, events) if not e.startswith(b"{broken")}
    invalid = {(p, o) for (p, o), e in zip(where, events) if e.startswith(b"{broken")}
    ends = {(topic, p): max(o for q, o in where if q == p) + 1 for p, _ in where}
    try:
        wait_for(lambda: len(uuid_counts(tmp_path / "out", running=True)) >= len(valid), 180, "every valid event written")
        # and this last run stored every offset (it ran: the earlier ones may have written everything already)
        wait_for(lambda: stored_offsets(tmp_path / "state") == ends, 60, "every offset stored")
    finally:
        assert m.term() == 0
    counts = uuid_counts(tmp_path / "out")
    report("mtga SIGKILL x10", len(events), counts, len(failure_entries(tmp_path / "state")))
    assert set(counts) == valid
    assert sum(counts.values()) == count_lines(tmp_path / "out") == len(valid), "a line written twice"
    queued = [(e.partition, e.offset) for e in failure_entries(tmp_path / "state")]
    assert len(queued) == len(set(queued)) and set(queued) == invalid, \
        "the failure queue holds each invalid event exactly once"


def test_output_disk_full_goes_to_queue_and_drains_when_space_returns(kafka, topic_factory, tmp_path, small_disk):
    topic = topic_factory(partitions=3)
    write_settings(tmp_path / "settings", APPS)
    disk = small_disk("out", "1m")
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", checkpoint={"interval_s": 1},
                      retry={"initial_backoff_s": 0.5, "max_backoff_s": 1})
    where = produce(kafka, topic, list(sample.envelopes(6000, app_ids=APPS, seed=4)))
    m = Mtga(conf).start()
    try:
        # the disk fills: what cannot be written is queued, and the offsets still move (it is durable)
        wait_for(lambda: sum(stored_offsets(tmp_path / "state").values()) == 6000, 60, "all offsets stored")
        entries = failure_entries(tmp_path / "state")
        assert entries and {e.code for e in entries} == {"sink_write"}
        assert "No space left on device (ENOSPC)" in entries[0].reason
        st = json.loads(mtga("status", "-c", str(conf), "--json").stdout)
        assert st["sink_error"] and "ENOSPC" in st["sink_error"]
        assert st["failure_queue"] > 0
        for f in disk.path.rglob("log.*"):  # no half line left behind
            assert f.read_bytes().endswith(b"\n")
        queued_at_full = len(entries)
        disk.resize("64m")
        wait_for(lambda: failure_count(tmp_path / "state") == 0, 60, "the queue to drain into the output")
        wait_for(lambda: count_lines(disk.path) == 6000, 30, "6000 lines")
    finally:
        assert m.term() == 0
    counts = uuid_counts(disk.path)
    assert set(counts) == {uuid_of(topic, p, o) for p, o in where}
    assert max(counts.values()) == 1
    report(f"output disk full ({queued_at_full} queued while full)", 6000, counts)


def test_state_and_output_disk_full_stalls_without_advancing_then_recovers(kafka, topic_factory, tmp_path,
                                                                          small_disk):
    topic = topic_factory(partitions=3)
    write_settings(tmp_path / "settings", APPS)
    disk = small_disk("disk", "3m")
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", checkpoint={"interval_s": 1},
                      state_dir=str(disk.path / "state"), output={"dir": str(disk.path / "out")},
                      log={"file": str(tmp_path / "mtga.log")})
    where = produce(kafka, topic, list(sample.envelopes(8000, app_ids=APPS, seed=6)))
    m = Mtga(conf).start()
    try:
        # a stall is a condition found: exit code 1, the JSON says why
        wait_for(lambda: (s := mtga("status", "-c", str(conf), "--json")).returncode == 1
                 and json.loads(s.stdout).get("stalled"), 60, "the daemon to report a stall")
        st = json.loads(mtga("status", "-c", str(conf), "--json").stdout)
        assert "No space left on device" in st["stalled"]
        stored = sum(stored_offsets(disk.path / "state").values())
        written = count_lines(disk.path / "out")
        assert stored <= written + failure_count(disk.path / "state"), "an offset ran ahead of durable data"
        assert stored < 8000
        disk.resize("128m")
        wait_for(lambda: sum(stored_offsets(disk.path / "state").values()) == 8000, 90, "all offsets stored")
    finally:
        assert m.term() == 0
    counts = uuid_counts(disk.path / "out")
    queued = len(failure_entries(disk.path / "state"))
    want = {uuid_of(topic, p, o) for p, o in where}
    qset = {uuid_of(topic, e.partition, e.offset) for e in failure_entries(disk.path / "state")}
    assert set(counts) | qset == want
    report(f"state and output disk full (stored {stored} of 8000 while stalled)", 8000, counts, queued)


def test_state_removed_resumes_from_group_not_from_zero(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=3)
    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", checkpoint={"interval_s": 1})
    produce(kafka, topic, list(sample.envelopes(1000, app_ids=APPS, seed=1)))
    m = Mtga(conf).start()
    wait_for(lambda: count_lines(tmp_path / "out") == 1000, 60, "1000 lines")
    assert m.term() == 0
    shutil.rmtree(tmp_path / "state")
    produce(kafka, topic, list(sample.envelopes(500, app_ids=APPS, seed=2, start=1000)))
    m = Mtga(conf).start()
    try:
        wait_for(lambda: count_lines(tmp_path / "out") >= 1500, 60, "the new events")
    finally:
        assert m.term() == 0
    counts = uuid_counts(tmp_path / "out")
    assert len(counts) == 1500 and max(counts.values()) == 1, "events read again from zero"
    log = (tmp_path / "mtga.log").read_text()
    assert "new state store" in log and "was the state folder removed?" in log
    assert "from group offset" in log


@pytest.mark.parametrize("damage", ["CURRENT", "MANIFEST"])
def test_corrupt_state_refuses_to_start_with_a_clear_message(kafka, topic_factory, tmp_path, damage):
    topic = topic_factory(partitions=1)
    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}")
    produce(kafka, topic, list(sample.envelopes(10, app_ids=APPS)))
    m = Mtga(conf).start()
    wait_for(lambda: count_lines(tmp_path / "out") == 10, 60, "10 lines")
    assert m.term() == 0
    db = tmp_path / "state" / "db"
    if damage == "CURRENT":
        (db / "CURRENT").write_text("MANIFEST-999999\n")
    else:
        man = db / (db / "CURRENT").read_text().strip()
        man.write_bytes(b"\x00garbage" * 10)
    for args in (["start", "-c", str(conf)], ["start", "--daemon", "-c", str(conf)]):
        r = mtga(*args)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "cannot open the mtga state at" in r.stderr and "Move the folder aside" in r.stderr
        assert "Traceback" not in r.stderr
    assert count_lines(tmp_path / "out") == 10


def test_settings_deleted_while_running_keeps_last_good(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=3)
    settings = write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}")
    m = Mtga(conf).start()
    try:
        produce(kafka, topic, list(sample.envelopes(300, app_ids=APPS, seed=1)))
        wait_for(lambda: count_lines(tmp_path / "out") == 300, 60, "300 lines")
        (settings / "metadata.24.json").unlink()
        (settings / "metadata.25.json").write_text("{ this is not JSON")
        sent = [300]

        def trickle_until_both_noticed():  # events keep coming until the settings check has seen both files
            produce(kafka, topic, list(sample.envelopes(30, app_ids=APPS, seed=2, start=sent[0])))
            sent[0] += 30
            log = (tmp_path / "mtga.log").read_text()
            return "settings of app 24 not reloaded" in log and "settings of app 25 not reloaded" in log

        wait_for(trickle_until_both_noticed, 60, "both broken settings files noticed", every=0.5)
        wait_for(lambda: count_lines(tmp_path / "out") == sent[0], 60, "every event written with the last good settings")
    finally:
        assert m.term() == 0
    assert failure_count(tmp_path / "state") == 0
    log = (tmp_path / "mtga.log").read_text()
    assert re.search(r"settings of app 24 not reloaded, keeping the last good ones( \(kept in [^)]*\))?: .*metadata\.24\.json: file not found", log)
    assert re.search(r"settings of app 25 not reloaded, keeping the last good ones( \(kept in [^)]*\))?: .*JSON syntax error", log)


def test_open_state_folder_is_made_private_and_said(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=1)
    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}")
    (tmp_path / "state" / "run").mkdir(parents=True)
    os.chmod(tmp_path / "state", 0o755)
    os.chmod(tmp_path / "state" / "run", 0o777)
    r = mtga("start", "--daemon", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    try:
        assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "state" / "run").stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "state" / "run" / "mtga.sock").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "state" / "mtga.pid").stat().st_mode) == 0o600
        log = (tmp_path / "mtga.log").read_text()
        assert "state: mode 0755 was open to other users; set to 0700" in log
        assert "run: mode 0777 was open to other users; set to 0700" in log
    finally:
        mtga("stop", "-c", str(conf), timeout=90)


def test_app_id_cannot_escape_the_output_folder(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=1)
    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}")
    evil = [b'{"headers": {"app_id": "../../etc", "log_name": "x"}, "logs": {"role_id": 1}}',
            b'{"headers": {"app_id": "24/../../x", "log_name": "x"}, "logs": {"role_id": 1}}']
    produce(kafka, topic, evil)
    produce(kafka, topic, [b'{"role_id": 1}'], headers=[("app_id", b"/etc"), ("log_name", b"x")])
    m = Mtga(conf).start()
    try:
        wait_for(lambda: failure_count(tmp_path / "state") == 3, 60, "3 rejected events")
    finally:
        assert m.term() == 0
    assert {e.code for e in failure_entries(tmp_path / "state")} == {"bad_app_id"}
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not (tmp_path.parent / "etc").exists()


def test_full_disk_with_a_queue_to_retry_keeps_the_daemon_up(kafka, topic_factory, tmp_path, small_disk):
    """The failure queue holds entries (one with a header that has no value) when
    the disk under the state fills up completely: the retry loop and the batches
    cannot use the store, and the daemon stays up, says so, and finishes the work
    once space returns."""
    topic = topic_factory(partitions=3)
    write_settings(tmp_path / "settings", APPS)
    disk = small_disk("disk", "64m")
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", checkpoint={"interval_s": 1},
                      state_dir=str(disk.path / "state"), output={"dir": str(disk.path / "out")},
                      log={"file": str(tmp_path / "mtga.log")}, retry={"initial_backoff_s": 0.5, "max_backoff_s": 1})
    produce(kafka, topic, [b"{broken %d" % i for i in range(19)])
    produce(kafka, topic, [b"{broken 19"], headers=[("trace", None)])
    m = Mtga(conf).start()
    try:
        wait_for(lambda: failure_count(disk.path / "state") == 20, 60, "20 queued failures")
        filler = disk.path / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        where = produce(kafka, topic, list(sample.envelopes(3000, app_ids=APPS, seed=6)))
        wait_for(lambda: "retry round skipped" in (tmp_path / "mtga.log").read_text()
                 or "cannot store a batch anywhere durable" in (tmp_path / "mtga.log").read_text(), 60,
                 "the daemon to notice the full disk")
        # the retry loop meets the full disk too, and the daemon still answers and runs
        # (running, and stalled or not: status exits 0 or 1, docs/operations.md#exit-codes)
        wait_for(lambda: (r := mtga("status", "-c", str(conf), "--json")).returncode in (0, 1)
                 and json.loads(r.stdout).get("retry_error"), 60, "a retry round to fail on the full disk")
        assert m.alive(), m.output()[-2000:]
        filler.unlink()
        wait_for(lambda: sum(stored_offsets(disk.path / "state").values()) == 3020, 90, "all offsets stored")
        # a batch that met the full disk may sit in the queue (durable, so its offsets moved): it drains
        wait_for(lambda: failure_count(disk.path / "state") == 20, 90, "the queue to drain to the 20 broken events")
    finally:
        assert m.term() == 0
    counts = uuid_counts(disk.path / "out")
    assert set(counts) == {uuid_of(topic, p, o) for p, o in where}
    entries = failure_entries(disk.path / "state")
    assert len(entries) == 20 and {e.code for e in entries} == {"invalid_json"}
    assert [e.headers for e in entries if e.headers] == [[("trace", None)]]
    report("state disk full with a queue to retry", 3020, counts, len(entries))


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(") ", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def test_a_killed_transform_worker_is_started_again(kafka, topic_factory, tmp_path):
    """SIGKILL one transform worker process of a running mtga: no event is lost
    or written twice, its part is transformed in the loop meanwhile, and a new
    worker takes its place (status says so)."""
    topic = topic_factory(partitions=3)
    write_settings(tmp_path / "settings", APPS)
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}")
    produce(kafka, topic, list(sample.envelopes(3000, app_ids=APPS, seed=1)))
    m = Mtga(conf, "--workers", "2").start()
    try:
        wait_for(lambda: count_lines(tmp_path / "out") == 3000, 60, "3000 lines")
        # the workers are the children of multiprocessing's fork server, itself a child of mtga
        workers = wait_for(lambda: [w for c in _children(m.proc.pid) for w in _children(c)], 30, "worker processes")
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        produce(kafka, topic, list(sample.envelopes(3000, app_ids=APPS, seed=2, start=3000)))
        wait_for(lambda: count_lines(tmp_path / "out") >= 6000, 60, "6000 lines")
        produce(kafka, topic, list(sample.envelopes(3000, app_ids=APPS, seed=3, start=6000)))
        wait_for(lambda: count_lines(tmp_path / "out") >= 9000, 60, "9000 lines")
        status = json.loads(mtga("status", "-c", str(conf), "--json").stdout)
        now = [w for c in _children(m.proc.pid) for w in _children(c)]
        assert len(now) == 2 and workers[0] not in now
    finally:
        assert m.term() == 0
    counts = uuid_counts(tmp_path / "out")
    assert len(counts) == 9000 and max(counts.values()) == 1
    assert status["workers"] == 2 and status["worker_restarts"] == 1, status
    log = (tmp_path / "mtga.log").read_text()
    assert "transform worker 0 started again" in log or "transform worker 1 started again" in log


def test_a_failed_seek_back_holds_the_partition_until_it_works(kafka, topic_factory, tmp_path):
    """After a stall the consumer seeks back to the batch's first offsets. A seek
    can fail (the partition's fetcher not ready, say): the partition's messages
    are then held back, never written past the rewind point, until a later seek
    works. A real consumer, whose seek on a partition not yet assigned fails."""
    from confluent_kafka import Message, TopicPartition

    from sink import config
    from sink.pipeline.service import Service

    topic = topic_factory(partitions=1)
    produce(kafka, topic, list(sample.envelopes(10, app_ids=APPS)))
    write_settings(tmp_path / "settings", APPS)
    svc = Service(config.load(write_conf(tmp_path, kafka, topic, f"g-{topic}", workers=1)))
    key = (topic, 0)
    try:
        svc.intake.consumer = svc.intake.new_consumer()  # not subscribed: nothing assigned to it yet
        svc.intake.assigned = frozenset({key})
        svc.pausing.hold({key: 5}, {}, "No space left on device")
        assert svc.pausing.rewind == {key: 5} and svc.pausing.seek_failures.value == 1
        assert key in svc.pausing.paused
        svc.submit([Message(topic=topic, partition=0, offset=9, value=b"{}")])
        assert not svc.inflight  # past the rewind point: held back
        svc.submit([Message(topic=topic, partition=0, offset=4, value=b"{}")])
        assert len(svc.inflight) == 1  # below it: never held back
        svc.inflight.popleft()[1].discard()
        svc.intake.consumer.assign([TopicPartition(topic, 0, 0)])
        wait_for(lambda: (svc.pausing.tick(), not svc.pausing.rewind)[1], 30, "a seek back that works")

        def consumed():
            svc.pausing.tick()  # resumes the partition once its wait is over
            return [m for m in svc.intake.consumer.consume(10, 0.5) if m.error() is None]

        msgs = wait_for(consumed, 30, "messages")
        assert msgs[0].offset() == 5
    finally:
        if svc.intake.consumer is not None:
            svc.intake.consumer.close()
        svc.pool.close()
        svc.db.close()
