"""The shape of the code, checked on its source, through every sub-package:
small modules in small folders, no import cycle, wings that depend one way, no
class spread over several files, the Kafka client only in the shipper's
publisher, every Kafka client made by mulog/connection.py, a tailer's state changed in one place, and mtga's batch items read
by name."""

import ast
import re
from pathlib import Path

import pytest

from support.cli import REPO

PACKAGES = ("shipper", "sink", "offsets", "mulog")
MAX_LINES = 400  # the programs' packages
MAX_LINES_TOOLS = 500  # the tools: bench/, scripts/, kafkalocal/
MAX_SIDE_BY_SIDE = 15  # modules in one folder, __init__.py aside

# Each program's wings, lowest first: a wing imports only from wings below it
# (and from the modules at the program's root, which import no wing: the
# configuration, the counters, the loop that composes the wings is allowed above).
WINGS = {
    "sink": ["sink.ta", "sink.pipeline", "sink.ops"],
    "shipper": ["shipper.files", "shipper.delivery", "shipper.ops"],
    "mulog": ["mulog.runtime"],
}
ROOT_ABOVE_WINGS = {"shipper.service", "sink.__init__", "shipper.__init__"}


OUTSIDE = (REPO / "bench" / "work",)  # the bench's scratch folder (ignored by git): peers, exported revisions


def _py_files(top: str):
    return sorted(p for p in (REPO / top).rglob("*.py")
                  if "__pycache__" not in p.parts and not any(p.is_relative_to(o) for o in OUTSIDE))


def _name(p: Path) -> str:
    rel = p.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_name(p): p for pkg in PACKAGES for p in _py_files(pkg)}


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


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


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


def test_the_modules_are_found_in_every_sub_package():
    mods = _modules()
    assert {"sink.ta.transform", "sink.pipeline.service", "sink.ops.cli", "shipper.files.tailer",
            "shipper.delivery.publisher", "mulog.runtime.instrument"} <= set(mods)


@pytest.mark.parametrize("tops,limit", [(PACKAGES, MAX_LINES), (("bench", "scripts", "kafkalocal"), MAX_LINES_TOOLS)])
def test_no_module_is_too_long(tops, limit):
    long = {str(p.relative_to(REPO)): n for top in tops for p in _py_files(top)
            if (n := len(p.read_text().splitlines())) > limit}
    assert not long, long


def test_no_folder_holds_more_than_15_modules_side_by_side():
    crowded = {}
    for top in PACKAGES + ("bench", "scripts", "kafkalocal"):
        for folder in {p.parent for p in _py_files(top)}:
            n = sum(1 for p in folder.glob("*.py") if p.name != "__init__.py")
            if n > MAX_SIDE_BY_SIDE:
                crowded[str(folder.relative_to(REPO))] = n
    assert not crowded, crowded


def test_no_import_cycle_among_the_projects_modules():
    graph = _graph()
    assert graph["shipper.service"] and graph["shipper.files.tailer"]  # the parsing sees imports at all
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]  # and would see one


def _wing_of(mod: str, wings: list[str]) -> int | None:
    for i, w in enumerate(wings):
        if mod == w or mod.startswith(w + "."):
            return i
    return None


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    """Imports that go up: from a lower wing to a higher one, from a program's root
    module (its configuration, say) into a wing, or from a shared package into a program."""
    bad = []
    for mod, deps in graph.items():
        top = mod.split(".")[0]
        for dep in deps:
            dtop = dep.split(".")[0]
            if top in ("mulog", "offsets") and dtop in ("sink", "shipper"):
                bad.append(f"{mod} -> {dep}")
            if top == "offsets" and dtop == "mulog" and dep != "mulog.files":
                bad.append(f"{mod} -> {dep}")
            if dtop != top or top not in WINGS:
                continue
            wings = WINGS[top]
            mine, theirs = _wing_of(mod, wings), _wing_of(dep, wings)
            if theirs is None:
                continue
            if mine is None and mod not in ROOT_ABOVE_WINGS and not mod.startswith(tuple(ROOT_ABOVE_WINGS)):
                bad.append(f"{mod} -> {dep}")
            elif mine is not None and theirs > mine:
                bad.append(f"{mod} -> {dep}")
    return sorted(bad)


def test_the_wings_depend_one_way():
    assert wrong_way(_graph()) == []
    # and the check would see each kind of wrong way
    assert wrong_way({"sink.ta.rules": {"sink.pipeline.writer"}, "sink.config": {"sink.ta.rules"},
                      "mulog.fleet": {"sink.config"}, "sink.ops.cli": {"sink.ta.rules"}}) == \
        ["mulog.fleet -> sink.config", "sink.config -> sink.ta.rules", "sink.ta.rules -> sink.pipeline.writer"]


def test_no_class_is_spread_over_several_files():
    """A class of the project takes no base class from another of the project's
    modules (exceptions aside): behaviour spread over files as mixins that share
    ``self``'s state is composed from objects instead."""
    defined: dict[str, str] = {}
    trees = {}
    for name, path in _modules().items():
        trees[name] = tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                defined.setdefault(node.name, name)
    spread = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for b in node.bases:
                base = b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else None
                home = defined.get(base)
                if home and home != name and not base.endswith(("Error", "Exception")):
                    spread.append(f"{name}.{node.name}({base} from {home})")
    assert spread == []


def test_only_the_publisher_imports_the_kafka_client():
    users = sorted(str(p.relative_to(REPO)) for p in _py_files("shipper") if "confluent_kafka" in p.read_text())
    assert users == ["shipper/delivery/publisher.py"]


def test_every_kafka_client_of_the_programs_is_made_by_the_connection():
    """mulog/connection.py gives each client the connection's settings (TLS, SASL):
    a client made anywhere else would connect without them."""
    made = re.compile(r"\b(Producer|Consumer|AdminClient)\(")
    makers = sorted(str(p.relative_to(REPO)) for top in PACKAGES for p in _py_files(top) if made.search(p.read_text()))
    assert makers == ["mulog/connection.py"]


def test_a_tailers_state_is_assigned_in_one_place():
    """``<anything>.state = ...`` in shipper/ only in Tailer.__init__ and Tailer.to."""
    where = []
    for p in _py_files("shipper"):
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
    found = [f"{f.name}:{i}: {line.strip()}" for f in _py_files("sink")
             for i, line in enumerate(f.read_text().splitlines(), 1) if re.search(r"\bit\[\d+\]", line)]
    assert found == []


# ------------------------------------------------------------------ the tests

TESTS = REPO / "tests"
MAX_TEST_LINES = 600


def test_no_test_file_is_over_600_lines():
    long = {str(p.relative_to(REPO)): n for p in TESTS.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_TEST_LINES}
    assert not long, long


def test_the_unit_tests_mirror_the_packages():
    """tests/unit/<package path>/test_<name>.py: each folder is one of the project's packages."""
    folders = {p.parent.relative_to(TESTS / "unit") for p in (TESTS / "unit").rglob("test_*.py")}
    assert len(folders) >= 8
    strays = sorted(str(f) for f in folders if not (REPO / f / "__init__.py").is_file())
    assert strays == []


def test_the_tests_share_helpers_through_support_not_conftest_or_sys_path():
    """Helpers come from tests/support (on pytest's pythonpath), never from conftest
    or a module-level change of sys.path."""
    bad = []
    for p in TESTS.rglob("*.py"):
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module == "conftest" or \
                    isinstance(node, ast.Import) and any(a.name == "conftest" for a in node.names):
                bad.append(f"{p.relative_to(REPO)}:{node.lineno}: imports conftest")
            elif isinstance(node, ast.Expr) and "sys.path" in ast.unparse(node):
                bad.append(f"{p.relative_to(REPO)}:{node.lineno}: changes sys.path")
    assert bad == []
