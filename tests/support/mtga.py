"""Helpers for tests that run mtga as a real process against the real broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml
from confluent_kafka import Producer

from offsets import FailureQueue, PartitionOffsets, StateDB, StateMissing
from sink.ta.uuids import event_uuid
from support.cli import REPO

MTGA = str(Path(sys.executable).parent / "mtga")


def tree_env(env: dict | None = None) -> dict:
    """The environment of a child process that runs this tree's code (whatever checkout
    the virtualenv's editable install points at), with ``env`` on top."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO), e.get("PYTHONPATH")) if x)
    e.update(env or {})
    return e

METADATA = """// test settings
{
  "account_id": "role_id",
  "ip": "ip",
  "time": {"field": "mtime", "unit": "s", "time_zone": "+08:00"},
}
"""


def pid_gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie not yet reaped by its parent counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] == "Z"
    except FileNotFoundError:
        return True


def wait_for(cond, timeout: float, what: str, every: float = 0.05):
    """Poll ``cond`` until it returns something true (returned); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def write_settings(folder: Path, apps=(24, 25, 26)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for a in apps:
        (folder / f"metadata.{a}.json").write_text(METADATA)
    return folder


def write_conf(tmp: Path, bootstrap: str, topic: str, group: str, **over) -> Path:
    conf = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": group, "topics": [topic],
                  "auto_offset_reset": "earliest"},
        "state_dir": str(tmp / "state"),
        "settings_dir": str(tmp / "settings"),
        "output": {"dir": str(tmp / "out")},
        "checkpoint": {"interval_s": 10},
        "log": {"file": str(tmp / "mtga.log"), "level": "info"},
    }
    for k, v in over.items():
        if isinstance(v, dict):
            conf.setdefault(k, {}).update(v)
        else:
            conf[k] = v
    p = tmp / "mtga.yml"
    p.write_text(yaml.safe_dump(conf))
    return p


def produce(bootstrap: str, topic: str, payloads, headers=None) -> list[tuple[int, int]]:
    """Produce and wait; returns (partition, offset) of each payload in order."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "snappy",
                  "enable.idempotence": True, "queue.buffering.max.messages": 500_000})
    out: list = [None] * len(payloads)

    def dr(i):
        def cb(err, msg):
            assert err is None, err
            out[i] = (msg.partition(), msg.offset())
        return cb

    for i, pl in enumerate(payloads):
        while True:
            try:
                p.produce(topic, pl, headers=headers, on_delivery=dr(i))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(120) == 0
    return out


def uuid_of(topic: str, partition: int, offset: int) -> str:
    return event_uuid(topic, partition, offset)


class Mtga:
    """``mtga start -c CONF`` in the foreground, as a child process."""

    def __init__(self, conf: Path, *extra: str, env: dict | None = None):
        self.conf = conf
        self.extra = extra
        self.env = tree_env(env)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Mtga":
        self.proc = subprocess.Popen([MTGA, "start", "-c", str(self.conf), *self.extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env)
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def term(self, timeout: float = 60) -> int:
        """SIGTERM once mtga has set its signal handlers: until then (it is still
        opening its store, which may already have shown in its state or log) a
        SIGTERM ends it at once (-15). It sets them before it answers on its
        control socket."""
        wait_for(lambda: not self.alive() or self.answers(), timeout, "mtga to answer on its control socket")
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def answers(self) -> bool:
        """Whether mtga answers a ping on its control socket."""
        from sink import config
        from sink.ops.control import request

        try:
            return request(config.load(self.conf).socket_path, "ping", 5) == "pong"
        except Exception:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.proc.stdout.read().decode(errors="replace") if self.proc and self.proc.stdout else ""


def output_lines(out: Path, running: bool = False) -> list[bytes]:
    """Every line of the output files. ``running``: mtga may be writing, so a file's
    last line without its newline yet (a write seen half done) is left out; without
    it such a line is returned, and fails whoever parses it."""
    lines = []
    if not out.exists():
        return lines
    for f in sorted(out.rglob("log.*")):
        data = f.read_bytes()
        if running:
            data = data[:data.rfind(b"\n") + 1]
        lines.extend(data.splitlines())
    return lines


def count_lines(out: Path) -> int:
    return sum(f.read_bytes().count(b"\n") for f in out.rglob("log.*")) if out.exists() else 0


def uuid_counts(out: Path, running: bool = False) -> Counter:
    c: Counter = Counter()
    for line in output_lines(out, running):
        c[json.loads(line)["#uuid"]] += 1
    return c


def stored_offsets(state: Path) -> dict:
    """Offsets in the store ({} while the daemon has not created it yet)."""
    try:
        with StateDB(state / "db", "mtga", read_only=True) as db:
            return PartitionOffsets(db).all()
    except StateMissing:
        return {}


def failure_entries(state: Path) -> list:
    with StateDB(state / "db", "mtga", read_only=True) as db:
        return list(FailureQueue(db))


def failure_count(state: Path) -> int:
    try:
        with StateDB(state / "db", "mtga", read_only=True) as db:
            return FailureQueue(db).count()
    except Exception:
        return -1


def retry_killed_before_removal(bootstrap: str, topic: str, tmp: Path, conf: Path) -> list:
    """App 27 has no settings (only the 24 of ``tmp``/settings): of 300 envelopes
    of apps 24 and 27, the 150 of 27 wait in the failure queue. With its settings
    back, one retry round writes them and is SIGKILLed before it removes them
    (tests/support/scripts/retry_then_die.py). Returns where the 300 events are."""
    import os
    import signal
    import subprocess
    import sys

    from mulog import sample
    from support.cli import REPO, SCRIPTS

    where = produce(bootstrap, topic, list(sample.envelopes(300, app_ids=(24, 27))))
    m = Mtga(conf).start()
    try:
        wait_for(lambda: failure_count(tmp / "state") == 150, 60, "app 27's events in the failure queue")
    finally:
        assert m.term() == 0
    write_settings(tmp / "settings", (27,))
    r = subprocess.run([sys.executable, str(SCRIPTS / "retry_then_die.py"), str(conf)],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == -signal.SIGKILL, r.stdout + r.stderr
    assert "written, 150 entries not removed yet" in r.stdout
    assert failure_count(tmp / "state") == 150  # still queued: the kill came before the removal
    return where
