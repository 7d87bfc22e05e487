"""ThinkingData's rules for one track line, as ``mtga check-output`` applies
them (sink/ops/check_output.py): the tests hold every line mtga writes to them."""

from __future__ import annotations

import time

from sink.ops.check_output import line_problems


def violations(line: str | bytes, now: float | None = None) -> list[str]:
    """Every rule the line breaks, as "<rule>: <detail>" (empty when it is valid)."""
    raw = line.encode() if isinstance(line, str) else line
    return [f"{code}: {detail}" for code, detail in line_problems(raw, time.time() if now is None else now, {}, "")]
