"""`make demo`: sample game logs -> local Kafka, end to end.

Starts the local broker (scripts/kafka_local.py), writes realistic sample game
logs under demo/logs, and runs the pipeline stages that exist.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import kafka_local  # noqa: E402

from mulog import sample  # noqa: E402


def write_logs(folder: Path, per_file: int = 2000) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for i, ln in enumerate(sample.LOG_NAMES):
        path = folder / f"{ln}.log"
        with open(path, "wb") as f:
            for line in sample.bare_lines(per_file, seed=i + 1, log_name=ln):
                f.write(line + b"\n")
        counts[path.name] = per_file
    return counts


def main() -> int:
    try:
        st = kafka_local.Cluster().start()
    except kafka_local.KafkaLocalError as e:
        print(f"demo: cannot start Kafka: {e}", file=sys.stderr)
        return 1
    print(f"demo: Kafka runs at {st.bootstrap} (scripts/kafka-local stop to stop it)")
    counts = write_logs(REPO / "demo" / "logs")
    print(f"demo: wrote {sum(counts.values())} sample lines into {len(counts)} files under demo/logs")
    print("demo: the shipper and mtga stages are not part of this build yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
