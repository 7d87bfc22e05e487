"""The cases: each declared once, by ``@case`` on the function that runs it.

    @case("mtga_2_workers", order=32, reference="mtga", code=True, about="as mtga with workers=2 ...")
    def mtga_2_workers(b: Bench) -> dict: ...

``order`` places the case in the run and in the report (references run before the
cases compared with them); ``reference`` is the case whose rate gives the ratio,
``also`` a second comparison reported as ``ratio_<also>``; ``code`` marks the cases
that run the project's code, and so run on the baseline too (``--baseline``);
``about`` says what is measured. The function returns its measure: items, seconds,
peak_rss_mb, cpu_s, check and what else the case reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Case:
    name: str
    order: int
    run: Callable[..., dict]
    about: str
    reference: str | None = None
    also: str | None = None
    code: bool = False


_CASES: dict[str, Case] = {}


def case(name: str, *, order: int, about: str, reference: str | None = None, also: str | None = None,
         code: bool = False):
    """Declares the decorated function (called with the Bench) as the case ``name``."""

    def register(fn: Callable[..., dict]) -> Callable[..., dict]:
        if name in _CASES:
            raise ValueError(f"case {name} is declared twice")
        taken = {c.order: c.name for c in _CASES.values()}
        if order in taken:
            raise ValueError(f"cases {taken[order]} and {name} both have order {order}")
        _CASES[name] = Case(name, order, fn, about, reference, also, code)
        return fn

    return register


def cases() -> dict[str, Case]:
    """Every declared case, in their order, once their modules are imported (bench.cases does).
    A reference to a case that is not declared is an error."""
    out = dict(sorted(_CASES.items(), key=lambda kv: kv[1].order))
    for c in out.values():
        for other in (c.reference, c.also):
            if other is not None and other not in out:
                raise ValueError(f"case {c.name} compares with {other}, which is not declared")
    return out
