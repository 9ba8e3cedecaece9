"""A file's contents never import code: an arch, arch-list or records file naming a
``module:attr`` space is refused in one line, and the module is not executed. Only --space,
typed by the user, imports a space of their own."""

import json
import subprocess
import sys

import pytest

EVIL = """\
import pathlib
pathlib.Path(__file__).with_name("RAN").write_text("the module ran")
class X:
    pass
"""


@pytest.fixture
def evil(tmp_path):
    (tmp_path / "evil.py").write_text(EVIL)
    return tmp_path


def _hwnas(args, home):
    return subprocess.run([sys.executable, "-m", "hwnas.cli", *args], capture_output=True,
                          text=True, env={"HWNAS_HOME": str(home), "PATH": "/usr/bin:/bin"},
                          timeout=120)


@pytest.mark.parametrize("form", ["arch", "archs"])
def test_a_file_naming_a_module_space_does_not_run_it(evil, tmp_path, form):
    spec = f"{evil / 'evil.py'}:X"
    f = tmp_path / ("a.json" if form == "arch" else "rows.jsonl")
    f.write_text(json.dumps({"space": spec, "resolution": 160}) + "\n")
    args = (["predict", "--device", "local-cpu", "--arch", str(f)] if form == "arch" else
            ["predict", "--device", "local-cpu", "--archs", str(f), "--csv",
             str(tmp_path / "out.csv")])
    r = _hwnas(args, tmp_path / "home")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "never import code" in lines[0] and str(f) in lines[0], r.stderr
    assert not (evil / "RAN").exists(), "an arch file's contents executed a module"


def test_named_by_the_user_it_is_imported(evil):
    # the same spec typed as --space is the user's choice: imported (and refused as no space)
    from hwnas.errors import SpaceError
    from hwnas.spaces import get_space

    with pytest.raises(SpaceError, match="not a search space"):
        get_space(f"{evil / 'evil.py'}:X")
    assert (evil / "RAN").exists()
