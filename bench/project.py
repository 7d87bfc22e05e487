"""The project's names that the benchmarks use, wherever the tree at hand keeps them.

Modules move (sink.transform became sink.ta.transform, sink.workers
sink.pipeline.workers, ...) and ``bench/run.py --baseline`` runs this benchmark
code on older trees too, so each name is looked up in its places, newest first.
Imported as ``bench.project`` by the harness and as ``project`` by
bench/transform_loop.py (which runs with the code of either tree on its path).
``python bench/project.py PROGRAM ARGS...`` runs shipper or mtga: the ``main`` of
its command line in the tree on the path (an installed console script names one
module: the newest).
"""

from __future__ import annotations

import importlib
import sys
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
# program -> the modules of its command line's ``main``, newest first
PROGRAMS: dict[str, tuple[str, ...]] = {
    "shipper": ("shipper.ops.cli", "shipper.cli"),
    "mtga": ("sink.ops.cli", "sink.cli"),
}
_MISSING = object()


def _in(dirs, module: str) -> bool:
    """Whether ``module`` (below its top-level package) has a file in one of ``dirs``, that package's folders."""
    for d in dirs:
        path = Path(d).joinpath(*module.split(".")[1:])
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return True
    return False


def _first(modules: tuple[str, ...], name: str, default):
    """``name`` from the first of ``modules`` that exists and has it, else ``default``, else
    ImportError. Only the tree the top-level package was imported from counts (an editable
    install's finder would otherwise fill a module the tree lacks from the installed
    checkout). A module that is there but fails to import raises as anywhere."""
    for module in modules:
        top = importlib.import_module(module.split(".")[0])
        if not _in(top.__path__, module):
            continue
        mod = importlib.import_module(module)
        if hasattr(mod, name):
            return getattr(mod, name)
    if default is _MISSING:
        raise ImportError(f"none of {', '.join(modules)} has {name}")
    return default


def load(name: str, default=_MISSING):
    """The project's ``name`` (a key of PLACES) from the first of its modules that has it."""
    return _first(PLACES[name], name, default)


def where(name: str, root: Path = REPO) -> str:
    """The module of ``name`` in the tree ``root``, read from its files (nothing is imported)."""
    for module in PLACES[name]:
        if _in([root / module.split(".")[0]], module):
            return module
    return PLACES[name][-1]


if __name__ == "__main__":
    del sys.path[0]  # bench/ itself: the program sees the path it would see as a console script
    program = sys.argv[1]
    main = _first(PROGRAMS[program], "main", _MISSING)
    sys.argv = [program, *sys.argv[2:]]
    sys.exit(main())
