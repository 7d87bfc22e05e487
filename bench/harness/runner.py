"""The run: each case in its order, on this tree's code and, with --baseline, on the baseline's too."""

from __future__ import annotations

import os

from .. import report
from .bench import Bench
from .code import Code
from .common import BenchError, Skip, say
from .registry import Case


def run(b: Bench, cases: dict[str, Case], names: list[str]) -> dict[str, dict]:
    """The results of the cases ``names``, by name, ratios included."""
    results: dict[str, dict] = {}
    for c in cases.values():
        if c.name not in names:
            continue
        res = {"case": c.name, "items": None, "seconds": None, "rate": None, "peak_rss_mb": None,
               "reference": c.reference, "ratio": None}
        # with a baseline: base, new, base, new, ... so that the machine's moods hit both alike
        sides = [b.base, b.new] if b.base is not None and c.code else [b.new]
        runs: dict[str, list] = {code.side: [] for code in sides}
        failed: dict[str, str] = {}
        try:
            for i in range(b.args.repeat):
                for code in sides:
                    if code.side in failed:
                        continue
                    try:
                        runs[code.side].append(_run_once(b, c, code, i))
                    except BenchError as e:
                        failed[code.side] = str(e)
                        say(f"case {c.name}{_label(b, code)} FAILED: {e}")
                    except Skip:
                        raise
                    except Exception as e:  # a bug or an unexpected failure: report it, run the other cases
                        if os.environ.get("BENCH_DEBUG"):
                            raise
                        failed[code.side] = f"{type(e).__name__}: {e}"
                        say(f"case {c.name}{_label(b, code)} FAILED: {type(e).__name__}: {e} "
                            f"(BENCH_DEBUG=1 shows the traceback)")
                if len(failed) == len(sides):
                    break
        except Skip as e:
            res["skipped"] = str(e)
            say(f"case {c.name} skipped: {e}")
        else:
            if "new" in failed:
                res["error"] = failed["new"]
            else:
                res.update(report.fastest(runs["new"]))
            if "base" in runs:
                res["baseline"] = {"error": failed["base"]} if "base" in failed else report.fastest(runs["base"])
        res["what"] = c.about
        results[c.name] = res
    report.ratios(results, cases, with_base=b.base is not None)
    return results


def _label(b: Bench, code: Code) -> str:
    return f" (baseline {b.args.baseline})" if code.side == "base" else ""


def _run_once(b: Bench, c: Case, code: Code, i: int) -> dict:
    label = _label(b, code)
    say(f"case {c.name}{label}" + (f" (run {i + 1} of {b.args.repeat})" if b.args.repeat > 1 else "") + " ...")
    b.code = code
    try:
        r = c.run(b)
    finally:
        b.code = b.new
    r["rate"] = r["items"] / r["seconds"]
    say(f"case {c.name}{label}: {r['items']:,} in {r['seconds']:.2f}s = {r['rate']:,.0f}/s, "
        f"peak RSS {r['peak_rss_mb']} MB, {r['cpu_s']} CPU s")
    return r
