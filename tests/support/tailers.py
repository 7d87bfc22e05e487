"""A tailer on a file of the test's own, without the loop (the shipper's unit tests)."""

import os


def tailer_on(tmp_path, data: bytes, name: str = "t.log"):
    from shipper.config import Input
    from shipper.files.tailer import Tailer
    from shipper.stats import counters

    p = tmp_path / name
    p.write_bytes(data)
    fd = os.open(p, os.O_RDONLY)
    st = os.fstat(fd)
    inp = Input(paths=[str(p)], topic="t", app_id=1, log_name="x")
    return Tailer(st.st_dev, st.st_ino, str(p), fd, inp, "x", 0, (0, 0), "host", counters())
