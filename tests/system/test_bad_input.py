"""Bad input, table-driven, through the real pipeline (issue 7, "Bad input").

Every case of ``CASES`` states what must become of one input:

- ``transformed``: exactly one output line (found by its ``#uuid``), which
  passes ThinkingData's rules and the case's own check;
- ``filtered``: no output line, no failure-queue entry, counted by mtga as filtered;
- ``failed``: one failure-queue entry with the reason code and words of the detail;
- ``skipped``: never sent to Kafka by the shipper (an empty line, a line still
  waiting for its newline).

Line-level cases (``via="file:<name>"``) are lines of log files that a real
``shipper tail`` ships in the bare form (app 24, log_name ``log_item``, the
metadata in Kafka headers); event-level cases (``via="kafka"``) are produced
straight to another topic, with or without message headers. One shipper and
one mtga process take the whole table; both must still run at the end and
stop with exit code 0 on SIGTERM, and every input is accounted for:
in = transformed + filtered + failed + skipped.
"""

from __future__ import annotations

import json
import signal
from collections import Counter

import pytest

from sink.ta.uuids import UuidMaker
from support.bad_input import (CASES, FAILED, FILLER, FILTERED, MAX_LINE, SKIPPED, TEN_MB_LINE, TRANSFORMED,
                               all_retried, break_app_28, filler, header_path, mtga_status, produce_all,
                               write_app_settings, write_files)
from support.mtga import Mtga, failure_entries, output_lines, stored_offsets, uuid_of, wait_for
from support.mtga import write_conf as mtga_conf
from support.shipper import ShipperProc, read_topic, status
from support.shipper import write_conf as shipper_conf
from support.ta_rules import violations

pytestmark = pytest.mark.kafka


def test_bad_input_corpus_through_shipper_and_mtga(kafka, topic_factory, tmp_path):
    kinds = Counter(c.expect for c in CASES)
    assert len(CASES) >= 30 and set(kinds) == {TRANSFORMED, FILTERED, FAILED, SKIPPED}
    assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"
    file_cases = [c for c in CASES if c.via.startswith("file:")]
    kafka_cases = [c for c in CASES if c.via == "kafka"]
    assert len(file_cases) + len(kafka_cases) == len(CASES)

    ship_topic = topic_factory(partitions=2)
    direct_topic = topic_factory(partitions=2)
    write_app_settings(tmp_path / "settings")
    logs_dir = tmp_path / "logs"
    at = write_files(logs_dir, file_cases)
    cut_path, cut_offset = next(k for k, c in at.items() if c.payload is TEN_MB_LINE)

    sconf = shipper_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=tmp_path / "sstate", inputs=[
        {"paths": [str(logs_dir / "*.log")], "topic": ship_topic, "app_id": 24, "log_name": "log_item"}])
    mconf = mtga_conf(tmp_path, kafka, direct_topic, f"g-{direct_topic}", kafka={"topics": [direct_topic, ship_topic]},
                      workers=2, checkpoint={"interval_s": 1}, retry={"initial_backoff_s": 0.5, "max_backoff_s": 1})
    mtga = Mtga(mconf).start()
    try:
        wait_for(mtga.answers, 60, "mtga to answer")
    except BaseException:
        mtga.kill()
        raise
    break_app_28(tmp_path / "settings")  # a start refuses a broken file; a running mtga queues its app's events

    # event-level cases, between valid filler events
    half = FILLER // 2
    items = [(filler(i), None) for i in range(half)] + [(c.payload, c.headers) for c in kafka_cases] + \
        [(filler(i), None) for i in range(half, FILLER)]
    where = produce_all(kafka, direct_topic, items)
    by_pos: dict = {}  # (topic, partition, offset) -> case (None for a filler)
    for (p, o), c in zip(where, [None] * half + kafka_cases + [None] * (FILLER - half)):
        by_pos[(direct_topic, p, o)] = c

    shipper = ShipperProc(sconf, tmp_path / "shipper.log").start()
    try:
        # the shipper: every file delivered up to its last complete line
        ends = {}
        for (path, off), c in at.items():
            end = off + len(c.payload) + len(c.eol) if c.eol else off
            ends[path] = max(ends.get(path, 0), end)

        def delivered():
            rows = {r["path"]: r["delivered"] for r in status(tmp_path / "sstate")}
            return all(rows.get(p) == e for p, e in ends.items())

        wait_for(delivered, 60, "the shipper to deliver every complete line (shipper status)", every=0.3)
        shipped = read_topic(kafka, ship_topic)
        sent = {(m.headers["path"], int(m.headers["offset"])): m for m in shipped}
        at_h = {(header_path(p), off): c for (p, off), c in at.items()}
        want_sent = {k for k, c in at_h.items() if c.expect != SKIPPED}
        assert set(sent) == want_sent, "the shipper sent other lines than the non-skipped ones"
        assert len(shipped) == len(sent)
        uuids = UuidMaker()
        by_uuid: dict = {}  # #uuid -> case (None for a filler)
        for key, m in sent.items():
            c = at_h[key]
            by_pos[(ship_topic, m.partition, m.offset)] = c
            h = m.headers
            assert (h["app_id"], h["log_name"]) == ("24", "log_item")
            by_uuid[uuids((h["host"].encode(), h["file"].encode()), int(h["offset"])).decode()] = c
        for (t, p, o), c in by_pos.items():
            if t == direct_topic:
                h = dict(c.headers or []) if c is not None else {}
                if h.get("file") and h.get("offset", b"").isdigit():  # shipper headers name the line's #uuid
                    by_uuid[uuids((h.get("host", b""), h["file"]), int(h["offset"])).decode()] = c
                else:
                    by_uuid[uuid_of(t, p, o)] = c
        # the cut line: the warning names the file and the offset; its first max_line_bytes bytes went to Kafka
        cut = sent[(header_path(cut_path), cut_offset)]
        assert cut.value == TEN_MB_LINE[:MAX_LINE]
        shipper.wait_log(f"line cut: {cut_path} at offset {cut_offset} is {len(TEN_MB_LINE)} bytes, "
                         f"longer than max_line_bytes={MAX_LINE}; sent its first {MAX_LINE} bytes")

        # mtga: everything consumed, then every failure retried at least once (the retry path survives them too)
        n_in_kafka = len(by_pos)
        wait_for(lambda: mtga_status(mconf).get("consumed") == n_in_kafka, 90, "mtga to consume every message",
                 every=0.3)
        st = mtga_status(mconf)
        wait_for(lambda: all_retried(tmp_path / "state", st["failed"]), 30, "every failure retried once")
        assert shipper.alive(), shipper.log()[-3000:]
        assert mtga.alive()
    finally:
        rc_ship = shipper.stop(signal.SIGTERM) if shipper.alive() else shipper.proc.poll()
        rc_mtga = mtga.term() if mtga.alive() else mtga.proc.poll()
    mlog = (tmp_path / "mtga.log").read_text(errors="replace") + mtga.output()
    assert rc_ship == 0, shipper.log()[-3000:]
    assert rc_mtga == 0, mlog[-3000:]
    assert "Traceback" not in shipper.log() and "Traceback" not in mlog

    # ---- observed outcome of every case
    observed: dict[int, list] = {id(c): [] for c in CASES}
    fillers_seen = Counter()
    lines = output_lines(tmp_path / "out")
    bad = [(ln[:200], v) for ln in lines if (v := violations(ln))]
    assert not bad, bad[:5]
    for ln in lines:
        d = json.loads(ln)
        c = by_uuid.get(d["#uuid"], "unknown")
        assert c != "unknown", f"an output line of no known input: {ln[:300]!r}"
        if c is None:
            fillers_seen[d["properties"]["n"]] += 1
        else:
            observed[id(c)].append((TRANSFORMED, d))
    entries = failure_entries(tmp_path / "state")
    for e in entries:
        c = by_pos.get((e.topic, e.partition, e.offset), "unknown")
        assert c != "unknown" and c is not None, f"a failure of no known input: {e.reason} {e.payload[:200]!r}"
        observed[id(c)].append((FAILED, e))
    assert fillers_seen == Counter(range(10_000, 10_000 + FILLER)), "filler events lost or repeated"

    rows, problems = [], []
    for c in CASES:
        got = observed[id(c)]
        sent_it = c.via == "kafka" or c.expect != SKIPPED  # a file line the shipper sent (checked above)
        if not got:
            outcome = FILTERED if sent_it else SKIPPED
            detail = ""
        elif len(got) > 1:
            outcome, detail = "several", f"{len(got)} outcomes"
        elif got[0][0] == TRANSFORMED:
            outcome, detail = TRANSFORMED, ""
            if c.expect == TRANSFORMED and c.check is not None and not c.check(got[0][1]):
                detail = f"check failed on {json.dumps(got[0][1], ensure_ascii=False)[:300]}"
        else:
            e = got[0][1]
            outcome, detail = f"{FAILED} {e.code}", e.reason[:160]
            if c.expect == FAILED and c.words and c.words not in e.reason:
                detail = f"reason lacks {c.words!r}: {e.reason[:300]}"
            sent_payload = (c.payload or b"") + c.eol[:-1]  # a file line keeps its "\r" of a CRLF ending
            if sent_payload != e.payload and c.payload is not TEN_MB_LINE:
                detail = "the queued payload differs from the input"
        want = c.expect if c.expect != FAILED else f"{FAILED} {c.code}"
        rows.append((c.name, want, outcome, detail))
        if outcome != want or detail.startswith(("check failed", "reason lacks", "the queued")):
            problems.append((c.name, want, outcome, detail))
    # the cut line's entry holds what the shipper sent: its first max_line_bytes bytes
    (cut_entry,) = [e for e in entries if e.payload[:64] == TEN_MB_LINE[:64] and len(e.payload) > 1000]
    assert cut_entry.payload == TEN_MB_LINE[:MAX_LINE] and cut_entry.code == "invalid_json"

    print(f"\n{'case':<66} {'expected':<28} observed")
    for name, want, outcome, detail in rows:
        print(f"{name[:66]:<66} {want:<28} {outcome}{'  -- ' + detail if detail else ''}")
    assert not problems, "\n".join(map(str, problems))

    # ---- nothing silently dropped: in = out + filtered + failed + skipped
    n = Counter(c.expect for c in CASES)
    assert len(lines) == n[TRANSFORMED] + FILLER
    assert len(entries) == n[FAILED]
    assert st["filtered"] == n[FILTERED]
    assert st["written"] == n[TRANSFORMED] + FILLER and st["failed"] == n[FAILED]
    assert len(shipped) == len(file_cases) - sum(c.expect == SKIPPED for c in file_cases)
    assert len(CASES) + FILLER == len(lines) + st["filtered"] + len(entries) + n[SKIPPED]
    # every partition's offset stored up to its end (nothing left behind)
    ends_k: dict = {}
    for (t, p, o) in by_pos:
        ends_k[(t, p)] = max(ends_k.get((t, p), 0), o + 1)
    assert stored_offsets(tmp_path / "state") == ends_k
    print(f"in {len(CASES)} cases + {FILLER} filler events: transformed {n[TRANSFORMED]} (+{FILLER} filler), "
          f"filtered {st['filtered']}, failed {len(entries)}, skipped {n[SKIPPED]}")
