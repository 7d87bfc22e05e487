"""Per-app settings files: validation with clear reasons, reload on change,
last good settings kept when a file breaks or disappears."""

import os

from sink.ta.settings import AppSettings, Problem, SettingsStore

GOOD = '{\n  // ok\n  "account_id": "role_id",\n  "time": {"field": "mtime", "time_zone": "+08:00"},\n}\n'


def bump(p):
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_missing_metadata_is_no_settings(tmp_path):
    st = SettingsStore(tmp_path, check_interval=0)
    p = st.get("24")
    assert isinstance(p, Problem)
    assert p.reason.startswith("no_settings: ") and "metadata.24.json" in p.reason


def test_mistakes_name_file_and_key(tmp_path):
    cases = {
        '{"account_id": 5}': "account_id: expected str or null, got int",
        '{"acount_id": "x"}': "acount_id: unknown key",
        '{"time": {"unit": "h"}}': "time.unit: expected one of s, ms, string; got 'h'",
        '{"time": {"time_zone": "Mars/Base"}}': "time_zone: expected +HH:MM, UTC or a zone name",
        '{"properties": {"types": {"a": "float"}}}': "properties.types[...]: expected one of string, number, int, bool; got 'float'",
        '{"a": 1 "b": 2}': "JSON syntax error at line 1",
        '[1]': "expected a JSON object",
        '{"properties": {"rename": {"a": "b-c"}}}': "properties.rename: expected property names",
    }
    for text, words in cases.items():
        (tmp_path / "metadata.24.json").write_text(text)
        p = SettingsStore(tmp_path, check_interval=0).get("24")
        assert isinstance(p, Problem), text
        assert p.reason.startswith("bad_settings: "), p.reason
        assert str(tmp_path / "metadata.24.json") in p.reason
        assert words in p.reason, (words, p.reason)


def test_bad_filter_file(tmp_path):
    (tmp_path / "metadata.24.json").write_text(GOOD)
    (tmp_path / "filter.24.json").write_text('{"where": [{"field": "a", "in": [1], "exists": true}]}')
    p = SettingsStore(tmp_path, check_interval=0).get("24")
    assert isinstance(p, Problem) and "exactly one of in, not_in, exists" in p.reason


def test_reload_and_keep_last_good(tmp_path, caplog):
    m = tmp_path / "metadata.24.json"
    m.write_text(GOOD)
    st = SettingsStore(tmp_path, check_interval=0)
    a = st.get("24")
    assert isinstance(a, AppSettings) and a.metadata.account_id == "role_id"
    m.write_text(GOOD.replace("role_id", "account_name"))
    bump(m)
    b = st.get("24")
    assert b.metadata.account_id == "account_name"
    assert st.reloads == 1
    m.write_text("{ broken")
    bump(m)
    c = st.get("24")
    assert c is b  # last good kept
    assert "not reloaded, keeping the last good ones" in caplog.text
    m.unlink()
    assert st.get("24") is b
    m.write_text(GOOD)
    d = st.get("24")
    assert d is not b and d.metadata.account_id == "role_id"


def test_broken_then_fixed(tmp_path):
    m = tmp_path / "metadata.25.json"
    m.write_text("{ broken")
    st = SettingsStore(tmp_path, check_interval=0)
    assert isinstance(st.get("25"), Problem)
    m.write_text(GOOD)
    assert isinstance(st.get("25"), AppSettings)


def test_check_interval_limits_stat_calls(tmp_path):
    m = tmp_path / "metadata.24.json"
    m.write_text(GOOD)
    st = SettingsStore(tmp_path, check_interval=3600)
    a = st.get("24")
    m.write_text(GOOD.replace("role_id", "x"))
    bump(m)
    assert st.get("24") is a  # not re-checked yet
    st.invalidate()
    assert st.get("24").metadata.account_id == "x"


def test_app_id_must_be_digits(tmp_path):
    p = SettingsStore(tmp_path).get("../../etc")
    assert isinstance(p, Problem) and p.reason.startswith("app_id: ")


def test_a_store_that_never_loaded_them_uses_the_kept_copy(tmp_path, caplog):
    """Each worker process (and a restart) has its own store: the copy kept at the
    last good load makes them all keep the same last good settings."""
    folder = tmp_path / "settings"
    folder.mkdir()
    keep = tmp_path / "kept"
    m = folder / "metadata.24.json"
    m.write_text(GOOD)
    a = SettingsStore(folder, check_interval=0, keep_dir=keep)
    assert isinstance(a.get("24"), AppSettings)
    assert (keep / "metadata.24.json").read_text() == GOOD
    assert (keep.stat().st_mode & 0o777) == 0o700
    m.unlink()
    b = SettingsStore(folder, check_interval=0, keep_dir=keep)  # another process, never loaded app 24
    got = b.get("24")
    assert isinstance(got, AppSettings) and got.metadata.account_id == "role_id"
    assert f"keeping the last good ones (kept in {keep})" in caplog.text
    m.write_text(GOOD.replace("role_id", "account_name"))
    assert b.get("24").metadata.account_id == "account_name"  # a good file wins again
    c = SettingsStore(folder, check_interval=0, keep_dir=keep)
    (folder / "metadata.24.json").write_text("{ broken")
    assert c.get("24").metadata.account_id == "account_name"  # the newest good copy was kept
    assert isinstance(SettingsStore(folder, check_interval=0).get("24"), Problem)  # without a keep folder
