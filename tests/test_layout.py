"""The shape of the code, checked: small modules, no import cycle among the
project's modules, and typed batch items in mtga (no ``it[<n>]`` indexing)."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("shipper", "sink", "offsets", "mulog")
MAX_LINES = 400


def modules():
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).glob("*.py")):
            name = f"{pkg}.{f.stem}" if f.stem != "__init__" else pkg
            yield name, f


def imports(name: str, path: Path, known: set) -> set[str]:
    """The project modules ``name`` imports, anywhere in it (functions included),
    but for imports only type checkers see (``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(), str(path))
    pkg = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    out = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(pkg.split(".")[: len(pkg.split(".")) - child.level + 1] + ([base] if base else []))
                out.add(base)
                out.update(f"{base}.{a.name}" for a in child.names)
            visit(child)

    visit(tree)
    return {m for m in out if m in known and m != name}


def test_no_module_is_over_400_lines():
    big = {name: n for name, f in modules() if (n := len(f.read_text().splitlines())) > MAX_LINES}
    assert big == {}, f"modules over {MAX_LINES} lines: {big}"


def test_no_import_cycle_among_the_projects_modules():
    known = {name for name, _ in modules()}
    graph = {name: imports(name, f, known) for name, f in modules()}
    assert graph["sink.service"] and graph["shipper.service"], "the import graph was not read"
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(n, path):
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                cycles.append(path[path.index(m):] + [m])
            elif m not in state:
                walk(m, path + [m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            walk(n, [n])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_batch_item_is_read_by_position_in_mtga():
    found = [f"{f.name}:{i}: {line.strip()}" for f in sorted((REPO / "sink").glob("*.py"))
             for i, line in enumerate(f.read_text().splitlines(), 1) if re.search(r"\bit\[\d+\]", line)]
    assert found == []


def test_the_import_reader_sees_imports_in_functions_not_for_type_checkers(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from typing import TYPE_CHECKING\nfrom . import b\nif TYPE_CHECKING:\n    from .c import C\n")
    b.write_text("def f():\n    from .a import x\n")
    known = {"sink.a", "sink.b", "sink.c"}
    assert imports("sink.a", a, known) == {"sink.b"} and imports("sink.b", b, known) == {"sink.a"}
