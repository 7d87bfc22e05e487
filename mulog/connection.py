"""How every Kafka client of a program reaches the cluster, and the one maker
of those clients.

``Connection`` holds the brokers and the settings every client receives
(``kafka.connection`` in both configuration files: TLS, SASL, a client
certificate); each client adds its own tuning over them. The producer, the
consumer, the admin clients of the queries and topic checks, the fleet
heartbeats and the fleet reader are all made here, so none can connect
without them (tests/repo/test_layout.py refuses a Kafka client made anywhere
else in the programs).
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

from mulog.config import redacted

Kind = Literal["producer", "consumer", "admin"]


class Connection:
    def __init__(self, bootstrap: str, settings: Mapping[str, Any] | None = None):
        self.bootstrap = bootstrap
        self.settings = dict(settings or {})

    def conf(self, extra: Mapping[str, Any] | None = None) -> dict:
        """The client configuration: the brokers, the connection's settings, ``extra`` over them."""
        out: dict = {"bootstrap.servers": self.bootstrap}
        out.update(self.settings)
        out.update(extra or {})
        return out

    def producer(self, extra: Mapping[str, Any] | None = None):
        return make("producer", self.conf(extra))

    def consumer(self, extra: Mapping[str, Any] | None = None):
        return make("consumer", self.conf(extra))

    def admin(self, extra: Mapping[str, Any] | None = None):
        return make("admin", self.conf(extra))

    def __repr__(self) -> str:  # never the secrets
        return f"Connection({self.bootstrap!r}, {redacted(self.settings)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Connection) and (self.bootstrap, self.settings) == (other.bootstrap, other.settings)


def make(kind: Kind, conf: dict):
    """A Kafka client of ``kind`` with ``conf`` as it is (``Connection`` gives the conf)."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

    if kind == "producer":
        return Producer(conf)
    if kind == "consumer":
        return Consumer(conf)
    return AdminClient(conf)
