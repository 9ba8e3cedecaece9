"""What hwnas writes, hwnas reads: every file holding an architecture goes back into --arch.

For every registered space: ``search --out`` on a device with a table, then ``predict``,
``export`` and ``measure --arch`` on that very file, with no ``--space`` (the file names its
space). Records and pools files are arch files too.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from hwnas.cli import cli
from hwnas.latency.stats import Stats
from hwnas.latency.table import LatencyTable
from hwnas.predictors.lut import LUTPredictor
from hwnas.spaces import SPACES, get_space

# An imported device (no live profiler): search prices with its table and measures nothing.
DEVICE = "xeon-gold-6130"


def synthetic_table(space) -> LatencyTable:
    """A table made from op MACs, for a device nobody measures here: the round trip is about
    files, not numbers."""
    entries = {op.key: Stats.single(0.01 + op.macs() / 3e7)
               for r in space.resolutions for op in space.enumerate_ops(r)}
    return LatencyTable({"device": DEVICE, "source_format": "test"}, entries)


def run(home, *args):
    res = CliRunner().invoke(cli, [str(a) for a in args], env={"HWNAS_HOME": str(home)},
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("name", sorted(SPACES))
def test_search_out_goes_back_into_every_arch_option(name, tmp_path):
    space = get_space(name)
    res = (space.resolutions[0],)
    space = space.with_resolutions(res)
    table = synthetic_table(space)
    table.save(tmp_path / "devices" / DEVICE / "table.pkl")
    lut = LUTPredictor(table, space, calibrate=False)
    target = 1.02 * float(lut.predict_raw([space.smallest(res[0])])[0])  # a small, quick pick

    best = tmp_path / "best.json"
    run(tmp_path, "search", "--device", DEVICE, "--space", name, "-r", res[0],
        "--target-latency", target, "--out", best, "--predictor", "lut")
    doc = json.loads(best.read_text())
    picked = space.arch_from_obj(doc["best"]["arch"])

    out = json.loads(run(tmp_path, "predict", "--device", DEVICE, "--arch", best, "--json"))
    assert out["arch"] == picked.to_dict()
    assert out["predicted_ms"] == pytest.approx(doc["predicted_ms"])
    onnx = tmp_path / "best.onnx"
    run(tmp_path, "export", "--arch", best, "--out", onnx)
    assert onnx.stat().st_size > 0

    run(tmp_path, "measure", "--device", "local-cpu", "--arch", best, "--runs", 3,
        "--warmup", 1)
    records = tmp_path / "devices" / "local-cpu" / "records.json"
    recs = json.loads(records.read_text())["records"]
    assert [r["arch"] for r in recs] == [picked.to_dict()]
    # the records file is an arch file too
    again = json.loads(run(tmp_path, "predict", "--device", DEVICE, "--arch", records, "--json"))
    assert again["arch"] == picked.to_dict()


def test_pools_and_supernet_outputs_are_arch_files(tmp_path):
    from hwnas.archfile import load_arch_file

    space = get_space("elasticvit")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(3)]
    pools = {"format": "hwnas-supernet-pools", "members": [
        [{"arch": a.to_dict(), "cost": 1.0} for a in archs[:2]], [{"arch": archs[2].to_dict(),
                                                                   "cost": 2.0}]]}
    p = tmp_path / "pools.json"
    p.write_text(json.dumps(pools))
    assert load_arch_file(p).archs == tuple(archs)
    supernet_pick = tmp_path / "arch.json"
    supernet_pick.write_text(json.dumps({"arch": archs[1].to_dict(), "top1_holdout": 0.5}))
    assert load_arch_file(supernet_pick).archs == (archs[1],)
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(archs[0].to_elasticvit_list()))
    assert load_arch_file(listed).archs == (archs[0],)
