"""The transform worker pool, without Kafka: order, grouping, shared memory,
discarded batches, a dead worker."""

import json
import os
import signal

import pytest

from mulog import sample
from sink.pipeline.workers import Pool
from sink.ta.batch import Item
from sink.ta.settings import SettingsStore
from sink.ta.transform import Transformer
from support.grouping import summarize

APPS = (24, 25, 26)


@pytest.fixture
def settings(tmp_path):
    d = tmp_path / "settings"
    d.mkdir()
    meta = '{"account_id": "role_id", "time": {"field": "mtime", "time_zone": "+08:00"}}'
    for a in APPS:
        (d / f"metadata.{a}.json").write_text(meta)
    return d


def batch(n, start, bad_every=0):
    items = []
    for i, e in enumerate(sample.envelopes(n, app_ids=APPS, seed=start, start=start)):
        if bad_every and i % bad_every == 0:
            e = b"{broken %d" % i
        items.append(Item(e, None, "t", i % 3, start + i))
    return items


def lines_of(outcome):
    return {app: b"".join(bytes(b) for b in bufs) for app, (bufs, n, idx) in outcome.apps.items()}


def test_pool_output_equals_the_transform_in_order(settings):
    items = batch(5000, 0, bad_every=97)
    local = summarize(Transformer(SettingsStore(settings).get).run_batch(items))
    pool = Pool(settings, 2)
    try:
        p = pool.submit(items)
        out = p.get()
        assert lines_of(out) == lines_of(local)
        assert {a: (n, list(idx)) for a, (_, n, idx) in out.apps.items()} == \
            {a: (n, list(idx)) for a, (_, n, idx) in local.apps.items()}
        assert out.failures == local.failures and len(out.failures) == 52
        p.release()
    finally:
        pool.close()


def test_a_discarded_batch_keeps_the_replies_in_step(settings):
    pool = Pool(settings, 2)
    try:
        a, b, c = batch(4000, 0), batch(4000, 10_000), batch(4000, 20_000)
        pa, pb, pc = pool.submit(a), pool.submit(b), pool.submit(c)
        assert lines_of(pa.get())
        pa.release()
        pb.discard()
        want = lines_of(summarize(Transformer(SettingsStore(settings).get).run_batch(c)))
        assert lines_of(pc.get()) == want
        pc.release()
        for k in range(5):  # the slots came back: batches still go through shared memory
            p = pool.submit(batch(4000, 30_000 + 10_000 * k))
            assert sum(n for _, n, _ in p.get().apps.values()) == 4000
            assert all(slot is not None for *_, slot in p.sent)
            p.release()
    finally:
        pool.close()


def test_a_worker_dead_before_a_batch_is_replaced_before_the_batch_is_sent(settings, caplog):
    """Killed while idle: the next submit starts a new worker first (its first
    restart does not wait), so both chunks go to live workers and the loop
    transforms nothing itself."""
    pool = Pool(settings, 2)
    try:
        old = pool._procs[0].proc.pid
        os.kill(old, signal.SIGKILL)
        pool._procs[0].proc.join(10)
        items = batch(4000, 0)
        p = pool.submit(items)
        assert pool.restarts == 1 and pool._procs[0].proc.pid != old
        assert [w.idx for w, *_ in p.sent] == [0, 1] and all(w.dead is None for w, *_ in p.sent)
        out = p.get()
        assert sum(n for _, n, _ in out.apps.values()) == 4000
        for line in b"".join(lines_of(out).values()).splitlines():
            assert json.loads(line)["#type"] == "track"
        assert "transforming its part here" not in caplog.text
        p.release()
    finally:
        pool.close()


def test_a_worker_dying_with_a_chunk_in_flight_costs_speed_not_events(settings, caplog):
    """Worker 0 is stopped, given its chunk, and killed before it can answer:
    ``get`` transforms that chunk in the calling process, the outcome is the
    plain transform's (every event once, in order), and the next batch starts
    a new worker in its place."""
    items = batch(4000, 0, bad_every=97)
    local = summarize(Transformer(SettingsStore(settings).get).run_batch(items))
    pool = Pool(settings, 2)
    try:
        dying = pool._procs[0]
        os.kill(dying.proc.pid, signal.SIGSTOP)
        p = pool.submit(items)
        assert [w for w, *_ in p.sent] == pool._procs and dying.dead is None  # a chunk each, none answered
        assert not p.ready()
        os.kill(dying.proc.pid, signal.SIGKILL)
        out = p.get()
        assert dying.dead is not None
        assert lines_of(out) == lines_of(local)
        assert {a: (n, list(idx)) for a, (_, n, idx) in out.apps.items()} == \
            {a: (n, list(idx)) for a, (_, n, idx) in local.apps.items()}
        assert out.failures == local.failures and len(out.failures) == 42
        uuids = [json.loads(line)["#uuid"] for line in b"".join(lines_of(out).values()).splitlines()]
        assert len(uuids) == len(set(uuids)) == 4000 - 42
        assert "transform worker 0: the worker exited" in caplog.text and "transforming its part here" in caplog.text
        p.release()
        assert pool.restarts == 0
        items = batch(4000, 10_000, bad_every=97)  # positions the pool has not handled
        local = summarize(Transformer(SettingsStore(settings).get).run_batch(items))
        p = pool.submit(items)  # the dead worker is replaced before this batch is cut up
        assert pool.restarts == 1 and pool._procs[0] is not dying and pool._procs[0].proc.is_alive()
        assert "transform worker 0 started again" in caplog.text
        assert lines_of(p.get()) == lines_of(local)
        assert len(p.sent) == 2 and all(w.dead is None for w, *_ in p.sent)
        p.release()
        assert pool.live == 2
    finally:
        pool.close()


def test_no_room_in_shared_memory_falls_back_to_the_pipe(settings, small_disk, monkeypatch, caplog):
    """A small /dev/shm (Docker's default is 64 MB) must not kill the loop with
    SIGBUS: the slots are reserved up front, and without room a worker's chunks
    travel over its pipe."""
    import sink.pipeline.workers as workers

    disk = small_disk("shm", "8m")
    monkeypatch.setattr(workers.wp, "shm_dir", lambda: str(disk.path))
    pool = Pool(settings, 2)
    try:
        assert "no shared memory for transform worker" in caplog.text
        assert os.listdir(disk.path) == []  # nothing left behind
        for k in range(3):  # each batch its own positions: the pool skips a position it handled
            items = batch(4000, 10_000 * k)
            want = lines_of(summarize(Transformer(SettingsStore(settings).get).run_batch(items)))
            p = pool.submit(items)
            assert lines_of(p.get()) == want
            p.release()
        assert pool.live == 2
    finally:
        pool.close()


def test_a_dead_worker_is_started_again(settings, caplog, monkeypatch):
    import sink.pipeline.workers as workers

    monkeypatch.setattr(workers, "RESTART_MIN_S", 0.0)
    pool = Pool(settings, 2)
    try:
        old = pool._procs[0].proc.pid
        os.kill(old, signal.SIGKILL)
        pool._procs[0].proc.join(10)
        items = batch(4000, 0)
        want = lines_of(summarize(Transformer(SettingsStore(settings).get).run_batch(items)))
        p = pool.submit(items)  # a dead worker is noticed when its reply is due, or here
        assert lines_of(p.get()) == want
        p.release()
        items = batch(4000, 10_000)
        want = lines_of(summarize(Transformer(SettingsStore(settings).get).run_batch(items)))
        p = pool.submit(items)
        assert lines_of(p.get()) == want
        assert len(p.sent) == 2 and all(slot is not None for *_, slot in p.sent)  # both, in shared memory
        p.release()
        assert pool.live == 2 and pool.restarts == 1
        assert pool._procs[0].proc.pid != old and pool._procs[0].proc.is_alive()
        assert "transform worker 0 started again" in caplog.text
    finally:
        pool.close()


def test_a_batch_finished_before_its_worker_died_is_read_after_the_restart(settings, monkeypatch):
    """The replies a worker sent before it died stay readable from its shared
    memory after a new worker took its place."""
    import sink.pipeline.workers as workers

    monkeypatch.setattr(workers, "RESTART_MIN_S", 0.0)
    pool = Pool(settings, 2)
    try:
        a, b = batch(4000, 0), batch(4000, 10_000)
        want_a = lines_of(summarize(Transformer(SettingsStore(settings).get).run_batch(a)))
        want_b = lines_of(summarize(Transformer(SettingsStore(settings).get).run_batch(b)))
        pa = pool.submit(a)
        for w, *_ in pa.sent:  # both replies received, not yet read
            with w.arrived:
                assert w.arrived.wait_for(lambda: w.results, 30), "a reply of batch a"
        assert pa.ready()
        dying = pool._procs[0]
        os.kill(dying.proc.pid, signal.SIGKILL)
        with dying.arrived:
            assert dying.arrived.wait_for(lambda: dying.dead is not None, 30)
        pb = pool.submit(b)  # starts worker 0 again
        assert pool.restarts == 1 and pool._procs[0] is not dying
        assert lines_of(pa.get()) == want_a
        pa.release()
        assert lines_of(pb.get()) == want_b
        pb.release()
    finally:
        pool.close()


def test_a_worker_that_keeps_dying_is_restarted_less_and_less_often(settings):
    pool = Pool(settings, 2)
    try:
        waits = []
        for k in range(4):
            w = pool._procs[0]
            os.kill(w.proc.pid, signal.SIGKILL)
            with w.arrived:
                assert w.arrived.wait_for(lambda: w.dead is not None, 30)
            pool._restart_at[0] = 0.0  # its wait is over (the test does not sit through it)
            pool.submit(batch(10, 100 * k)).get()
            waits.append(pool._restart_at[0] - pool._procs[0].started_at)
        assert pool.restarts == 4
        assert waits == pytest.approx([1.0, 2.0, 4.0, 8.0], abs=1e-6)  # from each start, however long it took
    finally:
        pool.close()


def test_outcome_is_run_batch_grouped_in_one_pass(settings):
    """Transformer.outcome (what mtga and its workers call) gives what the plain
    grouping (tests/grouping.py) makes of run_batch: lines, indexes, failures,
    duplicates, fixed, sources."""
    items = batch(3000, 0, bad_every=50)
    items += items[:40]  # seen again: duplicates of their sources' marks
    one, two = (Transformer(SettingsStore(settings).get, dedupe=True) for _ in range(2))
    want = summarize(one.run_batch(items), 7, one.take_fixed(), one.take_sources())
    got = two.outcome(items, 7)
    assert lines_of(got) == lines_of(want) and len(got.apps) == 3
    assert {a: (n, list(idx)) for a, (_, n, idx) in got.apps.items()} == \
        {a: (n, list(idx)) for a, (_, n, idx) in want.apps.items()}
    assert got.failures == want.failures and len(got.failures) == 60
    assert got.duplicates == want.duplicates == 40
    assert got.filtered == want.filtered and got.fixed == want.fixed
    assert got.sources == want.sources and len(got.sources) == 3
    assert two.take_sources() == {} and two.take_fixed() == {}


def test_positions_handled_before_an_unclean_stop_are_skipped_in_any_worker(settings):
    """The recovery's ``done`` positions (above the marks) are skipped whichever
    worker's chunk holds them, and only they: the pool checks each chunk."""
    from sink.ta.uuids import source_key

    items = batch(4000, 0)
    done = {source_key(("t", 1)): {4, 3001, 3004}, source_key(("t", 2)): {3998}}
    pool = Pool(settings, 2, marks={}, done=done)
    try:
        p = pool.submit(items)
        out = p.get()
        written = sorted(i for _, (_, _, idx) in out.apps.items() for i in idx)
        p.release()
    finally:
        pool.close()
    skipped = {(it.partition, it.offset) for it in items} - {(items[i].partition, items[i].offset) for i in written}
    assert skipped == {(1, 4), (1, 3001), (1, 3004), (2, 3998)} and out.duplicates == 4
