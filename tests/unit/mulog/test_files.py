"""File helpers both programs use (mulog/files.py): where the last complete line ends."""


import os

from mulog.files import last_line_end


def test_last_line_end(tmp_path):
    p = tmp_path / "f.log"
    p.write_bytes(b"a\nbb\nccc")
    fd = os.open(p, os.O_RDONLY)
    try:
        assert last_line_end(fd, 8) == 5
        assert last_line_end(fd, 2) == 2
        assert last_line_end(fd, 1) == 0
    finally:
        os.close(fd)
    big = tmp_path / "big.log"
    big.write_bytes(b"x\n" + b"y" * 200_000)
    fd = os.open(big, os.O_RDONLY)
    try:
        assert last_line_end(fd, 200_002) == 2
    finally:
        os.close(fd)
