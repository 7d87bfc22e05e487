"""Nothing from logs or configuration can reach a shell or an interpreter: the
programs' packages (shipper, sink, offsets, mulog) import no process-spawning
module, call no os.system/popen/exec*/spawn* and no eval/exec, pass no shell=
argument, and read YAML only with safe_load. Checked on the syntax tree, so a new call site fails here."""

import ast

from support.cli import REPO

PACKAGES = ("shipper", "sink", "offsets", "mulog")
# (pickle is not here: mtga's worker processes exchange their own batches with it,
# over pipes between processes of the same program, never data read from outside)
BANNED_MODULES = {"subprocess", "pty", "commands", "popen2"}
BANNED_OS = {"system", "popen", "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
             "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe",
             "posix_spawn", "posix_spawnp"}
BANNED_BUILTINS = {"eval", "exec", "compile", "__import__"}
BANNED_YAML = {"load", "unsafe_load", "full_load", "load_all", "unsafe_load_all", "full_load_all"}


def offences(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in BANNED_MODULES]
        elif isinstance(node, ast.ImportFrom):
            mod = (node.module or "").split(".")[0]
            if mod in BANNED_MODULES:
                out.append(f"from {node.module} import ...")
            if mod == "os":
                out += [f"from os import {a.name}" for a in node.names if a.name in BANNED_OS]
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in BANNED_BUILTINS:
                out.append(f"{f.id}()")
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                if f.value.id == "os" and f.attr in BANNED_OS:
                    out.append(f"os.{f.attr}()")
                if f.value.id == "yaml" and f.attr in BANNED_YAML:
                    out.append(f"yaml.{f.attr}()")
            if any(k.arg == "shell" for k in node.keywords):
                out.append("shell= argument")
    return out


def test_no_shell_no_eval_in_the_programs():
    files = [p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))]
    assert len(files) > 20
    found = {}
    for p in files:
        bad = offences(ast.parse(p.read_text(), str(p)))
        if bad:
            found[str(p.relative_to(REPO))] = bad
    assert not found, found


def test_the_check_catches_what_it_is_for():
    src = ("import subprocess\nfrom os import system\nos.popen('x')\neval(s)\nyaml.load(t)\n"
           "f(cmd, shell=True)\nos.execvp('sh', [])\n")
    assert len(offences(ast.parse(src))) == 7
