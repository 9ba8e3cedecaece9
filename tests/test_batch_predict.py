"""Batch prediction (``predict --archs``): the fast encoded path equals the plain LUT walk,
reports its phases, and leaves every row it cannot judge to the general path."""

import json

import numpy as np
import pytest

from cli_harness import assert_one_line, invoke, synthetic_table
from hwnas.api.batch import encode_rows, predict_file
from hwnas.predictors.lut import LUTPredictor
from hwnas.spaces import get_space


@pytest.fixture
def board(hwnas_home):
    table = synthetic_table("pixel6", "elasticvit", [160, 192], call_overhead_ms=0.01)
    table.save(hwnas_home / "devices/pixel6/table.pkl")
    space = get_space("elasticvit", [160, 192])
    rng = np.random.default_rng(3)
    archs = [space.sample(rng) for _ in range(3000)]  # more than one chunk of the compiled LUT
    return hwnas_home, table, space, archs


def test_encoded_rows_equal_space_encode(board):
    _, _, space, archs = board
    full = get_space("elasticvit")
    X = encode_rows(full, [json.loads(json.dumps(a.to_dict())) for a in archs])
    np.testing.assert_array_equal(X, np.stack([space.encode(a) for a in archs]))


def test_fast_batch_equals_the_plain_lut_sum(board, monkeypatch):
    home, table, space, archs = board
    import hwnas.predictors.fastlut as fastlut

    monkeypatch.setattr(fastlut, "CHUNK", 1000)  # several chunks, one short
    path = home / "archs.jsonl"
    path.write_text("\n".join(json.dumps(a.to_dict()) for a in archs) + "\n")
    got = predict_file("pixel6", path, home / "out.csv", home=home)
    assert got.fast and got.n == len(archs) and got.chosen.kind == "lut"
    walk = LUTPredictor(table, space, calibrate=False)._predict_walk(archs)
    np.testing.assert_allclose(got.ms, walk, rtol=1e-9)
    assert set(got.seconds) == {"read", "parse", "setup", "predict", "write"}
    rows = (home / "out.csv").read_text().splitlines()
    assert len(rows) == len(archs) + 1 and rows[1].split(",")[-1] == "lut"


def test_cli_reports_phases_and_falls_back_for_rows_it_cannot_judge(board):
    home, table, space, archs = board
    good = home / "a.jsonl"
    good.write_text("\n".join(json.dumps(a.to_dict()) for a in archs[:50]))
    r = invoke(["predict", "--device", "pixel6", "--archs", good, "--csv", home / "o.csv"], home)
    assert r.exit_code == 0, r.stderr
    assert "parse" in r.stdout and "predict" in r.stdout and "compiled LUT" in r.stdout
    # a float, a boolean, a bad choice: the general path says which row, in one line
    for bad, what in ((3.0, "must be"), (True, ""), (999, "not allowed")):
        d = archs[7].to_dict()
        d["resolution"] = bad
        f = home / "bad.jsonl"
        f.write_text("\n".join(json.dumps(x) for x in [archs[0].to_dict()] * 3 + [d]))
        r = invoke(["predict", "--device", "pixel6", "--archs", f, "--csv", home / "o.csv"],
                   home)
        assert_one_line(r, rf"row 4.*{what}")
    # a CSV with the arch column and a native row form: the general path, same numbers
    csv = home / "a.csv"
    csv.write_text("name,arch\n" + "".join(
        f'n{i},"{json.dumps(a.to_dict()).replace(chr(34), chr(34) * 2)}"\n'
        for i, a in enumerate(archs[:20])))
    fast = predict_file("pixel6", csv, home / "o1.csv", home=home)
    assert fast.fast
    lines = home / "l.jsonl"
    lines.write_text("\n".join(json.dumps(a.to_elasticvit_list()) for a in archs[:20]))
    slow = predict_file("pixel6", lines, home / "o2.csv", home=home)
    assert not slow.fast
    np.testing.assert_allclose(fast.ms, slow.ms, rtol=1e-9)
