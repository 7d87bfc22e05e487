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
