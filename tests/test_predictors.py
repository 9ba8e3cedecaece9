"""Predictors: fast LUT = walk, fit/save/load for every kind, bad input, phone kernels."""

import json
import os
import pickle
import warnings

import numpy as np
import pytest

from hwnas import api
from hwnas.errors import MissingKeysError, PredictorError, TableError, UnsafePickleError
from hwnas.latency.records import Records
from hwnas.latency.stats import Stats
from hwnas.latency.table import LatencyTable
from hwnas.predictors import metrics
from hwnas.predictors.fitting import KINDS
from hwnas.predictors.kernel import KernelModel, _coverage, select_ops
from hwnas.predictors.lut import LUTPredictor
from hwnas.spaces import get_space


def synthetic_device(home, n_records=80, seed=0, device="pixel6", res=(160,)):
    """A table from op MACs and records = LUT sum with a block-count term and 2 noisy passes."""
    space = get_space("elasticvit", res)
    rng = np.random.default_rng(seed)
    entries = {op.key: Stats.single(0.02 + op.macs() / 3e7 * rng.uniform(0.8, 1.2))
               for r in space.resolutions for op in space.enumerate_ops(r)}
    table = LatencyTable({"device": device, "call_overhead_ms": 0.01}, entries)
    table.save(home / f"devices/{device}/table.pkl")
    lut = LUTPredictor(table, space, calibrate=False)
    recs = Records(device)
    archs = [space.sample(rng) for _ in range(n_records)]
    truth = 1.05 * lut.predict_raw(archs) + 0.01 * np.array([len(space.ops(a)) for a in archs])
    for a, t in zip(archs, truth):
        for _ in range(2):
            recs.add(a.to_dict(), Stats.from_samples(t * rng.normal(1, 0.01, 5)))
    recs.save(home / f"devices/{device}/records.json")
    return space, table, archs, truth


def test_fast_lut_equals_the_walk_and_reports_missing_keys(hwnas_home):
    space, table, archs, _ = synthetic_device(hwnas_home, 10)
    pred = LUTPredictor(table, space, calibrate=False)
    rng = np.random.default_rng(5)
    many = [space.sample(rng) for _ in range(300)]
    np.testing.assert_allclose(pred.predict_raw(many), pred._predict_walk(many), rtol=1e-12)
    key = space.op_keys(many[0])[3]
    del table.entries[key]
    with pytest.raises(MissingKeysError, match=key):
        LUTPredictor(table, space).predict_raw(many[:1])


@pytest.mark.parametrize("kind", KINDS)
def test_fit_save_load_evaluate_every_kind(hwnas_home, kind):
    synthetic_device(hwnas_home)
    ctx = api.context("pixel6", resolutions=[160])
    if kind != "lut-raw":
        pred, train = api.fit(ctx, kind)
        assert ctx.paths.predictor(kind).exists()
    ev = api.evaluate(ctx, kind)
    assert ev.scores["n"] >= 20 and ev.noise is not None
    assert all(p.exists() and p.stat().st_size > 1000 for p in ev.plots)
    if kind in ("lut", "kernel", "e2e"):  # these see the structure; FLOPs fits do not
        assert ev.scores["within10"] > 0.9, ev.scores


def test_e2e_mlp_saves_loads_through_the_restricted_unpickler_and_predicts(hwnas_home):
    """The mlp's pipeline (target scaler, input scaler, net) must pass the allowlist."""
    synthetic_device(hwnas_home)
    ctx = api.context("pixel6", resolutions=[160])
    api.fit(ctx, "e2e", model="mlp")
    ev = api.evaluate(ctx, "e2e")
    assert ev.scores["within10"] > 0.9, ev.scores


def test_kernel_budget_measures_a_fraction_and_fills_the_rest(hwnas_home):
    space, table, archs, _ = synthetic_device(hwnas_home, 5)
    ops = space.enumerate_ops(160)
    calls = []

    def measure(subset):
        calls.append(len(subset))
        return {o.key: table.entries[o.key].median_ms for o in subset}

    measured = select_ops(ops, 0.2, measure)
    assert abs(len(measured) - 0.2 * len(ops)) <= 0.02 * len(ops)
    assert len(calls) > 1 and calls == sorted(calls)  # coverage first, then rounds
    km = KernelModel("rf").fit(list(measured), list(measured.values()))
    sub = LatencyTable({"device": "pixel6"}, {k: Stats.single(v) for k, v in measured.items()})
    filled = km.fill(sub, [o.key for o in ops])
    assert len(filled) == len(ops) and filled.meta["kernel_filled"] == len(ops) - len(measured)
    full = LUTPredictor(table, space, calibrate=False).predict_raw(archs)
    approx = LUTPredictor(filled, space, calibrate=False).predict_raw(archs)
    assert metrics.within(approx, full, 0.10) >= 0.8


def test_bad_inputs_to_fit_and_evaluate(hwnas_home):
    synthetic_device(hwnas_home, n_records=4)
    ctx = api.context("pixel6", resolutions=[160])
    with pytest.raises(PredictorError, match="at least 20"):
        api.fit(ctx, "e2e")
    synthetic_device(hwnas_home, device="pixel4")
    other = hwnas_home / "devices/pixel4/records.json"
    with pytest.raises(TableError, match="records of device 'pixel4', not 'pixel6'"):
        api.fit(ctx, "lut", records_path=other)
    obj = json.loads(other.read_text())
    obj["device"] = "pixel6"
    obj["records"][0]["passes"][0][0] = float("nan")
    other.write_text(json.dumps(obj))
    with pytest.raises(TableError, match="NaN, zero or negative"):
        api.fit(ctx, "lut", records_path=other)
    obj["records"][0]["passes"][0][0] = -1.0
    other.write_text(json.dumps(obj))
    with pytest.raises(TableError, match="NaN, zero or negative"):
        api.fit(ctx, "lut", records_path=other)


def test_predictor_files_are_checked(hwnas_home):
    synthetic_device(hwnas_home)
    ctx = api.context("pixel6", resolutions=[160])
    api.fit(ctx, "e2e")
    path = ctx.paths.predictor("e2e")
    # another device's predictor
    other = api.context("pixel4", resolutions=[160])
    other.paths.predictor("e2e").parent.mkdir(parents=True)
    other.paths.predictor("e2e").write_bytes(path.read_bytes())
    synthetic_device(hwnas_home, device="pixel4")
    with pytest.raises(PredictorError, match="fitted for device 'pixel6', not 'pixel4'"):
        api.evaluate(other, "e2e")
    # a different library version warns
    obj = pickle.loads(path.read_bytes())
    obj["libs"]["scikit-learn"] = "0.1"
    path.write_bytes(pickle.dumps(obj))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        api.evaluate(ctx, "e2e")
    assert any("other library versions" in str(x.message) for x in w)
    # a pickle that would run code
    path.write_bytes(pickle.dumps({"format": "hwnas-predictor", "x": _Evil()}))
    with pytest.raises(UnsafePickleError):
        api.evaluate(ctx, "e2e")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.data
@pytest.mark.parametrize("phone", ["pixel6", "xiaomi11"])
def test_kernel_regressors_on_real_phone_tables(shared_data, phone):
    """Trained on 20% of a real phone table's keys, they predict the other 80%."""
    from hwnas.device_configs import load_device
    from hwnas.latency.importers import import_nn_meter

    table = import_nn_meter(shared_data / f"nn-meter-vit-luts/{phone}_lut_ln_v3.json",
                            load_device(phone))
    keys = sorted(table.entries)
    train = np.random.default_rng(0).random(len(keys)) < 0.2
    tr = [k for k, t in zip(keys, train) if t]
    te = [k for k, t in zip(keys, train) if not t]
    km = KernelModel("xgb").fit(tr, [table.entries[k].median_ms for k in tr])
    y = np.array([table.entries[k].median_ms for k in te])
    assert metrics.within(km.predict(te), y, 0.10) > 0.9


def test_a_kind_whose_every_measured_op_is_flagged_still_learns(caplog):
    """On a loaded CPU every tiny op of a kind can come out at the per-call overhead, kept at
    the timer's floor and flagged (CI met it on fbnet at 32 px): the kind learns from those
    rather than leave the first search with nothing to price it by."""
    from hwnas.predictors.fitting import kernel_filled

    space = get_space("fbnet", (32,))
    ops = list({o.key: o for o in space.enumerate_ops(32)}.values())
    rng = np.random.default_rng(0)
    budget = _coverage(ops, 21)  # as the first search's 20% starts: every kind covered
    table = LatencyTable({"device": "local-cpu"},
                         {o.key: Stats.single(0.01 + o.macs() / 3e7 * rng.uniform(0.8, 1.2))
                          for o in budget})
    kinds = {o.kind for o in budget}
    count = {k: sum(o.kind == k for o in budget) for k in kinds}
    floored = "fbnetskip"  # the tiniest ops
    for o in budget:
        if o.kind == floored:
            table.flags[o.key] = "kept at the timer's floor"
    filled, km = kernel_filled(table, space, "rf")
    assert len(filled.missing(o.key for o in ops)) == 0
    assert floored in km.regressors_ and f"measured {floored} ops are flagged" in caplog.text
    # a flagged op timed at or under 0 ms (no reference to floor it) is never learned from
    skips = [o.key for o in budget if o.kind == floored]
    for k in skips[1:]:
        table.entries[k] = Stats.single(-0.001)
    _, km = kernel_filled(table, space, "rf")
    assert km.regressors_[floored]["ms_per_mac"] > 0
    # a kind with enough clean ops leaves its flagged ones out, as before
    clean_kind = max(kinds, key=count.get)
    assert count[clean_kind] > 3
    one = next(o.key for o in budget if o.kind == clean_kind)
    table.flags[one] = "measured while throttling"
    caplog.clear()
    kernel_filled(table, space, "rf")
    assert f"measured {clean_kind} ops" not in caplog.text
