"""``shipper status``'s verdict from the status file the running shipper writes
(shipper/ops/status.py): running and reaching Kafka, Kafka unreachable, a loop
that stopped writing, a clean stop, a process gone without one."""

import os
import subprocess
import sys

from mulog.exitcodes import Exit
from mulog.kafka_state import reach
from shipper.ops.status import STALE_S, Live, judge, read_live, write_live


def live(pid=None, updated=1000.0, state="running", kafka=None) -> Live:
    return Live(pid or os.getpid(), "h", 900.0, updated, state, kafka or reach("k:9092", True, None, 0, now=updated),
                5, 3, 2, 1, 1, 10, "1.2.3")


def test_the_file_is_written_private_and_read_back(tmp_path):
    assert read_live(tmp_path) is None
    write_live(tmp_path, live())
    assert read_live(tmp_path) == live()
    assert oct((tmp_path / "shipper.status.json").stat().st_mode & 0o777) == "0o600"
    (tmp_path / "shipper.status.json").write_text("{not json")
    assert read_live(tmp_path) is None  # a damaged file: as if none


def test_running_and_reaching_kafka_is_0():
    head, code, fields = judge("/s", live(), now=1001.0)
    assert code is Exit.OK and fields["running"] is True
    assert head == ("shipper is running (pid %d, up 0:01:41, version 1.2.3); Kafka at k:9092 reachable; "
                    "5 lines sent, "
                    "3 acknowledged by Kafka, 2 waiting for it" % os.getpid())


def test_kafka_unreachable_is_3_and_says_since_when():
    head, code, _ = judge("/s", live(kafka=reach("k:9092", False, 962.0, 755, now=1000.0)), now=1001.0)
    assert code is Exit.UNREACHABLE
    assert " but Kafka at k:9092 UNREACHABLE since " in head and "(38s, 755 client errors since)" in head


def test_a_loop_that_stopped_writing_is_3():
    head, code, fields = judge("/s", live(), now=1000.0 + STALE_S + 5)
    assert code is Exit.UNREACHABLE and fields["running"] is True and "its loop is stuck" in head


def test_not_running_is_1():
    head, code, fields = judge("/s", None)
    assert code is Exit.CONDITION and head == "shipper is not running (no status file in /s)"
    head, code, fields = judge("/s", live(state="stopped"))
    assert code is Exit.CONDITION and head.startswith("shipper is not running (stopped at ")
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()  # a pid that is gone
    head, code, fields = judge("/s", live(pid=p.pid), now=1001.0)
    assert code is Exit.CONDITION and fields["running"] is False
    assert head.startswith(f"shipper is not running (pid {p.pid} ended without a clean stop")
