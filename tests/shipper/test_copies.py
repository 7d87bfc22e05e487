"""Rotated copies and file generations, against a real broker and a real
`shipper tail` process: Debian's logrotate (copytruncate and create, dateext,
compress, delaycompress) forced every 2 s under load with the rotated copies in
the glob, and a file that goes through copytruncate, rename and inode reuse with
the shipper SIGKILLed in between. Every line written carries a sequence number;
what Kafka holds is counted line by line."""

import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict

import pytest

from support.shipper import (MARK, ShipperProc, all_delivered, line, read_topic, report, same_inode_file, status,
                             topic_total, wait_for, write_conf)

pytestmark = pytest.mark.kafka

LOGROTATE = shutil.which("logrotate") or ("/usr/sbin/logrotate" if os.access("/usr/sbin/logrotate", os.X_OK)
                                          else None)


@pytest.fixture(autouse=True)
def _logrotate_installed():
    assert LOGROTATE is not None, "logrotate is not installed (scripts/ensure-tools installs it)"


class RateWriter(threading.Thread):
    """``rate`` lines/s appended to ``path`` (O_APPEND: after a truncation the
    writes land at the start) for ``seconds``, and on until ``until`` is set
    (``total`` is then the number of lines written). Under ``lock`` while writing
    (the rotator holds it while logrotate runs: logrotate's own copy-then-truncate
    window, where lines are lost before any shipper sees them, is not what is
    measured). ``reopen``: opens the path again once it names another file
    (a server told to reopen after a ``create`` rotation)."""

    def __init__(self, path, tag, rate, seconds, lock, reopen=False, until=None):
        super().__init__(daemon=True)
        self.path, self.tag, self.rate, self.seconds, self.lock, self.reopen = path, tag, rate, seconds, lock, reopen
        self.until = until
        self.total = rate * seconds
        self.n = 0
        self.error = None

    def run(self):
        try:
            f = open(self.path, "ab", buffering=0)
            t0 = time.monotonic()
            while self.n < self.total:
                due = min(self.total, int((time.monotonic() - t0) * self.rate))
                with self.lock:
                    if self.reopen:
                        try:
                            moved = os.stat(self.path).st_ino != os.fstat(f.fileno()).st_ino
                        except FileNotFoundError:
                            moved = True
                        if moved:
                            f.close()
                            f = open(self.path, "ab", buffering=0)
                    if due > self.n:
                        f.write(b"".join(line(self.tag, i) + b"\n" for i in range(self.n, due)))
                        self.n = due
                if self.n >= self.total and self.until is not None and not self.until.is_set():
                    self.total += self.rate // 10  # not done yet: a tenth of a second more, at the same rate
                time.sleep(0.01)
            f.close()
        except BaseException as e:  # reported by the test
            self.error = e
            raise


class Rotator(threading.Thread):
    """``logrotate -f`` with a private state file every ``every`` s until stopped;
    ``enough`` is set once it has run ``runs_wanted`` times."""

    def __init__(self, conf, state, every, lock, runs_wanted):
        super().__init__(daemon=True)
        self.conf, self.state, self.every, self.lock = conf, state, every, lock
        self.stop_ev = threading.Event()
        self.enough = threading.Event()
        self.runs_wanted = runs_wanted
        self.runs = 0
        self.errors = []

    def run(self):
        while not self.stop_ev.wait(self.every):
            with self.lock:
                r = subprocess.run([LOGROTATE, "-s", str(self.state), "-f", str(self.conf)], capture_output=True,
                                   text=True, timeout=30)
            if r.returncode != 0:
                self.errors.append(r.stderr[-500:])
            self.runs += 1
            if self.runs >= self.runs_wanted:
                self.enough.set()


def count(kafka, topic, tag, total):
    msgs = read_topic(kafka, topic)
    seen = Counter()
    wrong = []
    for m in msgs:
        mk = MARK.match(m.value)
        if mk is None or mk.group(1).decode() != tag or m.value != line(tag, int(mk.group(2))):
            wrong.append((m.headers, m.value[:60]))
            continue
        seen[int(mk.group(2))] += 1
    lost = total - len(set(seen) & set(range(total)))
    return msgs, seen, lost, wrong


def _distinct(kafka, topic, tag):
    return len({int(mk.group(2)) for m in read_topic(kafka, topic) if (mk := MARK.match(m.value))})


def _logrotate_under_load(kafka, topic_factory, tmp_path, mode, dated, glob="copy.log*", seconds=12, rate=2000):
    topic = topic_factory(partitions=3)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    p = logs / "copy.log"
    p.touch()
    dateext = "    dateext\n    dateformat -%Y%m%d%H%M%S\n" if dated else ""
    lr = tmp_path / "logrotate.conf"
    lr.write_text(f"{p} {{\n    {mode}\n    rotate 5\n    compress\n    delaycompress\n    missingok\n{dateext}}}\n")
    lr.chmod(0o644)
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, rotate_wait_s=1, inputs=[
        {"paths": [str(logs / glob)], "topic": topic, "app_id": 24, "log_name": "log_copy"}])
    lock = threading.Lock()
    # a rotation every 2 s while the lines come, and as many as that makes in `seconds`, however long
    # logrotate takes to run on a busy machine: the writer goes on until the rotator has run them
    runs = seconds // 2 - 1
    rot = Rotator(lr, tmp_path / "logrotate.state", 2.0, lock, runs_wanted=runs)
    w = RateWriter(p, "c", rate, seconds, lock, reopen=(mode == "create"), until=rot.enough)
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    t0 = time.monotonic()
    try:
        sh.wait_log("watching ")
        w.start()
        rot.start()
        w.join(seconds + 60)
        rot.stop_ev.set()
        rot.join(30)
        assert not w.is_alive() and w.error is None, w.error
        assert not rot.errors, rot.errors[:2]
        try:  # every line in Kafka (or what is there counted below)
            wait_for(lambda: topic_total(kafka, topic) >= w.total and _distinct(kafka, topic, "c") >= w.total, 40,
                     f"{w.total} distinct lines in Kafka")
        except AssertionError:
            pass
        assert sh.stop() == 0
    finally:
        rot.stop_ev.set()
        rot.enough.set()
        sh.kill_if_alive()
    msgs, seen, lost, wrong = count(kafka, topic, "c", w.total)
    log = sh.log()
    names = sorted(os.listdir(logs))
    report(f"logrotate {mode}{' dateext' if dated else ''} (glob {glob}) every 2 s at {rate} lines/s ({rot.runs} rotations, "
           f"{time.monotonic() - t0:.0f}s)", w.total, len(msgs), len(seen), lost,
           copies_followed=log.count("copy: "), truncations=log.count("truncated: "),
           compressed_skipped=log.count("is compressed"))
    assert not wrong, (len(wrong), wrong[:3])
    assert lost == 0 and len(msgs) == len(seen) == w.total, \
        f"lost {lost}, duplicated {len(msgs) - len(seen)}; files {names}\n{log[-4000:]}"
    assert "Traceback" not in log and rot.runs >= runs
    assert any(n.endswith(".gz") for n in names)
    if glob == "copy.log*":
        assert log.count("is compressed") >= 1
    # a file's lines carry one identity per generation, their offsets only grow within it
    last = defaultdict(lambda: -1)
    for m in msgs:
        off = int(m.headers["offset"])
        assert off > last[m.headers["file"]], m.headers
        last[m.headers["file"]] = off
    paths = {m.headers["path"] for m in msgs}
    if mode == "copytruncate":  # a copy's lines carry the name they were written under
        assert paths == {str(p)}, paths
    else:  # a renamed file's lines, its new name in the glob
        assert all(x.startswith(str(p)) and not x.endswith(".gz") for x in paths), paths
    return log


@pytest.mark.parametrize("dated", [False, True], ids=["numbered", "dateext"])
def test_logrotate_copytruncate_under_load_copies_in_glob(kafka, topic_factory, tmp_path, dated):
    log = _logrotate_under_load(kafka, topic_factory, tmp_path, "copytruncate", dated)
    # a generation per truncation (a copy may go unseen under load once its generation was all delivered)
    assert log.count("copy: ") >= 3 and "as generation 3" in log


def test_logrotate_copytruncate_under_load_copies_out_of_the_glob(kafka, topic_factory, tmp_path):
    """The copies are not in the glob (``*.log``): the copy of a generation is
    still looked for in its folder and read on from where the generation's
    reading ended, so the lines not read before the truncation are not lost."""
    log = _logrotate_under_load(kafka, topic_factory, tmp_path, "copytruncate", False, glob="*.log")
    assert log.count("copy: ") >= 3 and "outside the globs" in log


def test_logrotate_create_dateext_under_load_copies_in_glob(kafka, topic_factory, tmp_path):
    _logrotate_under_load(kafka, topic_factory, tmp_path, "create", True)


# ------------------------------------------------------- generations and SIGKILL

def _burst(p, tag, lo, hi, per=50, pause=0.005):
    with open(p, "ab", buffering=0) as f:
        for a in range(lo, hi, per):
            f.write(b"".join(line(tag, n) + b"\n" for n in range(a, min(hi, a + per))))
            time.sleep(pause)


def _copytruncate(p, to):
    shutil.copyfile(p, to)
    os.truncate(p, 0)


def test_copytruncate_rename_and_inode_reuse_with_sigkills_dedupe_exactly(kafka, topic_factory, tmp_path,
                                                                         private_fs):
    """A file copy-truncated, renamed, and replaced by a new file on its inode,
    the shipper SIGKILLed in between (while it runs, and the changes made while
    it is dead). Repeats in Kafka after a kill are allowed only as the same
    (file, offset) pair as the first copy: every pair names one line, and keeping
    per file identity only messages above the highest offset seen so far (what
    mtga does) leaves every line written exactly once. The logs are on a file
    system of their own, where the new file surely gets the old one's inode."""

    topic = topic_factory(partitions=2)
    logs = private_fs("logs").path
    state = tmp_path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, rotate_wait_s=1, inputs=[
        {"paths": [str(logs / "d.log*")], "topic": topic, "app_id": 24, "log_name": "log_d"}])
    p = logs / "d.log"
    kills = 0

    def run(k, until):
        nonlocal kills
        sh = ShipperProc(conf, tmp_path / f"shipper{k}.log").start()
        try:
            sh.wait_log("watching ")
            until(sh)
            assert sh.stop(signal.SIGKILL) == -signal.SIGKILL
            kills += 1
        finally:
            sh.kill_if_alive()
        return sh.log()

    # 1: lines 0..1999 while it runs, killed mid-stream
    logs1 = run(1, lambda sh: (_burst(p, "d", 0, 2000), wait_for(lambda: topic_total(kafka, topic) >= 1000, 30,
                                                                  "half the lines in Kafka")))
    # dead: more lines, then a copytruncate, then lines in the new generation
    _burst(p, "d", 2000, 2500, pause=0)
    _copytruncate(p, logs / "d.log.1")
    _burst(p, "d", 2500, 3000, pause=0)

    # 2: the copy is read on, the new generation read; under load a second copytruncate; killed mid-stream
    def two(sh):
        wait_for(lambda: topic_total(kafka, topic) >= 2600, 30, "the copy and the new generation read")
        _burst(p, "d", 3000, 3500)
        os.rename(logs / "d.log.1", logs / "d.log.2")
        _copytruncate(p, logs / "d.log.1")
        _burst(p, "d", 3500, 4000)
    logs2 = run(2, two)
    # dead: a rename rotation (the new name in the glob) and a new file
    _burst(p, "d", 4000, 4200, pause=0)
    os.rename(p, logs / "d.log.3")
    _burst(p, "d", 4200, 4600, pause=0)

    # 3: everything delivered and stored, then killed
    def three(sh):
        wait_for(lambda: _distinct(kafka, topic, "d") >= 4600 and all_delivered(state, [p]), 60,
                 "every line delivered")
    logs3 = run(3, three)
    ino = p.stat().st_ino
    rows = status(state)
    # dead: d.log deleted, a new file with other lines gets its inode
    p.unlink()
    q = same_inode_file(logs, ino, b"".join(line("d", n) + b"\n" for n in range(4600, 5000)), "d.log")
    assert q == p and p.stat().st_ino == ino

    # 4: the new file read, then a copytruncate under load, then a SIGTERM
    sh = ShipperProc(conf, tmp_path / "shipper4.log").start()
    try:
        sh.wait_log("watching ")
        wait_for(lambda: _distinct(kafka, topic, "d") >= 5000, 30, "the new file on the reused inode read")
        _burst(p, "d", 5000, 5300)
        _copytruncate(p, logs / "d.log.4")
        _burst(p, "d", 5300, 5600)
        wait_for(lambda: _distinct(kafka, topic, "d") >= 5600, 60, "every line in Kafka")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    log = logs1 + logs2 + logs3 + sh.log()
    total = 5600
    msgs, seen, lost, wrong = count(kafka, topic, "d", total)
    assert not wrong, (len(wrong), wrong[:3])
    # every (file, offset) pair names one line
    by_pair = defaultdict(set)
    for m in msgs:
        by_pair[(m.headers["file"], int(m.headers["offset"]))].add(m.value)
    clash = {k: v for k, v in by_pair.items() if len(v) > 1}
    # the high-water mark rule, in partition order
    mark = {}
    kept = Counter()
    for m in msgs:  # read_topic: partition by partition, each in Kafka order
        f, off = m.headers["file"], int(m.headers["offset"])
        if off <= mark.get(f, -1):
            continue
        mark[f] = off
        kept[int(MARK.match(m.value).group(2))] += 1
    report(f"copytruncate, rename, inode reuse, {kills} SIGKILLs", total, len(msgs), len(seen), lost,
           identities=len(mark), kept_after_dedupe=sum(kept.values()), pairs_with_two_lines=len(clash))
    assert lost == 0 and not clash, (lost, list(clash.items())[:2])
    assert set(kept) == set(range(total)) and max(kept.values()) == 1, \
        (total - len(kept), [n for n, c in kept.items() if c > 1][:10])
    assert kills == 3 and "Traceback" not in log and log.count("copy: ") >= 2 and len(rows) >= 2
    assert len([i for i in mark if ":g" in i]) >= 2  # generations after the truncations and the reused inode
