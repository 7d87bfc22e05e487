"""The built wheel on its own: installed into a new virtualenv, its `shipper` and
`mtga` commands write their example configuration (`init`) and run the demo's
pipeline (sample logs -> shipper -> Kafka -> mtga -> LogBus files), with
nothing of this repository on their path."""

import json
import os
import signal
import subprocess
import sys

import pytest

from mulog import sample
from support.cli import REPO
from support.mtga import wait_for

pytestmark = pytest.mark.kafka



def run(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)


def test_the_wheel_installed_alone_runs_the_pipeline(kafka, topic_factory, tmp_path):
    r = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path / "dist", REPO)
    assert r.returncode == 0, r.stderr
    (whl,) = (tmp_path / "dist").glob("mulog_pipeline-*.whl")
    venv = tmp_path / "venv"
    r = run(sys.executable, "-m", "venv", venv)
    assert r.returncode == 0, r.stderr
    # a PYTHONPATH naming the repository (and the mulog_pipeline.egg-info a build leaves there) would have pip
    # take the package for installed already
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = run(venv / "bin/pip", "install", "-q", "-c", REPO / "constraints.txt", whl, env=env)
    assert r.returncode == 0, r.stderr
    home = tmp_path / "site"  # neither the repository nor its folders: the installed files only
    home.mkdir()
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka
    r = run(venv / "bin/python", "-c", "import mulog, shipper, sink, offsets; print(sink.__file__)", cwd=home, env=env)
    assert r.returncode == 0 and r.stdout.startswith(str(venv)), (r.stdout, r.stderr)
    for prog in ("shipper", "mtga"):
        r = run(venv / "bin" / prog, "--help", cwd=home, env=env)
        assert r.returncode == 0 and "init" in r.stdout, r.stderr
        r = run(venv / "bin" / prog, "init", home / "conf", cwd=home, env=env)
        assert r.returncode == 0 and f"wrote {home / 'conf' / (prog + '.yml')}" in r.stdout, r.stderr
    r = run(venv / "bin/mtga", "init", home / "conf", cwd=home, env=env)
    assert r.returncode != 0 and "exists already" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in (home / "conf" / "settings").iterdir()) == ["filter.24.json", "metadata.24.json"]

    # the examples' relative paths: conf/../demo/{logs,state,output}
    logs = home / "demo" / "logs"
    logs.mkdir(parents=True)
    total = 0
    for i, ln in enumerate(sample.LOG_NAMES):
        lines = list(sample.bare_lines(500, seed=i + 1, log_name=ln))
        (logs / f"{ln}.log").write_bytes(b"".join(x + b"\n" for x in lines))
        total += len(lines)
    topic = topic_factory(partitions=3)
    sconf, mconf = home / "conf" / "shipper.yml", home / "conf" / "mtga.yml"
    sh = subprocess.Popen([str(venv / "bin/shipper"), "tail", "-c", str(sconf), "--topic", topic], cwd=home, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def delivered():
            r = run(venv / "bin/shipper", "status", "-c", sconf, "--json", cwd=home, env=env)
            rows = json.loads(r.stdout)["files"] if r.returncode == 0 and r.stdout.strip() else []
            return len(rows) == len(sample.LOG_NAMES) and all(x["delivered"] == x["size"] for x in rows)

        wait_for(delivered, 60, "every sample line delivered by the installed shipper", every=0.5)
    finally:
        sh.send_signal(signal.SIGTERM)
        assert sh.wait(60) == 0
    out = home / "demo" / "output"
    m = subprocess.Popen([str(venv / "bin/mtga"), "start", "-c", str(mconf), "--topic", topic, "--group-id",
                          f"g-{topic}", "--from-beginning"], cwd=home, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        def written():
            return sum(f.read_bytes().count(b"\n") for f in out.rglob("log.*")) if out.exists() else 0

        wait_for(lambda: written() >= total, 90, "every line in the installed mtga's output", every=0.5)
    finally:
        m.send_signal(signal.SIGTERM)
        assert m.wait(60) == 0
    assert written() == total
    r = run(venv / "bin/mtga", "check-output", out, cwd=home, env=env)
    assert r.returncode == 0 and f"{total} line(s); 0 line(s) break" in r.stdout, (r.stdout, r.stderr)
