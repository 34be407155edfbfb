"""The package's shape, measured by reading its source (``ast``, no imports): the outcomes of
issue 17, item 1.

* no import cycle among ``bayesloss`` modules: imports inside functions count (an import
  deferred into a function dodges the cycle at import time, not the tangle); a package's
  ``__init__`` re-exporting its own submodules is not a cycle;
* no private name (``_x``) imported from, or read off, another subsystem (a top-level module,
  or a subpackage as a whole): other parts use what a subsystem exports;
* no module over 700 lines, no function over 120 lines of code (docstrings, comments and blank
  lines aside; a nested function counts in its enclosing one too);
* at most two places that build ``torch.optim.LBFGS`` outside ``bayesloss/references/`` (the
  references are independent solvers by design).
"""

from __future__ import annotations

import ast
import io
import tokenize
from functools import lru_cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesloss"
MAX_MODULE_LINES = 700
MAX_FUNCTION_CODE_LINES = 120
MAX_LBFGS_SITES = 2


def _module_name(path: Path) -> str:
    parts = ("bayesloss",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=None)
def _modules() -> dict:
    """``{module name: (path, source, ast)}`` for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        out[_module_name(path)] = (path, source, ast.parse(source, str(path)))
    return out


def _is_package(name: str) -> bool:
    return _modules()[name][0].name == "__init__.py"


def _subsystem(name: str) -> str:
    """``bayesloss.x`` for a top-level module, the subpackage ``bayesloss.p`` for its modules."""
    return ".".join(name.split(".")[:2])


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]  # a module's own package
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str):
    """``(line, target module, imported name or None)`` for every import of ``bayesloss``
    modules anywhere in ``module`` (module level, functions, ``if TYPE_CHECKING`` alike)."""
    mods = _modules()
    for node in ast.walk(mods[module][2]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "bayesloss":
                    yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if target.split(".")[0] != "bayesloss":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in mods:  # ``from . import x``: the submodule itself
                    yield node.lineno, sub, None
                else:
                    yield node.lineno, target, alias.name


def _graph() -> dict:
    graph = {m: set() for m in _modules()}
    for module in graph:
        for _, target, _ in _imports(module):
            if target not in graph or target == module:
                continue
            if _is_package(module) and target.startswith(module + "."):
                continue  # a package's __init__ re-exporting its own submodules
            graph[module].add(target)
    return graph


def _cycles(graph: dict) -> list:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _code_lines(source: str, tree: ast.AST) -> set:
    """Line numbers that carry code: not blank, not only a comment, not in a docstring."""
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                        tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER):
            continue
        lines.update(range(tok.start[0], tok.end[0] + 1))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                lines.difference_update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles among bayesloss modules (imports inside functions " \
        "count):\n" + "\n".join(" ⇄ ".join(c) for c in cycles)


def test_no_private_names_across_subsystems():
    found = []
    mods = _modules()
    for module, (path, _, tree) in mods.items():
        own = _subsystem(module)
        bound = {}  # local names bound to modules of other subsystems
        for line, target, name in _imports(module):
            if _subsystem(target) == own:
                continue
            if name is not None and _private(name):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name} "
                             f"from {target}")
            if name is None and target in mods:
                bound[target.split(".")[-1]] = target
        for node in ast.walk(tree):  # ``module._name`` read off an imported module
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in bound and _private(node.attr)):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} reads "
                             f"{bound[node.value.id]}.{node.attr}")
    assert not found, "private names used across subsystems:\n" + "\n".join(found)


def test_module_sizes():
    big = [f"{path.relative_to(PACKAGE.parent)}: {len(source.splitlines())} lines"
           for path, source, _ in _modules().values()
           if len(source.splitlines()) > MAX_MODULE_LINES]
    assert not big, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(big)


def test_function_sizes():
    long = []
    for path, source, tree in _modules().values():
        code = _code_lines(source, tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = len([k for k in code if node.lineno <= k <= node.end_lineno])
                if n > MAX_FUNCTION_CODE_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} "
                                f"{node.name}: {n} lines of code")
    assert not long, (f"functions over {MAX_FUNCTION_CODE_LINES} lines of code:\n"
                      + "\n".join(long))


def _builds_lbfgs(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Attribute) and func.attr == "LBFGS") or (
        isinstance(func, ast.Name) and func.id == "LBFGS")


def test_lbfgs_built_in_at_most_two_places():
    sites = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
             for module, (path, _, tree) in _modules().items()
             if not module.startswith("bayesloss.references")
             for node in ast.walk(tree) if _builds_lbfgs(node)]
    assert len(sites) <= MAX_LBFGS_SITES, "torch.optim.LBFGS built in:\n" + "\n".join(sites)


@pytest.mark.parametrize("snippet, expected", [
    ("from .a import b", {"bayesloss.a"}),
    ("def f():\n    from .a import b", {"bayesloss.a"}),
    ("from . import a", {"bayesloss.a"}),
])
def test_imports_inside_functions_are_seen(snippet, expected, monkeypatch):
    """The reader itself: an import deferred into a function is an edge like any other, and
    two modules importing each other are a cycle."""
    fake = {"bayesloss.m": (PACKAGE / "m.py", snippet, ast.parse(snippet)),
            "bayesloss.a": (PACKAGE / "a.py", "", ast.parse(""))}
    monkeypatch.setitem(globals(), "_modules", lambda: fake)
    assert {t for _, t, _ in _imports("bayesloss.m")} == expected
    assert _cycles({"bayesloss.m": {"bayesloss.a"}, "bayesloss.a": {"bayesloss.m"}})
