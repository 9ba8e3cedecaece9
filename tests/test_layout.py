"""The street plan: no import cycles, a core that imports no family, and a cheap ``hwnas --help``.

The graph is built statically from the AST of every module under hwnas/. Only module-level
imports count: an import inside a function runs when it is called, and is how heavy imports
(torch, onnxruntime) stay lazy. Imports under ``if TYPE_CHECKING:`` never run and do not count.

The layers are checked on every import, inside functions too: a lower layer calling back up
into the API or the CLI at run time depends on it as much as a module-level import would, only
out of the cycle finder's sight.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import hwnas

PKG = Path(hwnas.__file__).parent
REPO = PKG.parent  # subprocesses run here, so that they import this checkout's hwnas

# The shared contracts. They may import each other and hwnas.errors, never a family.
CORE = ("hwnas.errors", "hwnas.arch", "hwnas.arch_base", "hwnas.ops", "hwnas.spaces.base",
        "hwnas.spaces._util", "hwnas.spaces.registry")
FAMILIES_PKG = "hwnas.spaces."
FAMILY_SHARED = {"hwnas.spaces.base", "hwnas.spaces._util", "hwnas.spaces.registry",
                 "hwnas.spaces.fixed", "hwnas.spaces.elasticity"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(tree: ast.Module):
    """Import nodes that run when the module is imported (not in functions or TYPE_CHECKING)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        elif isinstance(node, ast.ClassDef):
            stack.extend(node.body)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                stack.extend(getattr(node, field, []) or [])
        elif isinstance(node, ast.ExceptHandler):
            stack.extend(node.body)


def _resolve(name: str, mod: str, path: Path, node: ast.ImportFrom | None, known) -> list[str]:
    """The hwnas modules an import names (``from pkg import sub`` names the submodule)."""
    if node is not None and node.level:
        base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        name = ".".join(base + ([node.module] if node.module else []))
    if node is None:
        return [name] if name in known else []
    # ``from hwnas.search import landing``: hwnas.search has no __init__.py (a namespace
    # package, not a module of its own), so the submodule must be found even when the package
    # itself is not a known module, or the import is invisible to the cycle finder
    out = []
    for a in node.names:
        sub = f"{name}.{a.name}"
        if sub in known:
            out.append(sub)
        elif name in known:
            out.append(name)
    return out


def import_graph() -> dict[str, set[str]]:
    known = all_modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for mod, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in _module_level_imports(tree):
            if isinstance(node, ast.Import):
                targets = [t for a in node.names for t in _resolve(a.name, mod, path, None, known)]
            else:
                targets = _resolve(node.module or "", mod, path, node, known)
            graph[mod].update(t for t in targets if t != mod)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    for start in sorted(graph):
        if colour[start] != WHITE:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = GREY
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = BLACK
                stack.pop()
                path.pop()
            elif colour[nxt] == GREY:
                return path[path.index(nxt):] + [nxt]
            elif colour[nxt] == WHITE:
                colour[nxt] = GREY
                stack.append((nxt, iter(sorted(graph[nxt]))))
                path.append(nxt)
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        for n in graph.get(m, ()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def test_the_cycle_finder_can_fail():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_a_namespace_package_import_is_seen():
    known = all_modules()
    node = ast.parse("from hwnas.search import landing").body[0]
    assert _resolve("hwnas.search", "hwnas.x", PKG / "x.py", node, known) == \
        ["hwnas.search.landing"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_core_imports_no_family():
    graph = import_graph()
    for core in CORE:
        assert core in graph, core
        families = sorted(m for m in reachable(graph, core)
                          if m.startswith(FAMILIES_PKG) and m not in FAMILY_SHARED)
        assert not families, f"{core} imports family modules {families}"


def test_every_module_imports_in_a_fresh_interpreter():
    """Every module, imported by name in one new process (nothing the suite imported first can
    hide a module that fails on its own)."""
    skip = {"hwnas.supernet.__main__", "hwnas.cli.__main__"}  # run the CLI when imported
    names = [n for n in sorted(all_modules()) if n not in skip]
    script = ("import importlib, json, sys\n"
              "bad = {}\n"
              "for n in json.loads(sys.argv[1]):\n"
              "    try:\n"
              "        importlib.import_module(n)\n"
              "    except Exception as e:\n"
              "        bad[n] = f'{type(e).__name__}: {e}'\n"
              "print(json.dumps(bad))\n")
    out = subprocess.run([sys.executable, "-c", script, json.dumps(names)],
                         capture_output=True, text=True, check=True, cwd=REPO)
    assert json.loads(out.stdout) == {}


def test_cli_import_stays_light():
    """``hwnas --help`` imports hwnas.cli; none of the heavy libraries may come with it."""
    heavy = ["torch", "onnxruntime", "sklearn", "onnx", "pandas", "matplotlib", "xgboost",
             "scipy", "transformers"]
    code = ("import sys, json; import hwnas.cli; "
            f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert json.loads(out.stdout) == []


def test_help_runs_without_heavy_imports():
    code = ("import sys\nfrom click.testing import CliRunner\nimport hwnas.cli as c\n"
            "r = CliRunner().invoke(c.cli, ['--help'])\nassert r.exit_code == 0, r.output\n"
            "print(int('torch' in sys.modules or 'onnxruntime' in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


@pytest.mark.parametrize("name", ["hwnas.cli", "hwnas.api", "hwnas.spaces"])
def test_modules_import(name):
    importlib.import_module(name)


def _family_module(name: str) -> bool:
    return name.startswith(FAMILIES_PKG) and name.count(".") >= 3  # hwnas.spaces.<family>.<mod>


def test_families_import_only_the_core_each_other_and_the_supernet_base():
    """docs/ARCHITECTURE.md's table: a family builds on the core, on another family (vitres on
    vit) and, for its supernet, on supernet/model.py and supernet/elastic.py; nothing above."""
    graph = import_graph()
    allowed = set(CORE) | {"hwnas.supernet", "hwnas.supernet.model", "hwnas.supernet.elastic"}
    for mod in sorted(m for m in graph if _family_module(m)):
        above = sorted(t for t in graph[mod] if t not in allowed and not _family_module(t))
        assert not above, f"{mod} imports {above}"


def test_the_cli_imports_only_its_own_modules_at_module_level():
    graph = import_graph()
    for mod in sorted(m for m in graph if m == "hwnas.cli" or m.startswith("hwnas.cli.")):
        other = sorted(t for t in graph[mod] if t not in {"hwnas", "hwnas.errors"}
                       and t != "hwnas.cli" and not t.startswith("hwnas.cli."))
        assert not other, f"{mod} imports {other} when it is imported; import them in commands"


# --- layers, imports inside functions included --------------------------------------------------
# The API (hwnas.api, hwnas.anymodel) sits on everything else and the CLI on the API. A module
# of a lower layer imports no upper one anywhere: not at module level, not inside a function
# (however deeply nested), not under TYPE_CHECKING, not by a literal name given to importlib.
UPPER_LAYERS = {"hwnas.api": 1, "hwnas.anymodel": 1, "hwnas.cli": 2}
# Programs run by ``python -m``: they start the CLI wherever their folder is, and no module
# imports them (checked below), so they sit above every layer.
PROGRAMS = {"hwnas.supernet.__main__", "hwnas.cli.__main__"}


def layer(mod: str) -> int:
    for top, rank in UPPER_LAYERS.items():
        if mod == top or mod.startswith(top + "."):
            return rank
    return 0


def _literal_import(node: ast.AST) -> str | None:
    """The module an ``importlib.import_module("x")`` / ``__import__("x")`` call names."""
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        return None
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    return node.args[0].value if name in ("import_module", "__import__") else None


def every_import(source: str, mod: str, path: Path, known) -> list[tuple[int, str, str]]:
    """(line, imported hwnas module, where) for every import in ``source``, wherever it is;
    ``where`` names the enclosing functions and classes ("module level" at the top). Names are
    resolved without ``known``'s help where it has no file (namespace packages such as
    hwnas.search): a layer is a name's prefix."""
    found = []

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        where = ".".join(scope) or "module level"
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package up
                pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                base = ".".join(pkg[:len(pkg) - (node.level - 1)] + ([base] if base else []))
            # ``from pkg import sub`` imports the submodule; ``from mod import name``, mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        elif (name := _literal_import(node)) is not None:
            targets = [name]
        found.extend((node.lineno, t, where) for t in dict.fromkeys(targets)
                     if t != mod and (t == "hwnas" or t.startswith("hwnas.")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = scope + (node.name,)
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(ast.parse(source, str(path)), ())
    return found


def upward_imports(known: dict[str, Path], sources: dict[str, str] | None = None) -> list[str]:
    """One line per import of an upper layer by a lower one: file, line, module, what, where."""
    bad = []
    for mod, path in sorted(known.items()):
        if mod in PROGRAMS:
            continue
        source = sources[mod] if sources is not None else path.read_text()
        for line, target, where in every_import(source, mod, path, known):
            if layer(target) > layer(mod):
                rel = path.relative_to(REPO) if path.is_absolute() else path
                bad.append(f"{rel}:{line}: {mod} imports {target} ({where}); hand it a "
                           f"callable or a value from the upper layer instead")
    return bad


def test_the_layer_check_sees_imports_in_nested_functions():
    """The check can fail: a made-up supernet module calling up from nested scopes."""
    known = {"hwnas": PKG / "__init__.py", "hwnas.supernet.x": PKG / "supernet" / "x.py",
             "hwnas.api": PKG / "api" / "__init__.py",
             "hwnas.api.device": PKG / "api" / "device.py",
             "hwnas.cli": PKG / "cli" / "__init__.py"}
    source = ("from hwnas import search\n"
              "def outer():\n"
              "    def inner():\n"
              "        from hwnas import api\n"
              "    import hwnas.api.device\n"
              "class C:\n"
              "    def m(self):\n"
              "        from ..cli import main\n"
              "def lazy():\n"
              "    importlib.import_module('hwnas.api.device')\n")
    bad = upward_imports(known, dict.fromkeys(known, "") | {"hwnas.supernet.x": source})
    assert bad == [
        "hwnas/supernet/x.py:4: hwnas.supernet.x imports hwnas.api (outer.inner); hand it a "
        "callable or a value from the upper layer instead",
        "hwnas/supernet/x.py:5: hwnas.supernet.x imports hwnas.api.device (outer); hand it a "
        "callable or a value from the upper layer instead",
        "hwnas/supernet/x.py:8: hwnas.supernet.x imports hwnas.cli (C.m); hand it a "
        "callable or a value from the upper layer instead",
        "hwnas/supernet/x.py:10: hwnas.supernet.x imports hwnas.api.device (lazy); hand it a "
        "callable or a value from the upper layer instead"]


def test_no_lower_layer_imports_the_api_or_the_cli_even_inside_functions():
    """docs/ARCHITECTURE.md's table: supernet/, search/, predictors/, profilers/, latency/,
    spaces/, devices/ and the core receive what they need from the API as arguments (callables,
    values); they never call back up into hwnas.api, hwnas.anymodel or hwnas.cli, and the API
    never into the CLI."""
    known = all_modules()
    for lower in ("hwnas.supernet", "hwnas.search", "hwnas.predictors", "hwnas.profilers",
                  "hwnas.latency", "hwnas.spaces", "hwnas.devices"):  # all checked, all below
        assert any(m.startswith(lower + ".") for m in known) and layer(lower) == 0, lower
    bad = upward_imports(known)
    assert not bad, "imports of an upper layer:\n" + "\n".join(bad)


def test_nothing_imports_a_program():
    """The ``python -m`` programs may start the CLI from any folder because nothing imports
    them: importing one would run the CLI."""
    known = all_modules()
    bad = [f"{path.relative_to(REPO)}:{line}: {mod} imports {target} ({where})"
           for mod, path in sorted(known.items())
           for line, target, where in every_import(path.read_text(), mod, path, known)
           if target in PROGRAMS]
    assert not bad, "\n".join(bad)
