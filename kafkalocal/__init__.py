"""A real Apache Kafka broker (KRaft) on 127.0.0.1, fetched from Maven Central.

Used by `scripts/kafka-local` (``python -m kafkalocal``), by the test suite, by `make demo` and by the
benchmarks: all of them start the broker through this package.

The broker jars (org.apache.kafka:kafka_2.13 and its runtime dependencies) are
copied by Maven (kafkalocal/pom.xml) into a cache outside git:
``$KAFKA_LOCAL_CACHE`` or ``~/.cache/mulog/kafka/<version>``.

Runtime files live in a home folder (kafkalocal/cluster.py says which).

``start --brokers N`` runs N combined broker+controller nodes (one KRaft
quorum of N voters), each with its own listener and controller ports and data
folder; topics are created with replication factor min(3, N) and, from three
nodes on, ``min.insync.replicas=2``. Kafka's own ``kafka-consumer-groups`` and
``kafka-topics`` run from the same jars plus ``kafka-tools`` (fetched on first
use into ``<cache>/tools``).

``start --secure`` runs one broker with TLS from a private CA, SASL users, client
certificates and deny-by-default ACLs (kafkalocal/secure.py).
"""

from kafkalocal.cluster import Cluster, Node, State
from kafkalocal.common import KAFKA_VERSION, KafkaLocalError
from kafkalocal.jars import ensure_jars, ensure_tools, tool_command
from kafkalocal.ports import free_port

__all__ = ["Cluster", "Node", "State", "KafkaLocalError", "KAFKA_VERSION", "ensure_jars", "ensure_tools",
           "tool_command", "free_port"]
