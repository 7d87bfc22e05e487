"""What mtga's query commands say while Kafka is unreachable, through real
processes against a port that refuses connections (no broker needed): the truth,
in one line where it fails, with the exit code of the table (mulog/exitcodes.py);
and a daemon's stop that leaves nothing behind.

Before: ``mtga status`` said "mtga is running", exit 0; a query through the
daemon exited 1 ("mtga refused: ..."), 3 without it; ``mtga fleet`` ended in a
traceback; the daemon's stop left "3 leaked semaphore objects" in its log."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from support.cli import run_cli
from support.mtga import pid_gone, wait_for, write_conf, write_settings

UNREACHABLE = 3


def one_line(text: str) -> bool:
    return text.count("\n") == 1 and "Traceback" not in text


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(") ", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.fixture
def daemon(tmp_path, refused_port):
    """``mtga start --daemon`` with two transform workers, its broker a port that refuses."""
    write_settings(tmp_path / "settings")
    bootstrap = f"127.0.0.1:{refused_port}"
    conf = write_conf(tmp_path, bootstrap, "mulog_nowhere", "g-down", workers=2, control={"timeout_s": 5})
    r = run_cli("mtga", "start", "--daemon", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split("(pid ", 1)[1].split(")", 1)[0])
    yield {"conf": str(conf), "pid": pid, "bootstrap": bootstrap, "log": tmp_path / "mtga.log"}
    if not pid_gone(pid):
        run_cli("mtga", "stop", "-c", str(conf), timeout=90)


def test_status_says_kafka_is_unreachable_since_when_and_exits_3(daemon):
    conf = daemon["conf"]
    r = wait_for(lambda: (x := run_cli("mtga", "status", "-c", conf)).returncode == UNREACHABLE and x, 30,
                 "mtga status to exit 3 with its broker down")
    first = r.stdout.splitlines()[0]
    assert first.startswith(f"mtga is running (pid {daemon['pid']}") and \
        f"but Kafka at {daemon['bootstrap']} UNREACHABLE since " in first, r.stdout
    assert "client error" in first
    j = run_cli("mtga", "status", "-c", conf, "--json")
    assert j.returncode == UNREACHABLE
    k = json.loads(j.stdout)["kafka"]
    assert k["reachable"] is False and k["bootstrap"] == daemon["bootstrap"] and k["errors"] >= 1, k
    assert k["down_since"] <= time.time() and k["down_for_s"] >= 0
    print(f"\n{first}")


@pytest.mark.parametrize("query", ["offset-checker", "kafka-lag"])
def test_a_query_kafka_does_not_answer_exits_3_through_the_daemon_too(daemon, query):
    r = run_cli("mtga", query, "-c", daemon["conf"])
    assert r.returncode == UNREACHABLE, (r.returncode, r.stderr)
    assert one_line(r.stderr) and "Kafka did not list its topics" in r.stderr, r.stderr
    assert f"asked by mtga pid {daemon['pid']}" in r.stderr and "refused" not in r.stderr
    print(f"\n{r.stderr.strip()}")


def test_fleet_with_the_broker_down_is_one_line_and_exit_3(refused_port):
    r = run_cli("mtga", "fleet", "--bootstrap-servers", f"127.0.0.1:{refused_port}")
    assert r.returncode == UNREACHABLE, (r.returncode, r.stderr)
    assert one_line(r.stderr) and r.stderr.startswith("mtga: fleet topic mulog_fleet not read: Kafka did not answer")
    assert r.stdout == ""
    print(f"\n{r.stderr.strip()}")


def test_the_daemons_stop_leaves_no_leaked_semaphore(daemon):
    """The resource tracker reports what was left when the daemon is gone; its end is
    awaited (not slept for) before the log is read."""
    pid = daemon["pid"]
    log = daemon["log"]
    wait_for(lambda: log.exists() and "2 worker(s)" in log.read_text(), 30, "mtga consuming with 2 workers")
    trackers = wait_for(lambda: [c for c in children(pid) if "resource_tracker" in cmdline(c)], 30,
                        "the daemon's resource tracker")
    r = run_cli("mtga", "stop", "-c", daemon["conf"], timeout=90)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: all(pid_gone(t) for t in trackers), 30, "the resource tracker to end")
    text = log.read_text()
    assert "INFO mtga: stopped" in text, text[-2000:]
    assert "leaked" not in text and "resource_tracker" not in text, text[-2000:]
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(f"mtga-{pid}-")]
