"""A writer process for the crash tests of offsets/: pushes failure-queue
entries, acks some, and stores partition offsets in batches, printing a line
to stdout after each operation has returned. The test kills it with SIGKILL.

usage: state_writer.py DBPATH START_ID
"""

import sys

from offsets import FailedEvent, FailureQueue, PartitionOffsets, StateDB


def main() -> None:
    path, start = sys.argv[1], int(sys.argv[2])
    db = StateDB(path, "mtga")
    fq = FailureQueue(db)
    po = PartitionOffsets(db)
    out = sys.stdout
    i = start
    while True:
        payload = b'{"id": %d, "pad": "%s"}' % (i, b"x" * (i % 200))
        fq.push(FailedEvent(payload, f"test: {i}", "t", i % 3, i))
        out.write(f"P {i}\n")
        if i % 7 == 0:
            head = fq.peek(1)
            if head:
                out.write(f"a {head[0].offset}\n")  # intent: it may be gone after a kill from here on
                out.flush()
                fq.ack([head[0].seq])
                out.write(f"A {head[0].offset}\n")
        if i % 5 == 0:
            po.put_many({("t", p): i for p in range(3)})
            out.write(f"O {i}\n")
        out.flush()
        i += 1


if __name__ == "__main__":
    main()
