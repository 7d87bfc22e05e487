"""``shipper check-config`` checks what ``shipper tail`` checks before it
touches Kafka, with one line per mistake and exit code 2 from both."""

from __future__ import annotations

import pytest

from support.cli import run_cli


def _conf(tmp_path, body: str) -> str:
    f = tmp_path / "shipper.yml"
    f.write_text(body)
    return str(f)


def _input(tmp_path, paths: str | None = None) -> str:
    (tmp_path / "logs").mkdir(exist_ok=True)
    return (f"inputs:\n  - paths: [{paths or tmp_path / 'logs' / '*.log'}]\n    topic: t1\n    app_id: 24\n"
            f"    log_name: login\nstate_dir: {tmp_path / 'state'}\n")


@pytest.mark.parametrize("command", ["check-config", "tail"])
def test_a_misspelt_client_setting_is_one_line_and_exit_2(tmp_path, refused_port, command):
    f = _conf(tmp_path, f"kafka:\n  bootstrap_servers: 127.0.0.1:{refused_port}\n  producer:\n"
                        f"    securty.protocol: SSL\n" + _input(tmp_path))
    r = run_cli("shipper", command, "-c", f, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f'shipper: config error: {f}: kafka.producer.securty.protocol: the Kafka client refuses it: No such '
        f'configuration property: "securty.protocol"']
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("command", ["check-config", "tail"])
@pytest.mark.parametrize("body", ["", "state_dir: state\n"], ids=["empty", "no-inputs"])
def test_a_file_without_inputs_is_refused_by_both(tmp_path, command, body):
    f = _conf(tmp_path, body)
    r = run_cli("shipper", command, "-c", f, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"shipper: config error: {f}: inputs: expected at least one input (in the file, " \
                               f"or --path, --topic, --app-id and --log-name)"


def test_a_broker_list_that_is_not_one_is_refused(tmp_path):
    f = _conf(tmp_path, 'kafka:\n  bootstrap_servers: "not a host list;;"\n' + _input(tmp_path))
    r = run_cli("shipper", "check-config", "-c", f)
    assert r.returncode == 2
    assert r.stderr.strip() == (f"shipper: config error: {f}: kafka.bootstrap_servers: expected a comma-separated "
                                f"list of host:port, got 'not a host list;;'")


def test_a_folder_that_does_not_exist_is_a_warning(tmp_path, refused_port):
    f = _conf(tmp_path, f"kafka:\n  bootstrap_servers: 127.0.0.1:{refused_port}\n"
                        + _input(tmp_path, "/nonexistent/game/logs/*.log"))
    r = run_cli("shipper", "check-config", "-c", f)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == (f"shipper: warning: {f}: inputs[0].paths[0]: folder /nonexistent/game/logs does "
                                f"not exist (yet): nothing is read from /nonexistent/game/logs/*.log until it does")
    assert f"{f}: ok (1 input(s)" in r.stdout


def test_print_redacts_the_producer_secrets(tmp_path, refused_port):
    f = _conf(tmp_path, f"kafka:\n  bootstrap_servers: 127.0.0.1:{refused_port}\n  producer:\n"
                        f"    security.protocol: SASL_PLAINTEXT\n    sasl.mechanism: PLAIN\n"
                        f"    sasl.username: shipper\n    sasl.password: s3cret-value\n" + _input(tmp_path))
    r = run_cli("shipper", "check-config", "-c", f, "--print")
    assert r.returncode == 0, r.stderr
    assert "s3cret-value" not in r.stdout + r.stderr
    assert "sasl.password: <redacted>" in r.stdout and "rescan_interval_s: 10.0" in r.stdout
