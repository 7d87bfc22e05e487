"""The tests' reference for sink.ta.transform.Transformer.outcome: the results of
run_batch (one (kind, app, value) per item) grouped the plain way."""

from collections import defaultdict

from sink.ta.batch import DUPLICATE, FAILED, FILTERED, OK, Outcome


def summarize(results: list, base: int = 0, fixed=None, sources=None) -> Outcome:
    """An Outcome of ``results``; ``base`` is the index of the first item in the batch."""
    lines, idx = defaultdict(list), defaultdict(list)
    for i, (kind, app, value) in enumerate(results, base):
        if kind == OK:
            lines[app].append(value)
            idx[app].append(i)
    apps = {app: [[b"".join(v + b"\n" for v in vs)], len(vs), idx[app]] for app, vs in lines.items()}
    failures = [(i, app, value) for i, (kind, app, value) in enumerate(results, base) if kind == FAILED]
    filtered = sum(1 for r in results if r[0] == FILTERED)
    duplicates = sum(1 for r in results if r[0] == DUPLICATE)
    return Outcome(apps, failures, filtered, fixed, None, sources, duplicates)
