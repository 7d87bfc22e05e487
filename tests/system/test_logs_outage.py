"""The programs' logs as an operator reads them, through real processes:

- with the broker away, the Kafka client's repeated errors are folded (before,
  `mtga start` wrote about 230 such lines in 12 s and `shipper tail` about 136),
  and when the broker is back one line says it answers again, with how long it
  was away (a private one-broker cluster, stopped, then started again);
- with ``log.format: json`` every line of either program is a JSON object with
  time, level, logger and message."""

from __future__ import annotations

import json
import re
import signal
import time

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

import kafkalocal
from support import mtga as mtga_helpers
from support.shipper import ShipperProc, write_conf

pytestmark = pytest.mark.kafka

OUTAGE_S = 10
MAX_CLIENT_LINES = 5  # ERROR and WARNING lines about Kafka during the outage
AWAY = re.compile(r"Kafka broker \S+ answers again: away for (\d+)s")
CLIENT_LINE = re.compile(r"^\S+ \S+ (ERROR|WARNING) \S+: .*kafka", re.I | re.M)
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A private broker with a topic, stopped: each test starts it again itself."""
    cl = kafkalocal.Cluster(tmp_path_factory.mktemp("k"))
    bootstrap = cl.start(brokers=1).bootstrap
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("outage", num_partitions=2, replication_factor=1)])["outage"].result(timeout=30)
        del admin
        yield cl, bootstrap
    finally:
        cl.stop()


def _shipper(tmp_path, bootstrap, **log):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "log_a.log").write_text('{"n":1}\n{"n":2}\n')
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=bootstrap, state=tmp_path / "state",
                      shutdown_timeout_s=2, log={"file": str(tmp_path / "shipper.log"), **log}, inputs=[
                          {"paths": [str(logs / "*.log")], "topic": "outage", "app_id": 24, "log_name": "log_a",
                           "start_at": "beginning"}])
    return ShipperProc(conf, tmp_path / "shipper.out").start(), tmp_path / "shipper.log"


def _mtga(tmp_path, bootstrap, **log):
    mtga_helpers.write_settings(tmp_path / "settings", apps=(24,))
    conf = mtga_helpers.write_conf(tmp_path, bootstrap, "outage", f"g-{tmp_path.name}",
                                   log={"file": str(tmp_path / "mtga.log"), **log})
    return mtga_helpers.Mtga(conf).start(), tmp_path / "mtga.log"


def _stop(proc) -> None:
    p = proc.proc
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(60)
        except Exception:
            p.kill()
            p.wait(10)


def _outage(cluster, start, tmp_path, then: str):
    """The outage, the broker back, and then ``then`` in the log (its work resumed)."""
    cl, bootstrap = cluster
    cl.stop_node(1)
    proc, log = start(tmp_path, bootstrap)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < OUTAGE_S:
            assert proc.proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        text = log.read_text()
        client = CLIENT_LINE.findall(text)
        print(f"{len(client)} ERROR/WARNING lines about Kafka in {OUTAGE_S}s; {len(text.splitlines())} lines in all")
        assert "Connection refused" in text  # the outage is said at once
        assert 1 <= len(client) <= MAX_CLIENT_LINES, text
        cl.start_node(1)
        assert cl.bootstrap() == bootstrap
        m = mtga_helpers.wait_for(lambda: AWAY.search(log.read_text()), 60, "the broker answering again")
        assert int(m[1]) >= OUTAGE_S, m[0]
        mtga_helpers.wait_for(lambda: then in log.read_text(), 60, repr(then))
        assert len(AWAY.findall(log.read_text())) == 1
    finally:
        _stop(proc)


@pytest.mark.kafka
@pytest.mark.slow
def test_shipper_folds_the_outage_and_says_when_kafka_answers_again(cluster, tmp_path):
    _outage(cluster, _shipper, tmp_path, "Kafka reachable again")  # and the lines kept meanwhile delivered


@pytest.mark.kafka
@pytest.mark.slow
def test_mtga_folds_the_outage_and_says_when_kafka_answers_again(cluster, tmp_path):
    _outage(cluster, _mtga, tmp_path, "assigned outage[")


def test_json_log_lines_of_both_programs(tmp_path, refused_port):
    """Against a port with no broker (the client's errors are logged too), for a few seconds."""
    bootstrap = f"127.0.0.1:{refused_port}"
    (tmp_path / "s").mkdir()
    (tmp_path / "m").mkdir()
    sh, slog = _shipper(tmp_path / "s", bootstrap, format="json")
    m, mlog = _mtga(tmp_path / "m", bootstrap, format="json")
    try:
        # mtga's "consuming" line: it runs, its signal handlers set (a SIGTERM before would end it at once)
        mtga_helpers.wait_for(lambda: slog.exists() and "Connection refused" in slog.read_text()
                              and '"stats: ' in slog.read_text()
                              and mlog.exists() and "Connection refused" in mlog.read_text()
                              and '"message":"consuming outage as group' in mlog.read_text(), 30,
                              "the client's errors in both logs, the shipper's stats line, mtga running")
    finally:
        _stop(sh)
        _stop(m)
    for log, prog in ((slog, "shipper"), (mlog, "mtga")):
        lines = log.read_text().splitlines()
        assert len(lines) >= 4, lines
        recs = [json.loads(ln) for ln in lines]  # every line is one JSON object
        for r in recs:
            assert TIME.match(r["time"]), r
            assert r["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), r
            assert r["logger"].split(".")[0] == prog, r
            assert isinstance(r["message"], str) and r["message"], r
        fail = next(r for r in recs if "Connection refused" in r["message"])
        assert fail["logger"] == f"{prog}.kafka" and fail["broker"] == bootstrap and fail["folded"] == 0, fail
        assert any(r["message"].startswith("stopp") for r in recs), prog  # the clean stop is logged too
    stats = next(json.loads(ln) for ln in slog.read_text().splitlines() if '"stats: ' in ln)
    assert stats["lines_waiting"] == 2 and stats["files_open"] == 1 and stats["args"][4] == 2, stats
    events = next(json.loads(ln) for ln in mlog.read_text().splitlines() if '"events: consumed' in ln)
    assert events["consumed"] == 0 and events["partitions"] == 0 and events["stalled"] is None, events
