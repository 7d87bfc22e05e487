"""deploy/: the Prometheus alert rules pass `promtool check rules` and fire as
their unit tests say (`promtool test rules`, Debian's prometheus package), and
every metric the rules and the Grafana dashboard name is one a live shipper or
mtga exports (scraped over HTTP from real processes on the real broker)."""

import json
import re
import shutil
import subprocess
import urllib.request

import pytest

import kafkalocal
from support import mtga as mtga_helpers
from support.cli import REPO
from support.shipper import ShipperProc
from support.shipper import write_conf as shipper_conf

pytestmark = pytest.mark.kafka

RULES = REPO / "deploy" / "prometheus" / "mulog-rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "mulog-rules.test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "mulog-dashboard.json"
NAME = re.compile(r"\b(?:shipper|mtga)_[a-z0-9_]+\b")


def promtool(*args):
    exe = shutil.which("promtool")
    assert exe, "promtool is not installed (scripts/ensure-tools installs Debian's prometheus package)"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, cwd=RULES.parent)


def test_alert_rules_pass_promtool_and_fire_as_their_tests_say():
    r = promtool("check", "rules", RULES.name)
    assert r.returncode == 0 and "SUCCESS: 10 rules found" in r.stdout, r.stdout + r.stderr
    r = promtool("test", "rules", RULE_TESTS.name)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def names_used() -> set:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    used = {n for e in exprs for n in NAME.findall(e)}
    used |= set(NAME.findall(RULES.read_text()))
    return used


def exported(port: int) -> set:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {m.group(1) for m in re.finditer(r"^# TYPE (\S+) \S+$", text, re.M)}


def test_every_metric_the_dashboard_and_rules_name_is_exported(kafka, topic_factory, tmp_path):
    topic = topic_factory(partitions=3)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text('{"n":1}\n')
    sport, mport = kafkalocal.free_port(), kafkalocal.free_port()
    sconf = shipper_conf(tmp_path / "shipper.yml", bootstrap=kafka, state=tmp_path / "sstate",
                         metrics={"enabled": True, "port": sport},
                         inputs=[{"paths": [str(logs / "*.log")], "topic": topic, "app_id": 24, "log_name": "x"}])
    mtga_helpers.write_settings(tmp_path / "settings")
    mconf = mtga_helpers.write_conf(tmp_path, kafka, topic, f"g-{topic}", metrics={"enabled": True, "port": mport})
    sh = ShipperProc(sconf, tmp_path / "shipper.log").start()
    m = mtga_helpers.Mtga(mconf).start()
    try:
        have = mtga_helpers.wait_for(lambda: (x := _try(exported, sport)) and (y := _try(exported, mport)) and x | y,
                                     60, "both programs' metrics", every=0.5)
        used = names_used()
        assert {n.split("_", 1)[0] for n in used} == {"shipper", "mtga"}
        missing = used - have
        assert not missing, f"named in deploy/ but not exported: {sorted(missing)}"
    finally:
        sh.kill_if_alive()
        if m.alive():
            m.kill()


def _try(f, *args):
    try:
        return f(*args)
    except OSError:
        return set()
