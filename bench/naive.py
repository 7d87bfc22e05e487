"""The naive baseline of mtga: what a plain Python loop does with the same events.

``naive_line`` is the transform written the obvious way (json.loads, build the
track dict, uuid.uuid5, json.dumps); ``main`` is the consumer around it
(confluent-kafka consume in batches, one buffered text file per app id). No
settings, no checks, no offsets stored: it is the floor the real mtga must beat.

Run by bench/run.py as ``python bench/naive.py --bootstrap B --topic T
--group G --count N --out DIR``; it exits once it has written N events.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

NS = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # the URL namespace


def naive_line(payload: bytes, topic: str, partition: int, offset: int) -> tuple[int, str]:
    """-> (app_id, track line) for one envelope."""
    env = json.loads(payload)
    h = env["headers"]
    logs = env["logs"]
    d = {
        "#type": "track",
        "#event_name": "t_" + h["log_name"],
        "#time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(logs["mtime"])),
        "#account_id": str(logs["role_id"]),
        "#uuid": str(uuid.uuid5(NS, f"{topic}|{partition}|{offset}")),
        "properties": logs,
    }
    return h["app_id"], json.dumps(d)


def arguments(doc: str) -> argparse.ArgumentParser:
    """The options of a consumer run by bench/run.py (this one's, bench/peers/quix_app.py's)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True)
    return ap


def main(argv=None) -> int:
    ap = arguments(__doc__)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args(argv)

    from confluent_kafka import Consumer

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict = {}
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([a.topic])
    n = 0
    deadline = time.monotonic() + a.timeout
    try:
        while n < a.count:
            if time.monotonic() > deadline:
                print(f"naive: timed out after {a.timeout:.0f}s with {n} of {a.count} events", file=sys.stderr)
                return 1
            for m in c.consume(a.batch, 1.0):
                if m.error() is not None:
                    continue
                app, line = naive_line(m.value(), m.topic(), m.partition(), m.offset())
                f = files.get(app)
                if f is None:
                    (out / str(app)).mkdir(exist_ok=True)
                    f = files[app] = open(out / str(app) / "log.naive", "w")
                f.write(line + "\n")
                n += 1
    finally:
        for f in files.values():
            f.close()
        c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
