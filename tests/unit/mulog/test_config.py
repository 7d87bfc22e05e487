"""Configuration: each mistake gives one line naming the file, the key and what
was expected, and exit code 2 (checked through the real console scripts)."""


import pytest

from mulog.config import ConfigError
from shipper import config as shipper_config
from sink import config as mtga_config
from support.cli import REPO, run_cli

MTGA_OK = "kafka:\n  topics: [mulog_clean_24]\nsettings_dir: {settings}\n"
SHIPPER_INPUT = "inputs:\n  - paths: ['logs/*.log']\n    topic: mulog_clean_24\n    app_id: 24\n"

CASES = [
    # (program, yaml text, expected key in the message, expected words)
    ("mtga", "kafka:\n  group_id: 12\n  topics: [a]\n", "kafka.group_id", "expected str, got int"),
    ("mtga", "kafka:\n  topics: [a]\n  grup_id: x\n", "kafka.grup_id", "unknown key"),
    ("mtga", "kafka:\n  topics: [a]\noutput:\n  rotation: weekly\n", "output.rotation", "expected one of daily, hourly"),
    ("mtga", "kafka:\n  topics: a\n", "kafka.topics", "expected a list"),
    ("mtga", "kafka:\n  group_id: x\n", "kafka.topics", "set at least one topic"),
    ("mtga", "kafka:\n  topics: [a]\n  topic_pattern: '^a$'\n", "kafka.topic_pattern", "not both"),
    ("mtga", "kafka:\n  topic_pattern: '(['\n", "kafka.topic_pattern", "expected a regular expression"),
    ("mtga", "kafka:\n  topics: [a]\ncheckpoint:\n  interval_s: 0\n", "checkpoint.interval_s", "greater than 0"),
    ("mtga", "kafka:\n  topics: [a]\n  consumer:\n    enable.auto.commit: true\n", "kafka.consumer", "managed by mtga"),
    ("mtga", "kafka:\n  topics: [a]\nsettings_dir: /nonexistent/settings\n", "settings_dir", "does not exist"),
    ("mtga", "kafka:\n  topics: [a]\noutput:\n  prefix: '../x'\n", "output.prefix", "expected only letters"),
    ("mtga", "kafka:\n  topics: [a]\nworkers: -1\n", "workers", "expected 0"),
    ("mtga", "kafka:\n  topics: [a]\nstats_interval_s: 0\n", "stats_interval_s", "greater than 0"),
    ("mtga", "kafka:\n  topics: [a]\nlog:\n  level: loud\n", "log.level", "expected one of debug, info"),
    ("mtga", "kafka:\n  topics: [a]\nlog:\n  format: xml\n", "log.format", "expected one of text, json"),
    ("mtga", "kafka: [1, 2]\n", "kafka", "expected a mapping"),
    ("mtga", "- a\n- b\n", None, "expected a mapping of keys at the top level"),
    ("mtga", "kafka:\n  topics: [a\n", None, "YAML syntax error at line"),
    ("shipper", "inputs:\n  - paths: []\n    topic: x\n    app_id: 1\n    log_name: a\n", "inputs[0].paths", "at least one glob"),
    ("shipper", SHIPPER_INPUT, "inputs[0].log_name", "exactly one of log_name or log_name_pattern"),
    ("shipper", SHIPPER_INPUT + "    log_name: a\n    start_at: middle\n", "inputs[0].start_at", "expected one of beginning, end"),
    ("shipper", SHIPPER_INPUT + "    log_name_pattern: 'x'\n", "inputs[0].log_name_pattern", "named group"),
    ("shipper", "inputs:\n  - paths: [x]\n    topic: 'bad topic'\n    app_id: 1\n    log_name: a\n", "inputs[0].topic", "Kafka topic name"),
    ("shipper", "inputs:\n  - paths: [x]\n    topic: t\n    app_id: '../../etc'\n    log_name: a\n", "inputs[0].app_id", "expected int, got str"),
    ("shipper", "inputs:\n  - paths: [x]\n    topic: t\n    app_id: -3\n    log_name: a\n", "inputs[0].app_id", "non-negative"),
    ("shipper", "inputs:\n  - paths: [x]\n    topic: t\n    app: 1\n", "inputs[0].app", "unknown key"),
    ("shipper", "rescan_interval_s: fast\n", "rescan_interval_s", "expected float, got str"),
    ("shipper", "metrics:\n  port: 70000\n", "metrics.port", "from 0 to 65535"),
    ("shipper", "log:\n  format: JSON\n", "log.format", "expected one of text, json"),
]


@pytest.mark.parametrize("prog, text, key, words", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_mistake_is_one_clear_line(tmp_path, prog, text, key, words):
    f = tmp_path / f"{prog}.yml"
    (tmp_path / "settings").mkdir()
    f.write_text(text)
    r = run_cli(prog, "check-config", "-c", str(f))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert str(f) in line
    if key:
        assert f": {key}: " in line, line
    assert words in line, line
    assert "Traceback" not in r.stderr


def test_missing_file(tmp_path):
    r = run_cli("mtga", "check-config", "-c", str(tmp_path / "nope.yml"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"mtga: config error: {tmp_path / 'nope.yml'}: file not found"


def test_shipped_examples_are_valid():
    for prog, f in (("mtga", "conf/mtga.yml"), ("shipper", "conf/shipper.yml")):
        r = run_cli(prog, "check-config", "-c", str(REPO / f))
        assert r.returncode == 0, r.stderr
        assert "ok" in r.stdout


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    sub = tmp_path / "etc"
    (sub / "settings").mkdir(parents=True)
    f = sub / "mtga.yml"
    f.write_text("kafka:\n  topics: [a]\nstate_dir: ../state\noutput:\n  dir: out\n")
    monkeypatch.chdir("/")
    s = mtga_config.load(f)
    assert s.state_dir == tmp_path / "state"
    assert s.output_dir == sub / "out"
    assert s.settings_dir == sub / "settings"
    assert s.socket_path == tmp_path / "state" / "run" / "mtga.sock"


def test_bootstrap_env_overrides_both_programs(tmp_path, monkeypatch):
    (tmp_path / "settings").mkdir()
    m = tmp_path / "mtga.yml"
    m.write_text("kafka:\n  bootstrap_servers: a:1\n  topics: [t]\n")
    s = tmp_path / "shipper.yml"
    s.write_text("kafka:\n  bootstrap_servers: a:1\n")
    assert mtga_config.load(m).bootstrap_servers == "a:1"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "b:2")
    assert mtga_config.load(m).bootstrap_servers == "b:2"
    assert shipper_config.load(s).bootstrap_servers == "b:2"


def test_producer_overrides_merge_over_defaults(tmp_path):
    f = tmp_path / "s.yml"
    f.write_text("kafka:\n  producer:\n    linger.ms: 5\n")
    s = shipper_config.load(f)
    assert s.producer["linger.ms"] == 5
    assert s.producer["compression.type"] == "snappy"
    assert s.producer["enable.idempotence"] is True


def test_a_topic_pattern_the_consumer_would_read_otherwise_is_refused(tmp_path):
    """The consumer matches topic_pattern as a POSIX regular expression, the
    queries with Python's: '\\d' would make mtga consume nothing while
    offset-checker counted lag (tests/test_mtga_cases.py shows it with a broker)."""
    (tmp_path / "settings").mkdir()
    f = tmp_path / "mtga.yml"
    for bad, hint in ((r"^mulog_clean_\d+$", "write [0-9]"), (r"^(?:a|b)_x$", "(?"), (r"^t_[[:digit:]]$", "[:")):
        f.write_text(f"kafka:\n  topic_pattern: '{bad}'\n")
        with pytest.raises(ConfigError) as e:
            mtga_config.load(f)
        assert str(e.value).startswith(f"{f}: kafka.topic_pattern: ") and hint in str(e.value), str(e.value)
    f.write_text("kafka:\n  topic_pattern: '^mulog_clean_[0-9]+$'\n")
    assert mtga_config.load(f).conf.kafka.topic_pattern == "^mulog_clean_[0-9]+$"


def test_a_yaml_mistake_shows_the_line_it_is_on_and_the_line_found(tmp_path):
    """PyYAML finds a missing ':' on the line after it: both lines are shown."""
    f = tmp_path / "shipper.yml"
    f.write_text("kafka:\n  bootstrap_servers: a:1\nstate_dir x\nlog:\n  level: info\n")
    r = run_cli("shipper", "check-config", "-c", str(f))
    assert r.returncode == 2
    assert r.stderr.strip() == (f"shipper: config error: {f}: YAML syntax error at line 4, column 1: could not find "
                                f"expected ':' (while scanning a simple key at line 3); line 3: 'state_dir x'; "
                                f"line 4: 'log:'")


def test_references_to_the_environment_and_to_files(tmp_path, monkeypatch):
    """${VAR}, ${env:VAR} and ${file:PATH} in values; $${ is a literal; an error names
    the variable or the file, never a value."""
    from mulog.config import ConfigError, read_yaml

    (tmp_path / "secret").write_text("pa55-from-file\n")
    monkeypatch.setenv("MULOG_T_BROKERS", "k1:9093,k2:9093")
    monkeypatch.setenv("MULOG_T_USER", "shipper")
    f = tmp_path / "shipper.yml"
    f.write_text("kafka:\n  bootstrap_servers: ${MULOG_T_BROKERS}\n  connection:\n"
                 "    sasl.username: user-${env:MULOG_T_USER}\n    sasl.password: ${file:secret}\n"
                 "    note: $${kept}\n")
    k = read_yaml(f)["kafka"]
    assert k["bootstrap_servers"] == "k1:9093,k2:9093"
    assert k["connection"] == {"sasl.username": "user-shipper", "sasl.password": "pa55-from-file",
                               "note": "${kept}"}
    f.write_text("kafka:\n  connection:\n    sasl.password: ${MULOG_T_UNSET}\n")
    with pytest.raises(ConfigError) as e:
        read_yaml(f)
    assert str(e.value) == f"{f}: kafka.connection.sasl.password: environment variable MULOG_T_UNSET is not set"
    f.write_text("kafka:\n  connection:\n    sasl.password: ${file:/nonexistent/pw}\n")
    with pytest.raises(ConfigError) as e:
        read_yaml(f)
    assert str(e.value) == (f"{f}: kafka.connection.sasl.password: cannot read /nonexistent/pw (No such file or "
                            f"directory)")


def test_the_connection_may_not_hold_the_brokers(tmp_path):
    f = tmp_path / "mtga.yml"
    (tmp_path / "settings").mkdir()
    f.write_text("kafka:\n  topics: [t]\n  connection:\n    bootstrap.servers: x:1\n")
    r = run_cli("mtga", "check-config", "-c", str(f))
    assert r.returncode == 2
    assert "kafka.connection: 'bootstrap.servers' has a key of its own (kafka.bootstrap_servers" in r.stderr
