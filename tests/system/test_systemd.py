"""systemd: the units under deploy/systemd pass ``systemd-analyze verify``, and both
programs speak the notify protocol (READY=1, WATCHDOG=1, STOPPING=1, in that
order) to a real datagram socket, run as real processes against the real broker."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mulog import sample
from mulog.runtime.sdnotify import Notifier
from support.cli import REPO
from support.mtga import Mtga, produce
from support.mtga import write_conf as mtga_conf
from support.mtga import write_settings
from support.shipper import ShipperProc, line, write_conf

pytestmark = pytest.mark.kafka

UNITS = REPO / "deploy" / "systemd"
BIN = Path(sys.executable).parent
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


@pytest.mark.parametrize("unit", ["mulog-shipper.service", "mulog-mtga.service"])
def test_unit_passes_systemd_analyze_verify(unit, tmp_path):
    """The units name /usr/bin/{shipper,mtga}, where the package puts them; verify needs
    ExecStart's binary to exist, so the copy checked here names this virtualenv's commands
    instead (the lines that name it changed). tests/system/test_package.py verifies them as installed."""
    if not os.path.exists(ANALYZE):
        pytest.fail("systemd-analyze is missing: run scripts/ensure-tools (Debian package systemd)")
    text = (UNITS / unit).read_text()
    prog = unit.removeprefix("mulog-").removesuffix(".service")
    assert f"ExecStart=/usr/bin/{prog} " in text and "/usr/local/bin" not in text
    assert "Documentation=file:///usr/share/doc/mulog/README.md" in text
    for want in ("Type=notify", "NotifyAccess=main", "WatchdogSec=", "Restart=always", "User=mulog",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=", "PrivateTmp=yes",
                 "ExecReload=/bin/kill -HUP $MAINPID"):
        assert want in text, want
    reload = [ln for ln in text.splitlines() if ln.startswith("ExecReload=")]
    assert "check-config" in reload[0] and "kill -HUP" in reload[1], "the configuration is checked before SIGHUP"
    copy = tmp_path / unit
    copy.write_text(text.replace(f"/usr/bin/{prog} ", f"{BIN}/{prog} "))
    r = subprocess.run([ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    print(f"\n{unit}: systemd-analyze verify rc={r.returncode} {r.stdout.strip()} {r.stderr.strip()}")
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    bad = tmp_path / "broken.service"
    bad.write_text(text.replace(f"/usr/bin/{prog} ", f"/nonexistent/{prog} "))
    assert subprocess.run([ANALYZE, "verify", str(bad)], capture_output=True, timeout=60).returncode != 0, \
        "verify would not catch a missing command"


SO_TIMESTAMP = getattr(socket, "SO_TIMESTAMP", 29)  # Linux's number; Python names it on some builds only


class NotifySocket:
    """The datagram socket systemd would listen on (abstract, '@' in NOTIFY_SOCKET).
    Each message is stamped by the kernel as it arrives (SO_TIMESTAMP), so the
    times are the sender's, however late this busy test process reads them."""

    def __init__(self):
        self.name = f"@mulog-test-{uuid.uuid4().hex[:12]}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
        self.sock.bind("\0" + self.name[1:])
        self.got: list[tuple[float, str]] = []  # (arrival time, state), one per KEY=VALUE

    def env(self, watchdog_usec: int = 2_000_000) -> dict:
        return {"NOTIFY_SOCKET": self.name, "WATCHDOG_USEC": str(watchdog_usec)}

    def wait(self, state: str, timeout: float, after: int = 0) -> int:
        """Index in ``got`` of the first ``state`` at or after ``after``."""
        deadline = time.monotonic() + timeout
        while True:
            for i in range(after, len(self.got)):
                if self.got[i][1] == state:
                    return i
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {state} within {timeout:.0f}s; got {[s for _, s in self.got]}")
            self.sock.settimeout(min(left, 0.5))
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(16))
            except socket.timeout:
                continue
            (sec, usec), = [struct.unpack("qq", d) for lvl, typ, d in anc
                            if (lvl, typ) == (socket.SOL_SOCKET, SO_TIMESTAMP)]
            self.got += [(sec + usec / 1e6, s) for s in data.decode().split("\n") if s]

    def close(self):
        self.sock.close()


def check_sequence(ns: NotifySocket, proc_stop, name: str) -> None:
    r = ns.wait("READY=1", 90)
    w1 = ns.wait("WATCHDOG=1", 5, after=r)
    w2 = ns.wait("WATCHDOG=1", 5, after=w1 + 1)
    gap = ns.got[w2][0] - ns.got[w1][0]
    assert 0.5 <= gap <= 2.0, f"WATCHDOG=1 every {gap:.2f}s (WATCHDOG_USEC=2s: at about half)"
    assert "STOPPING=1" not in [s for _, s in ns.got]
    rc = proc_stop()
    s = ns.wait("STOPPING=1", 5, after=w2)
    assert rc == 0
    states = [st for _, st in ns.got]
    assert states.index("READY=1") < states.index("WATCHDOG=1") < states.index("STOPPING=1")
    assert states.count("READY=1") == 1
    print(f"\n{name}: READY=1 at #{r}, WATCHDOG=1 every {gap:.2f}s, STOPPING=1 at #{s} of {len(states)}: "
          f"{[x for x in states if not x.startswith('STATUS=')][:3]} ... {states[-1]}")


def test_shipper_notifies_ready_watchdog_stopping(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_bytes(b"".join(line("a", i) + b"\n" for i in range(100)))
    conf = write_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=tmp_path / "state",
                      inputs=[{"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "x"}])
    ns = NotifySocket()
    sh = ShipperProc(conf, tmp_path / "shipper.log", env=ns.env()).start()
    try:
        check_sequence(ns, lambda: sh.stop(signal.SIGTERM), "shipper")
    finally:
        sh.kill_if_alive()
        ns.close()


def test_mtga_notifies_ready_watchdog_stopping(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=2)
    write_settings(tmp_path / "settings", (24,))
    produce(kafka, topic, list(sample.envelopes(200, app_ids=(24,), seed=3)))
    conf = mtga_conf(tmp_path, kafka, topic, f"g-{topic}")
    ns = NotifySocket()
    m = Mtga(conf, env=ns.env()).start()
    try:
        check_sequence(ns, lambda: m.term(60), "mtga")
    finally:
        if m.alive():
            m.kill()
        ns.close()


def test_notifier_is_a_no_op_without_notify_socket():
    n = Notifier({})
    assert not n.enabled and n.interval is None
    n.ready()
    n.watchdog()
    n.stopping()
    assert not n.send("READY=1")
