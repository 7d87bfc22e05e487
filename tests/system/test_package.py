"""The mulog package as an operator installs it: scripts/build-package makes the .deb
and the .rpm; the .deb is installed on this machine (`dpkg -i`, as root), its files
are where the units and the docs say, its commands in /usr/bin run the demo's pipeline
as the mulog user with the installed /etc/mulog configuration (the state and output
in /var/lib/mulog) and `mtga fleet` lists them, its installed units pass
`systemd-analyze verify`, an upgrade keeps an edited configuration file, a removal
keeps the configuration and state, and a purge leaves nothing but the mulog user.

The test installs and purges the package named mulog on this machine (as CI does, as
root); it purges it in any case at the end."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from mulog import examples
from support.cli import REPO
from support.installed import Installed, clean_env, run, ship, sink, write_sample_logs
from support.mtga import wait_for

pytestmark = pytest.mark.kafka

UNITS = [Path("/usr/lib/systemd/system") / u for u in ("mulog-shipper.service", "mulog-mtga.service")]
ETC = Path("/etc/mulog")
CONFS = ["/etc/mulog/shipper.yml", "/etc/mulog/mtga.yml", "/etc/mulog/settings/metadata.24.json",
         "/etc/mulog/settings/filter.24.json"]
STATE, LOGBUS = Path("/var/lib/mulog"), Path("/var/lib/mulog/logbus")
GONE_ON_REMOVE = ["/opt/mulog", "/usr/bin/shipper", "/usr/bin/mtga", *map(str, UNITS)]
GONE_ON_PURGE = [*GONE_ON_REMOVE, str(ETC), str(STATE), "/var/log/mulog"]


def as_root() -> list[str]:
    """The prefix that runs a command as root: none for root, else `sudo -n` (a test
    that cannot be root fails, saying so)."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    pytest.fail("the package test installs a .deb: run it as root, or where `sudo -n` works")


def exists(root: list, path: str) -> bool:
    """``path`` is there (a dangling link counts), seen as root."""
    return run(*root, "test", "-e", path).returncode == 0 or run(*root, "test", "-L", path).returncode == 0


def test_the_package_installs_runs_the_pipeline_and_purges_cleanly(kafka, topic_factory, tmp_path):
    root = as_root()
    for tool in ("dpkg", "dpkg-deb", "systemd-analyze", "setpriv"):
        assert shutil.which(tool) or Path("/usr/bin", tool).exists(), \
            f"{tool} is missing: run scripts/ensure-tools (a Debian machine)"
    user_before = run("getent", "passwd", "mulog").returncode == 0

    r = run(sys.executable, REPO / "scripts" / "build-package", "--out", tmp_path / "dist", env=clean_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (deb,) = (tmp_path / "dist").glob("mulog_*_amd64.deb")
    (rpm,) = (tmp_path / "dist").glob("mulog-*.x86_64.rpm")
    r = run("dpkg-deb", "-f", deb, "Package", "Depends")
    assert r.returncode == 0 and "Package: mulog" in r.stdout and "python3-venv" in r.stdout, r.stdout + r.stderr

    work = Path(tempfile.mkdtemp(prefix="mulog-package-", dir="/var/tmp"))  # the mulog user reads the logs here
    work.chmod(0o755)
    try:
        r = run(*root, "dpkg", "-i", deb, env=clean_env())
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        check_installed(root, deb, rpm)
        check_pipeline(root, kafka, topic_factory, work)
        check_units(root)

        # installed again over itself (dpkg's upgrade path): an edited configuration file is kept, the
        # virtualenv made anew
        r = run(*root, "sed", "-i", "1i # edited on this host", ETC / "shipper.yml")
        assert r.returncode == 0, r.stderr
        r = run(*root, "dpkg", "-i", deb, env=clean_env())
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert run(*root, "head", "-1", ETC / "shipper.yml").stdout == "# edited on this host\n"
        r = run("/usr/bin/shipper", "check-config", "-c", ETC / "shipper.yml", cwd="/", env=clean_env())
        assert r.returncode == 0, r.stdout + r.stderr

        r = run(*root, "dpkg", "-r", "mulog")
        assert r.returncode == 0, r.stdout + r.stderr
        assert [p for p in GONE_ON_REMOVE if exists(root, p)] == []
        kept = [*CONFS, str(LOGBUS), "/var/log/mulog"]
        assert [p for p in kept if not exists(root, p)] == [], "a removal keeps the configuration and the state"
    finally:
        r = run(*root, "dpkg", "--purge", "mulog")
        shutil.rmtree(work, ignore_errors=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert run("dpkg-query", "-W", "mulog").returncode != 0, "dpkg still knows the package"
    assert [p for p in GONE_ON_PURGE if exists(root, p)] == []
    # the user and group stay (files elsewhere may be theirs, as Debian's policy has it); put back as found
    assert run("getent", "passwd", "mulog").returncode == 0 and run("getent", "group", "mulog").returncode == 0
    if not user_before:
        assert run(*root, "userdel", "mulog").returncode == 0
        run(*root, "groupdel", "mulog")


def check_installed(root: list, deb: Path, rpm: Path) -> None:
    r = run("dpkg-query", "-W", "-f", "${Status} ${Version}", "mulog")
    assert r.stdout.startswith("install ok installed "), r.stdout + r.stderr
    listed = set(run("dpkg", "-L", "mulog").stdout.split())
    want = {"/usr/bin/shipper", "/usr/bin/mtga", *map(str, UNITS), *CONFS, "/usr/share/doc/mulog/README.md",
            "/usr/share/doc/mulog/docs/install.md", "/usr/share/doc/mulog/docs/rollout.md"}
    assert want <= listed, sorted(want - listed)
    wheels = sorted(p for p in listed if p.startswith("/opt/mulog/wheels/") and p.endswith(".whl"))
    assert any("/mulog_pipeline-" in w for w in wheels) and any("confluent_kafka-" in w for w in wheels)
    for py in ("cp311", "cp312", "cp313"):
        assert any("rocksdict-" in w and f"-{py}-" in w for w in wheels), f"no rocksdict wheel for {py}"
    conffiles = run("dpkg-query", "-W", "-f", "${Conffiles}", "mulog").stdout
    assert sorted(re.findall(r"^ (\S+) ", conffiles, re.M)) == sorted(CONFS)
    # the configuration is what init writes, production paths and all, readable by the mulog group only
    for name in ("shipper.yml", "mtga.yml"):
        text = run(*root, "cat", ETC / name).stdout
        assert text == examples.production(name, (REPO / "mulog" / "examples" / name).read_text())
    r = run(*root, "stat", "-c", "%n|%U:%G %a", ETC, *CONFS, STATE, LOGBUS, "/var/log/mulog")
    modes = dict(ln.split("|") for ln in r.stdout.splitlines())
    assert modes == {str(ETC): "root:mulog 750", **{c: "root:mulog 640" for c in CONFS},
                     str(STATE): "root:mulog 750", str(LOGBUS): "mulog:mulog 750",
                     "/var/log/mulog": "mulog:mulog 750"}, r.stdout
    assert os.readlink("/usr/bin/shipper") == "/opt/mulog/venv/bin/shipper"
    # the installed code is the package's virtualenv's, not this tree's
    r = run("/opt/mulog/venv/bin/python", "-c", "import sink, shipper; print(sink.__file__)", cwd="/",
            env=clean_env())
    assert r.returncode == 0 and r.stdout.startswith("/opt/mulog/venv/lib/python3"), r.stdout + r.stderr
    for prog in ("shipper", "mtga"):
        r = run(f"/usr/bin/{prog}", "--help", cwd="/", env=clean_env())
        assert r.returncode == 0 and "check-config" in r.stdout, r.stderr
    # the .rpm has the same files, configuration files and scripts
    if shutil.which("rpm"):
        files = set(run("rpm", "-qpl", rpm).stdout.split())
        ours = {p for p in listed if p.startswith(("/opt/mulog/wheels/", "/etc/mulog/", "/usr/bin/", "/usr/lib/systemd/",
                                                   "/usr/share/doc/mulog/")) and not os.path.isdir(p)}
        assert len(ours) > 40 and ours <= files, sorted(ours - files)
        assert sorted(run("rpm", "-qpc", rpm).stdout.split()) == sorted(CONFS)
        scripts = run("rpm", "-qp", "--scripts", rpm).stdout
        assert "useradd --system" in scripts and "-m pip install -q --no-index" in scripts
    else:
        pytest.fail("rpm is missing (to read the .rpm): run scripts/ensure-tools (Debian package rpm)")


def check_pipeline(root: list, kafka: str, topic_factory, work: Path) -> None:
    """/usr/bin's commands with /etc/mulog's files, as the mulog user: a few flags name this
    test's topic, logs and broker; the state and output are the configuration's."""
    logs = work / "logs"
    total = write_sample_logs(logs)
    # what the units' StateDirectory= would make
    for d in ("shipper", "mtga"):
        assert run(*root, "install", "-d", "-o", "mulog", "-g", "mulog", "-m", "0700", STATE / d).returncode == 0
    mulog = [*root, "setpriv", "--reuid", "mulog", "--regid", "mulog", "--init-groups", "--"]
    inst = Installed(Path("/usr/bin"), work, clean_env(), prefix=mulog)
    for prog in ("shipper", "mtga"):
        r = inst.run(prog, "check-config", "-c", ETC / f"{prog}.yml")
        assert r.returncode == 0 and "/var/lib/mulog/" in r.stdout, r.stdout + r.stderr
    topic = topic_factory(partitions=3)
    host = f"package-test-{topic}"  # this test's processes in the fleet view (its topic is the suite's)
    ship(inst, ETC / "shipper.yml", len(list(logs.glob("*.log"))),
         tail_flags=("--topic", topic, "--path", logs / "*.log", "--bootstrap-servers", kafka, "--host", host))

    def written():
        r = run(*root, "find", LOGBUS, "-type", "f", "-name", "log.*", "-exec", "cat", "{}", "+")
        return r.stdout.count("\n") if r.returncode == 0 else 0

    n = sink(inst, ETC / "mtga.yml", total, written,
             start_flags=("--topic", topic, "--group-id", f"g-{topic}", "--from-beginning", "--bootstrap-servers",
                          kafka, "--host", host))
    assert n == total, f"{n} lines in {LOGBUS}, {total} written into the logs: each once"
    r = inst.run("mtga", "check-output", LOGBUS)
    assert r.returncode == 0 and f"{total} line(s); 0 line(s) break" in r.stdout, r.stdout + r.stderr

    # who shipped: `mtga fleet` with the installed configuration lists both, stopped cleanly, at the package's version
    def listed():
        r = inst.run("mtga", "fleet", "-c", ETC / "mtga.yml", "--bootstrap-servers", kafka, "--json")
        rows = json.loads(r.stdout)["hosts"] if r.returncode == 0 else []
        return sorted((x["role"], x["state"], x["version"]) for x in rows if x["host"] == host)

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    want = [("mtga", "stopped", version), ("shipper", "stopped", version)]
    wait_for(lambda: listed() == want, 30, f"both processes listed by mtga fleet as {want}", every=0.5)


def check_units(root: list) -> None:
    analyze = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    for unit in UNITS:
        text = unit.read_text()
        assert text == (REPO / "deploy" / "systemd" / unit.name).read_text()
        r = run(analyze, "verify", unit)
        assert r.returncode == 0 and not r.stderr.strip(), f"{unit}: {r.stdout} {r.stderr}"
        (doc,) = re.findall(r"^Documentation=file://(\S+)$", text, re.M)
        assert Path(doc).is_file(), f"{unit.name}'s Documentation= names {doc}, not installed"
        enabled = Path("/etc/systemd/system/multi-user.target.wants") / unit.name
        assert not enabled.exists(), f"{unit.name} enabled by the package: a new host has no broker address yet"
