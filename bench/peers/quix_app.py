"""PEER of `mtga start`: a Quix Streams application doing the naive transform.

What a team would write with Quix Streams instead of mtga: consume the topic in
a fresh group from the earliest offset, ``json.loads`` each envelope, build the
track dict (``bench/naive.py``'s ``naive_line``: the same fields, ``uuid5`` of
topic, partition and offset), ``json.dumps`` it, and write the lines through a
``BatchingSink`` into one file (flushed at each of Quix's checkpoints, every
``commit_interval`` seconds, 5 by default). It stops after N outputs.

Runs in its own virtual environment (Quix Streams pins its own confluent-kafka):
``python -m venv bench/work/peers/quix-venv && bench/work/peers/quix-venv/bin/pip
install quixstreams==3.28.1``; bench/run.py starts it as ``PYTHON
bench/peers/quix_app.py --bootstrap B --topic T --group G --count N --out FILE``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/naive.py: standard library only

from naive import arguments, naive_line  # noqa: E402


def main(argv=None) -> int:
    ap = arguments(__doc__)
    a = ap.parse_args(argv)

    from quixstreams import Application, message_context
    from quixstreams.sinks import BatchingSink, SinkBatch

    class FileSink(BatchingSink):
        def __init__(self, path: str):
            super().__init__()
            self.f = open(path, "ab")

        def write(self, batch: SinkBatch) -> None:
            self.f.write(b"".join(item.value for item in batch))
            self.f.flush()

    app = Application(broker_address=a.bootstrap, consumer_group=a.group, auto_offset_reset="earliest",
                      loglevel="WARNING")
    topic = app.topic(a.topic, value_deserializer="bytes")

    def transform(value: bytes) -> bytes:
        ctx = message_context()
        _app, text = naive_line(value, ctx.topic, ctx.partition, ctx.offset)
        return text.encode() + b"\n"

    sdf = app.dataframe(topic).apply(transform)
    sdf.sink(FileSink(a.out))
    app.run(count=a.count, collect=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
