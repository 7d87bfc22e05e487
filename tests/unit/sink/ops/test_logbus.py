"""``mtga logbus-config`` prints a LogBus2 daemon.json whose file_patterns take
exactly the files mtga's writer made (checked with glob against files the real
LogBusWriter wrote, beside names it never gives), one pipeline per TA APPID,
add_uuid off and LogBus2's removal on; JSON alone on stdout, notes on stderr,
and a configuration mistake is one line and exit 2."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest

from sink.pipeline.writer import LogBusWriter
from support.cli import run_cli

T0 = 1_796_300_000.0  # 2026-12-03, some hour of the day in any time zone


def _conf(tmp_path: Path, output: str = "out", prefix: str = "", rotation: str = "daily",
          max_bytes: int = 0) -> str:
    f = tmp_path / "mtga.yml"
    f.write_text(f"kafka:\n  topics: [t1]\noutput:\n  dir: {output}\n  prefix: '{prefix}'\n"
                 f"  rotation: {rotation}\n  max_bytes: {max_bytes}\n")
    return str(f)


def _write(root: Path, prefix: str, rotation: str, max_bytes: int, apps=("24", "7")) -> set[str]:
    """Two batches an app every 5 hours for three days, by the real writer; the files it made."""
    now = [T0]
    w = LogBusWriter(root, prefix=prefix, rotation=rotation, max_bytes=max_bytes, clock=lambda: now[0],
                     fsync=False)
    for step in range(15):
        now[0] = T0 + step * 5 * 3600
        for app in apps:
            for batch in range(2):
                w.write(app, [json.dumps({"#type": "track", "#uuid": f"{app}-{step}-{batch}-{i}",
                                          "n": "x" * 40}).encode() for i in range(3)])
    w.close()
    return {str(p) for p in root.rglob("*") if p.is_file()}


def _run(*args: str):
    r = run_cli("mtga", "logbus-config", *args)
    return r, (json.loads(r.stdout) if r.returncode == 0 else None)


def _taken(doc: dict) -> set[str]:
    return {f for d in doc["datasource"] for p in d["file_patterns"] for f in glob.glob(p)}


CASES = {
    # config: names mtga never gives with it, in the app folders and beside them
    ("", "daily", 0): ["log.2026-12-03-13", "game.log.2026-12-03", "log.2026-12-03_0", "log.2026-12-03.bak",
                       "xlog.2026-12-03", "notes.txt"],
    ("game", "hourly", 300): ["game.log.2026-12-03_0", "log.2026-12-03-13_0", "game.log.2026-12-03-13",
                              "other.game.log.2026-12-03-13_0", "game.log.2026-12-03-1_0"],
}


@pytest.mark.parametrize("prefix,rotation,max_bytes", list(CASES))
def test_patterns_take_every_file_the_writer_made_and_nothing_else(tmp_path, prefix, rotation, max_bytes):
    out = tmp_path / "out"
    written = _write(out, prefix, rotation, max_bytes)
    assert len(written) > 4  # several periods (and splits) per app
    if max_bytes:
        assert any(p.endswith("_1") for p in written)
    for app in ("24", "7"):
        for name in CASES[(prefix, rotation, max_bytes)]:
            (out / app / name).write_text("{}\n")
    (out / "log.2026-12-03").write_text("{}\n")  # beside the app folders
    (out / ".trash").mkdir()
    (out / ".trash" / Path(sorted(written)[0]).name).write_text("{}\n")  # a hidden folder is no app

    r, doc = _run("-c", _conf(tmp_path, prefix=prefix, rotation=rotation, max_bytes=max_bytes),
                  "--app-id-map", "24=ta24", "--app-id-map", "7=ta7", "--push-url", "https://rcv.example/")
    assert r.returncode == 0, r.stderr
    assert _taken(doc) == written
    assert [d["app_id"] for d in doc["datasource"]] == ["ta7", "ta24"]
    for d in doc["datasource"]:
        assert d["type"] == "file" and d["add_uuid"] is False
        assert (d["unit_remove"], d["offset_remove"], d["remove_dirs"]) == ("day", 7, False)
        assert len(d["file_patterns"]) == 1 and Path(d["file_patterns"][0]).is_absolute()
    assert doc["push_url"] == "https://rcv.example/"
    assert "REPLACE" not in r.stdout and "note:" not in r.stdout
    assert "REPLACE" not in r.stderr  # everything mapped: no placeholder, no note about one


def test_apps_sharing_an_appid_share_a_pipeline_and_an_unmapped_app_gets_a_placeholder(tmp_path):
    out = tmp_path / "out"
    written = _write(out, "", "daily", 0, apps=("24", "7", "9"))
    r, doc = _run("-c", _conf(tmp_path), "--app-id-map", "24=shared", "--app-id-map", "7=shared",
                  "--app-id-map", "31=later", "--set", "cpu_limit=4", "--source-set", "http_compress=gzip")
    assert r.returncode == 0, r.stderr
    by_id = {d["app_id"]: d for d in doc["datasource"]}
    assert set(by_id) == {"shared", "REPLACE_WITH_TA_APPID_OF_APP_9", "later"}
    assert [Path(p).parent.name for p in by_id["shared"]["file_patterns"]] == ["7", "24"]
    assert {f for p in by_id["REPLACE_WITH_TA_APPID_OF_APP_9"]["file_patterns"] for f in glob.glob(p)} == \
        {f for f in written if Path(f).parent.name == "9"}
    assert by_id["later"]["file_patterns"] == [str(out.resolve() / "31" / "log.????-??-??")]
    assert all(d["http_compress"] == "gzip" for d in doc["datasource"]) and doc["cpu_limit"] == 4
    assert doc["push_url"] == "REPLACE_WITH_RECEIVER_URL"
    notes = r.stderr.splitlines()
    assert all(n.startswith("note: ") for n in notes), notes
    assert any("app 9" in n and "placeholder REPLACE_WITH_TA_APPID_OF_APP_9" in n for n in notes), notes
    assert any("app 31" in n and "no folder" in n for n in notes), notes
    assert any("--push-url" in n for n in notes), notes


def test_no_removal_when_asked(tmp_path):
    _write(tmp_path / "out", "", "daily", 0)
    r, doc = _run("-c", _conf(tmp_path), "--remove-after", "0", "--app-id-map", "24=a", "--app-id-map", "7=b")
    assert r.returncode == 0, r.stderr
    assert all("unit_remove" not in d and "offset_remove" not in d for d in doc["datasource"])
    assert "deletes nothing" in r.stderr


@pytest.mark.parametrize("args,words", [
    ((), "does not exist"),  # the output folder is missing
    (("--app-id-map", "24"), "expected APP=TA_APPID"),
    (("--app-id-map", "24=a", "--app-id-map", "24=b"), "mapped twice"),
    (("--app-id-map", "../24=a"), "folder name"),
    (("--source-set", "add_uuid=true"), "#uuid"),
    (("--source-set", "offset_remove=1"), "--remove-after"),
    (("--remove-after", "1"), "two daily periods"),
    (("--remove-unit", "week"), "day or hour"),
    (("--push-url", "receiver:8991"), "http://"),
    (("--app-id-map", "24=a", "--stray"), "glob character"),  # a folder no pattern can name
])
def test_a_mistake_is_one_line_and_exit_2(tmp_path, args, words):
    if args:
        _write(tmp_path / "out", "", "daily", 0)
    if "--stray" in args:
        (tmp_path / "out" / "old[1]").mkdir()
        args = args[:-1]
    r, _ = _run("-c", _conf(tmp_path), *args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtga: ") and words in lines[0], r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr
