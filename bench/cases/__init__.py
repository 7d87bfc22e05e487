"""The cases, one ``@case`` declaration each (bench.harness.registry): the transform
alone, the shipper's, mtga's, and the peers and references they compare with."""

from __future__ import annotations

from ..harness.registry import Case, cases
from . import mtga, peers, shipper, transform  # noqa: F401 - importing a module declares its cases


def all_cases() -> dict[str, Case]:
    """Every case by name, in the order they run and are reported."""
    return cases()
