"""How big flexnet's core is: lines of code of the network's parts and the optimizers.

    python benchmarks/core_size.py

The core is every module of the package ``flexnet.nn`` (its ``__init__``
included) and ``flexnet.optim.optimizers``, plus every flexnet module they
import at any depth, lazy imports inside functions included. A package's
``__init__`` counts only when it is imported explicitly (``from .. import ops``,
``from ..ops import name``), not because one of its submodules is. Lines of
code leave out blank lines, comments and docstrings (any string-literal
expression statement).

The sources are read with ``ast``, never imported, and the same import graph
backs tests/test_architecture.py, which holds the core to ``LIMIT`` lines.
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path
from typing import NamedTuple

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "flexnet"
#: The most lines the core may hold. The aim is 1,200; the core held 1,699 in the flat
#: layout (with the schedules its optimizers imported) and was cut to 1,274 without
#: removing a feature, then grew by 8 to keep 0.1's pickles and custom layers working, and speed,
#: and by 6 for Linear(bias=False), Network(bias=False) and a batch count in every BatchNorm1d,
#: and by 7 so that a layer written as ``backward(self, grad)``, without ``input_grad``, works,
#: and by 163 for other array libraries (ops/backend.py, the seam's branches for them, ``xp``
#: in the layers, ``Sequential.to``): the same network on PyTorch, CuPy or array-api-strict,
#: and by 16 for the exact GELU on those of them that have an erf of their own,
#: and by 9 for checks found by hostile inputs: a backward that returns no array, a device
#: without a backend, params given as a list, Linear(bias=) True or False only; a repr
#: that names the backend,
#: and by 4 so that a device the array library cannot use is refused naming it (Sequential.to
#: places one element there first),
#: and by 4 for ``forward(z, y, checked=True)`` in BCEWithLogits, MSE, L1 and Huber: fit
#: checks every target once, before its loop, and its batches skip the check (a regression
#: fit on the edge-sized network runs 8% fewer instructions per epoch),
#: and less 1: Sequential's backend and device are the class's own until to() sets them.
#: A change that adds to the core raises this on purpose, and says so.
LIMIT = 1491


def lines_of_code(path):
    src = open(path).read()
    doc = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            doc.update(range(node.lineno, node.end_lineno + 1))
    lines = set()
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines - doc)


# -- the modules and their imports -------------------------------------------------


def module_files(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """``{dotted module name: path}`` for every .py file of the package (``__init__`` -> the package)."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


class Import(NamedTuple):
    """One dependency of a module on another module of the package."""

    target: str  # the module depended on
    line: int
    name: str | None  # ``from X import name``: the name as written; None for ``import X`` and dynamic imports
    local: str | None  # the name the import binds in the importer, if any
    local_module: str | None  # the module bound to ``local``, when it binds a module
    dynamic: bool = False  # importlib.import_module / __import__ of a literal flexnet path


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _longest_module(dotted: str, modules) -> str | None:
    """The module ``dotted`` names, or the longest prefix of it that is one (``flexnet.x.name`` -> ``flexnet.x``)."""
    parts = dotted.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def _literal_prefix(node) -> str | None:
    """The text of a string literal, or of an f-string up to its first ``{...}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        text = ""
        for part in node.values:
            if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
                break
            text += part.value
        return text
    return None


def module_imports(module: str, modules: dict[str, Path], package: str = PACKAGE) -> list[Import]:
    """Every import of a package module by ``module``, at any depth of its source (functions included).

    Relative imports are made absolute. ``from P import x`` depends on the
    submodule ``P.x`` when that file exists, else on ``P``; a path that is not
    a module of the package (an old alias such as ``flexnet.layers``) depends
    on the longest prefix that is one. ``importlib.import_module`` and
    ``__import__`` calls on a literal ``flexnet...`` string (or an f-string
    starting with one) count too, on the module their literal part names.
    """
    path = modules[module]
    own_package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _within(alias.name, package):
                    continue
                target = _longest_module(alias.name, modules)
                if alias.asname:
                    found.append(Import(target, node.lineno, None, alias.asname, target))
                else:  # ``import flexnet.x`` binds ``flexnet``
                    top = alias.name.partition(".")[0]
                    found.append(Import(target, node.lineno, None, top, _longest_module(top, modules)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = own_package.split(".")
                base = base[: len(base) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not _within(base, package):
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if alias.name != "*" and submodule in modules:
                    target, bound = submodule, submodule
                else:
                    target, bound = _longest_module(base, modules), None
                found.append(Import(target, node.lineno, alias.name, alias.asname or alias.name, bound))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            text = _literal_prefix(node.args[0]) if called in ("import_module", "__import__") else None
            if text is not None and _within(text.rstrip("."), package):
                target = _longest_module(text.rstrip("."), modules)
                found.append(Import(target, node.lineno, None, None, None, dynamic=True))
    return [imp for imp in found if imp.target is not None]


def import_graph(modules: dict[str, Path] | None = None) -> dict[str, list[Import]]:
    """``{module: [Import, ...]}`` for every module of the package."""
    modules = module_files() if modules is None else modules
    return {name: module_imports(name, modules) for name in modules}


def edges(graph: dict[str, list[Import]]) -> dict[str, set[str]]:
    """``{module: {modules it imports}}`` (a module importing itself left out)."""
    return {name: {imp.target for imp in imps} - {name} for name, imps in graph.items()}


def closure(deps: dict[str, set[str]], start) -> set[str]:
    """``start`` and every module it imports, at any depth."""
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(deps.get(name, ()))
    return seen


# -- the core ----------------------------------------------------------------------


def core_roots(modules) -> set[str]:
    """What the core is by definition: all of ``flexnet.nn`` and ``flexnet.optim.optimizers``."""
    roots = {name for name in modules if _within(name, f"{PACKAGE}.nn")}
    return roots | {f"{PACKAGE}.optim.optimizers"} & set(modules)


def core_sizes(modules: dict[str, Path] | None = None) -> dict[str, int]:
    """``{module: lines of code}`` for every module of the core, in name order."""
    modules = module_files() if modules is None else modules
    core = closure(edges(import_graph(modules)), core_roots(modules))
    return {name: lines_of_code(modules[name]) for name in sorted(core)}


def format_table(sizes: dict[str, int], limit: int = LIMIT) -> str:
    width = max(map(len, sizes), default=6)
    total = sum(sizes.values())
    rows = [f"{'module':<{width}}  lines", f"{'-' * width}  -----"]
    rows += [f"{name:<{width}}  {n:>5}" for name, n in sizes.items()]
    rows += [f"{'-' * width}  -----", f"{'total':<{width}}  {total:>5}",
             f"{'limit':<{width}}  {limit:>5}" + (f"  (over by {total - limit})" if total > limit else "")]
    return "\n".join(rows)


def main() -> int:
    print(format_table(core_sizes()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
