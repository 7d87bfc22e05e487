"""One exit-code table (mulog/exitcodes.py), the same in the docs, and every name
the commands use taken from it; a Kafka client error no command caught is one
line with the code of the table."""

import re

from confluent_kafka import KafkaError, KafkaException

from mulog import cli, config
from mulog.exitcodes import MEANING, Exit
from support.cli import REPO


def test_the_table():
    assert [(e.name, int(e)) for e in Exit] == [("OK", 0), ("CONDITION", 1), ("CONFIG", 2), ("UNREACHABLE", 3)]
    assert set(MEANING) == set(Exit)
    assert cli.EXIT_ERROR is Exit.CONDITION and cli.EXIT_TIMEOUT is Exit.UNREACHABLE
    assert cli.EXIT_UNREACHABLE is Exit.UNREACHABLE and config.EXIT_CONFIG is Exit.CONFIG


def test_the_docs_print_the_same_table():
    text = (REPO / "docs" / "operations.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d) \| `(\w+)` \| (.+) \|$", section, re.M)
    assert [(int(c), n, m) for c, n, m in rows] == [(int(e), e.name, MEANING[e]) for e in Exit]


def test_a_kafka_error_is_one_line_and_its_code():
    down = KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))
    assert cli.kafka_error(down) == ("Kafka did not answer: Failed to get metadata", Exit.UNREACHABLE)
    other = KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "not allowed"))
    assert cli.kafka_error(other) == ("Kafka: not allowed", Exit.CONDITION)
    assert cli.kafka_error(ValueError("x")) is None  # anything else is not hidden
