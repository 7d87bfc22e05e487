"""Kafka reachable or since when not, as both programs' status says it."""

from mulog.exitcodes import Exit
from mulog.kafka_state import describe, exit_code, reach


def test_reachable_unreachable_and_not_answered_yet():
    up = reach("k:9092", True, None, 0, now=100.0)
    assert up["reachable"] is True and describe(up) == "Kafka at k:9092 reachable" and exit_code(up) is Exit.OK
    new = reach("k:9092", False, None, 0, now=100.0)
    assert new["reachable"] is None and "has not answered yet" in describe(new) and exit_code(new) is Exit.OK
    down = reach("k:9092", False, 62.0, 755, now=100.0)
    assert down == {"bootstrap": "k:9092", "reachable": False, "contacted": False, "down_since": 62.0,
                    "down_for_s": 38.0, "errors": 755, "denied": None}
    assert exit_code(down) is Exit.UNREACHABLE
    said = describe(down)
    assert said.startswith("Kafka at k:9092 UNREACHABLE since ") and said.endswith("(38s, 755 client errors since)")
    assert describe(reach("k", True, 99.0, 1, now=100.0)).endswith("(1s, 1 client error since)")


def test_turned_away_says_what_to_fix_and_is_a_condition():
    k = reach("k:9093", True, None, 0, now=100.0, denied="User:shipper is not allowed to Write topic t")
    assert describe(k) == "Kafka TURNS IT AWAY: User:shipper is not allowed to Write topic t"
    assert exit_code(k) is Exit.CONDITION
