"""State and configuration faults for `shipper tail`: its position store removed,
corrupted or on a full disk, a broken configuration on reload, an open or
foreign state folder, shell syntax in names, lines and configuration. Real
broker, real processes; the figures are printed for the record."""


import os
import shutil
import stat
from collections import Counter
from pathlib import Path

import pytest

from support.cli import run_cli
from support.shipper import (MARK, ShipperProc, all_delivered, line, read_topic, report, topic_total, wait_for,
                             write_conf)

pytestmark = pytest.mark.kafka



def test_state_removed_while_stopped_rereads_from_the_beginning_and_says_so(kafka, topic_factory, tmp_path):
    """Decision: without its position store the shipper reads existing files from
    their beginning (start_at: beginning, as Filebeat and Vector do), with a
    warning at start that says so. The lines sent again carry the same host, file
    and offset headers, so mtga gives them the same #uuid."""
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    f = logs / "log_r.log"
    f.write_bytes(b"".join(line("r", n) + b"\n" for n in range(500)))
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_r"}])
    sh = ShipperProc(conf, tmp_path / "shipper1.log").start()
    try:
        wait_for(lambda: all_delivered(state, [f]), 30, "the file delivered")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    size1 = f.stat().st_size
    # a restart with the store in place repeats nothing and warns of nothing
    sh = ShipperProc(conf, tmp_path / "shipper2.log").start()
    try:
        sh.wait_log("resuming")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    assert "new position store" not in sh.log()
    shutil.rmtree(state)
    with open(f, "ab") as fh:
        fh.write(b"".join(line("r", n) + b"\n" for n in range(500, 600)))
    sh = ShipperProc(conf, tmp_path / "shipper3.log").start()
    try:
        wait_for(lambda: all_delivered(state, [f]), 30, "the file delivered again")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    warn = [ln for ln in sh.log().splitlines() if "WARNING" in ln and "new position store" in ln]
    assert len(warn) == 1, sh.log()
    assert f"new position store at {state / 'db'} (first start, or the state folder was removed)" in warn[0]
    assert f"1 existing file(s) with content ({f})" in warn[0]
    assert f"1 read from their beginning ({f.stat().st_size} bytes;" in warn[0] and "same #uuid" in warn[0]
    assert "new position store" in (tmp_path / "shipper1.log").read_text()  # the first start said it too
    assert stat.S_IMODE(state.stat().st_mode) == 0o700

    msgs = read_topic(kafka, topic)
    pos = Counter((m.headers["host"], m.headers["file"], int(m.headers["offset"])) for m in msgs)
    marks = Counter(MARK.match(m.value).groups() for m in msgs)
    assert set(marks) == {(b"r", str(n).encode()) for n in range(600)}, "lines lost"
    assert len(pos) == 600, "a line sent again under other headers (it would get another #uuid)"
    again = sorted(off for (_, _, off), k in pos.items() if k == 2)
    assert len(again) == 500 and max(again) < size1 and max(pos.values()) == 2  # exactly the old lines, once more
    report("state folder removed while stopped", 600, len(msgs), len(pos), 600 - len(marks),
           re_read_with_the_same_uuid=len(again))



def test_state_corrupted_while_stopped_refuses_to_start_in_one_line(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    f = logs / "log_c.log"
    f.write_bytes(b"".join(line("c", n) + b"\n" for n in range(100)))
    state = tmp_path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_c"}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        wait_for(lambda: all_delivered(state, [f]), 30, "the file delivered")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    for damage in ("CURRENT", "MANIFEST"):
        broken = tmp_path / f"state_{damage}"
        shutil.copytree(state, broken)
        db = broken / "db"
        if damage == "CURRENT":
            (db / "CURRENT").write_text("MANIFEST-999999\n")
        else:
            (db / (db / "CURRENT").read_text().strip()).write_bytes(b"\x00garbage" * 10)
        before = {p.name: p.read_bytes() for p in db.iterdir() if p.is_file() and not p.name.startswith("LOG")}
        r = run_cli("shipper", "tail", "-c", str(conf), "--state-dir", str(broken), timeout=60)
        assert r.returncode == 1, r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith(f"shipper: cannot open the shipper state at {db}: "), r.stderr
        assert "Move the folder aside to start with empty state." in r.stderr
        after = {p.name: p.read_bytes() for p in db.iterdir() if p.is_file() and not p.name.startswith("LOG")}
        assert after == before, f"{damage}: the damaged store was changed"
        print(f"\nstate {damage} damaged: exit {r.returncode}: {r.stderr.strip()}")
    assert topic_total(kafka, topic) == 100  # nothing was sent by the refused starts



def test_config_syntax_error_on_reload_keeps_the_last_good_one(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    f = logs / "log_y.log"
    f.write_bytes(line("y", 0) + b"\n")
    inputs = [{"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_y"}]
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=inputs)
    good = conf.read_text()
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        wait_for(lambda: topic_total(kafka, topic) == 1, 30, "the first line")
        conf.write_text("inputs:\n  - paths: [unclosed\n    topic: x\n")
        sh.wait_log("configuration not reloaded")
        with open(f, "ab") as fh:
            fh.write(line("y", 1) + b"\n")
        wait_for(lambda: topic_total(kafka, topic) == 2, 30, "a line shipped under the last good configuration")
        conf.write_text(good.replace('"log_y"', '"log_y2"'))
        sh.wait_log("configuration reloaded")
        with open(f, "ab") as fh:
            fh.write(line("y", 2) + b"\n")
        wait_for(lambda: topic_total(kafka, topic) == 3, 30, "a line under the repaired configuration")
        assert sh.alive()
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    err = [ln for ln in sh.log().splitlines() if "configuration not reloaded" in ln]
    assert len(err) == 1 and "ERROR" in err[0], err
    assert f"keeping the running one: {conf}: YAML syntax error at line " in err[0], err[0]
    names = [m.headers["log_name"] for m in read_topic(kafka, topic)]
    assert names == ["log_y", "log_y", "log_y2"]



def test_open_state_folder_is_made_private_and_said(kafka, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, inputs=[
        {"paths": [str(logs / "*.log")], "topic": "t_private", "app_id": 24, "log_name": "x"}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        sh.wait_log("watching ")  # inotify is on
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "db").stat().st_mode) == 0o700
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    notes = [ln for ln in sh.log().splitlines() if "was open to other users" in ln]
    assert notes == [notes[0]] and f"WARNING shipper: {state}: mode 0755 was open to other users; set to 0700" \
        in notes[0], sh.log()



def test_state_folder_of_another_user_is_refused(kafka, tmp_path):
    """Needs root (as on the CI machines, like the disk-full tests) to give the folder away."""
    assert os.getuid() == 0, "this test gives a folder to another user: run the suite as root"
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 4321, 4321)
    r = run_cli("shipper", "tail", "--path", str(tmp_path / "*.log"), "--topic", "t", "--app-id", "1",
                "--log-name", "x", "--state-dir", str(state), "--bootstrap-servers", kafka)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert f"{state}: owned by uid 4321, not by this user (0); refusing to use it" in r.stderr
    assert not (state / "db").exists()



def test_shell_syntax_in_file_names_lines_and_config_is_only_data(kafka, topic_factory, tmp_path):
    """File names, lines and configuration values with shell syntax travel as
    bytes: nothing is run (tests/test_no_shell.py checks the code for shell use)."""
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    mark = f"pwned_{os.getpid()}"
    name = f"a$(touch {mark}_name);`touch {mark}_tick`.log"
    f = logs / name
    payload = b'{"cmd":"$(touch %s_line); rm -rf /nonexistent | sh"}' % mark.encode()
    f.write_bytes(payload + b"\n")
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=tmp_path / "state", inputs=[
        {"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": f"$(touch {mark}_conf)"}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        wait_for(lambda: all_delivered(tmp_path / "state", [f]), 30, "the line delivered")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    (m,) = read_topic(kafka, topic)
    assert m.value == payload and m.headers["path"] == str(f) and m.headers["log_name"] == f"$(touch {mark}_conf)"
    for folder in (tmp_path, logs, Path.cwd(), Path("/")):
        assert not list(folder.glob(f"{mark}*")), f"a command ran in {folder}"



def test_state_disk_full_keeps_shipping_and_saves_again_when_space_returns(kafka, topic_factory, tmp_path,
                                                                           small_disk):
    """The position store on a nearly full disk: when a save fails the shipper goes
    on shipping (positions are only a bookmark), says so, and saves them again once
    there is space. (The store is created on an almost full disk, so RocksDB cannot
    set space aside for its log beforehand.)"""
    topic = topic_factory(partitions=1)
    disk = small_disk("statefs", "4m")
    filler = disk.path / "filler"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * (4 * 1024 * 1024 - 192 * 1024))  # leave about 192 KiB
    logs = tmp_path / "logs"
    logs.mkdir()
    state = disk.path / "state"
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, checkpoint_interval_s=0.05,
                      inputs=[{"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "log_d"}])
    files = [logs / f"log_d{i}.log" for i in range(20)]
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        n = 0
        # many files and frequent saves fill what is left, while lines keep coming
        while "positions not saved" not in sh.log():
            assert n < 200_000, "the store never ran out of space"
            for f in files:
                with open(f, "ab") as fh:
                    fh.write(b"".join(line("d", n + k) + b"\n" for k in range(50)))
                n += 50
            wait_for(lambda: topic_total(kafka, topic) >= n or "positions not saved" in sh.log(), 30,
                     "the lines in Kafka")
        wait_for(lambda: topic_total(kafka, topic) >= n, 30, "every line in Kafka while the store is full")
        assert sh.alive()
        filler.unlink()
        sh.wait_log("positions saved again", timeout=30)
        wait_for(lambda: all_delivered(state, files), 30, "the positions saved after space returned")
        assert sh.stop() == 0
    finally:
        sh.kill_if_alive()
    msgs = read_topic(kafka, topic)
    marks = Counter(MARK.match(m.value).groups() for m in msgs)
    assert set(marks) == {(b"d", str(k).encode()) for k in range(n)}
    assert "Traceback" not in sh.log()
    report("position store on a full disk", n, len(msgs), len(marks), n - len(marks))
