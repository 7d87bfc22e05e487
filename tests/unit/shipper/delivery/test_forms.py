"""shipper/delivery/forms.py's partition count of a topic for the key form
(pure: the lookup is a function given to it): 0 while not known (the headers
form then), looked up again after a while, and a known count kept when a
lookup cannot tell."""

from __future__ import annotations

from shipper.delivery.forms import PARTITIONS_S, UNKNOWN_S, partitions


def test_a_partition_count_not_known_known_then_kept():
    answers = [0, 0, 3, 0, 6]
    asked = []

    def lookup(topic):
        asked.append(topic)
        return answers[len(asked) - 1]

    cache: dict = {}
    t = 1000.0
    assert partitions(cache, "t", t, lookup) == 0 and len(asked) == 1
    assert partitions(cache, "t", t + UNKNOWN_S / 2, lookup) == 0 and len(asked) == 1  # not asked again yet
    assert partitions(cache, "t", t + UNKNOWN_S + 1, lookup) == 0 and len(asked) == 2
    t2 = t + 2 * UNKNOWN_S + 2
    assert partitions(cache, "t", t2, lookup) == 3 and len(asked) == 3
    assert partitions(cache, "t", t2 + UNKNOWN_S + 1, lookup) == 3 and len(asked) == 3  # known: kept a while
    assert partitions(cache, "t", t2 + PARTITIONS_S + 1, lookup) == 3 and len(asked) == 4  # cannot tell: kept
    assert partitions(cache, "t", t2 + 2 * PARTITIONS_S + 2, lookup) == 6 and len(asked) == 5


class _Tailer:
    topic = "t"
    key_prefix = b"P\x1f"


def _frame(data: bytes, start: int = 0, max_line: int = 1 << 20):
    from shipper.files.framing import Framer

    return Framer(start, max_line).feed(data)


def _produce_full_at(full: set[int]):
    """A produce() that queues what it is given, in order, except that its calls
    numbered in ``full`` raise BufferError (the producer's queue full) once."""
    sent, calls, raised = [], [0], []

    def produce(topic, value, key, part, chunk=None):
        calls[0] += 1
        if calls[0] in full:
            raised.append(calls[0])
            raise BufferError("queue full")
        sent.append((topic, value, key, part, chunk))

    return produce, sent, raised


def test_the_key_form_sends_each_line_once_in_order_through_full_queues():
    from shipper.delivery.forms import send_keyed

    for data, start, max_line in ((b"".join(b"line %d\n" % i for i in range(50)), 1000, 1 << 20),
                                  (b"a\n\nbb\n" + b"x" * 30 + b"\nccc\n", 7, 10)):  # empty and cut lines: offsets kept
        frame = _frame(data, start, max_line)
        want = [(line, off) for line, off in zip(frame.lines, frame.offsets or [
            start + sum(len(x) + 1 for x in frame.lines[:i]) for i in range(len(frame.lines))])]
        n = len(frame.lines)
        for full in (set(), {1}, {3, 4, 9}, {n}, {2, n + 1}):  # n + 1: the last line, after one failure
            produce, sent, raised = _produce_full_at(full)
            waits = []
            send_keyed(produce, lambda: waits.append(1), _Tailer(), frame, "CHUNK", 2)
            assert [(v, k) for _, v, k, _, _ in sent] == [(line, b"P\x1f%d" % off) for line, off in want], full
            assert {(t, p) for t, _, _, p, _ in sent} == {("t", 2)}
            assert [c for *_, c in sent] == [None] * (len(want) - 1) + ["CHUNK"]  # the chunk on the last line
            assert raised == sorted(c for c in full if c <= len(want) + len(raised)), full  # each full queue met
            assert len(waits) == len(raised), full  # ... and waited on
