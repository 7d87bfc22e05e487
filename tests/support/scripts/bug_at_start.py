"""``mtga start`` whose consumer cannot be opened because of a bug (an
exception no user setting explains), to see how the process ends.

usage: bug_at_start.py CONFIG [mtga start's other arguments]
"""

import sys

from sink.ops import cli
from sink.pipeline.intake import Intake


def broken(self):
    raise RuntimeError("a bug while opening the consumer")


if __name__ == "__main__":
    Intake.open = broken
    sys.argv = ["mtga", "start", "-c", *sys.argv[1:]]
    cli.main()
