"""The report: the fastest of a case's runs, the ratios, the table, the saved JSON."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from .harness.common import RESULTS, WORK


def fastest(runs: list[dict]) -> dict:
    """The fastest of a case's runs, with the rates of all of them and its rate per CPU second."""
    best = dict(max(runs, key=lambda r: r["rate"]))
    if len(runs) > 1:
        best["rates_of_runs"] = [round(r["rate"], 1) for r in runs]
    if best.get("cpu_s"):
        best["rate_per_cpu_s"] = round(best["items"] / best["cpu_s"], 1)
    return best


def ratios(results: dict[str, dict], cases: dict, with_base: bool) -> None:
    """Adds to each result its ratio to its reference (and to its ``also`` case), its
    comparison with the baseline, and rounds the figures."""
    for name, r in results.items():
        ref = results.get(r["reference"]) if r["reference"] else None
        if r["rate"] and ref and ref.get("rate"):
            r["ratio"] = round(r["rate"] / ref["rate"], 3)
        also = results.get(cases[name].also or "")
        if r["rate"] and also and also.get("rate"):
            r[f"ratio_{also['case']}"] = round(r["rate"] / also["rate"], 3)
        if with_base:
            b = r.setdefault("baseline", None)
            r["vs_base"] = r["vs_base_per_cpu_s"] = None
            if b and b.get("rate") and r["rate"]:
                r["vs_base"] = round(r["rate"] / b["rate"], 3)
            if b and b.get("rate_per_cpu_s") and r.get("rate_per_cpu_s"):
                r["vs_base_per_cpu_s"] = round(r["rate_per_cpu_s"] / b["rate_per_cpu_s"], 3)
            if b and b.get("rate") is not None:
                b["rate"] = round(b["rate"], 1)
                b["seconds"] = round(b["seconds"], 3)
        if r["rate"] is not None:
            r["rate"] = round(r["rate"], 1)
        if r["seconds"] is not None:
            r["seconds"] = round(r["seconds"], 3)


def table(report: dict) -> str:
    head = ("case", "items", "seconds", "rate/s", "peak RSS MB", "CPU s", "per CPU s", "reference", "ratio")
    with_base = bool(report.get("baseline"))
    if with_base:
        head += ("base rate/s", "base per CPU s", "vs base", "per CPU vs base")
    rows = []
    for r in report["cases"]:
        if r.get("skipped") or r.get("error"):
            if with_base:  # the reason goes below the table
                row = (r["case"], "-", "-", "-", "-", "-", "-", r["reference"] or "-",
                       "skipped" if r.get("skipped") else "ERROR")
            else:
                note = f"skipped: {r['skipped']}" if r.get("skipped") else f"ERROR: {r['error'].splitlines()[0]}"
                row = (r["case"], "-", "-", "-", "-", "-", "-", r["reference"] or "-", note)
        else:
            row = (r["case"], f"{r['items']:,}", f"{r['seconds']:.2f}", f"{r['rate']:,.0f}",
                   f"{r['peak_rss_mb']:.0f}", "-" if r.get("cpu_s") is None else f"{r['cpu_s']:.1f}",
                   "-" if r.get("rate_per_cpu_s") is None else f"{r['rate_per_cpu_s']:,.0f}",
                   r["reference"] or "-",
                   "-" if r["ratio"] is None else f"{r['ratio']:.2f}")
        if with_base:
            b = r.get("baseline") or {}
            row += ("-" if b.get("rate") is None else f"{b['rate']:,.0f}",
                    "-" if b.get("rate_per_cpu_s") is None else f"{b['rate_per_cpu_s']:,.0f}",
                    "ERROR" if b.get("error") else "-" if r.get("vs_base") is None else f"{r['vs_base']:.2f}×",
                    "-" if r.get("vs_base_per_cpu_s") is None else f"{r['vs_base_per_cpu_s']:.2f}×")
        rows.append(row)
    w = [max([len(h)] + [len(row[i]) for row in rows if len(row[i]) < 40]) for i, h in enumerate(head)]
    right = {1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12}

    def fmt(row):
        return "  ".join(c.rjust(w[i]) if i in right and not c.startswith(("skipped", "ERROR")) else c.ljust(w[i])
                         for i, c in enumerate(row)).rstrip()

    lines = [fmt(head), fmt(tuple("-" * x for x in w))] + [fmt(r) for r in rows]
    extra = []
    for r in report["cases"]:
        notes = []
        if with_base and r.get("skipped"):
            notes.append(f"skipped: {r['skipped']}")
        if with_base and r.get("error"):
            notes.append(f"ERROR: {r['error'].splitlines()[0]}")
        if r.get("seconds_total") is not None:
            notes.append(f"{r['seconds_total']:.2f}s including start-up")
        for k, v in r.items():
            if k.startswith("ratio_") and v is not None:
                notes.append(f"{v:.2f} x {k[len('ratio_'):]}")
        if r.get("core_pct_idle") is not None:
            notes.append(_idle("idle", r))
        if r.get("seconds_in_kafka") is not None:
            notes.append(f"all lines in Kafka after {r['seconds_in_kafka']:.2f}s")
        if r.get("seconds_to_last_write") is not None:
            notes.append(f"last line written {r['seconds_to_last_write']:.2f}s after the first")
        if r.get("rates_of_runs"):
            notes.append("rates of the runs " + ", ".join(f"{x:,.0f}" for x in r["rates_of_runs"]))
        if r.get("check") not in (None, "ok"):
            notes.append(f"CHECK: {r['check']}")
        b = r.get("baseline") or {}
        if b.get("error"):
            notes.append(f"BASELINE ERROR: {b['error'].splitlines()[0]}")
        if b.get("core_pct_idle") is not None:
            notes.append(_idle("baseline idle", b))
        if b.get("rates_of_runs"):
            notes.append("baseline rates of the runs " + ", ".join(f"{x:,.0f}" for x in b["rates_of_runs"]))
        if b.get("check") not in (None, "ok"):
            notes.append(f"BASELINE CHECK: {b['check']}")
        if notes:
            extra.append(f"  {r['case']}: " + "; ".join(notes))
    hdr = (f"{report['cores']} cores, rev {report['rev']}{' (dirty)' if report.get('dirty') else ''}, "
           f"{report['events']:,} events / {report['lines']:,} lines{', quick' if report['quick'] else ''}")
    if with_base:
        bl = report["baseline"]
        hdr += f"; baseline {bl['rev']} = {bl['sha'][:10]} (vs base = rate / the baseline's rate)"
    return "\n".join([hdr, ""] + lines + ([""] + extra if extra else []))


def save(report: dict, full: bool) -> Path:
    folder = RESULTS if full else WORK / "results"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    vs = f"-vs-{report['baseline']['sha'][:10]}" if report.get("baseline") else ""
    path = folder / f"{stamp}-{report['rev']}{vs}.json"
    text = json.dumps(report, indent=1) + "\n"
    path.write_text(text)
    (folder / "latest.json").write_text(text)
    return path


def _idle(label: str, r: dict) -> str:
    """The note of a shipper_idle_* or shipper_burst_* run."""
    s = f"{label}: {r['core_pct_idle']:.2f} % of a core, {r['open_fds']} descriptors open"
    if r.get("burst_s") is not None:
        s += (f"; one line appended to each file in {r['append_s']:.2f}s, all in Kafka {r['burst_s']:.2f}s after "
              f"the last append ({r['burst_cpu_s']:.2f} CPU s, at most {r['open_fds_burst_max']} descriptors open)")
    else:
        s += (f", an appended line in Kafka after {r['latency_median_s']:.2f}s (median) / {r['latency_max_s']:.2f}s "
              f"(max)")
    return s + f"; all files in Kafka {r['seconds_to_all_in_kafka']:.1f}s after the start"
