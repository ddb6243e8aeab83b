"""The layout stays readable: no import cycle between modules, no private name imported from another module, no file
over 400 lines and no function over 80 (the compiled kernels excepted: numba and Triton want one body per kernel)."""

from __future__ import annotations

import ast
from pathlib import Path

from support import REPO

# folder -> the package it is installed as (pyproject.toml's package-dir)
ROOTS = {"dsqn": "dsqn", "train": "dsqn.train", "export": "dsqn.export", "deploy": "dsqn.deploy",
         "hw_sim": "dsqn.hw_sim", "report": "dsqn.report", "sweep": "dsqn.sweep"}
COMPILED = ("njit", "jit", "triton.jit")  # decorators of compiled kernels
MAX_LINES, MAX_FUNCTION = 400, 80


def modules() -> dict[str, Path]:
    out = {}
    for folder, package in ROOTS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import in the file, function-level ones included."""
    is_pkg = path.name == "__init__.py"
    out = []
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
                   for n in ast.walk(block)}  # annotations only: not imported at run time
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            for alias in node.names:  # `from pkg import module` imports the module
                sub = f"{mod}.{alias.name}"
                out.append((sub, []) if sub in known else (mod, [alias.name]))
    return [(m, names) for m, names in out if m in known]


def test_no_import_cycle_and_no_private_name_across_modules():
    known = modules()
    graph: dict[str, set[str]] = {}
    private = []
    for name, path in known.items():
        graph[name] = set()
        for mod, names in imports(name, path, known):
            if mod != name:
                graph[name].add(mod)
            private += [f"{name} imports {mod}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
    assert private == []
    # Tarjan's strongly connected components: any with more than one module is a cycle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == [], cycles


def _compiled(fn: ast.FunctionDef) -> bool:
    return any(ast.unparse(d).split("(")[0] in COMPILED for d in fn.decorator_list)


def test_files_and_functions_stay_short():
    long_files, long_functions = [], []
    for name, path in modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_LINES:
            long_files.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
        tree = ast.parse(text)
        compiled = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and _compiled(f) for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and id(node) not in compiled:
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION:
                    long_functions.append(f"{name}.{node.name}: {n} lines")
    assert long_files == [] and long_functions == [], (long_files, long_functions)
