"""What the shipper says about itself while Kafka is unreachable, through a real
``shipper tail`` against a port that refuses connections (no broker needed): its
stats line tells lines sent from lines acknowledged, and ``shipper status`` says
Kafka is unreachable, since when and after how many errors, with exit code 3;
once it stopped (cleanly or killed), that it does not run, with exit code 1.

Before: the stats line said "3 lines sent in all" while none was acknowledged,
and ``shipper status`` printed the positions alone, exit 0."""

from __future__ import annotations

import json
import signal
import time

import pytest

from support.cli import run_cli
from support.shipper import ShipperProc, wait_for, write_conf

UNREACHABLE, CONDITION = 3, 1


@pytest.fixture
def shipper(tmp_path, refused_port):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "log_a.log").write_text('{"n":1}\n{"n":2}\n{"n":3}\n')
    bootstrap = f"127.0.0.1:{refused_port}"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=bootstrap, state=tmp_path / "state", stats_interval_s=1,
                      shutdown_timeout_s=1, fleet={"enabled": False}, inputs=[
                          {"paths": [str(logs / "*.log")], "topic": "nowhere", "app_id": 24, "log_name": "log_a",
                           "start_at": "beginning"}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    yield sh, str(conf), bootstrap
    sh.kill_if_alive()


def test_the_stats_line_tells_sent_from_acknowledged(shipper):
    sh, _, _ = shipper
    sh.wait_log("3 lines sent", timeout=30)
    stats = next(ln for ln in sh.log().splitlines() if "stats:" in ln and "3 lines sent" in ln)
    assert "3 lines sent and 0 acknowledged in all" in stats and "Kafka unreachable for " in stats, stats
    assert "3 lines waiting for Kafka" in stats
    print(f"\n{stats}")


def test_status_says_kafka_is_unreachable_and_exits_3_then_not_running_exits_1(shipper):
    sh, conf, bootstrap = shipper
    r = wait_for(lambda: (x := run_cli("shipper", "status", "-c", conf)).returncode == UNREACHABLE and x, 30,
                 "shipper status to exit 3 with its broker down")
    first = r.stdout.splitlines()[0]
    assert first.startswith(f"shipper is running (pid {sh.proc.pid}, up ") and \
        f" but Kafka at {bootstrap} UNREACHABLE since " in first and "client error" in first, r.stdout
    assert "log_a.log" in r.stdout  # the positions follow
    wait_for(lambda: json.loads(run_cli("shipper", "status", "-c", conf, "--json").stdout)["lines_sent"] == 3, 30,
             "the 3 lines handed to the producer")
    j = run_cli("shipper", "status", "-c", conf, "--json")
    assert j.returncode == UNREACHABLE
    st = json.loads(j.stdout)
    assert st["running"] is True and st["pid"] == sh.proc.pid
    assert st["lines_sent"] == 3 and st["lines_acked"] == 0 and st["lines_waiting"] == 3, st
    k = st["kafka"]
    assert k["reachable"] is False and k["bootstrap"] == bootstrap and k["errors"] >= 1, k
    assert k["down_since"] <= time.time()
    assert [f["delivered"] for f in st["files"]] == [0]
    print(f"\n{first}")
    assert sh.stop() == 0
    r = run_cli("shipper", "status", "-c", conf)
    assert r.returncode == CONDITION and r.stdout.startswith("shipper is not running (stopped at "), r.stdout


def test_status_of_a_killed_shipper_says_it_ended_without_a_clean_stop(shipper):
    sh, conf, _ = shipper
    wait_for(lambda: run_cli("shipper", "status", "-c", conf).returncode == UNREACHABLE, 30, "the shipper running")
    sh.stop(signal.SIGKILL)
    r = run_cli("shipper", "status", "-c", conf, "--json")
    assert r.returncode == CONDITION and json.loads(r.stdout)["running"] is False
    r = run_cli("shipper", "status", "-c", conf)
    assert r.returncode == CONDITION
    assert r.stdout.startswith(f"shipper is not running (pid {sh.proc.pid} ended without a clean stop"), r.stdout
