"""The package layout stays as docs/design.md describes it: no import cycles, no oversized module or function.

The import graph is read from the source (``ast``), top-level and function-level imports alike, so a
cycle hidden inside a function (the kind that used to join ``eda`` and ``eda_plots``) counts too.
``from package import name`` is an edge to ``package.name`` when that is a module, else to ``package``;
a package's ``__init__`` importing its own submodules is the package exposing its public face and is
not an edge back from the submodule.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pneumocxr"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    """Dotted module name of a file under ``src/`` (``pkg/__init__.py`` -> ``pkg``)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, known: dict[str, Path], this: str | None = None) -> set[str]:
    """The package's own modules that ``path`` (module ``this``) imports anywhere in its body."""
    this = this or module_name(path)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = this if is_package else this.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}".rstrip(".")
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in known else base)
    return {name for name in found if name in known and name != this}


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    known = modules()
    return {name: imported_modules(path, known) for name, path in known.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def package_edges_removed(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without a submodule's edge to its own enclosing package (``from pkg import sibling``
    resolves to the sibling; what is left is the package importing its public face)."""
    return {
        name: {target for target in targets if not name.startswith(target + ".") or target not in graph}
        for name, targets in graph.items()
    }


def test_the_graph_reader_sees_function_level_imports_and_cycles(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from pneumocxr.evaluate import figures\n")
    known = {"pneumocxr.evaluate.figures": source, "pneumocxr.evaluate": source}
    assert imported_modules(source, known, "pneumocxr.mod") == {"pneumocxr.evaluate.figures"}
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 50, "the package was not found"
    assert "pneumocxr.runs" in graph["pneumocxr.train.run"], "the reader misses top-level imports"
    cycles = find_cycles(package_edges_removed(graph))
    assert cycles == [], f"import cycles: {cycles}"


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_size(name):
    path = modules()[name]
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(PACKAGE.parent)}: {lines} lines (limit {MAX_MODULE_LINES})"


def docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines taken by a function's docstring (documentation does not make a function long)."""
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.end_lineno - first.lineno + 1
    return 0


def test_function_size():
    """Every function's code (signature to last line, docstring excluded) within the limit."""
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1 - docstring_lines(node)
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert long == [], "functions over the limit:\n" + "\n".join(long)


GLOBAL_MATPLOTLIB = ("matplotlib.use(", "rcParams", "sns.set", "style.use(", "rcdefaults(")


@pytest.mark.parametrize("name", sorted(modules()))
def test_only_the_plotting_helper_touches_global_matplotlib_state(name):
    if name == "pneumocxr.plotting":
        return
    text = modules()[name].read_text()
    found = [call for call in GLOBAL_MATPLOTLIB if call in text]
    assert found == [], f"{name} changes matplotlib's global state ({found}); use pneumocxr.plotting"


def test_importing_the_figure_modules_leaves_matplotlib_as_it_was():
    """In a fresh process: importing every module that draws keeps the backend and rcParams untouched."""
    import subprocess
    import sys

    code = (
        "import matplotlib; matplotlib.use('svg'); before = dict(matplotlib.rcParams)\n"
        "import pneumocxr.eda, pneumocxr.evaluate.figures, pneumocxr.report.figures, pneumocxr.train.stages\n"
        "after = dict(matplotlib.rcParams)\n"
        "changed = sorted(k for k in before if before[k] != after[k])\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "assert not changed, changed\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_readme_module_table_matches_the_tree():
    """Every module README's table names exists, and every subpackage has a row."""
    import re

    readme = (PACKAGE.parents[1] / "README.md").read_text()
    table = readme[readme.index("| module | step |") :].split("\n\n")[0]
    named = set()
    for row in table.splitlines()[2:]:
        first = row.split("|")[1]
        for name in re.findall(r"`([\w.]+)`", first):
            named.add(name if name.startswith("pneumocxr") else f"pneumocxr.{name}")
    known = modules()
    assert sorted(named - set(known)) == [], "README names modules that do not exist"
    packages = {name for name, path in known.items() if path.name == "__init__.py" and name != "pneumocxr"}
    assert sorted(packages - named) == [], "subpackages without a row in README's module table"
