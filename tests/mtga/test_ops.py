"""Operating mtga: control socket, offset-checker, kafka-lag, failure-queue
commands, status and metrics, against a real daemon and the real broker."""

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

import kafkalocal
from mulog import sample
from sink.ops.control import request
from support.mtga import MTGA, count_lines, failure_count, produce, stored_offsets, wait_for, write_conf, write_settings

pytestmark = pytest.mark.kafka

APPS = (24, 25, 26)


def mtga(*args, timeout=60, input=None):
    return subprocess.run([MTGA, *args], capture_output=True, text=True, timeout=timeout, input=input)


def table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|--") and not line.startswith("| #"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def admin_watermarks(kafka, topic, parts=3):
    a = AdminClient({"bootstrap.servers": kafka})
    out = {}
    for name, spec in (("low", OffsetSpec.earliest()), ("high", OffsetSpec.latest())):
        futs = a.list_offsets({TopicPartition(topic, p): spec for p in range(parts)})
        for tp, f in futs.items():
            out.setdefault(tp.partition, {})[name] = f.result(10).offset
    return out


@pytest.fixture
def daemon(kafka, topic_factory, tmp_path):
    """A running mtga daemon on a fresh 3-partition topic; stopped at the end."""
    topic = topic_factory(partitions=3)
    write_settings(tmp_path / "settings", APPS)
    free = kafkalocal.free_port()
    conf = write_conf(tmp_path, kafka, topic, f"g-{topic}", checkpoint={"interval_s": 1},
                      metrics={"enabled": True, "port": free})
    r = mtga("start", "--daemon", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    pid = int(re.search(r"pid (\d+)", r.stdout).group(1))
    yield {"topic": topic, "conf": conf, "pid": pid, "tmp": tmp_path, "metrics_port": free}
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
    mtga("stop", "-c", str(conf), timeout=90)


def test_offset_checker_matches_admin_api_and_store(kafka, daemon):
    topic, conf, tmp = daemon["topic"], str(daemon["conf"]), daemon["tmp"]
    produce(kafka, topic, list(sample.envelopes(1500, app_ids=APPS)))
    # daemon running: wait until everything is consumed and stored
    wait_for(lambda: json.loads(mtga("kafka-lag", "-c", conf, "--json").stdout)["lag"] == 0
             and all(r["source"] == "local" for r in json.loads(mtga("offset-checker", "-c", conf, "--json").stdout)),
             60, "lag 0 with local offsets")
    rows = json.loads(mtga("offset-checker", "-c", conf, "--json").stdout)
    wm = admin_watermarks(kafka, topic)
    store = stored_offsets(tmp / "state")
    assert len(rows) == 3
    for r in rows:
        p = r["partition"]
        assert (r["low"], r["high"]) == (wm[p]["low"], wm[p]["high"])
        assert r["current"] == store[(topic, p)] == wm[p]["high"]
        assert r["lag"] == 0
    # stop, add a known backlog, and ask again without the daemon
    assert mtga("stop", "-c", conf, timeout=90).returncode == 0
    where = produce(kafka, topic, list(sample.envelopes(700, app_ids=APPS, seed=5)))
    added = {p: sum(1 for q, _ in where if q == p) for p in range(3)}
    r_json = mtga("offset-checker", "-c", conf, "--json")
    assert r_json.returncode == 0
    assert "mtga is not running" in r_json.stderr
    rows = json.loads(r_json.stdout)
    wm = admin_watermarks(kafka, topic)
    for r in rows:
        p = r["partition"]
        assert (r["low"], r["high"]) == (wm[p]["low"], wm[p]["high"])
        assert r["current"] == store[(topic, p)]
        assert r["lag"] == added[p] == wm[p]["high"] - store[(topic, p)]
    # the table says the same as the JSON
    tab = table_rows(mtga("offset-checker", "-c", conf).stdout)
    body, total = tab[:-1], tab[-1]
    assert [[int(c) if c.isdigit() else c for c in row] for row in body] == \
        [[r["#"], r["topic"], r["partition"], r["low"], r["high"], r["current"], r["lag"]] for r in rows]
    assert total[1] == "Total" and int(total[-1]) == 700
    lag = mtga("kafka-lag", "-c", conf)
    assert lag.returncode == 0 and lag.stdout.strip() == "700"


def test_frozen_daemon_times_out_with_exit_3_and_recovers(daemon):
    conf, pid, tmp = str(daemon["conf"]), daemon["pid"], daemon["tmp"]
    cmds = [["offset-checker"], ["kafka-lag"], ["failure-queue-count"], ["failure-queue-count", "--by-reason"],
            ["status"], ["clear-failure-queue", "--yes"]]
    assert mtga("status", "-c", conf).returncode == 0
    os.kill(pid, signal.SIGSTOP)
    try:
        def timed(args):
            """The command's result and stderr, and how long after its start it said it gave up: when its
            stderr file was last written (by the kernel's clock), not when it exited and this (busy)
            process saw it end: six interpreters closing down on a loaded machine are not what is timed."""
            err = tmp / ("stderr-" + "-".join(a.strip("-") for a in args))
            with open(err, "w") as f:
                t0 = time.time()
                r = subprocess.run([MTGA, *args, "-c", conf], stdout=subprocess.PIPE, stderr=f, text=True,
                                   timeout=30)
            return args, r, err.read_text(), err.stat().st_mtime - t0

        with ThreadPoolExecutor(len(cmds)) as ex:
            results = list(ex.map(timed, cmds))
    finally:
        os.kill(pid, signal.SIGCONT)
    for args, r, stderr, took in results:
        assert r.returncode == 3, (args, r.stdout, stderr)
        assert took < 11.0, (args, took)
        assert f"mtga (pid {pid}) did not answer" in stderr and "within 10s" in stderr
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    for args in cmds:
        r = mtga(*args, "-c", conf)
        assert r.returncode == 0, (args, r.stderr)


def test_socket_is_private_and_survives_bad_requests(daemon):
    sock = daemon["tmp"] / "state" / "run" / "mtga.sock"
    assert (sock.parent.stat().st_mode & 0o777) == 0o700
    assert (sock.stat().st_mode & 0o777) == 0o600
    # another user cannot connect
    probe = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1]); print('connected')\n"
             "except PermissionError: print('denied')\n")
    r = subprocess.run(["python3", "-c", probe, str(sock)], capture_output=True, text=True, timeout=30,
                       preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)))
    assert r.stdout.strip() == "denied", r.stdout + r.stderr

    def raw(data: bytes) -> dict:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(20)
        s.connect(str(sock))
        s.sendall(data)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        s.close()
        return json.loads(buf)

    big = raw(b'{"cmd": "status", "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}\n')
    assert big["ok"] is False and "request too large" in big["error"]
    bad = raw(b"{not json\n")
    assert bad["ok"] is False and "invalid JSON" in bad["error"]
    unk = raw(b'{"cmd": "explode"}\n')
    assert unk["ok"] is False and "unknown command 'explode'" in unk["error"]
    nc = raw(b'{"cmd": "fq_clear"}\n')
    assert nc["ok"] is False and "confirm" in nc["error"]
    assert raw(b'{"cmd": "ping"}\n') == {"ok": True, "result": "pong"}
    assert request(sock, "status", 10)["pid"] == daemon["pid"]


def test_failure_queue_commands_and_confirmation(kafka, daemon):
    topic, conf, tmp = daemon["topic"], str(daemon["conf"]), daemon["tmp"]
    produce(kafka, topic, [b"{bad json"] * 5 + [b'{"headers": {"app_id": 99, "log_name": "x"}, "logs": {}}'] * 3)
    wait_for(lambda: mtga("failure-queue-count", "-c", conf).stdout.strip() == "8", 60, "8 queued failures")
    by = json.loads(mtga("failure-queue-count", "-c", conf, "--by-reason", "--json").stdout)
    assert by == {"count": 8, "by_reason": {"invalid_json": 5, "no_settings": 3}}
    no = mtga("clear-failure-queue", "-c", conf, input="n\n")
    assert no.returncode == 1 and "nothing removed" in no.stderr
    one = mtga("clear-failure-queue", "-c", conf, "--reason", "no_settings", input="y\n")
    assert one.returncode == 0 and one.stdout.strip().endswith("removed 3")
    assert mtga("failure-queue-count", "-c", conf).stdout.strip() == "5"
    # with the daemon stopped the same commands read and change the store
    assert mtga("stop", "-c", conf, timeout=90).returncode == 0
    off = mtga("failure-queue-count", "-c", conf, "--by-reason")
    assert off.returncode == 0 and "5\tinvalid_json" in off.stdout and "not running" in off.stderr
    r = mtga("clear-failure-queue", "-c", conf, "--yes")
    assert r.stdout.strip() == "removed 5"
    assert failure_count(tmp / "state") == 0
    st = mtga("status", "-c", conf)
    assert st.returncode == 1 and "mtga is not running" in st.stdout and "failure queue 0" in st.stdout


def test_status_reports_the_running_daemon(kafka, daemon):
    topic, conf = daemon["topic"], str(daemon["conf"])
    produce(kafka, topic, list(sample.envelopes(300, app_ids=APPS)))
    wait_for(lambda: count_lines(daemon["tmp"] / "out") == 300, 60, "300 lines")
    wait_for(lambda: json.loads(mtga("status", "-c", conf, "--json").stdout)["last_checkpoint"], 30,
             "a checkpoint")
    r = mtga("status", "-c", conf, "--json")
    assert r.returncode == 0, r.stdout  # it runs and reaches Kafka
    st = json.loads(r.stdout)
    assert st["running"] is True and st["pid"] == daemon["pid"]
    assert st["kafka"]["reachable"] is True and st["kafka"]["bootstrap"] == kafka and st["kafka"]["errors"] == 0
    assert st["consumed"] == 300 and st["written"] == 300
    assert sorted(st["partitions"]) == [f"{topic}[{p}]" for p in range(3)]
    assert st["failure_queue"] == 0 and st["uptime_s"] > 0
    r = mtga("status", "-c", conf)
    text = r.stdout
    assert r.returncode == 0 and f"kafka: Kafka at {kafka} reachable" in text, text
    assert f"mtga is running (pid {daemon['pid']}" in text and "events/s (last minute)" in text
    assert "last checkpoint: 20" in text


def test_metrics_endpoint_counters_move(kafka, daemon):
    topic = daemon["topic"]
    url = f"http://127.0.0.1:{daemon['metrics_port']}/metrics"

    def scrape() -> dict:
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        vals = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, v = line.rsplit(" ", 1)
                vals[name] = float(v)
        return vals

    before = scrape()
    assert before["mtga_events_consumed_total"] == 0
    assert "mtga_failure_queue_size" in before and "mtga_checkpoint_age_seconds" in before
    assert before["mtga_transform_worker_restarts_total"] == 0 and before["mtga_transform_workers"] >= 1
    produce(kafka, topic, list(sample.envelopes(200, app_ids=APPS)) + [b"nope"])
    wait_for(lambda: scrape()["mtga_events_consumed_total"] == 201, 60, "counters to move")
    after = scrape()
    assert after["mtga_events_written_total"] == 200
    assert after["mtga_events_failed_total"] == 1
    assert after["mtga_failure_queue_size"] == 1
    assert after["mtga_sink_bytes_total"] > 200 * 500
    # every assigned partition, those the 201 events did not reach included
    lags = wait_for(lambda: (x := {k: v for k, v in scrape().items() if k.startswith("mtga_partition_lag{")})
                    and len(x) == 3 and x, 30, "the lag of the 3 partitions")
    assert all(v == 0 for v in lags.values()), lags
