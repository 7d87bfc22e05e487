"""The peers and the references: kcat (the produce and the read limits), rsyslog,
the OpenTelemetry Collector and a Quix Streams application, run on the same
files and topics as shipper and mtga. Where a peer tool is missing, its cases are
skipped with the reason (``make bench-peers`` installs them)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from ..harness.bench import Bench
from ..harness.common import PEERS, POLL_S, REPO, WORK, BenchError, Skip
from ..harness.procs import Proc
from ..harness.registry import case
from ..harness.waits import count_lines, first_output, poll, tail, until_exit

OTELCOL_PLACES = (WORK / "peers" / "otelcol-peer",)  # where bench/peers/install builds it; $OTELCOL: elsewhere
QUIX_VENV = WORK / "peers" / "quix-venv"  # Quix Streams pins its own confluent-kafka: a virtual environment of its own


@case("shipper_kcat", order=20,
      about="`kcat -P -z snappy -l FILE` into a fresh 3-partition topic: from spawn to exit "
            "(kcat exits once every message is acknowledged)")
def shipper_kcat(b: Bench) -> dict:
    return _kcat_produce(b, "shipper_kcat", [])


@case("shipper_kcat_headers", order=21, reference="shipper_kcat",
      about="as shipper_kcat, but with the Kafka key and the six headers shipper sends (host, path, file, offset, "
            "app_id, log_name; static values of the same sizes): what the message format costs kcat "
            "(ratio = cost factor)")
def shipper_kcat_headers(b: Bench) -> dict:
    import socket
    import zlib

    path = b.lines
    st = path.stat()
    with open(path, "rb") as f:
        ident = f"{st.st_dev:x}:{st.st_ino:x}:{zlib.crc32(f.read(1024)):08x}"
    extra = ["-k", ident]
    for k, v in (("host", socket.gethostname()), ("path", str(path)), ("file", ident),
                 ("offset", str(st.st_size)), ("app_id", "24"), ("log_name", "log_item")):
        extra += ["-H", f"{k}={v}"]
    return _kcat_produce(b, "shipper_kcat_headers", extra)


@case("shipper_kcat_key", order=27, reference="shipper_kcat",
      about="as shipper_kcat, each line with the key the shipper's key form gives it (host, file, app_id, "
            "log_name, path and the line's offset; no header; kcat -K from a file of key and line): what the "
            "key form costs kcat (ratio = cost factor; beside shipper_kcat_headers)")
def shipper_kcat_key(b: Bench) -> dict:
    import socket
    import zlib

    from mulog import wire

    path = b.lines
    keyed = b.run_dir / "shipper_kcat_key.log"  # (the case folder is made afresh by _kcat_produce)
    with open(path, "rb") as f:
        ident = f"{path.stat().st_dev:x}:{path.stat().st_ino:x}:{zlib.crc32(f.read(1024)):08x}"
    prefix = wire.prefix(socket.gethostname(), ident, 24, "log_item", str(path))
    with open(path, "rb") as src, open(keyed, "wb") as dst:
        off = 0
        for line in src:
            dst.write(b"%s%d\x1e%s" % (prefix, off, line))
            off += len(line)
    return _kcat_produce(b, "shipper_kcat_key", ["-K", "\x1e"], source=keyed)


def _kcat_produce(b: Bench, name: str, extra: list, source=None) -> dict:
    kcat = shutil.which("kcat")
    if not kcat:
        raise Skip("kcat is not installed (Debian: apt-get install kcat; or scripts/ensure-tools)")
    path, n = source or b.lines, b.n_lines
    topic = b.kafka.topic(name, 3)
    d = b.tmp(name)
    p = Proc([kcat, "-P", "-b", b.kafka.bootstrap, "-t", topic, "-z", "snappy", *extra, "-l", path],
             log=d / "kcat.log")
    try:
        rc = p.wait(b.timeout(n))
    except subprocess.TimeoutExpired:
        p.stop(signal.SIGKILL)
        raise BenchError(f"kcat -P did not finish in {b.timeout(n):.0f}s") from None
    if rc != 0:
        raise BenchError(f"kcat -P exited with {rc}: {p.log_tail(5)}")
    return {"items": n, "seconds": p.ended - p.t0, "peak_rss_mb": p.peak_rss_mb, "cpu_s": p.cpu_s,
            "bytes": b.lines.stat().st_size, "check": b.check_topic(topic, n)}


@case("shipper_rsyslog", order=23, reference="shipper_kcat",
      about="private `rsyslogd -n` with imfile + omkafka (snappy) on the same file, fresh 3-partition topic: from "
            "spawn until the topic's high watermarks add up to N")
def shipper_rsyslog(b: Bench) -> dict:
    rsyslogd = rsyslogd_exe()
    path, n = b.lines, b.n_lines
    d = b.tmp("shipper_rsyslog")
    topic = f"bench_rsyslog_{uuid.uuid4().hex[:8]}"  # created below once the config checks out
    conf = d / "rsyslog.conf"
    conf.write_text(rsyslog_conf(d, path, topic, b.kafka.bootstrap))
    chk = subprocess.run([rsyslogd, "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    if chk.returncode != 0:
        lines = [ln for ln in (chk.stdout + chk.stderr).splitlines() if ln.strip()]
        why = next((ln for ln in lines if "omkafka" in ln or "error" in ln.lower()), lines[-1] if lines else "")
        raise Skip(f"rsyslogd cannot load the imfile + omkafka configuration (Debian package rsyslog-kafka "
                   f"missing?): {why.strip()}")
    topic = b.kafka.topic("rsyslog", 3)
    conf.write_text(rsyslog_conf(d, path, topic, b.kafka.bootstrap))
    p = Proc([rsyslogd, "-n", "-f", conf, "-i", d / "rsyslogd.pid"], log=d / "stdout.log", cwd=d)
    return _until_in_kafka(b, p, "rsyslogd", topic, path, n,
                           lambda: f"{p.log_tail(5)} {tail(d / 'internal.log')}")


def _until_in_kafka(b: Bench, p: Proc, name: str, topic: str, path: Path, n: int, why) -> dict:
    """A peer shipping ``path``: timed from its spawn until ``topic`` holds ``n``
    messages, then stopped; ``why()`` tells what it said when it failed."""
    deadline = time.monotonic() + b.timeout(n)
    try:  # polling the watermarks: the peer tells nothing else
        t_done = poll(p, deadline, lambda: b.kafka.total(topic) >= n,
                      died=lambda: f"{name} exited with {p.rc}: {why()}",
                      late=lambda: f"{name} did not ship the file in {b.timeout(n):.0f}s "
                                   f"({b.kafka.total(topic)} of {n} lines in Kafka)", every=0.1)
    finally:
        p.stop(signal.SIGTERM, 30)
    return {"items": n, "seconds": t_done - p.t0, "peak_rss_mb": p.peak_rss_mb, "cpu_s": p.cpu_s,
            "bytes": path.stat().st_size, "check": b.check_topic(topic, n)}


@case("shipper_otelcol", order=24, reference="shipper_kcat",
      about="OpenTelemetry Collector (bench/peers/otelcol-filelog-kafka.yaml: filelog from the beginning with "
            "file_storage -> batch -> kafka, raw body, snappy) on the same file, fresh 3-partition topic and "
            "storage dir: from spawn until the topic's high watermarks add up to N. Its messages have no key and "
            "no headers (shipper sends a key and six headers: see shipper_kcat_headers), and the value is the "
            "line as a JSON string (the raw encoding sends only byte bodies as they are and JSON-serializes the "
            "receiver's string body: quoted, its quotes escaped, 232 bytes for a 202-byte line)")
def shipper_otelcol(b: Bench) -> dict:
    otelcol = otelcol_exe()
    path, n = b.lines, b.n_lines
    d = b.tmp("shipper_otelcol")
    topic = b.kafka.topic("otelcol", 3)
    env = dict(b.env, PEER_FILE=str(path), PEER_STORAGE_DIR=str(d / "storage"),
               PEER_BROKERS=first_broker(b.kafka.bootstrap), PEER_TOPIC=topic)
    p = Proc([otelcol, "--config", PEERS / "otelcol-filelog-kafka.yaml"], log=d / "otelcol.log", env=env, cwd=d)
    return _until_in_kafka(b, p, "the collector", topic, path, n, lambda: p.log_tail(8))


def _reading(b: Bench, name: str) -> tuple[str, int, Path, Path]:
    """(the events' topic, N, the case's fresh folder, its out/ folder) of a peer that reads the events."""
    topic, n = b.event_topic, b.n_events
    d = b.tmp(name)
    out = d / "out"
    out.mkdir()
    return topic, n, d, out


@case("mtga_kcat_consume", order=30,
      about="`kcat -C -e -o beginning` of the same topic into a file: from the first byte written until kcat "
            "exits at the end of every partition (the read limit)")
def mtga_kcat_consume(b: Bench) -> dict:
    kcat = shutil.which("kcat")
    if not kcat:
        raise Skip("kcat is not installed (Debian: apt-get install kcat; or scripts/ensure-tools)")
    topic, n, d, out = _reading(b, "mtga_kcat_consume")
    with open(out / "topic.jsonl", "wb") as f:
        p = Proc([kcat, "-C", "-b", b.kafka.bootstrap, "-t", topic, "-e", "-o", "beginning", "-q"],
                 stdout=f)
    deadline = time.monotonic() + b.timeout(n)
    t_first = first_output(b, p, out, deadline, "kcat -C")
    try:
        rc = p.wait(max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        p.stop(signal.SIGKILL)
        raise BenchError("kcat -C did not reach the end of the topic in time") from None
    if rc != 0:
        raise BenchError(f"kcat -C exited with {rc}")
    got = count_lines(out)
    shutil.rmtree(d, ignore_errors=True)
    return {"items": n, "seconds": p.ended - t_first, "seconds_total": round(p.ended - p.t0, 3),
            "peak_rss_mb": p.peak_rss_mb, "cpu_s": p.cpu_s,
            "check": "ok" if got == n else f"{got} lines read, expected {n}"}


@case("mtga_otelcol", order=35, reference="mtga_kcat_consume",
      about="OpenTelemetry Collector (bench/peers/otelcol-kafka-file.yaml: kafka, fresh group, earliest, text "
            "body -> batch -> file, OTLP JSON, one line per batch) on the pre-produced topic, no transform: from "
            "spawn (group join included) until the file holds N log records (counted by their \"body\" keys)")
def mtga_otelcol(b: Bench) -> dict:
    otelcol = otelcol_exe()
    topic, n, d, out = _reading(b, "mtga_otelcol")
    file = out / "otelcol.jsonl"
    env = dict(b.env, PEER_BROKERS=first_broker(b.kafka.bootstrap), PEER_TOPIC=topic,
               PEER_GROUP=f"bench-otelcol-{uuid.uuid4().hex[:8]}", PEER_OUT=str(file))
    p = Proc([otelcol, "--config", PEERS / "otelcol-kafka-file.yaml"], log=d / "otelcol.log", env=env, cwd=d)
    return _until_written(b, p, "the collector", RecordCounter(file), "records", n)


@case("mtga_rsyslog", order=36, reference="mtga_kcat_consume",
      about="private `rsyslogd -n` with imkafka (fresh group, earliest) -> omfile, each payload as it came on a "
            "line of its own, no transform: from spawn (group join included) until the file holds N lines")
def mtga_rsyslog(b: Bench) -> dict:
    rsyslogd = rsyslogd_exe()
    topic, n, d, out = _reading(b, "mtga_rsyslog")
    file = out / "rsyslog.jsonl"
    conf = d / "rsyslog.conf"
    conf.write_text(rsyslog_consume_conf(d, file, topic, f"bench-rsyslog-{uuid.uuid4().hex[:8]}",
                                         b.kafka.bootstrap))
    chk = subprocess.run([rsyslogd, "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    if chk.returncode != 0:
        raise Skip(f"rsyslogd cannot load the imkafka + omfile configuration (Debian package rsyslog-kafka "
                   f"missing?): {(chk.stdout + chk.stderr).strip()[-300:]}")
    p = Proc([rsyslogd, "-n", "-f", conf, "-i", d / "rsyslogd.pid"], log=d / "stdout.log", cwd=d)
    return _until_written(b, p, "rsyslogd", RecordCounter(file), "lines", n)


def _until_written(b: Bench, p: Proc, name: str, counter: RecordCounter, what: str, n: int) -> dict:
    """A peer writing ``counter``'s file, timed from its spawn until the file holds
    ``n`` records or lines (``what``), then stopped; the file is removed after."""
    deadline = time.monotonic() + b.timeout(n)
    t_first = None

    def written() -> bool:
        nonlocal t_first
        if counter.update() and t_first is None:
            t_first = time.monotonic()
        return getattr(counter, what) >= n

    try:
        t_done = poll(p, deadline, written, died=lambda: f"{name} exited with {p.rc}: {p.log_tail(8)}",
                      late=lambda: f"{name} did not write the {n} {what} in {b.timeout(n):.0f}s "
                                   f"({getattr(counter, what)} written)", every=POLL_S)
    finally:
        p.stop(signal.SIGTERM, 30)
    counter.update()  # whatever it wrote at its stop counts too
    got = getattr(counter, what)
    if not b.args.keep_work:
        shutil.rmtree(counter.path.parent, ignore_errors=True)
    return {"items": n, "seconds": t_done - p.t0, "seconds_total": round(t_done - p.t0, 3),
            "seconds_from_first_output": round(t_done - t_first, 3), "output_lines": counter.lines,
            "peak_rss_mb": p.peak_rss_mb, "cpu_s": p.cpu_s,
            "check": "ok" if got == n else f"{got} {what} written, expected {n}"}


@case("mtga_quix", order=37, reference="mtga_kcat_consume",
      about="bench/peers/quix_app.py: a Quix Streams 3.28 application (fresh group, earliest) doing "
            "bench/naive.py's transform (json.loads, track dict, uuid5, json.dumps) into one file through a "
            "BatchingSink (written at each 5 s checkpoint): from spawn (group join included) until it exits "
            "after N outputs; run with the Python of $QUIX_PYTHON or bench/work/peers/quix-venv")
def mtga_quix(b: Bench) -> dict:
    python = quix_python()
    topic, n, d, out = _reading(b, "mtga_quix")
    cmd = [python, PEERS / "quix_app.py", "--bootstrap", b.kafka.bootstrap, "--topic", topic,
           "--group", f"bench-quix-{uuid.uuid4().hex[:8]}", "--count", str(n), "--out", out / "quix.jsonl"]
    p = Proc(cmd, log=d / "quix.log", env=dict(b.env, PYTHONPATH=""), cwd=d)
    t_first, got = until_exit(b, p, "the Quix Streams app", d, out, n)
    return {"items": n, "seconds": p.ended - p.t0, "seconds_total": round(p.ended - p.t0, 3),
            "seconds_from_first_output": round(p.ended - t_first, 3), "peak_rss_mb": p.peak_rss_mb,
            "cpu_s": p.cpu_s, "check": "ok" if got == n else f"{got} lines written, expected {n}"}


def rsyslog_conf(d: Path, path: Path, topic: str, bootstrap: str) -> str:
    brokers = ", ".join(f'"{b.strip()}"' for b in bootstrap.split(","))
    return f"""# private rsyslogd for the benchmark: imfile -> omkafka, nothing else
global(workDirectory="{d}" maxMessageSize="64k")
module(load="imfile" mode="inotify")
module(load="omkafka")
template(name="bench_raw" type="string" string="%msg%")
ruleset(name="bench_kafka") {{
  action(type="omkafka" broker=[{brokers}] topic="{topic}" template="bench_raw"
         partitions.auto="on" confParam=["compression.codec=snappy"])
}}
input(type="imfile" file="{path}" tag="bench" ruleset="bench_kafka" freshStartTail="off")
# rsyslogd's own messages
action(type="omfile" file="{d}/internal.log")
"""


def rsyslogd_exe() -> str:
    """rsyslogd's path; or Skip."""
    rsyslogd = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if os.access("/usr/sbin/rsyslogd", os.X_OK)
                                            else None)
    if not rsyslogd:
        raise Skip("rsyslogd is not installed (bench/peers/install rsyslog; Debian: apt-get install rsyslog "
                   "rsyslog-kafka)")
    return rsyslogd


def rsyslog_consume_conf(d: Path, out: Path, topic: str, group: str, bootstrap: str) -> str:
    """bench/peers' rsyslog-imkafka-omfile.conf: each message's payload on a line of its own."""
    brokers = ", ".join(f'"{b.strip()}"' for b in bootstrap.split(","))
    return f"""# private rsyslogd for the benchmark: imkafka -> omfile, nothing else
global(workDirectory="{d}" maxMessageSize="64k")
module(load="imkafka")
template(name="peer_line" type="string" string="%rawmsg%\\n")
ruleset(name="peer_file") {{
  action(type="omfile" file="{out}" template="peer_line" ioBufferSize="64k")
}}
input(type="imkafka" broker=[{brokers}] topic="{topic}" consumergroup="{group}" ruleset="peer_file"
      confParam=["auto.offset.reset=earliest"])
# rsyslogd's own messages
action(type="omfile" file="{d}/internal.log")
"""


def otelcol_exe() -> Path:
    """The OpenTelemetry Collector binary: $OTELCOL (a path anywhere), else the first of OTELCOL_PLACES
    that exists; or Skip."""
    why = "the OpenTelemetry Collector is not built: see bench/peers/ and README 'Benchmarks'"
    env = os.environ.get("OTELCOL")
    if env:
        if os.access(env, os.X_OK) and Path(env).is_file():
            return Path(env)
        raise Skip(f"OTELCOL={env} is not an executable file; {why}")
    for p in OTELCOL_PLACES:
        if os.access(p, os.X_OK) and p.is_file():
            return p
    raise Skip(why)


def quix_python() -> str:
    """The Python that has Quix Streams: $QUIX_PYTHON, else QUIX_VENV's; or Skip."""
    how = (f"python -m venv {QUIX_VENV.relative_to(REPO)} && {QUIX_VENV.relative_to(REPO)}/bin/pip install "
           "quixstreams==3.28.1 (README 'Benchmarks')")
    python = os.environ.get("QUIX_PYTHON") or str(QUIX_VENV / "bin" / "python")
    if not os.access(python, os.X_OK):
        raise Skip(f"Quix Streams is not installed: {how}")
    ok = subprocess.run([python, "-c", "import quixstreams"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if ok.returncode != 0:
        raise Skip(f"{python} cannot import quixstreams: {how}")
    return python


def first_broker(bootstrap: str) -> str:
    """One host:port of a bootstrap list (the peer configurations take one: enough to find the cluster)."""
    return bootstrap.split(",")[0].strip()


class RecordCounter:
    """Log records in a growing OTLP JSON file (the collector's file exporter: one line per batch).

    Each poll reads only what was added since the last one, up to its last complete
    line, and counts the ``"body":`` keys in it: one per log record, exactly (inside a
    JSON string a quote is escaped, so the body's own text cannot hold the key)."""

    KEY = b'"body":'

    def __init__(self, path: Path):
        self.path, self.pos, self.records, self.lines = path, 0, 0, 0

    def update(self) -> bool:
        """Counts what was added; True when the file holds any bytes."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return False
        with f:
            f.seek(self.pos)
            tail = b""
            for block in iter(lambda: f.read(1 << 22), b""):
                block = tail + block
                cut = block.rfind(b"\n") + 1
                self.records += block.count(self.KEY, 0, cut)
                self.lines += block.count(b"\n", 0, cut)
                self.pos += cut
                tail = block[cut:]
        return self.pos > 0 or len(tail) > 0
