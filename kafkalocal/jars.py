"""The broker's jars and Kafka's tools jar, fetched by Maven from Maven Central
(pom.xml beside this module) into a cache outside git:
``$KAFKA_LOCAL_CACHE`` or ``~/.cache/mulog/kafka/<version>``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from kafkalocal.common import KAFKA_VERSION, MAVEN_CENTRAL, POM, KafkaLocalError, log


def cache_dir() -> Path:
    base = os.environ.get("KAFKA_LOCAL_CACHE")
    if base:
        return Path(base).expanduser() / KAFKA_VERSION
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "mulog" / "kafka" / KAFKA_VERSION


def ensure_jars() -> Path:
    """Return the folder of broker jars, fetching them with Maven when missing."""
    libs = cache_dir() / "libs"
    done = cache_dir() / ".complete"
    if done.exists() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    if shutil.which("mvn") is None:
        raise KafkaLocalError("Maven (mvn) is not installed; it is needed to fetch the Kafka broker jars")
    if shutil.which("java") is None:
        raise KafkaLocalError("java is not installed; the Kafka broker needs Java 17 or newer")
    log(f"fetching Apache Kafka {KAFKA_VERSION} (org.apache.kafka:kafka_2.13) from Maven Central into {libs}")
    tmp = cache_dir() / "libs.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mvn", "-B", "-q", "-f", str(POM), "package",
        f"-Dkafka.version={KAFKA_VERSION}", f"-Dkafka.libdir={tmp}",
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        reach = "reachable" if _reachable("repo1.maven.org", 443) else "NOT reachable"
        raise KafkaLocalError(
            f"could not fetch the Kafka broker from Maven Central ({MAVEN_CENTRAL} is {reach} "
            f"from this machine); Maven said:\n{tail}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    done.write_text(KAFKA_VERSION + "\n")
    n = len(list(libs.glob("*.jar")))
    log(f"fetched {n} jars from Maven Central in {time.monotonic() - t0:.1f}s")
    return libs


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


def tools_dir() -> Path:
    return cache_dir() / "tools"


def ensure_tools() -> Path:
    """Return the folder holding Kafka's command-line tools jar (kafka-tools), fetching
    it with Maven when missing. Its dependencies are the broker's jars (ensure_jars)."""
    ensure_jars()
    d = tools_dir()
    if any(d.glob("kafka-tools-*.jar")):
        return d
    if shutil.which("mvn") is None:
        raise KafkaLocalError("Maven (mvn) is not installed; it is needed to fetch Kafka's tools jar")
    log(f"fetching org.apache.kafka:kafka-tools:{KAFKA_VERSION} from Maven Central into {d}")
    tmp = cache_dir() / "tools.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = ["mvn", "-B", "-q", "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
           f"-Dartifact=org.apache.kafka:kafka-tools:{KAFKA_VERSION}", f"-DoutputDirectory={tmp}"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0 or not any(tmp.glob("kafka-tools-*.jar")):
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise KafkaLocalError(f"could not fetch kafka-tools from Maven Central; Maven said:\n{tail}")
    shutil.rmtree(d, ignore_errors=True)
    tmp.rename(d)
    return d


TOOLS = {
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "topics": "org.apache.kafka.tools.TopicCommand",
}


def tool_command(tool: str, *args: str) -> list[str]:
    """The java command line of one of Kafka's tools (as kafka-<tool>.sh runs it)."""
    libs = ensure_jars()
    tools = ensure_tools()
    return ["java", "-Xmx256m", "-Djava.awt.headless=true", "-cp", f"{libs / '*'}:{tools / '*'}",
            TOOLS[tool], *args]
