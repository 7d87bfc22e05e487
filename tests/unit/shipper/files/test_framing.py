"""Line framing (shipper/files/framing.py): whole lines whatever the chunking, long
lines cut, empty lines skipped but counted, payload bytes untouched."""


import os
import random

from shipper.files.framing import Framer, utf8_text


def frame_all(framer: Framer, chunks):
    """Feed chunks; return [(offset, line)], cuts and the position to store."""
    out, cuts, end = [], [], framer.pos
    for c in chunks:
        fr = framer.feed(c)
        if fr is None:
            continue
        if fr.offsets is None:
            off = fr.start
            for line in fr.lines:
                out.append((off, line))
                off += len(line) + 1
        else:
            out.extend(zip(fr.offsets, fr.lines))
        cuts += fr.cuts
        end = fr.end
    return out, cuts, end



def expected_lines(data: bytes, start: int = 0):
    out, off = [], start
    for line in data.split(b"\n")[:-1]:
        if line:
            out.append((off, line))
        off += len(line) + 1
    return out



def test_lines_come_out_whole_whatever_the_chunking():
    rnd = random.Random(7)
    data = b"".join(b"line-%d-" % i + b"x" * rnd.randrange(0, 300) + b"\n" for i in range(2000))
    data += b"incomplete tail"
    for trial in range(20):
        chunks, i = [], 0
        while i < len(data):
            n = rnd.choice((1, 2, 7, 100, 4096, 65536))
            chunks.append(data[i:i + n])
            i += n
        got, cuts, end = frame_all(Framer(0, 1 << 20), chunks)
        assert got == expected_lines(data)
        assert cuts == []
        assert end == len(data) - len(b"incomplete tail")



def test_a_line_without_its_newline_is_not_handed_out():
    f = Framer(100, 1024)
    assert f.feed(b"half a li") is None
    assert f.feed(b"ne") is None
    assert f.pending_bytes == 11
    fr = f.feed(b"\nnext")
    assert fr.lines == [b"half a line"] and fr.start == 100 and fr.end == 112
    assert f.pos == 112 and f.pending_bytes == 4



def test_long_lines_are_cut_and_the_rest_skipped():
    mx = 16
    data = (b"short\n" + b"A" * 40 + b"\n" + b"ok\n" + b"B" * 16 + b"\n" + b"C" * 17 + b"\n" + b"end\n")
    for size in (1, 3, 5, 16, 17, 1000):
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        got, cuts, end = frame_all(Framer(0, mx), chunks)
        assert got == [(0, b"short"), (6, b"A" * 16), (47, b"ok"), (50, b"B" * 16), (67, b"C" * 16),
                       (85, b"end")], size
        assert cuts == [(6, 40), (67, 17)], size
        assert end == len(data)



def test_a_long_line_still_being_written_keeps_bounded_memory():
    f = Framer(0, 1000)
    for _ in range(100):
        assert f.feed(b"x" * 10_000) is None
    assert len(f.partial) == 1000 and f.pending_bytes == 1_000_000
    fr = f.feed(b"yy\nnext\n")
    assert fr.lines == [b"x" * 1000, b"next"]
    assert fr.offsets == [0, 1_000_003] and fr.cuts == [(0, 1_000_002)]
    assert fr.end == 1_000_008



def test_empty_lines_are_skipped_but_counted_in_offsets():
    fr = Framer(0, 100).feed(b"a\n\n\nbb\n\n")
    assert fr.lines == [b"a", b"bb"] and fr.offsets == [0, 4] and fr.empty == 3 and fr.end == 8



def test_empty_crlf_lines_are_skipped_too():
    fr = Framer(0, 100).feed(b'{"a":1}\r\n\r\n{"b":2}\r\n')
    assert fr.lines == [b'{"a":1}\r', b'{"b":2}\r'] and fr.offsets == [0, 11] and fr.empty == 1 and fr.end == 20
    # the "\r" of an empty CRLF line arriving in two chunks
    f = Framer(0, 100)
    assert f.feed(b"x\n\r") is not None
    fr = f.feed(b"\ny\n")
    assert fr.lines == [b"y"] and fr.offsets == [4] and fr.empty == 1 and fr.end == 6



def test_header_text_of_a_file_name_that_is_not_utf8():
    assert utf8_text(os.fsdecode(b"/logs/bad_\xff\xfe.log")) == "/logs/bad_\\xff\\xfe.log"
    assert utf8_text("/logs/caf\u00e9.log") == "/logs/caf\u00e9.log"
    assert utf8_text(None) is None



def test_payload_bytes_are_untouched():
    data = b'{"k": "caf\xc3\xa9"}\r\n\x00\xff binary\n'
    fr = Framer(0, 100).feed(data)
    assert fr.lines == [b'{"k": "caf\xc3\xa9"}\r', b"\x00\xff binary"]
