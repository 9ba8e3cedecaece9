"""Registering a search space without editing hwnas: the decorator, the ``hwnas.spaces``
entry-point group, and ``--space module:Class`` on the command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hwnas.errors import SpaceError
from hwnas.spaces import SPACES, get_space, register_space
from hwnas.spaces.registry import BUILTIN_FAMILIES

from cli_harness import run_console_script

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "docs" / "examples" / "my_space.py"


@pytest.fixture
def registry():
    """SPACES as it was before the test, afterwards."""
    before = dict(SPACES)
    yield SPACES
    SPACES.clear()
    SPACES.update(before)


def test_builtin_families_register_themselves_in_order():
    assert list(SPACES)[:8] == ["elasticvit", "vit", "vit-autoformer-t", "vit-autoformer-s",
                                "vit-autoformer-b", "vit-res", "tfnas", "edgevit"]
    assert [m.split(".")[2] for m in BUILTIN_FAMILIES] == ["elasticvit", "vit", "vitres",
                                                             "tfnas", "edgevit", "nb201",
                                                             "fbnet"]


def test_decorator_registers_a_factory(registry):
    @register_space("tiny-tfnas-test")
    def tiny():
        return get_space("tfnas")

    assert registry["tiny-tfnas-test"] is tiny
    assert get_space("tiny-tfnas-test").name == "tfnas"
    with pytest.raises(SpaceError, match="registered twice"):
        register_space("tiny-tfnas-test", lambda: get_space("vit"))
    with pytest.raises(SpaceError, match="without ':'"):
        register_space("a:b")


def test_module_colon_class_imports_on_demand(registry):
    """A spec names a module (dotted, or a file) and an attribute; the same definition
    loaded twice registers once."""
    space = get_space(f"{EXAMPLE}:MySpace", [64])
    assert type(space).__name__ == "MySpace" and space.resolutions == (64,)
    assert get_space("my_space").name == "my_space"  # its own decorator's name
    arch = space.smallest(64)
    assert get_space(f"{EXAMPLE}:MySpace").validate(arch) == arch
    with pytest.raises(SpaceError, match="has no 'Nope'"):
        get_space(f"{EXAMPLE}:Nope")
    with pytest.raises(SpaceError, match="cannot import search space module 'no_such_mod_x'"):
        get_space("no_such_mod_x:Space")
    with pytest.raises(SpaceError, match="no such search space file"):
        get_space("missing/dir/space.py:Space")


def _user_dir(tmp_path: Path) -> Path:
    d = tmp_path / "user"
    d.mkdir()
    shutil.copy(EXAMPLE, d / "my_space.py")
    arch = {"space": "my_space", "resolution": 64, "widths": [16, 24, 40], "depths": [1, 1, 1],
            "kernels": [3, 3, 3], "expands": [3, 3, 3]}
    (d / "arch.json").write_text(json.dumps(arch))
    return d


def test_cli_space_module_class_from_the_current_folder(tmp_path, hwnas_home):
    """The console script (not python -m, which puts the folder on sys.path itself) finds
    my_space.py beside the user; a wrong spec is one line on stderr."""
    d = _user_dir(tmp_path)
    p = run_console_script(["export", "--space", "my_space:MySpace", "--arch", "arch.json", "--out",
                "net.onnx"], d, hwnas_home)
    assert p.returncode == 0, p.stderr
    assert (d / "net.onnx").stat().st_size > 0
    for spec, says in [("my_space:Nope", "has no 'Nope'"),
                       ("no_such_mod_x:Space", "cannot import search space module")]:
        p = run_console_script(["export", "--space", spec, "--arch", "arch.json", "--out",
                                "x.onnx"], d, hwnas_home)
        assert p.returncode != 0
        assert "Traceback" not in p.stderr
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and says in lines[0], p.stderr
        assert not (d / "x.onnx").exists()


def _dist(tmp_path: Path, entry_points: str, module: str) -> Path:
    """A minimal installed distribution (dist-info + module) on a folder for sys.path."""
    site = tmp_path / "site"
    info = site / "my_spaces_pkg-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-spaces-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    (site / "my_spaces_pkg.py").write_text(module)
    return site


def test_entry_point_group_registers_another_packages_space(tmp_path):
    module = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(EXAMPLE.parent)!r})
        from my_space import MySpace

        def small():
            return MySpace([64])

        def broken():
            raise RuntimeError("never called")
    """)
    site = _dist(tmp_path, "[hwnas.spaces]\nmy-small = my_spaces_pkg:small\n"
                           "gone = my_spaces_pkg_missing:Space\n", module)
    code = ("import json; from hwnas.spaces import SPACES, get_space; "
            "s = get_space('my-small'); "
            "print(json.dumps([list(SPACES), s.name, list(s.resolutions)]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)])),
                       timeout=120)
    assert p.returncode == 0, p.stderr
    names, name, res = json.loads(p.stdout)
    assert "my-small" in names and "my_space" in names and "gone" not in names
    assert (name, res) == ("my_space", [64])
    # a broken entry point of another package is skipped, with one warning naming it
    assert "gone = my_spaces_pkg_missing:Space does not load" in p.stderr


def test_a_user_space_searches_like_a_builtin_one(registry):
    """The registry gives a user's space every service: sampling, the walk, search."""
    from hwnas.search.evolution import EvolutionConfig, MacsObjective, evolve

    space = get_space(f"{EXAMPLE}:MySpace", [64])
    macs_hi = space.macs(space.largest(64))
    result = evolve(space, lambda archs: np.array([space.macs(a) / 1e7 for a in archs]),
                    0.6 * macs_hi / 1e7, np.random.default_rng(0), MacsObjective(space),
                    EvolutionConfig(population=16, generations=3))
    assert space.macs(result.best.arch) <= 0.6 * macs_hi
