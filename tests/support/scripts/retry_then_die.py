"""An mtga that runs one failure-queue retry round and is SIGKILLed between the
round's write (made durable) and the removal of the entries it wrote: the
moment a crash would make a retry write its events twice.

usage: retry_then_die.py CONFIG
"""

import os
import signal
import sys
import time

from offsets import FailureQueue
from sink import config
from sink.pipeline.service import Service


def main() -> None:
    svc = Service(config.load(sys.argv[1]))

    def die(self, seqs, sync=False):
        print(f"written, {len(list(seqs))} entries not removed yet: SIGKILL", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    FailureQueue.ack = die
    FailureQueue.end_round = die  # (the Kafka output's rounds)
    svc.retry.round(now=time.time() + 10**7)  # every entry is due
    print("the round ended without removing anything", flush=True)


if __name__ == "__main__":
    main()
