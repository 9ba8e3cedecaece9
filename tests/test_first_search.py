"""The first search on a fresh home (issue 24, item 1): a budget of the ops profiled, kernel
regressors predicting the rest, a few calibration subnets; what was measured and what was
predicted stated in the text and the JSON; ``--full`` as before; ``hwnas profile`` completing
the table afterwards, after which searches use the measured LUT.

Real onnxruntime on local-cpu, on the small fbnet space (104 ops at 32 px) with few timing runs,
so the whole path runs in seconds; the main job's own timings are benchmarks/mainjob.py's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.latency.records import Records
from hwnas.latency.table import LatencyTable
from tests.cli_harness import invoke

FAST = ["--runs", 2, "--warmup", 1]
SEARCH = ["search", "--device", "local-cpu", "--space", "fbnet", "--target-latency", 1000,
          "--no-remeasure", *FAST]


def _table(home) -> LatencyTable:
    return LatencyTable.load(home / "devices" / "local-cpu" / "table.pkl")


def _records(home) -> Records:
    return Records.load(home / "devices" / "local-cpu" / "records.json")


def test_first_search_profiles_a_budget_and_says_what_it_predicts(hwnas_home):
    r = invoke([*SEARCH, "--json"], hwnas_home)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    t = doc["table"]
    table = _table(hwnas_home)
    assert t["ops"] == 104 and t["measured_ops"] == len(table) < 0.3 * 104
    assert t["predicted_ops"] == 104 - len(table) and t["budget"] == 0.2
    assert t["complete_with"] == "hwnas profile --device local-cpu --space fbnet"
    assert table.meta["budget"]["measured"] == len(table)
    assert doc["predictor"] == "kernel"
    assert f"price the {t['predicted_ops']} the budgeted table lacks" in doc["predictor_detail"]
    assert "calibrated on 4 measured subnets" in doc["predictor_detail"]
    assert len(_records(hwnas_home).records) == 4
    assert {"profile", "calibration", "fit", "search"} <= set(doc["phases_s"])
    assert all(v >= 0 for v in doc["phases_s"].values())
    assert "first search on local-cpu: profiling 20% of the ops" in r.stderr

    # the next search profiles and calibrates nothing more, and says the same in its text
    r = invoke(SEARCH, hwnas_home)
    assert r.exit_code == 0, r.stderr
    assert (f"profiled {t['measured_ops']} of 104 ops ({100 * t['measured_ops'] / 104:.0f}%); "
            f"the other {t['predicted_ops']} are predicted by kernel regressors; 'hwnas profile "
            f"--device local-cpu --space fbnet' completes the table") in r.stdout
    assert "first search" not in r.stderr
    assert len(_table(hwnas_home)) == t["measured_ops"]
    assert len(_records(hwnas_home).records) == 4

    # predict prices any subnet of the space with the same fill
    arch = hwnas_home.parent / "arch.json"
    arch.write_text(json.dumps(doc["arch"]))
    r = invoke(["predict", "--device", "local-cpu", "--space", "fbnet", "--arch", arch],
               hwnas_home)
    assert r.exit_code == 0, r.stderr
    assert "kernel" in r.stdout + r.stderr


@pytest.mark.slow
def test_profile_completes_the_first_search_table_and_the_lut_takes_over(hwnas_home):
    r = invoke([*SEARCH, "--json"], hwnas_home)
    assert r.exit_code == 0, r.stderr
    measured = json.loads(r.stdout)["table"]["measured_ops"]
    before = dict(_table(hwnas_home).ratios)

    r = invoke(["profile", "--device", "local-cpu", "--space", "fbnet", *FAST], hwnas_home)
    assert r.exit_code == 0, r.stderr
    table = _table(hwnas_home)
    assert len(table) == 104 and "budget" not in table.meta
    assert all(table.ratios[k] == v for k, v in before.items())  # resumed, not redone
    assert "on a budget" not in r.stdout
    assert len(before) == measured

    r = invoke([*SEARCH, "--json"], hwnas_home)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["table"] is None and doc["predictor"] == "lut"
    # the LUT's 12 calibration subnets, beside the 4 the first search measured
    assert "calibrated on 16 measured subnets" in doc["predictor_detail"]
    r = invoke(SEARCH, hwnas_home)
    assert r.exit_code == 0 and "profiled" not in r.stdout


@pytest.mark.slow
def test_full_profiles_every_op_and_calibrates_the_lut_on_12(hwnas_home):
    r = invoke([*SEARCH, "--full", "--json"], hwnas_home)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    table = _table(hwnas_home)
    assert len(table) == 104 and "budget" not in table.meta
    assert doc["table"] is None and doc["predictor"] == "lut"
    assert "calibrated on 12 measured subnets" in doc["predictor_detail"]
    assert len(_records(hwnas_home).records) == 12
    assert "first search" not in r.stderr
    assert {"profile", "calibration"} <= set(doc["phases_s"])


@pytest.mark.slow
def test_full_completes_a_budgeted_table(hwnas_home):
    """--full on a table the first search profiled on a budget measures the rest first."""
    r = invoke([*SEARCH, "--json"], hwnas_home)
    assert r.exit_code == 0, r.stderr
    r = invoke([*SEARCH, "--full", "--json"], hwnas_home)
    assert r.exit_code == 0, r.stderr
    assert len(_table(hwnas_home)) == 104 and json.loads(r.stdout)["predictor"] == "lut"


@pytest.mark.slow
def test_an_explicit_lut_on_a_fresh_home_profiles_every_op(hwnas_home):
    r = invoke([*SEARCH, "--predictor", "lut", "--json"], hwnas_home)
    assert r.exit_code == 0, r.stderr
    assert len(_table(hwnas_home)) == 104 and json.loads(r.stdout)["table"] is None


def test_full_with_supernet_is_refused(hwnas_home, tmp_path):
    r = invoke(["search", "--device", "local-cpu", "--target-latency", 10, "--full",
                "--supernet", tmp_path / "none.pt"], hwnas_home)
    assert r.exit_code != 0 and "--full cannot be used with --supernet" in r.stderr


def test_landing_steers_by_the_candidates_nearest_the_target():
    """The correction is the median ratio of the candidates measured closest to the target,
    not of every round: a first round measured 15% over says little once one measured close."""
    from types import SimpleNamespace

    from hwnas.search.landing import Checked, _correction

    def c(pred, meas):
        return Checked(SimpleNamespace(latency_ms=pred), meas)

    far = [c(14.8, 17.0), c(14.8, 17.2), c(14.8, 16.9), c(14.8, 17.1)]
    near = [c(12.8, 14.1), c(12.8, 14.0), c(12.8, 13.9), c(12.8, 14.2)]
    k = _correction(far + near, 15.0, 4)
    assert k == pytest.approx(np.median([m.measured_ms / 12.8 for m in near]))
    assert _correction(far, 15.0, 4) == pytest.approx(np.median([m.measured_ms / 14.8
                                                                 for m in far]))


def test_passes_of_one_subnet_share_one_export(hwnas_home, monkeypatch):
    """measure_archs exports each subnet once for all its passes (onnxruntime on this CPU), and
    the passes are still separate timings."""
    import hwnas.profilers.export as export
    from hwnas import api
    from hwnas.spaces import get_space

    calls = []
    real = export.export_onnx

    def counting(module, shape, path, *a, **k):
        calls.append(path)
        return real(module, shape, path, *a, **k)

    monkeypatch.setattr(export, "export_onnx", counting)
    space = get_space("fbnet")
    archs = [space.smallest(32), space.largest(32)]
    with api.session(api.context("local-cpu", "fbnet", None, hwnas_home, runs=2,
                                 warmup=1)) as ctx:
        stats = api.measure_archs(ctx, archs, passes=3)
    # (the profiler exports its reference network too, once per session)
    assert len([c for c in calls if "hwnas-subnets-" in str(c)]) == 2
    assert all(s.median_ms > 0 for s in stats)
    recs = _records(hwnas_home).records
    assert sorted(len(r.passes) for r in recs) == [3, 3]


@pytest.mark.slow
def test_an_interrupted_first_search_resumes_its_budget(hwnas_home):
    """Ctrl-C while the first search profiles: the table saved so far is marked as an
    unfinished budget, and the next search resumes the budget (it does not take the partial
    table for an interrupted full profile and measure all 670 ops)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ, HWNAS_HOME=str(hwnas_home))
    args = [sys.executable, "-m", "hwnas.cli", "search", "--device", "local-cpu", "-r", "128",
            "--target-latency", "1000", "--no-remeasure", "--runs", "3", "--warmup", "1",
            "--json"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    table = hwnas_home / "devices" / "local-cpu" / "table.pkl"
    deadline = time.time() + 120
    while not table.exists() and time.time() < deadline:  # first save: 20 of 67 ops of round 1
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    partial = LatencyTable.load(table)
    assert partial.meta["budget"]["unfinished"] and len(partial) < 0.2 * 670

    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "resuming the interrupted profile of local-cpu on a budget" in r.stderr
    done = LatencyTable.load(table)
    assert "unfinished" not in done.meta["budget"] and len(partial) < len(done) < 0.3 * 670
    doc = json.loads(r.stdout)
    assert doc["predictor"] == "kernel" and doc["table"]["measured_ops"] == len(done)
