"""The prospector (shipper/files/prospector.py) and its copy rules
(shipper/files/copy_rules.py), without a broker: copies, files renamed while
judged, and judging against thousands of followed files."""


import os

import pytest

from shipper.files.tailer import Read
from support.tailers import tailer_on


def test_a_copy_with_nothing_left_to_read_stores_its_own_first_bytes(tmp_path):
    """A copy read on from its original's end may have nothing left to read: its
    stored position must still hold its own first bytes, or a later file on the
    same inode (logrotate copies to the same name again) would resume from it."""
    import zlib

    from offsets import CopiedFrom

    data = b"".join(b"line %04d of the first generation\n" % n for n in range(100))
    t = tailer_on(tmp_path, data, "t.log.1")
    try:
        t.become_copy(CopiedFrom(1, 2, 0, 7, "/x/t.log"), "x", None, len(data))
        assert t.read(1.0) is Read.END
        p = t.position(1.0)
        assert (p.fp_len, p.fp_crc, p.offset) == (1024, zlib.crc32(data[:1024]), len(data))
        assert t.identity == "1:2:00000007" and p.src.path == "/x/t.log"
    finally:
        t.close()



@pytest.mark.parametrize("new_name, wanted", [("fast.log.1", False), ("other.log", True)])
def test_a_file_renamed_while_judged_keeps_the_name_its_lines_were_written_under(tmp_path, new_name, wanted):
    """A new file is judged before it is read; renamed out of the globs meanwhile,
    its lines still carry the name they were written under (as a file renamed
    away after it was read from); renamed to a name an input wants, they carry that."""
    from shipper.config import Input
    from shipper.files.prospector import Prospector
    from shipper.files.tailer import ACTIVE, DRAINING
    from shipper.files.watcher import Created, Moved
    from shipper.stats import counters

    p = tmp_path / "fast.log"
    p.write_bytes(b"a line of the game\n")
    inp = Input(paths=[str(tmp_path / "*.log")], topic="t", app_id=1, log_name="x")
    pr = Prospector(None, [], None, "host", counters(), new_store=False)
    pr.configure([inp], [inp], 1.0, 300.0)
    st = os.stat(p)
    pr.apply(Created(str(p), inp, st))
    t = pr.tailers[(st.st_dev, st.st_ino)]
    try:
        assert t.judging and t.state == ACTIVE
        os.rename(p, tmp_path / new_name)
        pr.apply(Moved(str(p), str(tmp_path / new_name), inp if wanted else None, os.stat(tmp_path / new_name)))
        assert t.path == str(tmp_path / new_name if wanted else p)
        assert t.state == (ACTIVE if wanted else DRAINING)
    finally:
        t.close()



def test_a_new_file_is_judged_against_thousands_of_followed_files_by_their_first_bytes(tmp_path):
    """The judgement of a new file finds the followed file it is a copy of (or may
    become one of) among many, through the index of their first bytes."""
    from shipper.files.copies import COPY_WAIT_S, Copies

    followed = []
    try:
        for i in range(300):
            data = b"".join(b"file %03d line %04d of its first generation\n" % (i, n) for n in range(10))
            x = tailer_on(tmp_path, data, f"f{i:03d}.log")
            x.head = data[:1024]
            followed.append(x)
        target = followed[137]
        copies = Copies(None)

        def verdicts(name: str, data: bytes, *nows: float):
            t = tailer_on(tmp_path, data, name)
            t.judging = True
            try:
                return [(copies.judge(t, followed + [t], now)[0], t.waits_on) for now in nows]
            finally:
                t.close()

        assert verdicts("copy.log", target.head + b"more\n", 1.0) == [("wait", (target.dev, target.ino))]
        # the beginning of a followed file: a copy being written, perhaps, until it stops growing
        assert verdicts("part.log", target.head[:100], 2.0, 2.0 + COPY_WAIT_S / 2, 2.0 + COPY_WAIT_S + 0.1) == [
            ("wait", None), ("wait", None), ("new", None)]
        assert verdicts("own.log", b"a file of its own\n" * 30, 3.0) == [("new", None)]
        assert verdicts("short.log", b"another\n", 4.0) == [("new", None)]
    finally:
        for x in followed:
            x.close()
