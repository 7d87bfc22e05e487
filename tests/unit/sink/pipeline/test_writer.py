"""LogBus files: names, folders, size splits, one write per batch, no half
lines after a failed write (a real EFBIG from RLIMIT_FSIZE in a child process)."""

import os
import subprocess
import sys
import time

import pytest

from sink.pipeline.writer import LogBusWriter, SinkError

T = time.mktime((2026, 11, 21, 13, 5, 0, 0, 0, -1))


def test_daily_and_hourly_names(tmp_path):
    w = LogBusWriter(tmp_path, clock=lambda: T)
    w.write("24", [b'{"a":1}', b'{"a":2}'])
    w.write("25", [b'{"b":1}'])
    w.close()
    assert (tmp_path / "24" / "log.2026-11-21").read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert (tmp_path / "25" / "log.2026-11-21").read_bytes() == b'{"b":1}\n'
    h = LogBusWriter(tmp_path / "h", prefix="game", rotation="hourly", clock=lambda: T)
    h.write("24", [b"{}"])
    h.close()
    assert (tmp_path / "h" / "24" / "game.log.2026-11-21-13").exists()


def test_period_change_moves_to_the_next_file(tmp_path):
    now = [T]
    w = LogBusWriter(tmp_path, rotation="hourly", clock=lambda: now[0])
    w.write("24", [b"{}"])
    now[0] += 3600
    w.write("24", [b"{}"])
    w.close()
    assert sorted(p.name for p in (tmp_path / "24").iterdir()) == ["log.2026-11-21-13", "log.2026-11-21-14"]


def test_size_split(tmp_path):
    w = LogBusWriter(tmp_path, max_bytes=100, clock=lambda: T)
    line = b"x" * 39  # 40 bytes with the newline
    for _ in range(5):
        w.write("24", [line])
    w.close()
    names = sorted(p.name for p in (tmp_path / "24").iterdir())
    assert names == ["log.2026-11-21_0", "log.2026-11-21_1", "log.2026-11-21_2"]
    assert [(tmp_path / "24" / n).stat().st_size for n in names] == [80, 80, 40]
    # a restart continues the highest index
    w2 = LogBusWriter(tmp_path, max_bytes=100, clock=lambda: T)
    w2.write("24", [line])
    w2.write("24", [line])
    w2.close()
    assert (tmp_path / "24" / "log.2026-11-21_2").stat().st_size == 80
    assert (tmp_path / "24" / "log.2026-11-21_3").stat().st_size == 40
    w3 = LogBusWriter(tmp_path, max_bytes=100, clock=lambda: T)
    w3.write("24", [line])
    w3.close()
    assert (tmp_path / "24" / "log.2026-11-21_3").stat().st_size == 80


def test_one_write_call_per_batch(tmp_path, monkeypatch):
    calls = []
    real = os.write

    def counting(fd, data):
        calls.append(len(data))
        return real(fd, data)

    w = LogBusWriter(tmp_path, clock=lambda: T)
    monkeypatch.setattr(os, "write", counting)
    w.write("24", [b'{"n":%d}' % i for i in range(5000)])
    monkeypatch.undo()
    w.close()
    assert len(calls) == 1
    assert (tmp_path / "24" / "log.2026-11-21").read_bytes().count(b"\n") == 5000


CHILD = r"""
import resource, signal, sys, time
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
from sink.pipeline.writer import LogBusWriter, SinkError
w = LogBusWriter(sys.argv[1], clock=lambda: 1763730300.0)
w.write("24", [b"a" * 99] * 6)  # 600 bytes: fits
try:
    w.write("24", [b"b" * 99] * 6)  # would reach 1200: EFBIG part-way
    print("no error")
except SinkError as e:
    print(e.reason)
w.write("24", [b"c" * 99] * 3)  # 300 more: fits after the cut
w.close()
"""


def test_failed_write_leaves_no_half_line(tmp_path):
    r = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sink_write: cannot write "), r.stdout
    assert "File too large (EFBIG)" in r.stdout
    (f,) = list((tmp_path / "24").iterdir())
    data = f.read_bytes()
    assert data == (b"a" * 99 + b"\n") * 6 + (b"c" * 99 + b"\n") * 3


def test_unwritable_folder_is_a_sink_error(tmp_path):
    (tmp_path / "24").write_text("a file where the folder should be")
    w = LogBusWriter(tmp_path)
    with pytest.raises(SinkError) as ei:
        w.write("24", [b"{}"])
    assert ei.value.reason.startswith("sink_write: cannot open")


def test_half_line_left_by_a_killed_process_is_cut_on_reopen(tmp_path, caplog):
    folder = tmp_path / "24"
    folder.mkdir()
    f = folder / "log.2026-11-21"
    f.write_bytes(b'{"a":1}\n{"a":2}\n{"a":3, "cut sho')
    w = LogBusWriter(tmp_path, clock=lambda: T)
    w.write("24", [b'{"a":4}'])
    w.close()
    assert f.read_bytes() == b'{"a":1}\n{"a":2}\n{"a":4}\n'
    assert "cut short by an interrupted write" in caplog.text
    g = tmp_path / "25" / "log.2026-11-21"
    g.parent.mkdir()
    g.write_bytes(b"x" * 100_000)  # no newline at all
    w = LogBusWriter(tmp_path, clock=lambda: T)
    w.write("25", [b"{}"])
    w.close()
    assert g.read_bytes() == b"{}\n"


def test_a_failed_fsync_blocks_every_later_checkpoint(tmp_path, monkeypatch):
    """Once fsync fails the written lines may be gone even if a later fsync works:
    flush keeps refusing, so no offset is stored past them."""
    w = LogBusWriter(tmp_path, clock=lambda: T)
    w.write("24", [b"{}"])
    real = os.fsync

    def eio(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(SinkError) as ei:
        w.flush()
    assert "fsync of" in ei.value.reason and "EIO" in ei.value.reason
    monkeypatch.setattr(os, "fsync", real)
    w.write("24", [b"{}"])
    with pytest.raises(SinkError):
        w.flush()  # fsync works again, but the failure stays
    w.close()
