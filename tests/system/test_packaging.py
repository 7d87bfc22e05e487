"""The built wheel on its own: installed into a new virtualenv, its `shipper` and
`mtga` commands write their example configuration (`init`, with the production
paths) and run the demo's pipeline (sample logs -> shipper -> Kafka -> mtga ->
LogBus files), with nothing of this repository on their path."""

import sys

import pytest

from support.cli import REPO
from support.installed import Installed, clean_env, run, ship, sink, write_sample_logs

pytestmark = pytest.mark.kafka


def test_the_wheel_installed_alone_runs_the_pipeline(kafka, topic_factory, tmp_path):
    r = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path / "dist", REPO)
    assert r.returncode == 0, r.stderr
    (whl,) = (tmp_path / "dist").glob("mulog_pipeline-*.whl")
    venv = tmp_path / "venv"
    r = run(sys.executable, "-m", "venv", venv)
    assert r.returncode == 0, r.stderr
    env = clean_env()
    r = run(venv / "bin/pip", "install", "-q", "-c", REPO / "constraints.txt", whl, env=env)
    assert r.returncode == 0, r.stderr
    home = tmp_path / "site"  # neither the repository nor its folders: the installed files only
    home.mkdir()
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka
    inst = Installed(venv / "bin", home, env)
    r = run(venv / "bin/python", "-c", "import mulog, shipper, sink, offsets; print(sink.__file__)", cwd=home, env=env)
    assert r.returncode == 0 and r.stdout.startswith(str(venv)), (r.stdout, r.stderr)
    for prog in ("shipper", "mtga"):
        r = inst.run(prog, "--help")
        assert r.returncode == 0 and "init" in r.stdout, r.stderr
        r = inst.run(prog, "init", home / "conf")
        assert r.returncode == 0 and f"wrote {home / 'conf' / (prog + '.yml')}" in r.stdout, r.stderr
    r = inst.run("mtga", "init", home / "conf")
    assert r.returncode != 0 and "exists already" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in (home / "conf" / "settings").iterdir()) == ["filter.24.json", "metadata.24.json"]
    sconf, mconf = home / "conf" / "shipper.yml", home / "conf" / "mtga.yml"
    # init writes the production paths (not the demo's ../demo, which would resolve beside the copy)
    assert "state_dir: /var/lib/mulog/shipper" in sconf.read_text()
    assert "state_dir: /var/lib/mulog/mtga" in mconf.read_text() and "dir: /var/lib/mulog/logbus" in mconf.read_text()

    # the pipeline, in this test's folders: the flags override those paths
    logs, state, out = home / "demo" / "logs", home / "demo" / "state", home / "demo" / "output"
    total = write_sample_logs(logs)
    topic = topic_factory(partitions=3)
    ship(inst, sconf, len(list(logs.glob("*.log"))),
         tail_flags=("--topic", topic, "--path", logs / "*.log", "--state-dir", state / "shipper"),
         status_flags=("--state-dir", state / "shipper"))

    def written():
        return sum(f.read_bytes().count(b"\n") for f in out.rglob("log.*")) if out.exists() else 0

    n = sink(inst, mconf, total, written, start_flags=("--topic", topic, "--group-id", f"g-{topic}", "--from-beginning",
                                                         "--state-dir", state / "mtga", "--output-dir", out))
    assert n == total
    r = inst.run("mtga", "check-output", out)
    assert r.returncode == 0 and f"{total} line(s); 0 line(s) break" in r.stdout, (r.stdout, r.stderr)
