"""``mtga check-config`` checks what ``mtga start`` checks before it touches
Kafka, the apps' settings files and the Kafka client's settings included, with
one line per mistake and exit code 2 from both; a start that fails says so,
in the foreground and with --daemon, and ends."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from support.broken_settings import BROKEN, write_broken
from support.cli import SCRIPTS, run_cli
from support.mtga import tree_env, wait_for


def _conf(tmp_path, port: int, settings: str = "settings", extra: str = "") -> str:
    f = tmp_path / "mtga.yml"
    f.write_text(f"kafka:\n  bootstrap_servers: 127.0.0.1:{port}\n  topics: [t1]\n{extra}"
                 f"state_dir: state\nsettings_dir: {settings}\noutput:\n  dir: out\n")
    return str(f)


def _good_settings(tmp_path):
    (tmp_path / "settings").mkdir(exist_ok=True)
    (tmp_path / "settings" / "metadata.24.json").write_text('{"account_id": "role_id"}')


@pytest.mark.parametrize("command", [["check-config"], ["start"], ["start", "--daemon"]])
def test_thirteen_broken_settings_files_are_thirteen_lines_and_exit_2(tmp_path, refused_port, command):
    write_broken(tmp_path / "settings")
    r = run_cli("mtga", *command, "-c", _conf(tmp_path, refused_port), timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == len(BROKEN) == 13, r.stderr
    for line, (app, (_, file, words)) in zip(lines, sorted(BROKEN.items())):
        assert line.startswith("mtga: config error: "), line
        assert str(tmp_path / "settings" / file) in line, (app, line)
        assert words in line, (app, line)
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not (tmp_path / "state").exists()  # refused before anything was opened


MISSPELT = "  consumer:\n    securty.protocol: SSL\n"


@pytest.mark.parametrize("command", [["check-config"], ["start"], ["start", "--daemon"]])
def test_a_misspelt_client_setting_is_one_line_and_exit_2(tmp_path, refused_port, command):
    _good_settings(tmp_path)
    r = run_cli("mtga", *command, "-c", _conf(tmp_path, refused_port, extra=MISSPELT), timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "kafka.consumer.securty.protocol: the Kafka client refuses it: No such configuration property" \
        in lines[0], lines[0]
    assert "started" not in r.stdout


def test_check_config_refuses_a_broker_list_and_warns_of_an_output_folder_it_cannot_make(tmp_path, refused_port):
    _good_settings(tmp_path)
    (tmp_path / "a-file").write_text("")
    f = tmp_path / "mtga.yml"
    f.write_text('kafka:\n  bootstrap_servers: "not a host list;;"\n  topics: [t1]\nstate_dir: state\n'
                 f'output:\n  dir: {tmp_path / "a-file" / "out"}\n')
    r = run_cli("mtga", "check-config", "-c", str(f))
    assert r.returncode == 2, r.stderr
    assert f"mtga: config error: {f}: kafka.bootstrap_servers: expected a comma-separated list of host:port, got " \
           f"'not a host list;;'" in r.stderr
    assert f"mtga: warning: {f}: output.dir: folder {tmp_path / 'a-file' / 'out'} does not exist and cannot be " \
           f"created" in r.stderr
    f.write_text(f.read_text().replace("not a host list;;", f"127.0.0.1:{refused_port}"))
    r = run_cli("mtga", "check-config", "-c", str(f))
    assert r.returncode == 0, r.stderr
    assert "warning" in r.stderr and f"{f}: ok" in r.stdout


def test_print_fills_in_defaults_and_redacts_secrets(tmp_path, refused_port):
    _good_settings(tmp_path)
    secret = "hunter2-do-not-show"
    extra = (f"  consumer:\n    security.protocol: SASL_PLAINTEXT\n    sasl.mechanism: PLAIN\n"
             f"    sasl.username: mtga\n    sasl.password: {secret}\n")
    r = run_cli("mtga", "check-config", "--print", "-c", _conf(tmp_path, refused_port, extra=extra))
    assert r.returncode == 0, r.stderr
    assert secret not in r.stdout + r.stderr
    import yaml

    dumped = yaml.safe_load(r.stdout)
    assert dumped["kafka"]["consumer"]["sasl.password"] == "<redacted>"
    assert dumped["kafka"]["consumer"]["sasl.username"] == "mtga"
    assert dumped["checkpoint"]["interval_s"] == 10.0  # a default the file did not set
    assert dumped["kafka"]["bootstrap_servers"] == f"127.0.0.1:{refused_port}"


def test_version_and_help_without_type_noise():
    from mulog import version

    for prog in ("mtga", "shipper"):
        r = run_cli(prog, "--version")
        assert r.returncode == 0 and r.stdout.strip() == f"{prog} {version()}", r
        assert version()[0].isdigit()
    r = run_cli("mtga", "start", "--help")
    assert r.returncode == 0
    assert "--daemon" in r.stdout and "<bool>" not in r.stdout and "<path>" not in r.stdout, r.stdout


def test_a_bug_at_start_ends_the_process_and_says_it_once(tmp_path, refused_port):
    """An exception no setting explains, raised while the consumer opens: one
    traceback, exit 1, and the process ends (SIGTERM, if it still ran, too)."""
    _good_settings(tmp_path)
    conf = _conf(tmp_path, refused_port)
    p = subprocess.Popen([sys.executable, str(SCRIPTS / "bug_at_start.py"), conf], env=tree_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=30)  # its shutdown timeout: a hang fails here
    finally:
        p.kill()
    assert p.returncode == 1, err
    assert err.count("Traceback") == 1, err
    assert "not started: an unexpected error (a bug" in err
    assert "stopped" in err  # the final checkpoint ran


def test_a_bug_at_start_with_daemon_is_reported_not_started(tmp_path, refused_port):
    _good_settings(tmp_path)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, str(SCRIPTS / "bug_at_start.py"), _conf(tmp_path, refused_port), "--daemon"],
                       env=tree_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == "mtga: mtga did not start: a bug while opening the consumer"
    assert "started (pid" not in r.stdout
    log = tmp_path / "state" / "mtga.log"
    wait_for(lambda: "INFO mtga: stopped" in log.read_text(), 30, "the daemon's final checkpoint")
    assert log.read_text().count("Traceback") == 1
    assert time.monotonic() - t0 < 60
