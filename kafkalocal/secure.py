"""A secured local broker (``kafka-local start --secure``): TLS from a private CA
made here with openssl, SASL users (SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN), client
certificates, and Kafka's StandardAuthorizer denying what no ACL allows.

Everything lives in ``<home>/secure`` (0700; keys and passwords 0600):

- ``ca.pem`` (the CA's certificate, every client's trust) and ``ca.key``;
- ``broker.key`` and ``broker.pem`` (CN=broker, for 127.0.0.1 and localhost), both in
  ``broker-keystore.pem``, the broker's PEM key store;
- ``<user>.pem`` and ``<user>.key`` for the certificate users (CN=<user>);
- ``<user>.password`` for the SASL users;
- ``admin.properties``: the admin's Java client settings, for Kafka's tools;
- ``clients.json``: the addresses and every user's client settings.

The broker has one SASL_SSL listener (SASL principals), one SSL listener that
requires a client certificate (the principal is its CN: CN=shipper is
User:shipper) and the controller listener, SSL with client certificates too.
The broker talks to itself and to its controller over mutual TLS as User:broker;
User:broker and User:admin are the super users. No listener is plaintext.

Passwords are written to files and never printed."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kafkalocal.common import KafkaLocalError
from kafkalocal.ports import free_port

SASL_USERS = ("admin", "shipper", "mtga", "nobody")
CERT_USERS = ("shipper", "mtga", "nobody")
SUPER_USERS = ("admin", "broker")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
TOPIC_PREFIX = "mulog_"
FLEET_TOPIC = "mulog_fleet"
GROUP_PREFIXES = ("mtga", "g-")
CERT_DAYS = 30
ACL_TIMEOUT_S = 30.0


def secure_dir(home: Path | str) -> Path:
    return Path(home).resolve() / "secure"


def _private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise KafkaLocalError(f"openssl {args[0]} failed:\n{proc.stdout[-1500:]}")


def _issue(d: Path, name: str, cn: str, ext: str) -> None:
    """An EC key ``<name>.key`` (PKCS#8) and its certificate ``<name>.pem`` signed by the CA."""
    key, csr, crt = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem"
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}")
    os.chmod(key, 0o600)
    with tempfile.NamedTemporaryFile("w", dir=d, suffix=".ext") as f:
        f.write(ext)
        f.flush()
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
                 "-set_serial", str(secrets.randbits(63)), "-days", str(CERT_DAYS), "-sha256",
                 "-extfile", f.name, "-out", str(crt))
    csr.unlink()


def prepare(home: Path | str) -> Path:
    """Make the CA, the certificates, the users' passwords and the admin's tool
    settings in ``<home>/secure`` (all anew: a new cluster gets new secrets)."""
    d = secure_dir(home)
    if d.exists():
        for p in d.iterdir():
            p.unlink()
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", str(CERT_DAYS), "-sha256",
             "-subj", "/CN=mulog kafka-local CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    os.chmod(d / "ca.key", 0o600)
    leaf = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    _issue(d, "broker", "broker", leaf + "extendedKeyUsage=serverAuth,clientAuth\n"
           "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    # Kafka's PEM key store: the key and then the certificate, in one file
    _private(d / "broker-keystore.pem", (d / "broker.key").read_text() + (d / "broker.pem").read_text())
    for user in CERT_USERS:
        _issue(d, user, user, leaf + "extendedKeyUsage=clientAuth\n")
    for user in SASL_USERS:
        _private(d / f"{user}.password", secrets.token_hex(24) + "\n")
    _private(d / "admin.properties", "".join(f"{k}={v}\n" for k, v in _java_client(home, "admin").items()))
    return d


def password(home: Path | str, user: str) -> str:
    return (secure_dir(home) / f"{user}.password").read_text().strip()


def _java_client(home: Path | str, user: str) -> dict:
    d = secure_dir(home)
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": ("org.apache.kafka.common.security.scram.ScramLoginModule required "
                             f'username="{user}" password="{password(home, user)}";'),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(d / "ca.pem"),
    }


def pick_tls_port(taken: set[int]) -> int:
    p = free_port()
    while p in taken:
        p = free_port()
    return p


def broker_properties(home: Path | str, port: int, tls_port: int, controller_port: int) -> dict:
    """The settings of a secured node, over those of a plaintext one: its listeners
    (SASL_SSL on ``port``, mutual TLS on ``tls_port``), TLS, SASL and the authorizer."""
    d = secure_dir(home)
    plain_users = " ".join(f'user_{u}="{password(home, u)}"' for u in SASL_USERS)
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{port},SSL://127.0.0.1:{tls_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{port},SSL://127.0.0.1:{tls_port}",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:SSL",
        "inter.broker.listener.name": "SSL",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(d / "broker-keystore.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(d / "ca.pem"),
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.client.auth": "required",
        "listener.name.sasl_ssl.ssl.client.auth": "none",
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)(,.*)?$/$1/,DEFAULT",
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": ",".join(MECHANISMS),
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": scram,
        "listener.name.sasl_ssl.plain.sasl.jaas.config":
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": ";".join(f"User:{u}" for u in SUPER_USERS),
        "auto.create.topics.enable": "false",
    }


def format_args(home: Path | str) -> list[str]:
    """``kafka-storage format`` arguments that create the SCRAM users."""
    out = []
    for mech in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
        for u in SASL_USERS:
            out += ["--add-scram", f"{mech}=[name={u},password={password(home, u)}]"]
    return out


def redact(home: Path | str, text: str) -> str:
    """``text`` with every user's password replaced by ``***``."""
    for u in SASL_USERS:
        try:
            text = text.replace(password(home, u), "***")
        except OSError:
            pass
    return text


# clients ---------------------------------------------------------------------
def connection(home: Path | str, user: str, via: str = "sasl", mechanism: str = "SCRAM-SHA-512") -> dict:
    """The librdkafka settings for ``user`` (``kafka.connection`` of a program), over
    SASL_SSL (``via="sasl"``, the password as ``${file:...}``) or mutual TLS (``via="mtls"``)."""
    d = secure_dir(home)
    if via == "sasl":
        return {"security.protocol": "SASL_SSL", "sasl.mechanism": mechanism, "sasl.username": user,
                "sasl.password": "${file:%s}" % (d / f"{user}.password"), "ssl.ca.location": str(d / "ca.pem")}
    if via == "mtls":
        return {"security.protocol": "SSL", "ssl.certificate.location": str(d / f"{user}.pem"),
                "ssl.key.location": str(d / f"{user}.key"), "ssl.ca.location": str(d / "ca.pem")}
    raise ValueError(f"via: sasl or mtls, not {via!r}")


def resolved(settings: dict) -> dict:
    """``settings`` with each ``${file:PATH}`` value replaced by the file's text
    (stripped), for a client used right here."""
    out = {}
    for k, v in settings.items():
        if isinstance(v, str) and v.startswith("${file:") and v.endswith("}"):
            v = Path(v[7:-1]).read_text().strip()
        out[k] = v
    return out


def admin_conf(home: Path | str, bootstrap: str) -> dict:
    """librdkafka settings of the super user ``admin`` (SCRAM-SHA-512), password included."""
    return dict(resolved(connection(home, "admin")), **{"bootstrap.servers": bootstrap})


def write_clients(home: Path | str, sasl_bootstrap: str, tls_bootstrap: str) -> Path:
    d = secure_dir(home)
    doc = {
        "bootstrap": {"sasl_ssl": sasl_bootstrap, "ssl": tls_bootstrap},
        "ca": str(d / "ca.pem"),
        "users": {u: {"password_file": str(d / f"{u}.password"),
                      **({"certificate": str(d / f"{u}.pem"), "key": str(d / f"{u}.key")} if u in CERT_USERS else {})}
                  for u in SASL_USERS},
        "clients": {u: {"sasl": connection(home, u), **({"mtls": connection(home, u, "mtls")} if u in CERT_USERS else {})}
                    for u in SASL_USERS},
        "acls": {"topic_prefix": TOPIC_PREFIX, "fleet_topic": FLEET_TOPIC, "group_prefixes": list(GROUP_PREFIXES)},
    }
    p = d / "clients.json"
    p.write_text(json.dumps(doc, indent=1) + "\n")
    return p


def client_settings_text(home: Path | str) -> str:
    """What ``start --secure`` prints: the addresses and, per principal, the YAML of
    the programs' ``kafka`` section (no password: ``${file:...}`` names its file)."""
    doc = json.loads((secure_dir(home) / "clients.json").read_text())
    b = doc["bootstrap"]
    lines = [f"SASL_SSL (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN): {b['sasl_ssl']}",
             f"SSL with a client certificate (mutual TLS):    {b['ssl']}",
             f"CA: {doc['ca']}", f"client settings of every user: {secure_dir(home) / 'clients.json'}", ""]
    for user in ("shipper", "mtga"):
        for via, addr, what in (("sasl", b["sasl_ssl"], "SASL_SSL, SCRAM-SHA-512"),
                                ("mtls", b["ssl"], "mutual TLS")):
            lines.append(f"# {user} ({what})")
            lines.append("kafka:")
            lines.append(f'  bootstrap_servers: "{addr}"')
            lines.append("  connection:")
            lines += [f'    {k}: "{v}"' for k, v in doc["clients"][user][via].items()]
            lines.append("")
    return "\n".join(lines)


# ACLs ------------------------------------------------------------------------
def _info(home_or_info) -> "Secured":
    return home_or_info if isinstance(home_or_info, Secured) else Secured.load(home_or_info)


def _bindings(principal: str, resource_type: str, name: str, operations, pattern: str, host: str = "*"):
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, ResourcePatternType,
                                       ResourceType)

    if isinstance(operations, str):
        operations = [operations]
    if not principal.startswith("User:"):
        principal = f"User:{principal}"
    return [AclBinding(ResourceType[resource_type.upper()], name, ResourcePatternType[pattern.upper()],
                       principal, host, AclOperation[op.upper().replace("-", "_")], AclPermissionType.ALLOW)
            for op in operations]


def _admin(info: "Secured"):
    import logging

    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("kafka-local.client")
    quiet.propagate = False
    return AdminClient(dict(info.admin_conf(), logger=quiet, log_level=0))


def _present(admin, binding) -> bool:
    from confluent_kafka.admin import AclBindingFilter

    f = AclBindingFilter(binding.restype, binding.name, binding.resource_pattern_type, binding.principal,
                         binding.host, binding.operation, binding.permission_type)
    return bool(admin.describe_acls(f).result(timeout=10))


def _settle(admin, bindings, present: bool) -> None:
    """Wait until the broker's authorizer shows (or no longer shows) every binding."""
    deadline = time.monotonic() + ACL_TIMEOUT_S
    while not all(_present(admin, b) == present for b in bindings):
        if time.monotonic() > deadline:
            raise KafkaLocalError(f"the broker did not {'add' if present else 'remove'} the ACLs in {ACL_TIMEOUT_S:.0f}s")
        time.sleep(0.1)


def grant(home_or_info, principal: str, resource_type: str, name: str, operations,
          pattern: str = "LITERAL") -> None:
    """Allow ``principal`` (``shipper`` or ``User:shipper``) ``operations`` (``"READ"``,
    ``["WRITE", "DESCRIBE"]``...) on the resource (``"topic"``, ``"group"``, ``"cluster"``
    named ``kafka-cluster``...), its name taken ``LITERAL`` or ``PREFIXED``. Returns once
    the broker enforces it."""
    info = _info(home_or_info)
    admin = _admin(info)
    bindings = _bindings(principal, resource_type, name, operations, pattern)
    for f in admin.create_acls(bindings).values():
        f.result(timeout=ACL_TIMEOUT_S)
    _settle(admin, bindings, True)


def revoke(home_or_info, principal: str, resource_type: str, name: str, operations,
           pattern: str = "LITERAL") -> None:
    """Take back what ``grant`` with the same arguments allowed."""
    info = _info(home_or_info)
    admin = _admin(info)
    bindings = _bindings(principal, resource_type, name, operations, pattern)
    for f in admin.delete_acls([_as_filter(b) for b in bindings]).values():
        f.result(timeout=ACL_TIMEOUT_S)
    _settle(admin, bindings, False)


def _as_filter(b):
    from confluent_kafka.admin import AclBindingFilter

    return AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation,
                            b.permission_type)


def default_acls(topic_prefix: str = TOPIC_PREFIX, fleet: str = FLEET_TOPIC,
                 group_prefixes=GROUP_PREFIXES) -> list[tuple]:
    """The least-privilege ACLs: (principal, resource type, name, operations, pattern).
    The idempotent producer needs no IdempotentWrite on the cluster: Write on a topic
    allows it (Kafka 2.8 on)."""
    acls = [
        ("shipper", "topic", topic_prefix, ["WRITE", "DESCRIBE"], "PREFIXED"),
        ("shipper", "topic", fleet, ["WRITE", "DESCRIBE"], "LITERAL"),
        ("mtga", "topic", topic_prefix, ["READ", "DESCRIBE"], "PREFIXED"),
        ("mtga", "topic", fleet, ["WRITE", "DESCRIBE", "READ"], "LITERAL"),
    ]
    acls += [("mtga", "group", g, ["READ", "DESCRIBE"], "PREFIXED") for g in group_prefixes]
    return acls


def after_start(home: Path | str, sasl_bootstrap: str, tls_bootstrap: str) -> "Secured":
    """Once the broker answers: the fleet topic, the default ACLs, ``clients.json``."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    write_clients(home, sasl_bootstrap, tls_bootstrap)
    info = Secured.load(home)
    admin = _admin(info)
    fut = admin.create_topics([NewTopic(FLEET_TOPIC, num_partitions=1, replication_factor=1,
                                        config={"cleanup.policy": "compact", "segment.ms": "3600000"})])
    try:
        fut[FLEET_TOPIC].result(timeout=30)
    except KafkaException as e:
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise KafkaLocalError(f"creating {FLEET_TOPIC} failed: {e}") from None
    bindings = [b for acl in default_acls() for b in _bindings(*acl)]
    for f in admin.create_acls(bindings).values():
        f.result(timeout=ACL_TIMEOUT_S)
    _settle(admin, bindings, True)
    return info


@dataclass
class Secured:
    """A secured cluster's addresses and files, from its ``clients.json``."""

    home: Path
    sasl_bootstrap: str
    tls_bootstrap: str
    ca: Path

    @classmethod
    def load(cls, home: Path | str) -> "Secured":
        p = secure_dir(home) / "clients.json"
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            raise KafkaLocalError(f"no secured local Kafka in {Path(home).resolve()} ({p} is missing)") from None
        return cls(Path(home).resolve(), doc["bootstrap"]["sasl_ssl"], doc["bootstrap"]["ssl"], Path(doc["ca"]))

    @property
    def dir(self) -> Path:
        return secure_dir(self.home)

    def password_file(self, user: str) -> Path:
        return self.dir / f"{user}.password"

    def password(self, user: str) -> str:
        return password(self.home, user)

    def certificate(self, user: str) -> Path:
        return self.dir / f"{user}.pem"

    def key(self, user: str) -> Path:
        return self.dir / f"{user}.key"

    def connection(self, user: str, via: str = "sasl", mechanism: str = "SCRAM-SHA-512") -> dict:
        """``kafka.connection`` of a program run as ``user`` (the password as ``${file:...}``)."""
        return connection(self.home, user, via, mechanism)

    def client_conf(self, user: str, via: str = "sasl", mechanism: str = "SCRAM-SHA-512") -> dict:
        """Complete librdkafka settings for a client here: address, TLS, credentials."""
        addr = self.sasl_bootstrap if via == "sasl" else self.tls_bootstrap
        return dict(resolved(self.connection(user, via, mechanism)), **{"bootstrap.servers": addr})

    def admin_conf(self) -> dict:
        return admin_conf(self.home, self.sasl_bootstrap)

    def grant(self, principal: str, resource_type: str, name: str, operations, pattern: str = "LITERAL") -> None:
        grant(self, principal, resource_type, name, operations, pattern)

    def revoke(self, principal: str, resource_type: str, name: str, operations, pattern: str = "LITERAL") -> None:
        revoke(self, principal, resource_type, name, operations, pattern)

    def create_topic(self, name: str, partitions: int = 1) -> str:
        """Create topic ``name`` as the admin (the programs' users may not)."""
        from confluent_kafka.admin import NewTopic

        admin = _admin(self)  # kept until the answer: a handle dropped earlier fails the future
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(timeout=30)
        return name

    def delete_topics(self, names: list[str]) -> None:
        admin = _admin(self)
        for f in admin.delete_topics(list(names)).values():
            try:
                f.result(timeout=30)
            except Exception:
                pass
