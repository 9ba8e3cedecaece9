"""The few-shot predictor, its proxies, and HELP's latency files as records."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from hwnas.errors import PredictorError, TableError
from hwnas.predictors.fewshot import choose_networks, fit_fewshot
from hwnas.predictors.fewshot_proxies import ProxyBank
from hwnas.spaces import get_space

KNOWLEDGE = ("1080ti_1,1080ti_32,1080ti_256,silver_4114,silver_4210r,samsung_a50,pixel3,"
             "essential_ph_1,samsung_s7").split(",")


@pytest.fixture(scope="module")
def nb201():
    sp = get_space("nb201")
    return sp, list(sp.enumerate_archs())


def additive(space, archs, seed: int, noise: float = 0.0) -> np.ndarray:
    """A synthetic device: a cost per (edge, op) choice plus a constant, like HELP's GPUs."""
    rng = np.random.default_rng(seed)
    enc = np.array([space.encode(a) for a in archs])
    ms = 2.0 + enc @ rng.uniform(0.05, 1.0, enc.shape[1])
    return ms * np.exp(noise * rng.standard_normal(len(ms)))


@pytest.fixture(scope="module")
def synthetic(nb201):
    sp, allarchs = nb201
    archs = allarchs[::25]  # 625 networks: fast, still the whole range
    proxies = {"a": list(zip(archs, additive(sp, archs, 1, 0.01))),
               "b": list(zip(archs, additive(sp, archs, 2, 0.01)))}
    return sp, archs, proxies


def test_recovers_a_device_that_is_a_scaled_proxy(synthetic):
    from scipy.stats import spearmanr

    sp, archs, proxies = synthetic
    truth = 1.7 * np.array([ms for _, ms in proxies["a"]])
    pick = np.random.default_rng(0).choice(len(archs), 10, replace=False)
    p = fit_fewshot(sp, [(archs[i], truth[i]) for i in pick], proxies)
    pred = p.predict(archs)
    assert np.all(np.isfinite(pred) & (pred > 0))
    assert np.mean(np.abs(pred / truth - 1) <= 0.02) > 0.99
    assert spearmanr(pred, truth).statistic > 0.999
    rep = p.report()
    assert rep.inputs.get("a", 0) > 0.9 and rep.loo_rmspe < 2 and rep.n_target == 10
    assert rep.loo_rmspe < rep.flops_loo_rmspe  # it beats FLOPs-linear on the same records
    assert "leave-one-out" in rep.describe()


def test_new_networks_are_priced_by_the_op_models_positive_and_finite(nb201, synthetic):
    sp, allarchs = nb201
    _, archs, proxies = synthetic
    known = {json.dumps(a.to_dict(), sort_keys=True) for a in archs}
    new = [a for a in allarchs[1::25] if json.dumps(a.to_dict(), sort_keys=True) not in known]
    truth_new = 1.3 * additive(sp, new, 1)
    truth = 1.3 * np.array([ms for _, ms in proxies["a"]])
    p = fit_fewshot(sp, list(zip(archs[:10], truth[:10])), proxies)
    pred = p.predict(new)
    assert np.all(np.isfinite(pred) & (pred > 0))
    assert np.mean(np.abs(pred / truth_new - 1) <= 0.10) > 0.9  # the op model is the LUT


def test_too_few_records_and_no_proxy_are_one_line_errors(synthetic):
    sp, archs, proxies = synthetic
    with pytest.raises(PredictorError, match="at least 5") as e:
        fit_fewshot(sp, [(a, 3.0) for a in archs[:4]], proxies)
    assert "\n" not in str(e.value)
    fb = get_space("fbnet")
    other = {"x": [(fb.sample(np.random.default_rng(i)), 5.0) for i in range(20)]}
    for none in ({}, other):  # nothing, or only another space's records
        with pytest.raises(PredictorError, match="no proxy in the nb201 space") as e:
            fit_fewshot(sp, [(a, 3.0 + i) for i, a in enumerate(archs[:8])], none)
        assert "\n" not in str(e.value)


def test_outliers_of_a_proxy_are_replaced_by_its_op_model(synthetic):
    sp, archs, proxies = synthetic
    bad = [(a, ms / 1000 if i % 50 == 0 else ms) for i, (a, ms) in enumerate(proxies["b"])]
    bank = ProxyBank.build(sp, {"a": proxies["a"], "b": bad})
    assert bank.cleaned == {"b": len(range(0, len(archs), 50))}
    x, _ = bank.lookup(sp, archs)
    good = np.array([ms for _, ms in proxies["b"]])
    assert np.all(np.abs(x[:, 1] / good - 1) < 0.1)


def test_save_restore_round_trip_and_auto_picks_it(tmp_path, synthetic):
    from hwnas.predictors.fitting import Dataset, fit_and_save, load_fitted
    from hwnas.predictors.persist import load_predictor_file
    from hwnas.predictors.select import best_fitted

    sp, archs, proxies = synthetic
    y = 0.8 * np.array([ms for _, ms in proxies["b"]])
    data = Dataset(archs[:12], y[:12], [None] * 12)
    path = tmp_path / "fewshot.pkl"
    pred, _ = fit_and_save(path, "fewshot", "dev", sp, None, data, None, 0.5, proxies=proxies)
    obj = load_predictor_file(path, "dev", "nb201")
    assert obj["holdout"]["method"] == "leave-one-out" and obj["holdout"]["n"] == 12
    back, seen = load_fitted(path, "fewshot", "dev", sp, None)
    assert len(seen) == 12
    np.testing.assert_allclose(back.predict(archs), pred.predict(archs), rtol=1e-12)
    assert back.report() == pred.report()
    chosen = best_fitted({"fewshot": path}, "dev", sp, None)
    assert chosen.kind == "fewshot" and "leave-one-out RMSPE" in chosen.detail
    assert np.all(chosen.predict(archs[:50]) > 0)


def test_choose_networks_spreads_over_the_proxies_range(synthetic):
    sp, archs, proxies = synthetic
    picks = choose_networks(sp, proxies, 10, seed=3)
    keys = {json.dumps(a.to_dict(), sort_keys=True) for a in picks}
    assert len(keys) == 10
    ms = dict((json.dumps(a.to_dict(), sort_keys=True), m) for a, m in proxies["a"])
    got = sorted(ms[k] for k in keys)
    allms = np.sort(list(ms.values()))
    assert got[0] <= np.quantile(allms, 0.15) and got[-1] >= np.quantile(allms, 0.85)
    with pytest.raises(PredictorError, match="positive integer"):
        choose_networks(sp, proxies, 0)


# --- HELP's files: the loader's checks, on small synthetic files ------------------------------
def _help_folder(tmp_path, nb201, n=6, values=None):
    import torch

    sp, allarchs = nb201
    root = tmp_path / "nasbench201"
    (root / "latency").mkdir(parents=True)
    strings = [a.native() for a in allarchs[:n]]
    torch.save({s: i for i, s in enumerate(strings)}, root / "str_arch2idx.pt")
    torch.save(values if values is not None else [float(3 + i) for i in range(n)],
               root / "latency" / "dev.pt")
    return root


def _files(tmp_path):
    return sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))


def test_help_loader_reads_records_with_their_source(tmp_path, nb201):
    from hwnas.latency.help import help_records

    root = _help_folder(tmp_path, nb201, values=[3, 4, 5, 6, 7, 8])
    recs = help_records(root / "latency" / "dev.pt")
    assert recs.device == "dev" and len(recs) == 6
    assert recs.meta["resolution_ms"] == 1.0 and recs.meta["commit"] == "45f70eb"
    assert recs.records[0].passes[0].timed.n == 0  # a number someone else reported
    assert recs.records[0].arch["space"] == "nb201"


@pytest.mark.parametrize("damage", ["truncated", "garbage", "length", "negative", "nan",
                                    "not-a-list", "other-space", "fifo"])
def test_help_loader_refuses_bad_files_in_one_line_writing_nothing(tmp_path, nb201, damage):
    import torch

    from hwnas.latency.help import help_records

    root = _help_folder(tmp_path, nb201)
    f = root / "latency" / "dev.pt"
    index = None
    if damage == "truncated":
        f.write_bytes(f.read_bytes()[:-40])
    elif damage == "garbage":
        f.write_bytes(b"\x00not a torch file" * 10)
    elif damage == "length":
        torch.save([3.0] * 5, f)
    elif damage == "negative":
        torch.save([3.0, 4.0, -1.0, 2.0, 2.0, 2.0], f)
    elif damage == "nan":
        torch.save([3.0, 4.0, 2.0, float("nan"), 2.0, 2.0], f)
    elif damage == "not-a-list":
        torch.save({"a": 1.0}, f)
    elif damage == "other-space":
        index = tmp_path / "metainfo.pt"
        torch.save({"arch": [{"arch_str": ["skip"] * 22, "op_idx_list": [8] * 22}] * 6}, index)
    elif damage == "fifo":
        f.unlink()
        os.mkfifo(f)
    before = _files(tmp_path)
    with pytest.raises(TableError) as e:
        help_records(f, index=index, space="nb201")
    msg = str(e.value)
    assert "\n" not in msg and _files(tmp_path) == before
    expect = {"truncated": "dev.pt is damaged", "garbage": "dev.pt is damaged",
              "length": "5 latencies but its index str_arch2idx.pt lists 6",
              "negative": "entry 2", "nan": "entry 3", "not-a-list": "not a list",
              "other-space": "index of the fbnet space, not of nb201",
              "fifo": "not a regular file"}[damage]
    assert expect in msg, msg


def test_help_loader_caps_the_size_it_reads(tmp_path, monkeypatch):
    from hwnas.latency import help as h

    f = tmp_path / "big.pt"
    f.write_bytes(b"x" * 2048)
    with pytest.raises(TableError, match="over the 0 MB cap|cap for a latency file"):
        h.read_capped(f, cap=1024)


def test_records_from_csv_reads_native_forms_and_names_bad_rows(tmp_path, nb201):
    from hwnas.latency.help import records_from_csv

    sp, allarchs = nb201
    a, b = allarchs[7], allarchs[8]
    f = tmp_path / "m.csv"
    with open(f, "w", newline="") as out:  # the writer quotes the JSON (it holds commas)
        w = csv.writer(out)
        w.writerows([["arch", "latency_ms", "std_ms", "runs"], [a.native(), 3.5, 0.1, 20],
                     [json.dumps(b.to_dict()), 4.0, "", ""], [a.native(), 3.7, "", ""]])
    recs = records_from_csv(f, "nb201", "phone")
    assert len(recs) == 2 and len(recs.records[0].passes) == 2
    assert recs.records[0].passes[0].timed.n == 20
    f.write_text(f"arch,latency_ms\n{a.native()},3.5\n{b.native()},-2\n")
    with pytest.raises(TableError, match="row 3: latency_ms is -2.0"):
        records_from_csv(f, "nb201", "phone")
    f.write_text("arch,latency_ms\n|bogus~0|,3.5\n")
    with pytest.raises(TableError, match="row 2: not an nb201 architecture"):
        records_from_csv(f, "nb201", "phone")
    f.write_text("net,ms\nx,1\n")
    with pytest.raises(TableError, match="header lacks arch, latency_ms"):
        records_from_csv(f, "nb201", "phone")


# --- HELP's real files ------------------------------------------------------------------------
@pytest.mark.data
def test_every_help_file_loads(shared_data):
    from hwnas.latency.help import load_help

    files = sorted((shared_data / "help").glob("*/latency/*.pt"))
    assert len(files) == 26
    phones = {"samsung_a50", "samsung_s7", "essential_ph_1"}
    for f in files:
        space, pairs, meta = load_help(f)
        assert len(pairs) == (15625 if space == "nb201" else 5000)
        assert (meta["resolution_ms"] == 1.0) == (f.stem in phones), f


@pytest.mark.data
def test_fewshot_from_ten_networks_on_titanx_1_nb201(shared_data, nb201):
    from scipy.stats import spearmanr

    from hwnas.latency.help import load_help

    sp, _ = nb201
    folder = shared_data / "help" / "nasbench201" / "latency"
    _, target, _ = load_help(folder / "titanx_1.pt")
    archs = [sp.arch_from_obj(a) for a, _ in target]
    proxies = {d: [(a, ms) for a, (_, ms) in zip(archs, load_help(folder / f"{d}.pt")[1])]
               for d in KNOWLEDGE}
    y = np.array([ms for _, ms in target])
    pick = np.random.default_rng(0).choice(len(y), 10, replace=False)
    p = fit_fewshot(sp, [(archs[i], y[i]) for i in pick], proxies)
    pred = p.predict(archs)
    assert spearmanr(pred, y).statistic > 0.9
    assert np.mean(np.abs(pred / y - 1) <= 0.10) > 0.9
