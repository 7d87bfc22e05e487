"""`make demo`'s test of "mtga caught up" (sink.ops.queries.caught_up), on offset-checker rows (pure)."""

from sink.ops.queries import caught_up


def row(p, low, high, current, source):
    lag = max(0, high - max(current if current is not None else low, low))
    return {"#": p, "topic": "t", "partition": p, "low": low, "high": high, "current": current,
            "lag": lag, "source": source, "group": None}


def test_an_empty_partition_does_not_hold_the_demo_back():
    rows = [row(0, 0, 8000, 8000, "local"), row(1, 0, 4000, 4000, "local"), row(2, 0, 0, None, "none")]
    assert caught_up(rows)


def test_a_partition_not_yet_consumed_or_stored_does():
    assert not caught_up([row(0, 0, 8000, 8000, "local"), row(1, 0, 4000, None, "none")])
    assert not caught_up([row(0, 0, 8000, 8000, "group")])  # consumed, not yet stored locally
    assert not caught_up([row(0, 0, 8000, 7000, "local")])
    assert not caught_up([])
