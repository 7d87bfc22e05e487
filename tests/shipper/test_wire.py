"""What the shipper puts on the wire, read with kcat (an independent client):
the key form by default (no headers, the six fields in the key), and with
``kafka.wire_format: headers`` exactly the six headers of before, keyed by the
file identity (docs/wire-format.md)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mulog import wire
from support.shipper import ShipperProc, all_delivered, line, lines_of, status, wait_for, write_conf

pytestmark = pytest.mark.kafka

FIELDS = ("host", "path", "file", "offset", "app_id", "log_name")


def kcat_messages(bootstrap: str, topic: str) -> list[tuple[bytes, bytes, bytes]]:
    """(key, headers as kcat prints them, value) of every message, in partition order."""
    assert shutil.which("kcat"), "kcat is not installed (scripts/ensure-tools installs it)"
    r = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-e", "-q", "-o", "beginning",
                        "-f", "%k\x02%h\x02%s\x03"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [tuple(m.split(b"\x02")) for m in r.stdout.split(b"\x03") if m]


@pytest.mark.parametrize("form", ["key", "headers"])
def test_each_wire_form_as_kcat_reads_it(kafka, topic_factory, tmp_path, form):
    topic = topic_factory(partitions=3)
    logs = tmp_path / "logs"
    logs.mkdir()
    f = logs / "log_item.log"
    f.write_bytes(b"".join(line("w", n) + b"\n" for n in range(300)))
    state = tmp_path / "state"
    kafka_conf = {"bootstrap_servers": kafka} if form == "key" else {"bootstrap_servers": kafka,
                                                                      "wire_format": "headers"}
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=state, kafka=kafka_conf, host="game-07",
                      inputs=[{"paths": [str(f)], "topic": topic, "app_id": 24, "log_name": "log_item"}])
    sh = ShipperProc(conf, tmp_path / "shipper.log").start()
    try:
        wait_for(lambda: all_delivered(state, [f]), 30, "the file delivered")
        ident = status(state)[0]["identity"]
    finally:
        assert sh.stop() == 0
    msgs = kcat_messages(kafka, topic)
    want = lines_of(f)
    assert [v for _k, _h, v in msgs] == [ln for _off, ln in want]  # the value is the raw line, in order
    fields = [{"host": "game-07", "path": str(f), "file": ident, "offset": str(off), "app_id": "24",
               "log_name": "log_item"} for off, _ln in want]
    if form == "key":
        assert all(h == b"" for _k, h, _v in msgs)  # no header at all
        assert [wire.fields(k) for k, _h, _v in msgs] == fields
        assert msgs[0][0] == b"2\x1fgame-07\x1f%s\x1f24\x1flog_item\x1f%s\x1f0" % (ident.encode(), str(f).encode())
    else:
        assert all(k == ident.encode() for k, _h, _v in msgs)
        printed = [b",".join(b"%s=%s" % (n.encode(), x[n].encode()) for n in FIELDS) for x in fields]
        assert [h for _k, h, _v in msgs] == printed  # exactly the six headers, in this order
