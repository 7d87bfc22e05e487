"""The watcher (shipper/files/watcher.py): a burst of inotify events globs at most
once per debounce interval."""




def test_a_burst_of_inotify_events_globs_at_most_once_per_debounce_interval(tmp_path):
    """2,000 files created and deleted as fast as possible in a watched folder:
    each created file that is still there becomes a Created event without a
    glob; the deletions ask for rescans, of which the loop runs at most one per
    DEBOUNCE_S, however many events came and however fast the loop turns."""
    import threading
    import time

    from shipper.config import Input
    from shipper.files.watcher import DEBOUNCE_S, Created, Watcher

    logs = tmp_path / "logs"
    logs.mkdir()
    inp = Input(paths=[str(logs / "*.log")], topic="t", app_id=1, log_name="x")
    w = Watcher(threading.Event())
    w.plan([inp])
    created, scans, turns = set(), 0, 0
    try:
        def burst():
            for i in range(2000):
                p = logs / f"f{i}.log"
                p.write_bytes(b"x\n")
                if i % 2:
                    p.unlink()

        writer = threading.Thread(target=burst)
        t0 = time.monotonic()
        writer.start()
        while writer.is_alive() or time.monotonic() - t0 < 0.5 or w.pending() or w.rescan_wanted:
            now = time.monotonic()
            turns += 1
            created |= {ev.path for ev in w.events([inp], lambda key: None) if type(ev) is Created}
            if w.rescan_due(now):
                scans += 1
                created |= {ev.path for ev in w.scan([inp], {})[0] if type(ev) is Created}
            assert now - t0 < 60, "the burst did not end"
        took = time.monotonic() - t0
    finally:
        w.stop()
    kept = {str(logs / f"f{i}.log") for i in range(0, 2000, 2)}
    assert kept <= created <= {str(logs / f"f{i}.log") for i in range(2000)}  # every file left is found
    assert 1 <= scans <= took / DEBOUNCE_S + 2, (scans, took)
    assert turns > 10 * scans, (turns, scans)  # the loop turned far more often than it globbed
    print(f"\n2000 files created, 1000 deleted in {took:.2f}s: {scans} scans in {turns} loop turns")
