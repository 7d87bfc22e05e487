"""The folding of the Kafka client's repeated errors (mulog/kafkalog.py) and the
JSON log format (mulog/runtime/logs.py), as pure units: an injected clock, records
caught by a handler, no broker."""

import json
import logging

import pytest

from mulog.kafkalog import ALL, Fold, parse
from mulog.runtime import logs

B = "127.0.0.1:50753"
FAIL = (f"[thrd:{B}/bootstrap]: {B}/bootstrap: Connect to ipv4#{B} failed: Connection refused "
        "(after {ms}ms in state CONNECT)")


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Caught(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def lines(self):
        return [r.getMessage() for r in self.records]


class Err:
    """What error_cb gets (the few methods of KafkaError the fold uses)."""

    def __init__(self, name, text):
        self._name, self._text = name, text

    def name(self):
        return self._name

    def str(self):
        return self._text


@pytest.fixture
def setup():
    log = logging.getLogger(f"test.kafkalog.{id(object())}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    h = Caught()
    log.addHandler(h)
    clock = Clock()
    return Fold(log, window=60, clock=clock), clock, h


def client(fold, ms=0, client_name="rdkafka#consumer-1", level=logging.ERROR):
    fold.client_conf()["logger"].log(level, "%s [%s] %s", "FAIL", client_name, FAIL.format(ms=ms))


def stats(fold, state, node=B, name=None):
    fold.stats(json.dumps({"name": "x", "brokers": {name or f"{node}/bootstrap": {"nodename": node, "state": state}}}))


def test_parse_names_the_broker_and_the_kind_without_numbers():
    node, kind = parse(f"{B}/bootstrap: Connect to ipv4#{B} failed: Connection refused (after 3ms in state CONNECT)")
    assert node == B
    assert kind == "Connect to ipvN#N.N.N.N:N failed: Connection refused"
    assert parse("1/1 brokers are down") == (ALL, "N/N brokers are down")
    assert parse("sasl_ssl://kafka-1.example:9093/2: Disconnected")[0] == "kafka-1.example:9093"


def test_first_at_once_then_one_line_per_minute_with_the_count(setup):
    fold, clock, h = setup
    client(fold)
    assert len(h.records) == 1 and h.records[0].levelno == logging.ERROR
    assert h.records[0].getMessage().startswith("FAIL [rdkafka#consumer-1] ")
    for i in range(18 * 59):  # 18 a second for 59 s: all folded, whatever the timings in the text
        clock.t += 1 / 18
        client(fold, ms=i % 7)
    assert len(h.records) == 1
    clock.t += 2
    client(fold)
    assert len(h.records) == 2
    line = h.lines()[1]
    assert f"(and {18 * 59} more like it in the last 61s)" in line, line
    assert h.records[1].folded == 18 * 59 and h.records[1].broker == B


def test_error_cb_and_log_of_the_same_failure_fold_together_kinds_and_brokers_apart(setup):
    fold, clock, h = setup
    client(fold)
    fold.error(Err("_TRANSPORT", FAIL.format(ms=0).split("]: ", 1)[1]))  # the same failure, through error_cb
    assert len(h.records) == 1
    fold.error(Err("_ALL_BROKERS_DOWN", "1/1 brokers are down"))
    assert len(h.records) == 2 and "_ALL_BROKERS_DOWN" in h.lines()[1] and h.records[1].levelno == logging.WARNING
    fold.error(Err("_TRANSPORT", "10.0.0.2:9092/2: Connect to ipv4#10.0.0.2:9092 failed: Connection refused"))
    assert len(h.records) == 3  # another broker
    fold.error(Err("_MSG_TIMED_OUT", f"{B}/1: 3 requests timed out"))
    assert len(h.records) == 4  # another kind
    for _ in range(100):
        client(fold)
        fold.error(Err("_ALL_BROKERS_DOWN", "1/1 brokers are down"))
    assert len(h.records) == 4


def test_quiet_repeats_are_said_by_the_tick_after_a_window(setup):
    fold, clock, h = setup
    fold.error(Err("_MSG_TIMED_OUT", f"{B}/1: 3 requests timed out"))
    for _ in range(5):
        fold.error(Err("_MSG_TIMED_OUT", f"{B}/1: 4 requests timed out"))
    clock.t += 30
    fold.tick()
    assert len(h.records) == 1
    clock.t += 31
    fold.tick()
    assert len(h.records) == 2 and "(and 5 more like it in the last 61s)" in h.lines()[1]
    fold.tick()
    assert len(h.records) == 2  # nothing more to say


def test_broker_answers_again_once_with_how_long_it_was_away(setup):
    fold, clock, h = setup
    client(fold)
    fold.error(Err("_ALL_BROKERS_DOWN", "1/1 brokers are down"))
    stats(fold, "CONNECT")
    for _ in range(1000):
        clock.t += 0.1
        client(fold)
    stats(fold, "DOWN")
    assert len(h.records) == 2 + 1  # the first of each kind, then one line in the minute
    assert "(and 600 more like it in the last 60s)" in h.lines()[2]
    clock.t += 20
    stats(fold, "UP")
    again = [r for r in h.records if " again: " in r.getMessage()]
    assert [r.getMessage() for r in again] == [
        f"Kafka broker {B} answers again: away for 120s (399 repeated errors folded)",
        "Kafka brokers answer again: away for 120s (0 repeated errors folded)"]
    assert again[0].levelno == logging.INFO and again[0].away_s == 120.0
    n = len(h.records)
    stats(fold, "UP")
    assert len(h.records) == n  # said once
    client(fold)  # the next outage is said again from its start
    assert len(h.records) == n + 1 and "more like it" not in h.lines()[-1]


def test_info_and_debug_lines_of_the_client_pass_unfolded(setup):
    fold, clock, h = setup
    for _ in range(3):
        fold.client_conf()["logger"].log(logging.INFO, "%s [%s] %s", "CONFWARN", "rdkafka#producer-1", "note")
    assert len(h.records) == 3


def test_client_conf_keeps_a_configured_statistics_interval():
    fold = Fold(logging.getLogger("x"))
    assert fold.client_conf()["statistics.interval.ms"] == 2000
    assert "statistics.interval.ms" not in fold.client_conf({"statistics.interval.ms": 500})
    assert "statistics.interval.ms" not in fold.client_conf({"statistics.interval.ms": 0})
    assert fold.client_conf()["stats_cb"] == fold.stats


def test_bad_statistics_are_ignored(setup):
    fold, clock, h = setup
    fold.stats("{not json")
    fold.stats('{"brokers": 3}')
    assert h.records == []


# ------------------------------------------------------------ JSON log lines
def _record(msg, *args, exc=None, **extra):
    r = logging.LogRecord("mtga.kafka", logging.WARNING, __file__, 1, msg, args or None, exc)
    r.__dict__.update(extra)
    r.created, r.msecs = 1767323045.678, 678.0
    return r


def test_json_line_has_time_level_logger_message_and_the_numbers_as_fields():
    f = logs.formatter("json")
    line = f.format(_record("lag %d on %s\nsecond line", 12, "t[0]", folded=3, broker=B, obj=object()))
    assert "\n" not in line
    d = json.loads(line)
    assert d["time"] == "2026-01-02T03:04:05.678Z"
    assert (d["level"], d["logger"]) == ("WARNING", "mtga.kafka")
    assert d["message"] == "lag 12 on t[0]\nsecond line"
    assert d["args"] == [12, "t[0]"] and d["folded"] == 3 and d["broker"] == B
    assert d["obj"].startswith("<object object")
    assert "exc" not in d


def test_json_line_carries_the_traceback_as_exc():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        rec = _record("it broke", exc=sys.exc_info())
    d = json.loads(logs.formatter("json").format(rec))
    assert d["message"] == "it broke"
    assert d["exc"].startswith("Traceback") and "ValueError: boom" in d["exc"]


def test_worker_records_keep_their_traceback_and_fields_through_the_queue():
    import queue
    q = queue.Queue()
    h = logs.QueueHandler(q)
    try:
        raise KeyError("k")
    except KeyError:
        import sys
        rec = _record("app %s settings broke", 24, exc=sys.exc_info(), app=24)
    h.handle(rec)
    got = q.get_nowait()
    d = json.loads(logs.formatter("json").format(got))
    assert d["message"] == "app 24 settings broke" and d["app"] == 24 and "KeyError: 'k'" in d["exc"]
    text = logs.formatter("text").format(got)
    assert "app 24 settings broke\nTraceback" in text


def test_unknown_format_is_refused():
    with pytest.raises(ValueError):
        logs.formatter("xml")
