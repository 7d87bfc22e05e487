"""One tailer (shipper/files/tailer.py) and its acknowledgements
(shipper/files/acks.py): refused, purged and out-of-order reports, truncation,
and the descriptor kept while chunks are pending."""


import os

import pytest

from shipper.files.tailer import Read
from support.tailers import tailer_on


def test_a_refused_chunk_holds_the_position_and_is_read_again(tmp_path):
    """Chunks A, B, C are sent; B is refused, A and C acknowledged (in whatever
    order): the position stops after A, and once every report is in (and the
    back-off has passed) the tailer reads again from there."""
    t = tailer_on(tmp_path, b"a\nb\nc\n")
    try:
        chunks = [t.acks.chunk(end, 1, 2, None) for end in (2, 4, 6)]
        t.read_pos = 6
        t.acks.acked(chunks[2])
        assert t.delivered == 0  # C alone moves nothing
        assert t.acks.refuse(chunks[1], "Local: Unknown partition") is True
        assert t.acks.refuse(chunks[1], "again") is False  # one refusal per episode is said
        assert t.recover(99.0) is False  # A has no report yet: nothing moves
        t.acks.acked(chunks[0])
        assert t.delivered == 2 and t.acks.refused is not None and not t.readable
        assert t.recover(100.0) is False  # back-off starts
        assert t.recover(100.5) is False
        assert t.recover(101.5) is True
        assert (t.delivered, t.read_pos, t.framer.pos) == (2, 2, 2) and t.readable
        assert not t.acks.pending and t.acks.idle
        fr = t.read(102.0)
        assert fr.lines == [b"b", b"c"] and fr.start == 2
    finally:
        t.close()



def test_acknowledgements_move_the_position_in_order_only(tmp_path):
    t = tailer_on(tmp_path, b"a\nb\n")
    try:
        a, b = t.acks.chunk(2, 1, 2, None), t.acks.chunk(4, 1, 2, None)
        t.acks.acked(b)
        assert t.delivered == 0
        t.acks.acked(a)
        assert t.delivered == 4 and not t.acks.pending
    finally:
        t.close()



def test_reports_of_the_old_content_do_not_move_a_truncated_file(tmp_path):
    """A truncation starts a new generation (its identity says so); the chunks
    still pending of the old one go with it (to its copy, if one is found) and
    never move the new generation's position."""
    t = tailer_on(tmp_path, b"aaaa\nbbbb\n")
    try:
        fr = t.read(1.0)
        old = t.acks.chunk(fr.end, 2, 10, None)
        first = t.identity
        with open(t.path, "r+b") as f:
            f.truncate(0)
        assert t.at_eof() == "truncated" and t.read_pos == 10  # the prospector starts the new generation
        ended = t.truncated(0)
        assert (t.read_pos, t.gen, ended.gen, ended.end, ended.head) == (0, 1, 0, 10, b"aaaa\nbbbb\n")
        assert ended.acks is not t.acks
        with open(t.path, "ab") as f:
            f.write(b"aaaa\n")  # the same first line again: the generation tells the two apart
        assert t.read(2.0).lines == [b"aaaa"] and t.identity == first + ":g1"
        ended.acks.acked(old)
        assert t.delivered == 0 and not t.acks.pending and ended.acks.delivered == 10
        assert t.counters.truncations.value == 1
    finally:
        t.close()



def test_a_purged_chunk_holds_the_position_without_a_resend(tmp_path):
    t = tailer_on(tmp_path, b"a\nb\n")
    try:
        a, b = t.acks.chunk(2, 1, 2, None), t.acks.chunk(4, 1, 2, None)
        t.acks.acked(a)
        t.acks.dropped(b)  # purged from the producer's queue at the stop
        assert t.delivered == 2 and t.acks.refused is None and t.acks.settled and not t.acks.idle
        assert t.recover(1e9) is False  # read again at the next start, not now
    finally:
        t.close()



def test_a_descriptor_is_kept_while_chunks_are_pending(tmp_path):
    """A DRAINING file (renamed away, then deleted) is not closed at rotate_wait_s
    while Kafka has not acknowledged what was sent; when Kafka refuses it, the
    lines are read again from the descriptor, the file's name long gone."""
    from shipper.files.prospector import Prospector
    from shipper.files.tailer import CLOSED, DRAINING

    t = tailer_on(tmp_path, b"one\ntwo\n", name="d.log")
    pr = Prospector(None, [], None, "host", t.counters, new_store=False)
    pr.rotate_wait_s = 1.0
    pr.tailers[(t.dev, t.ino)] = t
    try:
        fr = t.read(10.0)
        c = t.acks.chunk(fr.end, len(fr.lines), 10, None)
        os.rename(t.path, tmp_path / "d.log.1")
        os.unlink(tmp_path / "d.log.1")
        t.to(DRAINING, "rotated")
        assert t.read(20.0) is Read.END
        assert pr.at_eof(t, 20.0) is False
        assert t.state == DRAINING and t.fd >= 0, "closed while a chunk was pending"
        with pytest.raises(RuntimeError, match="pending"):
            t.to(CLOSED, "closed too early")
        t.acks.refuse(c, "Local: Unknown partition")
        assert not t.recover(20.0) and t.recover(22.0)
        fr = t.read(22.0)
        assert fr.lines == [b"one", b"two"] and fr.start == 0
        c = t.acks.chunk(fr.end, 2, 10, None)
        t.acks.acked(c)
        assert t.read(30.0) is Read.END and pr.at_eof(t, 30.0) is False
        assert t.state == CLOSED and t.fd == -1 and t.delivered == 8 and t.finished
    finally:
        t.close()
