"""docker-compose.yml, checked without Docker: its structure, the optional
three-broker profile, and every KAFKA_* variable against the apache/kafka
image's naming rule (``abc.def`` -> ``KAFKA_ABC_DEF``, ``_`` -> ``__``, ``-`` ->
``___``) and the broker properties the test suite's real brokers run with."""

import re
from pathlib import Path

import yaml

import kafkalocal
from support.cli import REPO

BROKERS = ("kafka", "kafka-2", "kafka-3")


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _interpolate(value, env: dict) -> str:
    """Compose's ``${VAR:-default}`` and ``${VAR}``."""
    def sub(m):
        name, default = m.group(1), m.group(3)
        return env.get(name) or (default if default is not None else "")
    return re.sub(r"\$\{([A-Z0-9_]+)(:-([^}]*))?\}", sub, str(value))


def _property(env_name: str) -> str:
    """The broker property an apache/kafka image variable sets."""
    assert env_name.startswith("KAFKA_"), env_name
    s = env_name[len("KAFKA_"):].lower()
    return s.replace("___", "\0").replace("__", "\1").replace("_", ".").replace("\0", "-").replace("\1", "_")


def _known_properties(tmp_path: Path) -> set[str]:
    """Every property kafkalocal gives the suite's real brokers."""
    cl = kafkalocal.Cluster(tmp_path)
    st = kafkalocal.State("x", "id", [kafkalocal.Node(1, 1, 2), kafkalocal.Node(2, 3, 4), kafkalocal.Node(3, 5, 6)])
    cl._write_properties(st, st.nodes[0])
    text = (cl.node_dir(1) / "server.properties").read_text()
    return {ln.split("=", 1)[0] for ln in text.splitlines() if "=" in ln}


def test_default_services_and_cluster_profile():
    d = _compose()
    svc = d["services"]
    default = {n for n, s in svc.items() if not s.get("profiles")}
    cluster = {n for n, s in svc.items() if "cluster" in (s.get("profiles") or [])}
    assert default == {"kafka", "shipper", "mtga"}
    assert cluster == {"kafka-2", "kafka-3"}
    for name, s in svc.items():
        for dep in s.get("depends_on") or {}:
            assert dep in svc, (name, dep)
            if not s.get("profiles"):  # a default service never waits for an optional one
                assert not svc[dep].get("profiles"), (name, dep)
        for v in s.get("volumes") or []:
            src = v.split(":")[0]
            assert src.startswith(".") or src in d["volumes"], (name, v)
    # distinct node ids, host ports and data volumes
    assert len({str(svc[b]["environment"]["KAFKA_NODE_ID"]) for b in BROKERS}) == 3
    assert len({p.rsplit(":", 1)[0] for b in BROKERS for p in svc[b]["ports"]}) == 3
    assert len({svc[b]["volumes"][0].split(":")[0] for b in BROKERS}) == 3


def test_broker_variables_follow_the_image_rules(tmp_path):
    svc = _compose()["services"]
    known = _known_properties(tmp_path)
    ctrl = svc["kafka"]["environment"]
    assert ctrl["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "CONTROLLER://:9093" in ctrl["KAFKA_LISTENERS"]
    for b in BROKERS:
        env = svc[b]["environment"]
        for k in env:
            assert k == "CLUSTER_ID" or _property(k) in known, f"{b}: {k} -> {_property(k)} is no broker property we run"
        # every broker joins the one quorum and advertises its own host name inside the network
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
        assert f"INTERNAL://{svc[b]['hostname']}:19092" in env["KAFKA_ADVERTISED_LISTENERS"]
        assert env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data" == svc[b]["volumes"][0].split(":")[1]
        assert svc[b]["hostname"] in " ".join(svc[b]["healthcheck"]["test"])
    for b in ("kafka-2", "kafka-3"):
        assert svc[b]["environment"]["KAFKA_PROCESS_ROLES"] == "broker"
        assert svc[b]["depends_on"]["kafka"]["condition"] == "service_healthy"
    # one replication setting for the whole cluster: 1/1 by default, 3/2 as the profile asks
    keys = ("KAFKA_DEFAULT_REPLICATION_FACTOR", "KAFKA_MIN_INSYNC_REPLICAS", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR")
    for env, want in (({}, ("1", "1", "1", "1")), ({"MULOG_KAFKA_RF": "3", "MULOG_KAFKA_MIN_ISR": "2"},
                                                    ("3", "2", "3", "2"))):
        for b in BROKERS:
            assert tuple(_interpolate(svc[b]["environment"][k], env) for k in keys) == want, (b, env)
