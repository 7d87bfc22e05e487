"""Parts of the shipper without a broker: line framing, long-line cutting,
log_name patterns, watch roots, fingerprints, the command-line overrides of the
configuration, acknowledgements and the tailer's lifecycle, the watcher's events."""

import os
import random
import re

import pytest

from mulog.config import ConfigError
from mulog.files import last_line_end
from shipper import config
from shipper.files.framing import Framer, utf8_text
from shipper.files.globs import log_name_for, watch_root
from shipper.files.identity import FINGERPRINT_BYTES, fingerprint, identity_crc
from shipper.files.tailer import Read


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


PATTERN = re.compile(r'^(?P<log_name>[a-z][a-z0-9_]*?)(?:[.-]\d[\d-]*)?\.log$')


@pytest.mark.parametrize("path, want", [
    ("/logs/log_item.log", "log_item"),
    ("/logs/log_item-2024-01-01-10.log", "log_item"),
    ("/logs/log_pay.2024010110.log", "log_pay"),
    ("/logs/Log_item.log", None),
    ("/logs/log_item.txt", None),
])
def test_log_name_from_the_file_name(path, want):
    assert log_name_for(path, None, PATTERN) == want


def test_static_log_name():
    assert log_name_for("/x/whatever.log", "log_login", None) == "log_login"


@pytest.mark.parametrize("pattern, root, recursive", [
    ("/var/log/game/*.log", "/var/log/game", False),
    ("/var/log/game/app.log", "/var/log/game", False),
    ("/var/log/**/*.log", "/var/log", True),
    ("/var/log/*/app.log", "/var/log", True),
    ("/*.log", "/", False),
])
def test_watch_root(pattern, root, recursive):
    assert watch_root(pattern) == (root, recursive)


def test_identity_covers_the_first_line_and_stays(tmp_path):
    p = tmp_path / "f.log"
    p.write_bytes(b'{"first": 1}')
    fd = os.open(p, os.O_RDONLY)
    try:
        assert identity_crc(fd) is None  # first line incomplete
        with open(p, "ab") as f:
            f.write(b"\n")
        first = identity_crc(fd)
        assert first is not None
        with open(p, "ab") as f:
            f.write(b'{"second": 2}\n' * 200)
        assert identity_crc(fd) == first  # growth does not change it
        # while the verification fingerprint grows up to FINGERPRINT_BYTES
        assert fingerprint(fd)[0] == FINGERPRINT_BYTES
    finally:
        os.close(fd)


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


# ------------------------------------------------------------ flags over the file


def write_conf(tmp_path, text):
    f = tmp_path / "shipper.yml"
    f.write_text(text)
    return f


def test_flags_alone_make_an_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    s = config.load_tail(None, config.TailFlags(paths=["logs/*.log"], topic="t1", app_id=24, log_name="log_x",
                                                state_dir="st", bootstrap_servers="h:1", from_beginning=True))
    (inp,) = s.inputs
    assert inp.paths == [str(tmp_path / "logs/*.log")]
    assert (inp.topic, inp.app_id, inp.log_name, inp.start_at) == ("t1", 24, "log_x", "beginning")
    assert s.state_dir == tmp_path / "st" and s.db_path == tmp_path / "st" / "db"
    assert s.bootstrap_servers == "h:1"


def test_flag_only_run_names_the_missing_flags(tmp_path):
    with pytest.raises(ConfigError) as e:
        config.load_tail(None, config.TailFlags(paths=["x/*.log"], topic="t"))
    assert "--app-id, --log-name" in str(e.value)


def test_flags_override_the_file_input(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:1")
    f = write_conf(tmp_path, "inputs:\n  - paths: ['a/*.log']\n    topic: t0\n    app_id: 1\n"
                             "    log_name_pattern: '^(?P<log_name>.+)\\.log$'\n    start_at: end\n")
    s = config.load_tail(f, config.TailFlags(topic="t9", log_name="fixed"))
    (inp,) = s.inputs
    assert inp.paths == [str(tmp_path / "a/*.log")]
    assert (inp.topic, inp.app_id, inp.log_name, inp.log_name_pattern, inp.start_at) == ("t9", 1, "fixed", None, "end")
    assert s.bootstrap_servers == "env:1"  # the environment over the file
    s = config.load_tail(f, config.TailFlags(bootstrap_servers="flag:1", from_beginning=True))
    assert s.bootstrap_servers == "flag:1"  # a flag over the environment
    assert s.inputs[0].start_at == "beginning"


def test_input_flags_refuse_a_file_with_several_inputs(tmp_path):
    one = "  - paths: ['a/*.log']\n    topic: t0\n    app_id: 1\n    log_name: a\n"
    f = write_conf(tmp_path, "inputs:\n" + one + one)
    with pytest.raises(ConfigError) as e:
        config.load_tail(f, config.TailFlags(topic="x"))
    assert "the file has 2 inputs" in str(e.value)


def test_no_input_at_all(tmp_path):
    f = write_conf(tmp_path, "rescan_interval_s: 1\n")
    with pytest.raises(ConfigError) as e:
        config.load_tail(f, config.TailFlags())
    assert "inputs" in str(e.value) and "at least one input" in str(e.value)


def test_max_line_must_fit_in_a_kafka_message(tmp_path):
    f = write_conf(tmp_path, "kafka:\n  producer:\n    message.max.bytes: 100000\ninputs:\n  - paths: [a]\n"
                             "    topic: t\n    app_id: 1\n    log_name: a\n    max_line_bytes: 200000\n")
    with pytest.raises(ConfigError) as e:
        config.load(f)
    assert "inputs[0].max_line_bytes" in str(e.value) and "at most 95904" in str(e.value)


def _tailer(tmp_path, data: bytes, name: str = "t.log"):
    from shipper.config import Input
    from shipper.stats import counters
    from shipper.files.tailer import Tailer

    p = tmp_path / name
    p.write_bytes(data)
    fd = os.open(p, os.O_RDONLY)
    st = os.fstat(fd)
    inp = Input(paths=[str(p)], topic="t", app_id=1, log_name="x")
    return Tailer(st.st_dev, st.st_ino, str(p), fd, inp, "x", 0, (0, 0), "host", counters())


def test_a_refused_chunk_holds_the_position_and_is_read_again(tmp_path):
    """Chunks A, B, C are sent; B is refused, A and C acknowledged (in whatever
    order): the position stops after A, and once every report is in (and the
    back-off has passed) the tailer reads again from there."""
    t = _tailer(tmp_path, b"a\nb\nc\n")
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
    t = _tailer(tmp_path, b"a\nb\n")
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
    t = _tailer(tmp_path, b"aaaa\nbbbb\n")
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
    t = _tailer(tmp_path, b"a\nb\n")
    try:
        a, b = t.acks.chunk(2, 1, 2, None), t.acks.chunk(4, 1, 2, None)
        t.acks.acked(a)
        t.acks.dropped(b)  # purged from the producer's queue at the stop
        assert t.delivered == 2 and t.acks.refused is None and t.acks.settled and not t.acks.idle
        assert t.recover(1e9) is False  # read again at the next start, not now
    finally:
        t.close()


@pytest.mark.kafka
def test_the_publisher_sorts_delivery_reports(kafka, tmp_path):
    """Real KafkaError values through the publisher's report handler: an
    acknowledgement moves the position, a purge holds it quietly, a refusal holds
    it and asks for a resend (logged and counted once per file)."""
    from confluent_kafka import KafkaError

    from shipper.delivery.publisher import Publisher

    t = _tailer(tmp_path, b"a\nb\nc\n")
    pub = Publisher(kafka, {}, t.counters, lambda: False, lambda msg: None)
    try:
        chunks = [t.acks.chunk(end, 1, 2, pub.report) for end in (2, 4, 6)]
        pub.inflight_msgs, pub.inflight_bytes = 3, 6
        chunks[0](None, None)
        chunks[1](KafkaError(KafkaError._UNKNOWN_PARTITION), None)
        chunks[2](KafkaError(KafkaError._PURGE_QUEUE), None)
        assert t.delivered == 2 and t.acks.refused == KafkaError(KafkaError._UNKNOWN_PARTITION).str()
        assert (pub.inflight_msgs, pub.inflight_bytes) == (0, 0)
        v = t.counters.values()
        assert (v["lines_acked"], v["chunk_errors"]) == (1, 1)
    finally:
        pub.close()
        t.close()


def test_a_descriptor_is_kept_while_chunks_are_pending(tmp_path):
    """A DRAINING file (renamed away, then deleted) is not closed at rotate_wait_s
    while Kafka has not acknowledged what was sent; when Kafka refuses it, the
    lines are read again from the descriptor, the file's name long gone."""
    from shipper.files.prospector import Prospector
    from shipper.files.tailer import CLOSED, DRAINING

    t = _tailer(tmp_path, b"one\ntwo\n", name="d.log")
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


# ------------------------------------------------------------ managed producer settings


@pytest.mark.parametrize("key, value", [("enable.idempotence", "false"), ("acks", "1"),
                                        ("request.required.acks", "0"), ("enable.gapless.guarantee", "false"),
                                        ("partitioner", "random")])
def test_producer_settings_the_delivery_rests_on_are_refused(tmp_path, key, value):
    """Idempotence, acks=all, the gap-less guarantee and the partitioner are what
    lets one acknowledgement per read chunk stand for its lines: a configuration
    that changes one is refused in one line naming the file, the key and why."""
    from conftest import run_cli

    f = write_conf(tmp_path, f"kafka:\n  producer:\n    linger.ms: 5\n    {key}: {value}\n")
    with pytest.raises(ConfigError) as e:
        config.load(f)
    assert str(e.value).startswith(f"{f}: kafka.producer: {key!r} is managed by the shipper (always "), str(e.value)
    assert "cannot be set here" in str(e.value)
    r = run_cli("shipper", "check-config", "-c", str(f))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"kafka.producer: {key!r} is managed by the shipper" in r.stderr
    s = config.load(write_conf(tmp_path, "kafka:\n  producer:\n    linger.ms: 5\n"))
    assert (s.producer["enable.idempotence"], s.producer["acks"], s.producer["enable.gapless.guarantee"],
            s.producer["partitioner"]) == (True, "all", True, "consistent_random")


# ------------------------------------------------------------ watcher


def test_a_burst_of_inotify_events_globs_at_most_once_per_debounce_interval(tmp_path):
    """2,000 files created and deleted as fast as possible in a watched folder:
    each created file that is still there becomes a Created event without a
    glob; the deletions ask for rescans, of which the loop runs at most one per
    DEBOUNCE_S, however many events came and however fast the loop turns."""
    import threading
    import time

    from shipper.config import Input
    from shipper.files.watcher import DEBOUNCE_S, Created, Watcher

    logs = tmp_path / "logs"
    logs.mkdir()
    inp = Input(paths=[str(logs / "*.log")], topic="t", app_id=1, log_name="x")
    w = Watcher(threading.Event())
    w.plan([inp])
    created, scans, turns = set(), 0, 0
    try:
        def burst():
            for i in range(2000):
                p = logs / f"f{i}.log"
                p.write_bytes(b"x\n")
                if i % 2:
                    p.unlink()

        writer = threading.Thread(target=burst)
        t0 = time.monotonic()
        writer.start()
        while writer.is_alive() or time.monotonic() - t0 < 0.5 or w.pending() or w.rescan_wanted:
            now = time.monotonic()
            turns += 1
            created |= {ev.path for ev in w.events([inp], lambda key: None) if type(ev) is Created}
            if w.rescan_due(now):
                scans += 1
                created |= {ev.path for ev in w.scan([inp], {}) if type(ev) is Created}
            assert now - t0 < 60, "the burst did not end"
        took = time.monotonic() - t0
    finally:
        w.stop()
    kept = {str(logs / f"f{i}.log") for i in range(0, 2000, 2)}
    assert kept <= created <= {str(logs / f"f{i}.log") for i in range(2000)}  # every file left is found
    assert 1 <= scans <= took / DEBOUNCE_S + 2, (scans, took)
    assert turns > 10 * scans, (turns, scans)  # the loop turned far more often than it globbed
    print(f"\n2000 files created, 1000 deleted in {took:.2f}s: {scans} scans in {turns} loop turns")


def test_a_copy_with_nothing_left_to_read_stores_its_own_first_bytes(tmp_path):
    """A copy read on from its original's end may have nothing left to read: its
    stored position must still hold its own first bytes, or a later file on the
    same inode (logrotate copies to the same name again) would resume from it."""
    import zlib

    from offsets import CopiedFrom

    data = b"".join(b"line %04d of the first generation\n" % n for n in range(100))
    t = _tailer(tmp_path, data, "t.log.1")
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
    from shipper.stats import counters
    from shipper.files.tailer import ACTIVE, DRAINING
    from shipper.files.watcher import Created, Moved

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
            x = _tailer(tmp_path, data, f"f{i:03d}.log")
            x.head = data[:1024]
            followed.append(x)
        target = followed[137]
        copies = Copies(None)

        def verdicts(name: str, data: bytes, *nows: float):
            t = _tailer(tmp_path, data, name)
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
