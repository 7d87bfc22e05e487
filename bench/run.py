#!/usr/bin/env python3
"""Benchmarks of shipper and mtga against their references, in one run.

    python bench/run.py [--quick] [--json] [--cases a,b,...]

Starts (or reuses) a local Kafka broker (``.kafka-local/bench``, or the one in
KAFKA_BOOTSTRAP_SERVERS), generates realistic data once (cached in bench/work/),
runs each case as real processes against the same broker and data, and prints a
table: case, items, seconds, rate, peak RSS, reference, ratio (this rate divided
by the reference's rate, measured in the same run). ``--json`` prints the same as
one JSON object on the last line of standard output. Full runs are saved to
bench/results/<UTC time>-<rev>.json and bench/results/latest.json; quick and
partial runs to bench/work/results/. What each case measures: see the ``@case``
declarations in bench/cases/ and the README's "Benchmarks" section.

``--baseline REV`` runs the cases that run this project's code (``code=True``)
also on the code of the git revision REV, exported to bench/work/base-<sha>/, in
the same run, against the same broker and data, alternating base and this tree run
by run; the report gives both rates, both rates per CPU second and new / base.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: the bench package

from bench import report  # noqa: E402
from bench.cases import all_cases  # noqa: E402
from bench.harness import runner  # noqa: E402
from bench.harness.bench import Bench  # noqa: E402
from bench.harness.code import Code, export_rev, git_rev  # noqa: E402
from bench.harness.common import FULL, QUICK, REPO, BenchError, say  # noqa: E402
from bench.harness.kafka import start_broker  # noqa: E402


def parse_args(argv):
    cases = all_cases()
    code_cases = [c.name for c in cases.values() if c.code]
    ap = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"small data ({QUICK['events']:,} events, {QUICK['lines']:,} lines): seconds, not figures")
    ap.add_argument("--json", action="store_true", help="print the report as one JSON object on the last line")
    ap.add_argument("--cases", help="comma-separated cases to run (default all): " + ",".join(cases))
    ap.add_argument("--events", type=int, help="events for the mtga and transform cases")
    ap.add_argument("--lines", type=int, help="lines for the shipper cases")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each case this many times and report its fastest run (default 1)")
    ap.add_argument("--profile", default="",
                    help="comma-separated cases to run under pyinstrument (mtga, mtga_2_workers, shipper, transform); "
                         "text reports go to bench/work/profiles/")
    ap.add_argument("--mtga-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key of the mtga cases' configuration, e.g. kafka.batch_size=10000 or "
                         "kafka.consumer.queued.max.messages.kbytes=16384 (repeatable; the value is read as YAML)")
    ap.add_argument("--baseline", metavar="REV",
                    help="run the cases that run the project's code (" + ",".join(code_cases) + ") also on the "
                         "code of git revision REV, alternating with this tree's, and compare (vs base)")
    ap.add_argument("--keep-broker", action="store_true", help="leave a broker this run started running")
    ap.add_argument("--keep-work", action="store_true", help="keep bench/work/run-*/ (configs, logs, outputs)")
    args = ap.parse_args(argv)
    size = QUICK if args.quick else FULL
    args.events = args.events or size["events"]
    args.lines = args.lines or size["lines"]
    if args.events < 1 or args.lines < 1 or args.repeat < 1:
        ap.error("--events, --lines and --repeat must be at least 1")
    if args.cases:
        args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
        bad = [c for c in args.cases if c not in cases]
        if bad:
            ap.error(f"unknown case(s) {', '.join(bad)}; known: {', '.join(cases)}")
    else:
        args.cases = list(cases)
    args.profile = [c.strip() for c in args.profile.split(",") if c.strip()]
    if args.baseline is not None and args.profile:
        ap.error("--profile and --baseline do not go together (profiled runs are slowed down)")
    if args.baseline is not None and (not args.baseline.strip() or args.baseline.startswith("-")):
        ap.error(f"--baseline expects a git revision, got {args.baseline!r}")
    sets = []
    for item in args.mtga_set:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            ap.error(f"--mtga-set expects KEY=VALUE, got {item!r}")
        key = key.strip()
        if key.startswith("kafka.consumer."):  # librdkafka keys hold dots themselves
            sets.append((["kafka", "consumer", key[len("kafka.consumer."):]], value))
        else:
            sets.append((key.split("."), value))
    args.mtga_set = sets
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import confluent_kafka  # noqa: F401
        import msgspec  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as e:
        say(f"{e.name} is not importable by {sys.executable}: run it with the project's virtualenv "
            f"(`make bench`, or .venv/bin/python bench/run.py)")
        return 2
    cases = all_cases()
    rev, dirty = git_rev()
    cluster = None
    bench = None
    results: dict[str, dict] = {}
    started = dt.datetime.now(dt.timezone.utc)
    load_before = os.getloadavg()
    baseline = None
    try:
        base = None
        if args.baseline is not None:
            sha, root = export_rev(args.baseline)
            base = Code.of("base", root)
            for code in (base, Code.of("new", REPO)):
                code.check()
            baseline = {"rev": args.baseline, "sha": sha, "tree": str(root)}
        bootstrap, cluster = start_broker()
        bench = Bench(args, bootstrap, base)
        results = runner.run(bench, cases, args.cases)
    except BenchError as e:
        say(str(e))
        return 2
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        if bench is not None:
            bench.close()
        if cluster is not None and not args.keep_broker:
            say("stopping the broker this run started (--keep-broker keeps it)")
            cluster.stop()
    rep = {
        "cores": os.cpu_count(),
        "rev": rev,
        "dirty": dirty,
        "quick": args.quick,
        "repeat": args.repeat,
        "events": args.events,
        "lines": args.lines,
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        "cases": [results[c] for c in cases if c in results],
    }
    if baseline:
        rep["baseline"] = baseline
    if args.mtga_set:
        rep["mtga_set"] = {".".join(k): v for k, v in args.mtga_set}
    full = not args.quick and set(args.cases) == set(cases) and not args.profile and not args.mtga_set \
        and args.events == FULL["events"] and args.lines == FULL["lines"]
    path = report.save(rep, full)
    print(report.table(rep))
    print(f"\nsaved {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    if args.json:
        print(json.dumps(rep, separators=(",", ":")))
    bad = [r["case"] for r in rep["cases"] if r.get("error") or r.get("check") not in (None, "ok")
           or (r.get("baseline") or {}).get("error") or (r.get("baseline") or {}).get("check") not in (None, "ok")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
