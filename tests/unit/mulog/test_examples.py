"""The example files `init` writes (mulog.examples): the demo's relative paths in the
repository's conf/, the production paths (/var/lib/mulog, as the systemd units expect)
in a copy written anywhere else, so that both load and name folders that work there."""

from pathlib import Path

import pytest

from mulog import examples
from shipper import config as shipper_config
from sink import config as mtga_config
from support.cli import REPO

UNITS = REPO / "deploy" / "systemd"


def test_each_production_line_replaces_one_whole_line_of_the_example():
    for name, pairs in examples.PRODUCTION.items():
        text = (REPO / "mulog" / "examples" / name).read_text()
        lines = text.splitlines()
        for old, new in pairs:
            assert lines.count(old) == 1, (name, old)
        prod = examples.production(name, text)
        assert "../demo" not in prod and prod.count("\n") == text.count("\n")
    with pytest.raises(ValueError, match="there 0 times"):
        examples.production("shipper.yml", "state_dir: elsewhere\n")


def test_a_copy_written_elsewhere_names_the_production_folders(tmp_path):
    folder = tmp_path / "etc" / "mulog"
    written = examples.write("shipper", folder) + examples.write("mtga", folder)
    assert sorted(p.relative_to(folder).as_posix() for p in written) == [
        "mtga.yml", "settings/filter.24.json", "settings/metadata.24.json", "shipper.yml"]
    s = shipper_config.load(folder / "shipper.yml")
    assert s.state_dir == Path("/var/lib/mulog/shipper")
    assert s.conf.inputs[0].paths == ["/var/log/game/*.log"]
    m = mtga_config.load(folder / "mtga.yml")
    assert (m.state_dir, m.output_dir, m.settings_dir) == (
        Path("/var/lib/mulog/mtga"), Path("/var/lib/mulog/logbus"), folder / "settings")
    # the folders the units may write: every path the copy names is one of them
    shipper_unit, mtga_unit = (UNITS / "mulog-shipper.service").read_text(), (UNITS / "mulog-mtga.service").read_text()
    assert f"ReadWritePaths={s.state_dir} " in shipper_unit
    assert f"ReadWritePaths={m.state_dir} {m.output_dir} " in mtga_unit
    # the settings are copied as they are
    assert (folder / "settings" / "metadata.24.json").read_bytes() == \
        (REPO / "mulog" / "examples" / "settings" / "metadata.24.json").read_bytes()


def test_the_repository_conf_keeps_the_demo_paths(tmp_path):
    """conf/ links to the examples: writing there (--force) leaves them as they are, and
    they name the demo's folders beside conf/."""
    conf = tmp_path / "conf"
    conf.mkdir()
    src = REPO / "mulog" / "examples" / "shipper.yml"
    before = src.read_bytes()
    (conf / "shipper.yml").symlink_to(src)
    assert examples.write("shipper", conf, force=True) == [conf / "shipper.yml"]
    assert src.read_bytes() == before and b"state_dir: ../demo/state/shipper" in before
    assert shipper_config.load(REPO / "conf" / "shipper.yml").state_dir == REPO / "demo" / "state" / "shipper"


def test_an_existing_file_is_kept_unless_forced(tmp_path):
    (tmp_path / "shipper.yml").write_text("mine\n")
    with pytest.raises(FileExistsError):
        examples.write("shipper", tmp_path)
    assert (tmp_path / "shipper.yml").read_text() == "mine\n"
    examples.write("shipper", tmp_path, force=True)
    assert "state_dir: /var/lib/mulog/shipper" in (tmp_path / "shipper.yml").read_text()
