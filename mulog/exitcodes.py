"""The exit codes of every command of both programs, in one table.

docs/operations.md#exit-codes prints the same table (tests/unit/mulog/test_exitcodes.py
checks that they agree). A command that fails says why in one line on standard
error; the code tells a script what kind of failure it was:

    0  OK           done; for a query: the program runs and works
    1  CONDITION    a condition found: not running, something to report (a stall,
                    a file that breaks a rule), a request refused, a stop that did
                    not finish in time, a state store that cannot be read
    2  CONFIG       the configuration or the command line is wrong
    3  UNREACHABLE  the daemon or Kafka did not answer: a query to a stuck daemon,
                    a status while the running program cannot reach Kafka, a query
                    Kafka did not answer

A program that runs (``shipper tail``, ``mtga start``) ends with 0 after a clean
stop and 1 after a failure.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    CONDITION = 1
    CONFIG = 2
    UNREACHABLE = 3


MEANING = {
    Exit.OK: "done; for a query: the program runs and works",
    Exit.CONDITION: "a condition found: not running, something to report (a stall, a file that breaks a rule), "
                    "a request refused, a stop that did not finish in time, a state store that cannot be read",
    Exit.CONFIG: "the configuration or the command line is wrong",
    Exit.UNREACHABLE: "the daemon or Kafka did not answer: a query to a stuck daemon, a status while the running "
                      "program cannot reach Kafka, a query Kafka did not answer",
}
