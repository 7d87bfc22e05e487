"""The shipper's configuration (shipper/config.py): inputs from the command line's
flags over the file, and the limits and producer settings it refuses."""


import pytest

from mulog.config import ConfigError
from shipper import config


def write_conf(tmp_path, text):
    f = tmp_path / "shipper.yml"
    f.write_text(text)
    return f



def test_flags_alone_make_an_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    s = config.load_tail(None, config.TailFlags(paths=["logs/*.log"], topic="t1", app_id=24, log_name="log_x",
                                                state_dir="st", bootstrap_servers="h:1", from_beginning=True))
    (inp,) = s.inputs
    assert inp.paths == [str(tmp_path / "logs/*.log")]
    assert (inp.topic, inp.app_id, inp.log_name, inp.start_at) == ("t1", 24, "log_x", "beginning")
    assert s.state_dir == tmp_path / "st" and s.db_path == tmp_path / "st" / "db"
    assert s.bootstrap_servers == "h:1"



def test_flag_only_run_names_the_missing_flags(tmp_path):
    with pytest.raises(ConfigError) as e:
        config.load_tail(None, config.TailFlags(paths=["x/*.log"], topic="t"))
    assert "--app-id, --log-name" in str(e.value)



def test_flags_override_the_file_input(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:1")
    f = write_conf(tmp_path, "inputs:\n  - paths: ['a/*.log']\n    topic: t0\n    app_id: 1\n"
                             "    log_name_pattern: '^(?P<log_name>.+)\\.log$'\n    start_at: end\n")
    s = config.load_tail(f, config.TailFlags(topic="t9", log_name="fixed"))
    (inp,) = s.inputs
    assert inp.paths == [str(tmp_path / "a/*.log")]
    assert (inp.topic, inp.app_id, inp.log_name, inp.log_name_pattern, inp.start_at) == ("t9", 1, "fixed", None, "end")
    assert s.bootstrap_servers == "env:1"  # the environment over the file
    s = config.load_tail(f, config.TailFlags(bootstrap_servers="flag:1", from_beginning=True))
    assert s.bootstrap_servers == "flag:1"  # a flag over the environment
    assert s.inputs[0].start_at == "beginning"



def test_input_flags_refuse_a_file_with_several_inputs(tmp_path):
    one = "  - paths: ['a/*.log']\n    topic: t0\n    app_id: 1\n    log_name: a\n"
    f = write_conf(tmp_path, "inputs:\n" + one + one)
    with pytest.raises(ConfigError) as e:
        config.load_tail(f, config.TailFlags(topic="x"))
    assert "the file has 2 inputs" in str(e.value)



def test_no_input_at_all(tmp_path):
    f = write_conf(tmp_path, "rescan_interval_s: 1\n")
    with pytest.raises(ConfigError) as e:
        config.load_tail(f, config.TailFlags())
    assert "inputs" in str(e.value) and "at least one input" in str(e.value)



def test_max_line_must_fit_in_a_kafka_message(tmp_path):
    f = write_conf(tmp_path, "kafka:\n  producer:\n    message.max.bytes: 100000\ninputs:\n  - paths: [a]\n"
                             "    topic: t\n    app_id: 1\n    log_name: a\n    max_line_bytes: 200000\n")
    with pytest.raises(ConfigError) as e:
        config.load(f)
    assert "inputs[0].max_line_bytes" in str(e.value) and "at most 95904" in str(e.value)



@pytest.mark.parametrize("key, value", [("enable.idempotence", "false"), ("acks", "1"),
                                        ("request.required.acks", "0"), ("enable.gapless.guarantee", "false"),
                                        ("partitioner", "random")])
def test_producer_settings_the_delivery_rests_on_are_refused(tmp_path, key, value):
    """Idempotence, acks=all, the gap-less guarantee and the partitioner are what
    lets one acknowledgement per read chunk stand for its lines: a configuration
    that changes one is refused in one line naming the file, the key and why."""
    from support.cli import run_cli

    f = write_conf(tmp_path, f"kafka:\n  producer:\n    linger.ms: 5\n    {key}: {value}\n")
    with pytest.raises(ConfigError) as e:
        config.load(f)
    assert str(e.value).startswith(f"{f}: kafka.producer: {key!r} is managed by the shipper (always "), str(e.value)
    assert "cannot be set here" in str(e.value)
    r = run_cli("shipper", "check-config", "-c", str(f))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"kafka.producer: {key!r} is managed by the shipper" in r.stderr
    s = config.load(write_conf(tmp_path, "kafka:\n  producer:\n    linger.ms: 5\n"))
    assert (s.producer["enable.idempotence"], s.producer["acks"], s.producer["enable.gapless.guarantee"],
            s.producer["partitioner"]) == (True, "all", True, "consistent_random")
