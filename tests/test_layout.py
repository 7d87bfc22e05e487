"""The shape of the code, checked on its source: small modules, no import cycle
among the project's modules, the Kafka client only in the shipper's publisher,
a tailer's state changed in one place, and mtga's batch items read by name."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("shipper", "sink", "offsets", "mulog")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in sorted((REPO / pkg).glob("*.py")):
            out[pkg if p.name == "__init__.py" else f"{pkg}.{p.stem}"] = p
    return out


def _imports(name: str, path: Path, known: dict) -> set[str]:
    """The project modules ``name`` imports, at run time or for type checking only."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in out if m in known and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(REPO)): n for pkg in PACKAGES
            for p in (REPO / pkg).glob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_no_import_cycle_among_the_projects_modules():
    mods = _modules()
    graph = {name: _imports(name, path, mods) for name, path in mods.items()}
    assert graph["shipper.service"] and graph["shipper.tailer"]  # the parsing sees imports at all
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]  # and would see one


def test_only_the_publisher_imports_the_kafka_client():
    users = sorted(p.name for p in (REPO / "shipper").glob("*.py") if "confluent_kafka" in p.read_text())
    assert users == ["publisher.py"]


def test_a_tailers_state_is_assigned_in_one_place():
    """``<anything>.state = ...`` in shipper/ only in Tailer.__init__ and Tailer.to."""
    where = []
    for p in sorted((REPO / "shipper").glob("*.py")):
        tree = ast.parse(p.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                targets = node.targets if isinstance(node, ast.Assign) else \
                    [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
                for t in targets:
                    if isinstance(t, ast.Attribute) and t.attr == "state":
                        where.append(f"{p.name}:{fn.name}")
    assert sorted(set(where)) == ["tailer.py:__init__", "tailer.py:to"], where


def test_no_batch_item_is_read_by_position_in_mtga():
    found = [f"{f.name}:{i}: {line.strip()}" for f in sorted((REPO / "sink").glob("*.py"))
             for i, line in enumerate(f.read_text().splitlines(), 1) if re.search(r"\bit\[\d+\]", line)]
    assert found == []
