"""mtga hosts of one consumer group, each an ``mtga start`` process with its own
configuration, state and output folders (tests/system/test_scale_out.py,
tests/system/test_broker_failover.py)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from support.mtga import MTGA, Mtga, write_conf, write_settings

APPS = (24, 25, 26)


# a killed host's partitions move after the session timeout: keep it short in tests
FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}


class Host:
    """One mtga host: its own configuration, state and output folders."""

    def __init__(self, root: Path, bootstrap: str, topic: str, group: str, **over):
        self.name = root.name
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        write_settings(root / "settings", APPS)
        over.setdefault("checkpoint", {"interval_s": 2})
        over.setdefault("workers", 1)
        over.setdefault("kafka", {"consumer": FAST_GROUP})
        self.bootstrap = bootstrap
        self.conf = write_conf(root, bootstrap, topic, group, **over)
        self.m: Mtga | None = None

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def start(self) -> "Host":
        # the flag wins over a KAFKA_BOOTSTRAP_SERVERS the suite may run with
        self.m = Mtga(self.conf, "--bootstrap-servers", self.bootstrap).start()
        return self

    def term(self) -> int:
        return self.m.term()

    def kill(self) -> None:
        self.m.kill()

    def stop_if_alive(self) -> None:
        if self.m is not None and self.m.alive():
            self.m.kill()

    def log(self) -> str:
        p = self.root / "mtga.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def cli_json(self, *args: str):
        r = subprocess.run([MTGA, *args, "-c", str(self.conf), "--json"], capture_output=True, text=True, timeout=60)
        return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else None), r.stderr

    def partitions(self) -> set[int] | None:
        """The partitions this host works on, from ``mtga status --json`` (None when not up)."""
        rc, st, _ = self.cli_json("status")
        if rc != 0 or not st or not st.get("running"):
            return None
        return {int(re.fullmatch(r".*\[(\d+)\]", p).group(1)) for p in st["partitions"]}

    def assigned_from(self, topic: str) -> list[tuple[int, str, int]]:
        """(partition, origin, offset) of every 'assigned' line of the log, in order."""
        rx = re.compile(rf"assigned {re.escape(topic)}\[(\d+)\] from (local|group|reset) offset (\d+)")
        return [(int(p), o, int(n)) for p, o, n in rx.findall(self.log())]
