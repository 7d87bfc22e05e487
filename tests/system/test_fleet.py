"""The fleet view against the real broker: two shippers and one mtga publish
heartbeats; `mtga fleet --json` lists them up; a SIGKILLed shipper turns silent
within 3 intervals and mtga's mtga_fleet_silent_hosts gauge says 1; a shipper
stopped with SIGTERM is listed as stopped."""

import json
import signal
import subprocess
import time
import uuid

import pytest

import kafkalocal
from support import mtga as mtga_helpers
from support.shipper import ShipperProc, scrape
from support.shipper import write_conf as shipper_conf

pytestmark = pytest.mark.kafka

INTERVAL = 1.0


def fleet(mconf, *args):
    r = subprocess.run([mtga_helpers.MTGA, "fleet", "-c", str(mconf), "--json", *args], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return {(h["role"], h["host"]): h for h in json.loads(r.stdout)["hosts"]}


def test_fleet_lists_up_silent_and_stopped_hosts_and_counts_the_silent(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=3)
    fleet_topic = f"fleet_{uuid.uuid4().hex[:10]}"
    beat = {"topic": fleet_topic, "interval_s": INTERVAL}
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text('{"n":1}\n')
    shippers = {}
    for name in ("game-a", "game-b"):
        conf = shipper_conf(tmp_path / f"{name}.yml", bootstrap=kafka, state=tmp_path / f"state-{name}", fleet=beat,
                            inputs=[{"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "x"}])
        shippers[name] = ShipperProc(conf, tmp_path / f"{name}.log", "--host", name).start()
    mtga_helpers.write_settings(tmp_path / "settings")
    port = kafkalocal.free_port()
    mconf = mtga_helpers.write_conf(tmp_path, kafka, topic, f"g-{topic}", fleet=beat, host="collector-1",
                                    metrics={"enabled": True, "port": port})
    m = mtga_helpers.Mtga(mconf).start()
    try:
        want = {("shipper", "game-a"), ("shipper", "game-b"), ("mtga", "collector-1")}
        rows = mtga_helpers.wait_for(lambda: (f := fleet(mconf)) and {k for k, h in f.items() if h["state"] == "up"}
                                     == want and f, 60, "three processes up in the fleet view", every=0.5)
        assert set(rows) == want
        assert rows[("shipper", "game-a")]["pid"] == shippers["game-a"].proc.pid
        assert {"files", "bytes_behind", "lines_waiting", "last_ack"} <= set(rows[("shipper", "game-a")]["figures"])
        assert {"partitions", "lag", "failure_queue", "last_checkpoint"} <= set(rows[("mtga", "collector-1")]["figures"])

        assert shippers["game-a"].stop(signal.SIGKILL) == -signal.SIGKILL
        killed = time.time()
        views = []  # game-a's row in each fleet view after the kill

        def silent():
            row = fleet(mconf)[("shipper", "game-a")]
            views.append(row)
            return row["state"] == "silent" and row

        row = mtga_helpers.wait_for(silent, 30, "the killed shipper silent", every=0.25)
        took = time.time() - killed
        # silent once its last record is 3 intervals old, up before: each view says so by the age it shows
        # (how long `mtga fleet` itself takes to answer, on a busy machine, is not what is measured)
        assert all(v["state"] == "silent" and v["age_s"] >= 3 * INTERVAL
                   or v["state"] == "up" and v["age_s"] <= 3 * INTERVAL for v in views), views
        # and the last record was sent at most one interval (and a little) before the kill
        assert 0 <= killed - row["last_seen"] <= INTERVAL + 2.0, (killed, row)
        gauge = mtga_helpers.wait_for(lambda: scrape(port).get(("mtga_fleet_silent_hosts", ())) == 1 and 1, 30,
                                      "mtga's silent-hosts gauge at 1", every=0.25)
        assert gauge == 1
        assert set(fleet(mconf, "--silent")) == {("shipper", "game-a")}
        assert set(fleet(mconf, "--role", "mtga")) == {("mtga", "collector-1")}

        assert shippers["game-b"].stop(signal.SIGTERM) == 0
        assert fleet(mconf)[("shipper", "game-b")]["state"] == "stopped"  # said before it exited
        r = subprocess.run([mtga_helpers.MTGA, "fleet", "-c", str(mconf)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "game-a" in r.stdout and "silent" in r.stdout and "stopped" in r.stdout, r.stdout
        print(f"\nfleet: 3 up; the SIGKILLed shipper silent after {took:.1f}s (interval {INTERVAL:.0f}s), "
              f"the SIGTERMed one stopped")
    finally:
        for sh in shippers.values():
            sh.kill_if_alive()
        if m.alive():
            assert m.term() == 0
