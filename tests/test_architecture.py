"""flexnet's architecture, checked from the sources: parts that depend one way only.

Every module under src/flexnet is parsed with ``ast`` (never imported) and
every import it makes is collected, lazy imports inside functions included,
relative ones made absolute: ``from P import x`` depends on the submodule
``P.x`` when that file exists, else on ``P``. A package's ``__init__`` is a
dependency only where it is imported explicitly; ``importlib.import_module``
on a literal ``"flexnet..."`` path counts as an import too. The parser and the
import graph live in benchmarks/core_size.py, which also counts the core's lines.
"""

import ast
import importlib.util
import json
import subprocess
import sys
from collections import deque
from functools import cache
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The parts of flexnet, lowest first, and the parts each may import besides its own
# (a part is flexnet.<part> and everything under it).
LAYERS = {
    "ops":         set(),  # the speed seam: no other flexnet module
    "version":     set(),
    "filesystem":  set(),  # reading only regular files, writing whole files or none
    "nn":          {"ops", "version"},  # the network's parts
    "optim":       {"ops", "nn"},
    "files":       {"ops", "version", "filesystem", "nn"},
    "data":        {"ops", "filesystem", "nn"},
    "training":    {"ops", "version", "filesystem", "nn", "optim", "files", "data"},
    "plots":       {"ops", "version", "filesystem", "nn", "optim", "files", "data", "training"},
    "bridges":     {"ops", "version", "filesystem", "nn", "optim", "files", "data", "training", "plots"},
    "experiments": {"ops", "version", "filesystem", "nn", "optim", "files", "data", "training", "plots",
                    "bridges"},
    "cli":         {"ops", "version", "filesystem", "nn", "optim", "files", "data", "training", "plots",
                    "bridges", "experiments"},
}
# On top of everything, exempt from the table: the public API, ``python -m
# flexnet`` and the aliases of old module paths. No module of a part may import
# the root package ``flexnet`` (it is in no part, so the table forbids it).
ON_TOP = {"flexnet", "flexnet.__main__", "flexnet._moved"}

# What the network's parts and the optimizers may need: nothing above them.
CORE_MAY_USE = {"nn", "ops", "version"}
CORE_EXTRA = {"flexnet.optim.optimizers"}

HEAVY = ("torch", "sklearn", "onnx", "onnxruntime", "dask", "matplotlib", "scipy",
         "flexnet.cli", "flexnet.bridges.estimators")


def _load_core_size():
    path = ROOT / "benchmarks" / "core_size.py"
    spec = importlib.util.spec_from_file_location("flexnet_benchmarks_core_size", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


core_size = _load_core_size()


@cache
def _modules():
    return core_size.module_files()


@cache
def _graph():
    return core_size.import_graph(_modules())


def _deps():
    return core_size.edges(_graph())


def _line(importer, target):
    """The first line where ``importer`` imports ``target``."""
    return min(imp.line for imp in _graph()[importer] if imp.target == target)


def _part(module):
    """``flexnet.nn.layers`` -> ``"nn"``; None for the modules on top."""
    if module in ON_TOP:
        return None
    return module.split(".")[1]


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _within(name, package):
    return name == package or name.startswith(package + ".")


def _run(code):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the graph is what the sources say -----------------------------------------------


def test_the_parser_resolves_every_kind_of_import(tmp_path):
    files = {
        "flexnet/__init__.py": "from . import a\nfrom .a import thing\n",
        "flexnet/a.py": "import numpy\n",
        "flexnet/pkg/__init__.py": "from .sub import f\n",
        "flexnet/pkg/sub.py": (
            "from __future__ import annotations\n"
            "from .. import a as alias\n"                       # a module: bound to alias
            "from ..a import _helper\n"                         # a name: depends on flexnet.a
            "import flexnet.pkg.other as other\n"
            "def f():\n"
            "    from . import other, missing\n"                # lazy; missing is no file: flexnet.pkg
            "    from flexnet.layers import Linear\n"           # an old path: the longest real prefix
            "    import importlib\n"
            "    return importlib.import_module(f'flexnet.a.{other}')\n"),
        "flexnet/pkg/other.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules = core_size.module_files(tmp_path)
    assert set(modules) == {"flexnet", "flexnet.a", "flexnet.pkg", "flexnet.pkg.sub", "flexnet.pkg.other"}
    graph = core_size.import_graph(modules)
    found = {(imp.target, imp.line, imp.name, imp.local_module, imp.dynamic) for imp in graph["flexnet.pkg.sub"]}
    assert found == {
        ("flexnet.a", 2, "a", "flexnet.a", False),
        ("flexnet.a", 3, "_helper", None, False),
        ("flexnet.pkg.other", 4, None, "flexnet.pkg.other", False),
        ("flexnet.pkg.other", 6, "other", "flexnet.pkg.other", False),
        ("flexnet.pkg", 6, "missing", None, False),
        ("flexnet", 7, "Linear", None, False),
        ("flexnet.a", 9, None, None, True),
    }
    deps = core_size.edges(graph)
    assert deps["flexnet"] == {"flexnet.a"} and deps["flexnet.pkg"] == {"flexnet.pkg.sub"}
    # a package's __init__ only where it is imported explicitly
    assert core_size.closure(deps, {"flexnet.pkg.other"}) == {"flexnet.pkg.other"}
    assert core_size.closure(deps, {"flexnet.pkg.sub"}) == {"flexnet.pkg.sub", "flexnet.pkg.other", "flexnet.pkg",
                                                            "flexnet.a", "flexnet"}


def test_every_module_belongs_to_a_part():
    stray = sorted(m for m in _modules() if m not in ON_TOP and _part(m) not in LAYERS)
    assert not stray, "modules in no part of the architecture (add them to LAYERS): " + ", ".join(stray)


# -- the rules ----------------------------------------------------------------------


def _cycles(deps):
    """One cycle (a list of modules, first == last) per strongly connected group of modules."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(deps.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(deps) + 100))
    try:
        for v in sorted(deps):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)

    cycles = []
    for group in groups:  # the shortest way round from the group's first module back to it
        start = min(group)
        came_from, todo = {start: None}, deque([start])
        while todo:
            v = todo.popleft()
            if start in deps[v]:
                path = [v]
                while came_from[path[-1]] is not None:
                    path.append(came_from[path[-1]])
                cycles.append(path[::-1] + [start])
                break
            for w in sorted(deps[v] & group):
                if w not in came_from:
                    came_from[w] = v
                    todo.append(w)
    return cycles


def _describe_cycle(cycle):
    steps = [cycle[0]] + [f"{b} (line {_line(a, b)} of {a})" for a, b in pairwise(cycle)]
    return " -> ".join(steps)


def test_no_import_cycles():
    cycles = _cycles(_deps())
    assert not cycles, "import cycles (lazy imports count):\n" + "\n".join(map(_describe_cycle, cycles))


def test_each_part_imports_only_the_parts_below_it():
    violations = []
    for module, imps in _graph().items():
        part = _part(module)
        if part is None or part not in LAYERS:
            continue
        for imp in imps:
            target_part = _part(imp.target)
            if target_part == part or target_part in LAYERS[part]:
                continue
            how = "dynamic import of a flexnet.* path" if imp.dynamic else "import"
            violations.append(f"{module} -> {imp.target} (line {imp.line}, {how})")
    assert not violations, "imports against the layering (LAYERS):\n" + "\n".join(sorted(set(violations)))


def _module_named(node, bound, modules):
    """The flexnet module an expression names (``alias``, ``flexnet.nn.layers``), or None."""
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _module_named(node.value, bound, modules)
        if base and f"{base}.{node.attr}" in modules:
            return f"{base}.{node.attr}"
    return None


def _private_uses(graph, modules):
    """``from X import _name``, ``alias._name`` and private modules used outside their owner."""
    violations = []
    for module, imps in graph.items():
        bound = {}  # local name -> the flexnet module it is bound to
        for imp in imps:
            # a private module (``flexnet.ops._x``, ``flexnet._moved``) belongs to its package
            parts = imp.target.split(".")
            for i, part in enumerate(parts):
                if _private(part) and not _within(module, ".".join(parts[:i])):
                    violations.append(f"{module} -> {imp.target}: private module (line {imp.line})")
            if imp.name and imp.local_module is None and _private(imp.name) and imp.target != module:
                violations.append(f"{module} -> {imp.target}: from {imp.target} import {imp.name} (line {imp.line})")
            if imp.local and imp.local_module:
                bound[imp.local] = imp.local_module

        for node in ast.walk(ast.parse(modules[module].read_text())):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            owner = _module_named(node.value, bound, modules)
            if owner is None:
                continue
            if f"{owner}.{node.attr}" in modules:  # a private submodule: its package's own
                allowed = _within(module, owner)
            else:
                allowed = module == owner
            if not allowed:
                violations.append(f"{module} -> {owner}: uses {ast.unparse(node)} (line {node.lineno})")
    return sorted(set(violations))


def test_the_private_name_check_sees_imports_and_attributes(tmp_path):
    files = {
        "flexnet/__init__.py": "from . import _hidden\n_hidden.go()\n",  # the package's own: fine
        "flexnet/_hidden.py": "def go(): pass\n",
        "flexnet/a.py": "_helper = 1\n",
        "flexnet/b.py": ("import flexnet.a\nfrom . import a as alias\nfrom .a import _helper\n"
                         "def f():\n    return alias._helper + flexnet.a._helper + alias.__name__\n"),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules = core_size.module_files(tmp_path)
    assert _private_uses(core_size.import_graph(modules), modules) == [
        "flexnet.b -> flexnet.a: from flexnet.a import _helper (line 3)",
        "flexnet.b -> flexnet.a: uses alias._helper (line 5)",
        "flexnet.b -> flexnet.a: uses flexnet.a._helper (line 5)",
    ]


def test_no_module_uses_another_modules_private_names():
    violations = _private_uses(_graph(), _modules())
    assert not violations, "private names used outside their module:\n" + "\n".join(violations)


def _closure_with_paths(deps, roots):
    """``{module: the chain of imports that reaches it from a root}``."""
    paths, todo = {r: [r] for r in sorted(roots)}, deque(sorted(roots))
    while todo:
        v = todo.popleft()
        for w in sorted(deps.get(v, ())):
            if w not in paths:
                paths[w] = paths[v] + [w]
                todo.append(w)
    return paths


def test_the_network_parts_and_optimizers_need_nothing_above_them():
    roots = core_size.core_roots(_modules())
    assert "flexnet.optim.optimizers" in roots and "flexnet.nn" in roots
    reached = _closure_with_paths(_deps(), roots)
    extra = {m: path for m, path in reached.items() if m not in CORE_EXTRA and _part(m) not in CORE_MAY_USE}
    assert not extra, "flexnet.nn and flexnet.optim.optimizers reach beyond nn, ops and version:\n" + "\n".join(
        " -> ".join(path) for _, path in sorted(extra.items()))


def test_the_core_does_not_grow_past_its_limit():
    """The network's parts and the optimizers, with everything they import, stay readable in
    one sitting. ``core_size.LIMIT`` holds the line at the size the core was cut down to; a
    change that adds to the core raises it on purpose and says so."""
    sizes = core_size.core_sizes(_modules())
    assert "flexnet.nn.layers" in sizes and "flexnet.optim.optimizers" in sizes
    total = sum(sizes.values())
    assert total <= core_size.LIMIT, (
        f"the core is {total} lines of code, {total - core_size.LIMIT} over {core_size.LIMIT} "
        f"(python benchmarks/core_size.py):\n" + core_size.format_table(sizes))


def test_lines_of_code_leave_out_blank_lines_comments_and_docstrings(tmp_path):
    path = tmp_path / "sample.py"
    path.write_text('"""Module\ndocstring."""\n\n# a comment\nx = (1,\n     2)  # trailing\n\n\n'
                    'def f():\n    """Doc."""\n    return """not\na docstring"""\n')
    assert core_size.lines_of_code(path) == 5  # x = (1, / 2) / def f / the return's two lines


# -- what an import loads -----------------------------------------------------------


def test_old_module_paths_import_their_new_homes():
    result = _run(
        "import importlib, json, sys, types\n"
        "import flexnet\n"
        "from flexnet._moved import MOVED\n"
        "wrong = [f'{old} -> {importlib.import_module(old).__name__}, not {new}' for old, new in MOVED.items()\n"
        "         if importlib.import_module(old) is not importlib.import_module(new)]\n"
        "names = {}\n"
        "for name, home in [('sweep', 'flexnet.experiments.sweep'), ('gradcheck', 'flexnet.nn.gradcheck')]:\n"
        "    obj = getattr(flexnet, name)\n"
        "    names[name] = [callable(obj), isinstance(obj, types.ModuleType),\n"
        "                   obj is getattr(sys.modules[home], name, None), repr(obj)]\n"
        "print(json.dumps({'n': len(MOVED), 'wrong': wrong, 'names': names}))\n")
    assert result["n"] > 0
    assert not result["wrong"], "old paths that do not give their new home:\n" + "\n".join(result["wrong"])
    for name, (is_callable, is_module, is_function, text) in result["names"].items():
        assert is_callable and not is_module and is_function, f"flexnet.{name} is {text}, not the function"


def test_import_flexnet_loads_no_heavy_library_nor_cli():
    loaded = _run("import json, sys\nimport flexnet\nprint(json.dumps(sorted(sys.modules)))\n")
    assert "flexnet" in loaded and "flexnet.nn.layers" in loaded
    heavy = sorted(m for m in loaded if any(_within(m, name) for name in HEAVY))
    assert not heavy, "import flexnet loaded: " + ", ".join(heavy)
