"""--predictor on the commands users run: auto takes the best held-out fitted predictor, the
output says which one was used, and every misuse is one line on stderr.

The device is pixel6 with a table and records made up here (no phone): these tests are about
which predictor a command picks and what it says, not about latency figures."""

import json

import numpy as np
import pytest

from hwnas.cli import main
from hwnas.latency.records import Records
from hwnas.latency.stats import Stats
from hwnas.latency.table import LatencyTable
from hwnas.predictors.lut import LUTPredictor
from hwnas.spaces import get_space

DEVICE = "pixel6"


def run(args, home, monkeypatch, capsys):
    """The CLI's real entry point (error boundary included), in this process."""
    monkeypatch.setenv("HWNAS_HOME", str(home))
    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def device(tmp_path):
    """pixel6 with a MACs-based table at 160 px and 80 records whose latency the raw sum
    misses in a size-dependent way (so an e2e model has something to learn)."""
    space = get_space("elasticvit", [160])
    entries = {op.key: Stats.single(0.01 + op.macs() / 3e7) for op in space.enumerate_ops(160)}
    table = LatencyTable({"device": DEVICE, "protocol": {"runtime": "test"}}, entries)
    root = tmp_path / "devices" / DEVICE
    table.save(root / "table.pkl")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(80)]
    raw = LUTPredictor(table, space, calibrate=False).predict_raw(archs)
    recs = Records(DEVICE)
    for a, r in zip(archs, raw):
        depth = sum(a.to_dict()["depths"]) if "depths" in a.to_dict() else 10
        recs.add(a.to_dict(), Stats.single(r * (1.05 + 0.004 * depth)))
    recs.save(root / "records.json")
    return tmp_path, archs


def test_auto_picks_the_best_held_out_and_says_so(device, monkeypatch, capsys, tmp_path):
    home, archs = device
    f = tmp_path / "a.json"
    f.write_text(json.dumps(archs[0].to_dict()))
    code, out, err = run(["predict", "-d", DEVICE, "--arch", f], home, monkeypatch, capsys)
    assert code == 0 and "predictor: lut (x" in out  # nothing fitted: the calibrated LUT
    for kind in ("lut", "e2e"):
        code, out, err = run(["fit", "-d", DEVICE, "-r", 160, "--kind", kind], home,
                             monkeypatch, capsys)
        assert code == 0, err
    from hwnas.predictors.persist import load_predictor_file

    scores = {k: load_predictor_file(home / "devices" / DEVICE / "predictors" / f"{k}.pkl",
                                     DEVICE, "elasticvit")["holdout"]["rmspe"]
              for k in ("lut", "e2e")}
    best = min(scores, key=scores.get)
    code, out, err = run(["predict", "-d", DEVICE, "--arch", f, "--json"], home, monkeypatch,
                         capsys)
    assert code == 0 and json.loads(out)["predictor"] == best
    assert "held-out RMSPE" in json.loads(out)["predictor_detail"]
    code, out, err = run(["predict", "-d", DEVICE, "--arch", f, "--predictor", "lut"], home,
                         monkeypatch, capsys)
    assert code == 0 and "predictor: lut" in out


def one_line(code, err, pattern):
    import re

    assert code == 1 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(pattern, err), err


def test_misused_predictors_are_one_line(device, monkeypatch, capsys, tmp_path):
    home, archs = device
    f = tmp_path / "a.json"
    f.write_text(json.dumps(archs[0].to_dict()))
    one_line(*run(["predict", "-d", DEVICE, "--arch", f, "--predictor", "e2e"], home,
                  monkeypatch, capsys)[::2], r"no fitted e2e predictor .*hwnas fit --device "
                                             r"pixel6 --kind e2e")
    code, _, err = run(["fit", "-d", DEVICE, "-r", 160, "--kind", "e2e"], home, monkeypatch,
                       capsys)
    assert code == 0, err
    pred = home / "devices" / DEVICE / "predictors" / "e2e.pkl"
    # a predictor file copied from another device
    other = home / "devices" / "xiaomi11" / "predictors" / "e2e.pkl"
    other.parent.mkdir(parents=True)
    other.write_bytes(pred.read_bytes())
    # xiaomi11's own table (the same numbers: a table names its device, and one naming
    # pixel6 would be refused before the predictor is looked at)
    mine = LatencyTable.load(home / "devices" / DEVICE / "table.pkl")
    mine.meta["device"] = "xiaomi11"
    mine.save(home / "devices" / "xiaomi11" / "table.pkl")
    one_line(*run(["predict", "-d", "xiaomi11", "--arch", f, "--predictor", "e2e"], home,
                  monkeypatch, capsys)[::2], "fitted for device 'pixel6', not 'xiaomi11'")
    # the table re-measured under another protocol since the predictor was fitted
    table = LatencyTable.load(home / "devices" / DEVICE / "table.pkl")
    table.meta["protocol"] = {"runtime": "test", "threads": 4}
    table.save(home / "devices" / DEVICE / "table.pkl")
    one_line(*run(["predict", "-d", DEVICE, "--arch", f, "--predictor", "e2e"], home,
                  monkeypatch, capsys)[::2], "another protocol.*refit")
    # a budgeted table, searched with the LUT and no kernel fill
    space = get_space("elasticvit", [160])
    keys = sorted(table.entries)
    for k in keys[: len(keys) // 2]:
        del table.entries[k]
    table.meta["budget"] = {"fraction": 0.5, "measured": len(table), "of": len(keys)}
    table.save(home / "devices" / DEVICE / "table.pkl")
    one_line(*run(["search", "-d", DEVICE, "-r", 160, "--target-latency", 9, "--predictor",
                   "lut", "--no-remeasure"], home, monkeypatch, capsys)[::2],
             r"--budget 0.5 .*hwnas fit --device pixel6 --kind kernel")
    assert space.name == "elasticvit"


@pytest.mark.slow
def test_budgeted_profile_then_kernel_fit_lets_search_run_without_profiling_the_rest(
        tmp_path, monkeypatch, capsys):
    """The issue's path on the real local-cpu: 20% of the ops measured, kernel regressors fill
    the rest, search runs on the filled table and profiles nothing more."""
    home = tmp_path
    code, _, err = run(["profile", "-d", "local-cpu", "-r", 128, "--budget", 0.2, "--runs", 3,
                        "--warmup", 1], home, monkeypatch, capsys)
    assert code == 0, err
    path = home / "devices" / "local-cpu" / "table.pkl"
    measured = len(LatencyTable.load(path))
    assert 0.15 * 670 < measured < 0.3 * 670
    # the LUT alone cannot price the rest; auto fits the kernel fill on the fly (issue 24)
    one_line(*run(["search", "-d", "local-cpu", "-r", 128, "--target-latency", 1000,
                   "--no-remeasure", "--predictor", "lut"], home, monkeypatch, capsys)[::2],
             r"--budget 0.2 .*--kind kernel")
    code, out, err = run(["search", "-d", "local-cpu", "-r", 128, "--target-latency", 1000,
                          "--no-remeasure", "--json", "--runs", 3, "--warmup", 1], home,
                         monkeypatch, capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["predictor"] == "kernel" and doc["table"]["measured_ops"] == measured
    code, out, err = run(["fit", "-d", "local-cpu", "-r", 128, "--kind", "kernel"], home,
                         monkeypatch, capsys)
    assert code == 0, err
    code, out, err = run(["search", "-d", "local-cpu", "-r", 128, "--target-latency", 1000,
                          "--no-remeasure", "--json"], home, monkeypatch, capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["predictor"] == "kernel" and doc["predicted_ms"] > 0
    assert len(LatencyTable.load(path)) == measured  # nothing more was profiled
    code, out, err = run(["table", "show", "-d", "local-cpu", "-r", 128, "--json"], home,
                         monkeypatch, capsys)
    summary = json.loads(out)
    assert code == 0 and summary["measured"] == measured
    assert summary["predicted"] == 670 - measured and summary["missing"] == 0
