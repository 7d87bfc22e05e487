"""The project's names that the benchmarks use, wherever the tree at hand keeps them.

Modules move (sink.transform became sink.ta.transform, sink.workers
sink.pipeline.workers, ...) and ``bench/run.py --baseline`` runs this benchmark
code on older trees too, so each name is looked up in its places, newest first.
Imported as ``bench.project`` by the harness and as ``project`` by
bench/transform_loop.py (which runs with the code of either tree on its path).
"""

from __future__ import annotations

import importlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# name -> its modules, newest first; Item and OK: the transform's own first (what run_batch takes and gives)
PLACES: dict[str, tuple[str, ...]] = {
    "Transformer": ("sink.ta.transform", "sink.transform"),
    "OK": ("sink.ta.transform", "sink.ta.batch", "sink.transform", "sink.batch"),
    "Item": ("sink.ta.transform", "sink.ta.batch", "sink.transform", "sink.batch"),
    "SettingsStore": ("sink.ta.settings", "sink.settings"),
    "Pool": ("sink.pipeline.workers", "sink.workers"),
}
_MISSING = object()


def _in(dirs, module: str) -> bool:
    """Whether ``module`` (below its top-level package) has a file in one of ``dirs``, that package's folders."""
    for d in dirs:
        path = Path(d).joinpath(*module.split(".")[1:])
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return True
    return False


def load(name: str, default=_MISSING):
    """``name`` from the first of its modules that exists and has it, else ``default``,
    else ImportError. Only the tree the top-level package was imported from counts (an
    editable install's finder would otherwise fill a module the tree lacks from the
    installed checkout). A module that is there but fails to import raises as anywhere."""
    for module in PLACES[name]:
        top = importlib.import_module(module.split(".")[0])
        if not _in(top.__path__, module):
            continue
        mod = importlib.import_module(module)
        if hasattr(mod, name):
            return getattr(mod, name)
    if default is _MISSING:
        raise ImportError(f"none of {', '.join(PLACES[name])} has {name}")
    return default


def where(name: str, root: Path = REPO) -> str:
    """The module of ``name`` in the tree ``root``, read from its files (nothing is imported)."""
    for module in PLACES[name]:
        if _in([root / module.split(".")[0]], module):
            return module
    return PLACES[name][-1]
