"""docs/extending.md runs as written: its console block, in order, as the console script runs it,
in a folder holding docs/examples/my_space.py, on local-cpu (real onnxruntime, real measurements)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from cli_harness import run_console_script

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "extending.md"
EXAMPLE = REPO / "docs" / "examples" / "my_space.py"


def doc_commands() -> list[list[str]]:
    """The ``$ hwnas ...`` lines of the doc's console block."""
    block = re.search(r"```console\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/extending.md has no console block"
    return [shlex.split(line[2:]) for line in block.group(1).splitlines()
            if line.startswith("$ ")]


def test_the_doc_names_the_example_and_its_commands():
    cmds = doc_commands()
    assert [c[:2] for c in cmds] == [["hwnas", "profile"], ["hwnas", "search"],
                                     ["hwnas", "predict"]]
    assert all("my_space:MySpace" in c for c in cmds)
    assert "examples/my_space.py" in DOC.read_text()


@pytest.mark.slow
def test_the_worked_example_runs_end_to_end(tmp_path, hwnas_home):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(EXAMPLE, work / "my_space.py")
    outputs = []
    for cmd in doc_commands():
        assert cmd[0] == "hwnas"
        p = run_console_script(cmd[1:], work, hwnas_home)
        assert p.returncode == 0, f"{shlex.join(cmd)}\n{p.stderr}"
        assert "Traceback" not in p.stderr
        outputs.append(p.stdout)

    from hwnas.latency.table import LatencyTable
    from hwnas.spaces import get_space

    space = get_space(f"{work / 'my_space.py'}:MySpace", [64])
    table = LatencyTable.load(hwnas_home / "devices" / "local-cpu" / "table.pkl")
    assert {op.key for op in space.enumerate_ops(64)} <= set(table.entries)
    best = json.loads((work / "best.json").read_text())
    arch = space.arch_from_obj(best["best"]["arch"])
    assert best["space"] == "my_space:MySpace" and best["measured_ms"] > 0
    # predict read the search's own file back, and priced that architecture
    ms = float(re.match(r"([\d.]+) ms on local-cpu", outputs[2]).group(1))
    assert ms > 0 and f"{space.macs(arch) / 1e6:.1f} MMACs" in outputs[2]
