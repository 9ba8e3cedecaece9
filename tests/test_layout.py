"""The street plan: no import cycles, a core that imports no family, and a cheap ``hwnas --help``.

The graph is built statically from the AST of every module under hwnas/. Only module-level
imports count: an import inside a function runs when it is called, and is how heavy imports
(torch, onnxruntime) stay lazy. Imports under ``if TYPE_CHECKING:`` never run and do not count.
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
    if name not in known:
        return []
    out = [name]
    if node is not None:
        out = [f"{name}.{a.name}" if f"{name}.{a.name}" in known else name for a in node.names]
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
