"""bench/run.py --quick runs against the suite's broker and reports every case.

Only the report's shape is checked: timings are never asserted. Without a broker:
the cases' declarations (bench/cases/), the lookup of the project's names in old
and new module paths (bench/project.py), the size of bench/'s modules.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.cli import REPO

pytestmark = pytest.mark.kafka

RUN = REPO / "bench" / "run.py"

CASES = {
    "shipper": "shipper_kcat",
    "shipper_kcat": None,
    "shipper_kcat_headers": "shipper_kcat",
    "shipper_rsyslog": "shipper_kcat",
    "shipper_otelcol": "shipper_kcat",
    "shipper_idle_1000": None,
    "shipper_idle_10000": None,
    "shipper_burst_10000": None,
    "shipper_fleet_off": "shipper",
    "mtga_fleet_off": "mtga",
    "mtga": "mtga_kcat_consume",
    "mtga_kcat_consume": None,
    "mtga_naive": "mtga_kcat_consume",
    "mtga_2_workers": "mtga",
    "mtga_shipped": "mtga",
    "mtga_otelcol": "mtga_kcat_consume",
    "mtga_rsyslog": "mtga_kcat_consume",
    "mtga_quix": "mtga_kcat_consume",
    "transform": "transform_naive",
    "transform_2_workers": "transform",
    "transform_user_ops": "transform",
    "mtga_kafka_output": "mtga",
    "mtga_checkpoint_10s": "mtga",
    "shipper_kcat_key": "shipper_kcat",
    "transform_naive": None,
}
NUMBERS = ("items", "seconds", "rate", "peak_rss_mb")
# peer tools that may be missing here (rsyslog-kafka, the OpenTelemetry Collector, Quix Streams): skipped
# with the reason
OPTIONAL = {"shipper_rsyslog", "shipper_otelcol", "mtga_otelcol", "mtga_rsyslog", "mtga_quix"}
# the order the cases run and are reported in: each reference before the cases compared with it
RUN_ORDER = ["transform_naive", "transform", "transform_2_workers", "transform_user_ops", "shipper_kcat",
             "shipper_kcat_headers", "shipper", "shipper_rsyslog", "shipper_otelcol", "shipper_idle_1000",
             "shipper_idle_10000", "shipper_kcat_key", "shipper_burst_10000", "shipper_fleet_off",
             "mtga_kcat_consume",
             "mtga", "mtga_2_workers", "mtga_shipped", "mtga_naive", "mtga_otelcol", "mtga_rsyslog", "mtga_quix",
             "mtga_kafka_output", "mtga_checkpoint_10s", "mtga_fleet_off"]
# the cases that run the project's code, and so run on the baseline too
CODE = {"transform", "transform_2_workers", "shipper", "shipper_idle_1000", "shipper_idle_10000",
        "shipper_burst_10000", "shipper_fleet_off", "mtga", "mtga_fleet_off",
        "mtga_2_workers", "mtga_shipped"}
MAX_LINES = 500  # a bench module stays under it


@pytest.mark.kafka
def test_quick_run_reports_every_case(kafka):
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka)
    r = subprocess.run([sys.executable, str(RUN), "--quick", "--json"], capture_output=True, text=True,
                       timeout=300, env=env, cwd=REPO)
    assert r.returncode == 0, f"bench/run.py exited with {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])

    assert report["cores"] == os.cpu_count()
    assert isinstance(report["rev"], str) and report["rev"]
    assert report["quick"] is True
    by_name = {c["case"]: c for c in report["cases"]}
    assert [c["case"] for c in report["cases"]] == RUN_ORDER
    assert set(by_name) == set(CASES)

    for name, ref in CASES.items():
        c = by_name[name]
        assert c["reference"] == ref, name
        for k in (*NUMBERS, "ratio"):
            assert k in c, (name, k)
        if c.get("skipped"):
            # only the optional peer tools may be missing, and they say why
            assert name in OPTIONAL, c
            assert isinstance(c["skipped"], str) and c["skipped"]
            assert all(c[k] is None for k in (*NUMBERS, "ratio")), c
            continue
        assert "error" not in c, c
        assert c["check"] == "ok", c
        for k in NUMBERS:
            assert isinstance(c[k], (int, float)) and c[k] > 0, (name, k, c[k])
        assert c["rate"] == pytest.approx(c["items"] / c["seconds"], rel=0.01), c
        if name.startswith("mtga"):
            assert c["seconds_total"] >= c["seconds"] > 0, c
        if name.startswith("shipper_idle_"):  # quick: a tenth of the files
            assert c["items"] == int(name.rsplit("_", 1)[1]) // 10, c
            assert 0 <= c["core_pct_idle"] == pytest.approx(100 * c["cpu_s"] / c["seconds"], abs=0.05), c
            assert c["open_fds"] > 0 and 0 < c["latency_median_s"] <= c["latency_max_s"] < 30, c
        if name == "shipper_burst_10000":  # quick: a tenth of the files, in 20 folders
            assert c["items"] == 1000 and c["folders"] == 20, c
            assert c["seconds"] == c["burst_s"] <= c["burst_from_first_append_s"], c
            assert 0 <= c["core_pct_idle"] and c["open_fds"] > 0 and c["open_fds_burst_max"] > 0, c
        if name == "shipper" and by_name["shipper_kcat_headers"].get("rate"):
            assert c["ratio_shipper_kcat_headers"] == pytest.approx(
                c["rate"] / by_name["shipper_kcat_headers"]["rate"], rel=0.01), c
        if ref is None:
            assert c["ratio"] is None, c
        else:
            assert c["ratio"] == pytest.approx(c["rate"] / by_name[ref]["rate"], rel=0.01), c

    # the table is printed too, one row per case
    table = r.stdout.strip().splitlines()[:-1]
    for name in CASES:
        assert any(line.split()[:1] == [name] for line in table), name


def test_unknown_case_is_a_clear_error():
    r = subprocess.run([sys.executable, str(RUN), "--cases", "shipper,nope"], capture_output=True, text=True,
                       timeout=60, cwd=REPO)
    assert r.returncode == 2
    assert "unknown case(s) nope" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.kafka
def test_baseline_runs_the_cases_on_the_code_of_a_revision(kafka, tmp_path):
    """--baseline HEAD in a copy of the project whose working tree breaks the workers' module:
    the baseline (HEAD, exported) runs both transform cases on its own code, worker
    processes included; this tree's transform_2_workers fails on the broken module,
    its transform case is compared with the baseline's."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    for name in ("bench", "mulog", "offsets", "shipper", "sink", "conf"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "work", "results"))

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
                              cwd=repo, capture_output=True, text=True, check=True, timeout=60).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "the baseline")
    sha = git("rev-parse", "HEAD")
    workers = next(p for p in (repo / "sink" / "pipeline" / "workers.py", repo / "sink" / "workers.py") if p.exists())
    with open(workers, "a") as f:
        f.write('\nraise RuntimeError("workers of the working tree")\n')

    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka)
    r = subprocess.run([sys.executable, str(repo / "bench" / "run.py"), "--cases", "transform,transform_2_workers",
                        "--quick", "--baseline", "HEAD", "--json"],
                       capture_output=True, text=True, timeout=300, env=env, cwd=repo)
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 1, f"{r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"  # the broken case
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["baseline"] == {"rev": "HEAD", "sha": sha, "tree": str(repo / "bench" / "work" / f"base-{sha[:12]}")}
    assert report["dirty"] is True
    by_name = {c["case"]: c for c in report["cases"]}

    t = by_name["transform"]
    b = t["baseline"]
    assert t["check"] == "ok" and b["check"] == "ok", t
    assert b["items"] == 20_000 and b["rate"] == pytest.approx(b["items"] / b["seconds"], rel=0.01), b
    assert b["rate_per_cpu_s"] == pytest.approx(b["items"] / b["cpu_s"], rel=0.01), b
    assert t["vs_base"] == pytest.approx(t["rate"] / b["rate"], rel=0.01), t
    assert t["vs_base_per_cpu_s"] == pytest.approx(t["rate_per_cpu_s"] / b["rate_per_cpu_s"], rel=0.01), t

    w = by_name["transform_2_workers"]
    assert "workers of the working tree" in w["error"], w
    assert w["baseline"].get("check") == "ok" and w["baseline"]["rate"] > 0, w
    assert w["vs_base"] is None, w

    table = r.stdout.strip().splitlines()[:-1]
    row = next(line for line in table if line.split()[:1] == ["transform"])
    assert f"{t['vs_base']:.2f}×" in row, row


def _python(code: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (the bench package and fake trees stay out of this one's imports)."""
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120,
                       cwd=REPO)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_the_cases_are_declared_once_each_in_their_run_order():
    r = _python("import json, sys; sys.path.insert(0, sys.argv[1]); from bench.cases import all_cases; "
                "print(json.dumps([[c.name, c.reference, c.also, c.code, c.about, callable(c.run)] "
                "for c in all_cases().values()]))", REPO)
    declared = json.loads(r.stdout)
    names = [d[0] for d in declared]
    assert names == RUN_ORDER
    assert {d[0]: d[1] for d in declared} == CASES
    assert {d[0] for d in declared if d[3]} == CODE
    assert {d[0]: d[2] for d in declared if d[2]} == {"shipper": "shipper_kcat_headers"}
    assert all(d[4] and d[5] for d in declared), declared
    for name, ref, also, *_ in declared:  # what a case is compared with has run before it
        for other in filter(None, (ref, also)):
            assert names.index(other) < names.index(name), (name, other)


def test_a_case_declared_twice_or_compared_with_no_case_is_an_error():
    code = """
import sys
sys.path.insert(0, sys.argv[1])
from bench.harness.registry import case, cases
run = lambda b: {}
case("a", order=1, about="a")(run)
for kw in ({"order": 2}, {"order": 1, "name": "b"}):
    try:
        case(kw.pop("name", "a"), about="x", **kw)(run)
    except ValueError as e:
        print(e)
case("c", order=3, about="c", reference="nope")(run)
try:
    cases()
except ValueError as e:
    print(e)
"""
    assert _python(code, REPO).stdout.splitlines() == [
        "case a is declared twice", "cases a and b both have order 1",
        "case c compares with nope, which is not declared"]


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_projects_names_are_found_in_the_new_and_the_old_module_paths(tmp_path):
    """bench/project.py, as bench/transform_loop.py and the cases use it on this tree and
    on a baseline's: the new modules first, the old ones else, a missing name as None."""
    new = _tree(tmp_path / "new", {
        "sink/__init__.py": "", "sink/ta/__init__.py": "", "sink/pipeline/__init__.py": "",
        "sink/ta/transform.py": "class Transformer: pass\nclass OK: pass\n",
        "sink/ta/batch.py": "class Item: pass\n",
        "sink/ta/settings.py": "class SettingsStore: pass\n",
        "sink/pipeline/workers.py": "class Pool: pass\n",
        "sink/ops/__init__.py": "", "sink/ops/cli.py": "import sys\ndef main():\n    print('new', sys.argv)\n"})
    old = _tree(tmp_path / "old", {  # from before typed items: no Item anywhere
        "sink/__init__.py": "", "sink/transform.py": "class Transformer: pass\nclass OK: pass\n",
        "sink/settings.py": "class SettingsStore: pass\n", "sink/workers.py": "class Pool: pass\n",
        "sink/cli.py": "import sys\ndef main():\n    print('old', sys.argv)\n"})
    broken = _tree(tmp_path / "broken", {
        "sink/__init__.py": "", "sink/workers.py": "import not_a_module_anywhere\nclass Pool: pass\n"})
    code = ("import json, sys; from pathlib import Path; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import project; "
            "print(json.dumps({n: getattr(project.load(n, None), '__module__', None) for n in project.PLACES})); "
            "print(json.dumps({n: project.where(n, Path(sys.argv[2])) for n in ('Transformer', 'Pool')}))")
    found, where = map(json.loads, _python(code, REPO / "bench", new).stdout.splitlines())
    assert found == {"Transformer": "sink.ta.transform", "OK": "sink.ta.transform", "Item": "sink.ta.batch",
                     "SettingsStore": "sink.ta.settings", "Pool": "sink.pipeline.workers"}
    assert where == {"Transformer": "sink.ta.transform", "Pool": "sink.pipeline.workers"}
    found, where = map(json.loads, _python(code, REPO / "bench", old).stdout.splitlines())
    assert found == {"Transformer": "sink.transform", "OK": "sink.transform", "Item": None,
                     "SettingsStore": "sink.settings", "Pool": "sink.workers"}
    assert where == {"Transformer": "sink.transform", "Pool": "sink.workers"}
    # the programs: the main of the tree's command line
    for tree, side in ((new, "new"), (old, "old")):
        r = subprocess.run([sys.executable, REPO / "bench" / "project.py", "mtga", "start", "-c", "x"],
                           capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(tree)))
        assert r.stdout.strip() == f"{side} ['mtga', 'start', '-c', 'x']", r.stderr[-2000:]
    # a module that is there but fails to import is an error, not a module to pass over
    r = _python(code, REPO / "bench", broken, check=False)
    assert r.returncode != 0 and "not_a_module_anywhere" in r.stderr, r.stderr[-2000:]


def test_no_bench_module_is_over_the_size_limit():
    files = [p for p in (REPO / "bench").rglob("*.py") if p.relative_to(REPO / "bench").parts[0] != "work"]
    assert len(files) > 10 and REPO / "bench" / "run.py" in files  # the walk sees the harness and the cases
    long = {str(p.relative_to(REPO)): n for p in files if (n := len(p.read_text().splitlines())) >= MAX_LINES}
    assert not long, long
