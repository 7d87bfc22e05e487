"""Log rotation while lines are being written, against the real broker and a real
`shipper tail` process: rename+create, copytruncate, dated hourly files,
delete-after-rotate. Every line written must reach Kafka."""

import os
import shutil
import threading
import time
from collections import Counter, defaultdict

import pytest

from support.shipper import (ShipperProc, all_delivered, by_writer, join_all, line, parse, read_topic, status,
                             topic_total, wait_for, write_conf)

pytestmark = pytest.mark.kafka


def check_order_per_file(msgs) -> int:
    """Within each file generation (one ``file`` identity: one file, or one content of
    a truncated file) the lines are in one partition, in the order and at the offsets
    they were written; returns the number of generations."""
    per_file = defaultdict(list)
    for m in msgs:
        per_file[m.headers["file"]].append(m)
    for ident, ms in per_file.items():
        assert len({m.partition for m in ms}) == 1, f"{ident}: lines in more than one partition"
        for tag in {parse(m.value)[0] for m in ms}:
            nums = [n for t, n in map(parse, (m.value for m in ms)) if t == tag]
            assert nums == sorted(nums), f"{ident}: lines of {tag} out of the order they were written in"
        offs = [int(m.headers["offset"]) for m in ms]
        assert offs == sorted(offs) and len(set(offs)) == len(offs), f"{ident}: offsets out of order or repeated"
    return len(per_file)


def wait_read(log, path, times: int = 1) -> None:
    """Wait until the shipper whose log is ``log`` has opened ``path`` ``times``
    times (its "reading PATH (" lines). A rotation test renames or deletes a file
    the shipper follows: one renamed away or deleted before the shipper ever
    opened it (on a busy machine it may come late) is another case, tested in
    test_faults_shipper."""
    wait_for(lambda: log.exists() and log.read_text(errors="replace").count(f"reading {path} (") >= times, 30,
             f"the shipper reading {path} (number {times})")


class Rotating(threading.Thread):
    """Writes ``total`` numbered lines in bursts; ``rotate(self)`` runs every
    ``every`` lines (it may write lines itself through ``self.emit``)."""

    def __init__(self, path, tag, total, every, rotate, burst=20, pause=0.003):
        super().__init__(daemon=True)
        self.path, self.tag, self.total, self.every, self.rotate = path, tag, total, every, rotate
        self.burst, self.pause = burst, pause
        self.n = 0
        self.f = None
        self.error = None
        self.rotations = 0

    def emit(self, count, f=None):
        end = min(self.total, self.n + count)
        (f or self.f).write(b"".join(line(self.tag, i) + b"\n" for i in range(self.n, end)))
        self.n = end

    def run(self):
        try:
            self.f = open(self.path, "ab", buffering=0)
            next_rot = self.every
            while self.n < self.total:
                self.emit(min(self.burst, next_rot - self.n))
                time.sleep(self.pause)
                if self.n >= next_rot and self.n < self.total:
                    self.rotations += 1
                    self.rotate(self)
                    next_rot = self.n + self.every
            self.f.close()
        except BaseException as e:
            self.error = e
            raise


def ship_and_check(kafka, topic, tmp_path, inputs, writers, files, finished=0, **conf_extra):
    """Ship while ``writers`` write; wait for every line, for the positions of
    ``files()`` and for ``finished`` rotated files to be read to their end and
    closed; stop the shipper; check every line arrived once."""
    state = tmp_path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=inputs, **conf_extra)
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        sh.wait_log("watching ")  # inotify is on
        for w in writers:
            w.start()
        join_all(writers)
        total = sum(w.total for w in writers)
        wait_for(lambda: topic_total(kafka, topic) >= total, 60, f"{total} lines in Kafka")
        wait_for(lambda: all_delivered(state, files()), 30, "positions of the current files saved")
        if finished:
            sh.wait_log("rotated or deleted) at offset", count=finished)
        assert sh.alive()
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    msgs = read_topic(kafka, topic)
    got = by_writer(msgs)
    for w in writers:
        seen = Counter(got[w.tag])
        missing = sorted(set(range(w.total)) - set(seen))
        assert not missing, f"{w.tag}: {len(missing)} lines lost, first {missing[:10]}"
        repeated = sorted(n for n, k in seen.items() if k > 1)
        assert not repeated, f"{w.tag}: {len(repeated)} lines repeated"
    # rotation may interleave files in Kafka; each file generation is in order
    assert check_order_per_file(msgs) == sum(w.rotations + 1 for w in writers)
    return sh


def test_rename_and_create(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=3)
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "log_item.log"

    def rotate(w):
        w.f.flush()
        wait_read(tmp_path / "shipper.log", app, w.rotations)  # the file renamed is one the shipper follows
        os.rename(app, logs / f"log_item.log.{w.rotations}")
        w.emit(30)  # the server writes on into the old file until it reopens
        w.f.close()
        w.f = open(app, "ab", buffering=0)

    w = Rotating(app, "rn", 9000, 2500, rotate)
    sh = ship_and_check(kafka, topic, tmp_path, [
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_item"}], [w], lambda: [app],
        finished=3)
    assert w.rotations == 3
    log = sh.log()
    assert log.count("was renamed or deleted; reading it to its end") == 3
    assert log.count("rotated or deleted) at offset") == 3  # each old file finished and closed
    print(f"\nrename+create: {w.total} lines over 4 files (3 rotations), none lost or repeated")


def test_copytruncate(kafka, topic_factory, tmp_path):
    """logrotate's copytruncate copies the file, then truncates it in place. Lines
    written after the shipper's last read and before the truncation exist only in
    the copy (which the glob does not match) and are lost by the nature of
    copytruncate; so the writer waits until the shipper has delivered what it
    wrote before it rotates (as a logrotate `prerotate` could), and goes on
    writing right after. What this test proves: the truncation is detected while
    lines keep coming, the file is read again from offset 0, nothing is lost."""
    topic = topic_factory(partitions=3)
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "log_pay.log"
    state = tmp_path / "state"

    def rotate(w):
        wait_for(lambda: all_delivered(state, [app]), 30, "delivery before the copy")
        shutil.copyfile(app, logs / f"log_pay.log.{w.rotations}")
        os.truncate(app, 0)  # the writer's O_APPEND descriptor goes on at the new end

    w = Rotating(app, "ct", 9000, 2500, rotate)
    sh = ship_and_check(kafka, topic, tmp_path, [
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_pay"}], [w], lambda: [app])
    assert w.rotations == 3
    assert sh.log().count("truncated: ") == 3
    print(f"\ncopytruncate: {w.total} lines, 3 truncations detected while writing, none lost or repeated")


def test_dated_hourly_files(kafka, topic_factory, tmp_path):
    """A new file per hour (here per 1500 lines): the new one is read as soon as it
    appears; the old one gets a few late lines, goes idle and is closed; a line
    appended to a closed old file later is still shipped (the file is reopened);
    two hours later the old file is renamed away (compressed)."""
    topic = topic_factory(partitions=3)
    logs = tmp_path / "logs"
    logs.mkdir()
    hours = []

    def hour_file(h):
        return logs / f"log_battle-20240101{h:02d}.log"

    def rotate(w):
        old = w.f
        hours.append(hour_file(w.rotations))
        w.f = open(hour_file(w.rotations), "ab", buffering=0)
        w.emit(5)
        w.emit(10, f=old)  # late lines into the previous hour
        old.close()
        if w.rotations >= 3:  # the file of two hours ago is compressed away (once the shipper has found it)
            wait_read(tmp_path / "shipper.log", hour_file(w.rotations - 3))
            os.rename(hour_file(w.rotations - 3), str(hour_file(w.rotations - 3)) + ".gz")

    w = Rotating(hour_file(0), "hr", 7500, 1500, rotate, pause=0.004)
    hours.append(hour_file(0))
    state = tmp_path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, close_inactive_s=0.5, inputs=[
        {"paths": [str(logs / "log_battle-*.log")], "topic": topic, "app_id": 24,
         "log_name_pattern": r"^(?P<log_name>[a-z_]+)-\d{10}\.log$"}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        sh.wait_log("watching ")  # inotify is on
        w.start()
        join_all([w])
        wait_for(lambda: topic_total(kafka, topic) >= w.total, 60, "every line in Kafka")
        # a line arrives late in an hour file that was closed for inactivity
        sh.wait_log(f"closing {hour_file(3)} after")
        with open(hour_file(3), "ab") as f:
            f.write(line("late", 0) + b"\n")
        wait_for(lambda: topic_total(kafka, topic) >= w.total + 1, 30, "the late line")
        live = [h for h in hours if h.exists()]
        wait_for(lambda: all_delivered(state, live), 30, "positions of the hour files saved")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    msgs = read_topic(kafka, topic)
    got = by_writer(msgs)
    assert sorted(got["hr"]) == list(range(w.total)), "lines lost or repeated"
    assert check_order_per_file(msgs) == len(hours)
    assert got["late"] == [0]
    assert {m.headers["log_name"] for m in msgs} == {"log_battle"}
    paths = {m.headers["path"] for m in msgs}
    assert paths == {str(h) for h in hours}, paths  # one path per hour file
    log = sh.log()
    for h in hours[1:]:
        assert f"reading {h} (" in log
    print(f"\nhourly files: {w.total} lines over {len(hours)} files (+1 late line after an idle close), "
          f"none lost or repeated")


def test_delete_after_rotate(kafka, topic_factory, tmp_path):
    """The rotated file is deleted right away, with lines in it the shipper has not
    read yet, and the server still writing into it for a moment: the open
    descriptor is read to its end, then closed."""
    topic = topic_factory(partitions=3)
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "log_role_up.log"

    def rotate(w):
        wait_read(tmp_path / "shipper.log", app, w.rotations)  # the file deleted is one the shipper follows
        w.emit(2000)  # a burst the shipper is still reading when the file goes
        os.rename(app, logs / "log_role_up.log.1")
        os.unlink(logs / "log_role_up.log.1")
        w.emit(40)  # written into the deleted file
        w.f.close()
        w.f = open(app, "ab", buffering=0)

    w = Rotating(app, "dl", 16000, 3000, rotate)
    sh = ship_and_check(kafka, topic, tmp_path, [
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_role_up"}], [w],
        lambda: [app], finished=3)
    assert w.rotations == 3
    log = sh.log()
    assert log.count("rotated or deleted) at offset") == w.rotations
    print(f"\ndelete after rotate: {w.total} lines, {w.rotations} rotated files deleted at once, none lost")


def test_deleted_files_are_let_go(kafka, topic_factory, tmp_path):
    """After a deleted file is drained, the shipper holds no descriptor on it, and
    its stored position is forgotten after forget_after_s."""
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    f = logs / "log_x.log"
    f.write_bytes(b"".join(line("dx", n) + b"\n" for n in range(200)))
    state = tmp_path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, rotate_wait_s=0.5, forget_after_s=1,
                      inputs=[{"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_x"}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        wait_for(lambda: topic_total(kafka, topic) == 200, 30, "200 lines")
        os.unlink(f)
        sh.wait_log("rotated or deleted) at offset")

        def held():
            fds = f"/proc/{sh.proc.pid}/fd"
            out = []
            for x in os.listdir(fds):
                try:
                    target = os.readlink(os.path.join(fds, x))
                except FileNotFoundError:
                    continue  # closed since the listing
                if str(f) in target:
                    out.append(target)
            return out

        wait_for(lambda: not held(), 30, "the descriptor closed")
        sh.wait_log("forgot the positions of 1 files gone for more than 1s")
        wait_for(lambda: status(state) == [], 30, "the position forgotten")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
