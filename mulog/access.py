"""What to fix when Kafka turns a client away: an authentication failure (the
credentials), an authorization failure (an ACL to add: principal, operation,
topic or group) and a topic that does not exist are told apart, each in one
line that names what to change. Both programs keep the last such line until
Kafka accepts them again; ``/ready`` and ``status`` show it.

    line = denial(err, conn, "Write", topic)   # None for any other error
"""

from __future__ import annotations

import re
from typing import Any, Optional

from mulog.connection import Connection

AUTHENTICATION = frozenset(("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED"))
AUTHORIZATION = {
    "TOPIC_AUTHORIZATION_FAILED": "topic",
    "GROUP_AUTHORIZATION_FAILED": "group",
    "CLUSTER_AUTHORIZATION_FAILED": "cluster",
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED": "transactional-id",
}
MISSING = frozenset(("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC"))
_TOPIC_IN_TEXT = re.compile(r"(?:topic|Topic)[^:]*: ([A-Za-z0-9._-]+)")


def principal(conn: Connection) -> str:
    """The principal the client presents, as the ACLs name it (as far as its settings tell)."""
    s = conn.settings
    protocol = str(s.get("security.protocol", "plaintext")).lower()
    if "sasl" in protocol and s.get("sasl.username"):
        return f"User:{s['sasl.username']}"
    if protocol == "ssl" and (s.get("ssl.certificate.location") or s.get("ssl.certificate.pem")):
        where = s.get("ssl.certificate.location") or "ssl.certificate.pem"
        return f"the principal of the client certificate {where}"
    if "sasl" in protocol:
        return f"the {s.get('sasl.mechanism', 'SASL')} principal"
    return "User:ANONYMOUS"


def denial(err: Any, conn: Connection, operation: str, resource: Optional[str] = None,
           group: Optional[str] = None) -> Optional[str]:
    """One line saying what to fix for ``err`` (a KafkaError), or None when it is not
    an authentication, authorization or missing-topic error. ``operation`` is what the
    client was doing to the topic ``resource`` (``Write``, ``Read``, ``Describe``)."""
    name = err.name() if hasattr(err, "name") else ""
    text = err.str() if hasattr(err, "str") else str(err)
    who = principal(conn)
    if name in AUTHENTICATION or "authentication" in text.lower() and name.startswith("_"):
        return (f"Kafka at {conn.bootstrap} did not accept the credentials of {who}: authentication failed "
                f"({text}); check kafka.connection (sasl.username, sasl.password, or the client certificate)")
    if name == "_SSL":
        return (f"the TLS handshake with Kafka at {conn.bootstrap} failed ({text}); check kafka.connection "
                f"(ssl.ca.location: the CA that signed the brokers' certificates; the client certificate and key)")
    topic = resource or _topic_in(text)
    if name in AUTHORIZATION:
        kind = AUTHORIZATION[name]
        if kind == "group":
            what, op, flag = f"group {group or '?'}", "Read", f"--group {group or '<group>'}"
        elif kind == "topic":
            what, op, flag = f"topic {topic or '?'}", operation, f"--topic {topic or '<topic>'}"
        elif kind == "transactional-id":  # ``resource``: the id
            what, op = f"transactional id {resource or '?'}", "Write"
            flag = f"--operation Describe --transactional-id {resource or '<id>'}"
        else:
            what, op, flag = kind, operation, f"--{kind}"
        return (f"{who} is not allowed to {op} {what} at {conn.bootstrap} ({text}); an ACL must allow it: "
                f"kafka-acls --add --allow-principal {_acl_principal(who)} --operation {op} {flag}")
    if name in MISSING:
        return f"topic {topic or '?'} does not exist at {conn.bootstrap} ({text}); create it, or fix the name"
    return None


def writes_refused(conn: Connection, text: str, topics: list[str]) -> Optional[str]:
    """The line for a producer whose writes are refused as a whole (the idempotent
    producer's id is refused when no ACL allows the principal to Write), or None
    when ``text`` is not an authorization failure."""
    if "authorization failed" not in text.lower():
        return None
    who = principal(conn)
    shown = ", ".join(topics) or "?"
    return (f"{who} is not allowed to Write topic {shown} at {conn.bootstrap} ({text}); an ACL must allow it: "
            f"kafka-acls --add --allow-principal {_acl_principal(who)} --operation Write --topic "
            f"{topics[0] if len(topics) == 1 else '<topic>'}")


def _topic_in(text: str) -> Optional[str]:
    m = _TOPIC_IN_TEXT.search(text)
    return m.group(1) if m else None


def _acl_principal(who: str) -> str:
    return who if who.startswith("User:") else "User:<name>"
