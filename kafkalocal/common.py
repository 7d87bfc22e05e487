"""What every part of kafkalocal shares: the version, the error meant for the
user, and how it speaks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG4J = HERE / "log4j2.properties"
KAFKA_VERSION = os.environ.get("KAFKA_LOCAL_VERSION", "4.1.1")
MAVEN_CENTRAL = "https://repo1.maven.org/maven2/"


class KafkaLocalError(Exception):
    """A failure with a message meant for the user (no traceback)."""


def log(msg: str) -> None:
    print(f"kafka-local: {msg}", file=sys.stderr, flush=True)
