"""Issue 11 ("Nothing lost, nothing crashes"), case by case.

Each defect the issue lists, reproduced through the real command line (click's CliRunner on
``hwnas.cli.cli``, whose class is the CLI's one error boundary) or the real library:

* 1 concurrent writers lose work: test_records_merge_*, test_table_merge_*, test_measuring_lock_*;
  two real processes: tests/test_concurrency.py
* 2 profile --fresh --budget 0 / 1.5 deletes the table:
  test_fresh_with_a_bad_budget_touches_nothing, test_fresh_profile_keeps_the_old_table
* 3 imports silently replace measured tables: test_import_*
* 4 negative, zero, infinite latencies used: test_tables_with_impossible_latencies_*,
  test_nn_meter_all_negative_*, test_tf_nas_*, test_lut_predictions_are_never_*
* 5 non-finite and absurd option values: test_non_finite_and_absurd_values_*
* 6 options accepted that do nothing: test_numeric_options_are_range_checked
* 7 read-only HWNAS_HOME: test_read_only_home_*
* 8 records.json is a directory: test_records_file_that_is_a_directory
* 9 HWNAS_HOME / devices/<dev> / cache is a file: test_a_file_where_a_folder_should_be
* 10 output paths: test_output_paths_*
* 11 --seed -1: test_negative_seeds
* 12 imports of bad files: test_imports_of_bad_files
* 13 corrupt meta / records: test_corrupt_meta_and_records_are_named
* small: --supernet bad pickle on 3 lines: test_bad_supernet_checkpoint_is_one_line
* small: files written 0600: test_written_files_follow_the_umask
* small: devices says "table" for a directory: test_devices_needs_a_table_file
* small: pixel1's table used as pixel6: test_another_devices_table_is_refused
* small: Ctrl-C in search claims "saved": tests/test_concurrency.py (interruptions)
* small: negative depth, misleading message: test_negative_depth_is_named
* small: resumed profile bar restarts at 0/486: test_resumed_profile_bar_shows_where_it_is
* one error boundary, -vv for tracebacks: test_boundary_*
* the class made impossible: property-based fuzzing, tests/test_fuzz_cli.py
"""

from __future__ import annotations

import json
import os
import pickle
import time

import numpy as np
import pytest

from cli_harness import (assert_latencies_sane, assert_one_line, assert_untouched, copy_tree,
                         invoke, read_only, read_only_supported, snapshot, synthetic_records,
                         synthetic_table)
from hwnas.device_configs import load_device
from hwnas.errors import HwnasError, LockTimeout, PredictorError, TableError
from hwnas.latency.records import Records
from hwnas.latency.stats import Stats
from hwnas.latency.table import LatencyTable
from hwnas.spaces import get_space
from hwnas.spaces.elasticvit.space import elasticvit_named

T1 = elasticvit_named()["elastic_T1"]


@pytest.fixture(scope="module")
def home_template(tmp_path_factory):
    h = tmp_path_factory.mktemp("issue11") / "home"
    synthetic_table("pixel6", source_format="nn-meter").save(h / "devices/pixel6/table.pkl")
    synthetic_table("local-cpu").save(h / "devices/local-cpu/table.pkl")
    synthetic_records("local-cpu").save(h / "devices/local-cpu/records.json")
    return h


@pytest.fixture
def home(tmp_path, home_template):
    """A home with pixel6's table (imported: nothing is measured for it) and local-cpu's table
    and records (synthetic; local-cpu commands here never get as far as measuring)."""
    return copy_tree(home_template, tmp_path / "home")


@pytest.fixture
def arch(tmp_path):
    p = tmp_path / "arch.json"
    p.write_text(json.dumps(dict(T1.to_dict(), resolution=160)))
    return p


def one_line_and_untouched(args, home, pattern, root=None):
    root = root or home.parent
    before = snapshot(root)
    line = assert_one_line(invoke(args, home), pattern)
    assert_untouched(before, root)
    return line


# --- 1: concurrent writers ---------------------------------------------------------------
def test_records_merge_keeps_both_writers_passes(tmp_path):
    path = tmp_path / "records.json"
    a_arch, b_arch = (get_space("elasticvit").sample(np.random.default_rng(i)).to_dict()
                      for i in (1, 2))
    Records("d").save(path)
    a, b = Records.load(path, "d"), Records.load(path, "d")  # two processes read the same file
    a.add(a_arch, Stats.from_samples([1.0, 1.1]))
    a.save(path)
    b.add(b_arch, Stats.from_samples([2.0, 2.1]))
    b.add(a_arch, Stats.from_samples([1.2, 1.3]))  # the same subnet, measured again
    b.save(path)  # would have dropped a's record
    a.add(a_arch, Stats.from_samples([1.4, 1.5]))
    a.save(path)
    merged = Records.load(path, "d")
    assert len(merged) == 2
    assert sorted(merged.find(a_arch).pass_ms()) == pytest.approx(
        [1.05, 1.25, 1.45])
    assert merged.find(b_arch).pass_ms() == pytest.approx([2.05])
    assert len(a) == 2  # the writer sees the merged state too


def test_records_merge_keeps_per_pass_fields_it_does_not_know(tmp_path):
    path = tmp_path / "records.json"
    arch = T1.to_dict()
    obj = Records("d").to_obj()
    # a drift-free pass, plus a field a later hwnas might add
    newer = {"timed": Stats.from_samples([1.0, 1.2]).to_list(),
             "ratio": [0.5, 0.5, 0.0, 0.5, 0.5, 3], "reference_ms": 2.2, "added_later": [1, 2]}
    obj["records"] = [{"arch": arch, "passes": [newer]}]
    path.write_text(json.dumps(obj))
    recs = Records.load(path, "d")
    recs.add(arch, Stats.from_samples([1.3, 1.4]))
    recs.save(path)
    passes = json.loads(path.read_text())["records"][0]["passes"]
    assert passes[0] == newer and len(passes) == 2


def test_records_save_keeps_a_file_garbled_meanwhile_as_a_backup(tmp_path):
    path = tmp_path / "records.json"
    recs = Records("d")
    path.write_text("{ garbled")
    recs.add(T1.to_dict(), Stats.from_samples([1.0, 1.1]))
    recs.save(path)
    assert len(Records.load(path, "d")) == 1
    assert [p.read_text() for p in tmp_path.glob("records.json.*.bak")] == ["{ garbled"]


def test_table_merge_keeps_what_another_process_saved(tmp_path):
    path = tmp_path / "table.pkl"
    meta = {"device": "d", "protocol": {"runs": 3}}
    LatencyTable(dict(meta), {"a": Stats.single(1.0)}).save(path)
    mine = LatencyTable.load(path)
    other = LatencyTable.load(path)
    other.put("b", Stats.single(2.0))
    other.save_merged(path)
    mine.put("c", Stats.single(3.0))
    mine.save_merged(path)  # would have dropped b
    assert sorted(LatencyTable.load(path).entries) == ["a", "b", "c"]
    # another protocol cannot be merged: the table on disk is kept as a backup, not lost
    LatencyTable({"device": "d", "protocol": {"runs": 9}}, {"z": Stats.single(9.0)}).save_merged(
        path)
    (bak,) = tmp_path.glob("table.pkl.*.bak")
    assert sorted(LatencyTable.load(bak).entries) == ["a", "b", "c"]


def test_measuring_lock_refuses_or_waits(tmp_path):
    import threading

    from hwnas.locks import measuring

    with measuring(tmp_path, ["cpu"]):
        with pytest.raises(LockTimeout, match="is measuring on this machine's CPU"):
            with measuring(tmp_path, ["cpu"], timeout=0):
                pass
        got = []

        def second():
            with measuring(tmp_path, ["cpu"], timeout=30):
                got.append(time.monotonic())

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        released = time.monotonic()
    t.join(10)
    assert got and got[0] >= released  # it waited for the first holder, then measured
    with measuring(tmp_path, ["adb-A"]), measuring(tmp_path, ["adb-B"]):
        pass  # two phones are two resources


def test_interrupted_checks_keep_the_passes_they_finished(tmp_path, monkeypatch):
    """search's measured checks (measure_archs) save what they finished when Ctrl-C comes."""
    from hwnas import api
    from hwnas.errors import Interrupted

    ctx = api.context("local-cpu", "elasticvit", [128], home=tmp_path, runs=3, warmup=1)
    archs = [ctx.space.smallest(128), ctx.space.sample(np.random.default_rng(3))]
    import hwnas.api.measuring as measuring_api

    real, calls = measuring_api._measure_pass, []

    def interrupted_third(prof, space, arch):  # Ctrl-C during the third measurement
        calls.append(arch)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(prof, space, arch)

    monkeypatch.setattr(measuring_api, "_measure_pass", interrupted_third)
    with pytest.raises(Interrupted, match="the 2 subnet measurement"):
        api.measure_archs(ctx, archs, passes=2)
    recs = Records.load(ctx.paths.records, "local-cpu")
    assert sorted(len(r.passes) for r in recs.records) == [1, 1]


# --- 2: validate before touching disk; --fresh keeps the old table ------------------------
@pytest.mark.parametrize("budget", ["0", "1.5", "nan", "-1"])
def test_fresh_with_a_bad_budget_touches_nothing(home, budget):
    one_line_and_untouched(["profile", "--device", "local-cpu", "-r", 128, "--fresh",
                            "--budget", budget], home, "--budget")
    from hwnas import api

    with pytest.raises(HwnasError, match="budget"):
        api.profile(api.context("local-cpu", resolutions=[128], home=home), fresh=True,
                    budget=0)
    assert LatencyTable.load(home / "devices/local-cpu/table.pkl")


def test_fresh_profile_keeps_the_old_table(tmp_path, export_cache_dir):
    from hwnas.profilers import make_profiler
    from hwnas.profilers.run import profile_ops

    path = tmp_path / "table.pkl"
    old = synthetic_table("local-cpu")
    old.save(path)
    old_bytes = path.read_bytes()
    ops = sorted(get_space("elasticvit").enumerate_ops(128), key=lambda o: o.macs())[:2]
    cfg = load_device("local-cpu").with_overrides(runs=3, warmup=1)
    with make_profiler(cfg, export_cache_dir) as prof:
        table = profile_ops(prof, ops, path, fresh=True, progress=False)
    keys = sorted(o.key for o in ops)
    assert sorted(LatencyTable.load(path).entries) == keys == sorted(table.entries)
    (bak,) = tmp_path.glob("table.pkl.*.bak")
    assert bak.read_bytes() == old_bytes


# --- 3: imports ------------------------------------------------------------------------
def _nn_meter_json(path, value=None):
    """A small nn-Meter-format LUT: every op key of the space at 160 px."""
    keys = [op.key for op in get_space("elasticvit").enumerate_ops(160)]
    path.write_text(json.dumps({k: value if value is not None else 0.01 + i * 1e-4
                                for i, k in enumerate(keys)}))
    return path


def _tf_nas_pickle(path, mid1=-0.1):
    block = "MBInvertedResBlock_112_16_0_24_k3_s2_relu"
    path.write_bytes(pickle.dumps({"base": 1.5, block: {1: mid1, 8: 0.2, 16: 0.3}}))
    return path


def test_import_over_a_measured_table_needs_force_and_keeps_a_backup(home, tmp_path):
    lut = _nn_meter_json(tmp_path / "lut.json")
    table = home / "devices/pixel6/table.pkl"
    old = table.read_bytes()
    one_line_and_untouched(["import", "nn-meter", lut, "--device", "pixel6"], home,
                           r"pixel6 already has a latency table .* pass --force")
    r = invoke(["import", "nn-meter", lut, "--device", "pixel6", "--force"], home)
    assert r.exit_code == 0, r.stderr
    (bak,) = table.parent.glob("table.pkl.*.bak")
    assert bak.read_bytes() == old and str(bak) in r.stdout
    assert LatencyTable.load(table).meta["replaced"]["backup"] == str(bak)


def test_import_for_the_wrong_hardware_is_refused_even_with_force(home, tmp_path):
    lut = _nn_meter_json(tmp_path / "lut.json")  # renamed: the file name gives nothing away
    for args, why in (
            (["nn-meter", lut, "--device", "local-cpu"], "local-cpu is measured here with "
                                                         "onnxruntime; a nn-Meter table"),
            (["tf-nas", _tf_nas_pickle(tmp_path / "t.pkl"), "--device", "pixel6"],
             "pixel6's table comes from .*nn-Meter.*; a TF-NAS table"),
            (["nn-meter", lut, "--device", "titan-rtx"], "titan-rtx's table comes from .*TF-NAS")):
        one_line_and_untouched(["import", *args, "--force"], home, why)


def test_import_of_keys_outside_the_space_is_refused(home, tmp_path):
    foo = tmp_path / "foo.json"
    foo.write_text('{"foo": 1, "bar": 2}')
    one_line_and_untouched(["import", "nn-meter", foo, "--device", "pixel6", "--force"], home,
                           r"2 of 2 keys are not nn-Meter op keys of the elasticvit space")


@pytest.mark.data
def test_import_of_tf_nas_gpu_table_as_pixel6_is_refused(home, shared_data):
    gpu = shared_data / "tf-nas-luts/latency_gpu.pkl"
    one_line_and_untouched(["import", "tf-nas", gpu, "--device", "pixel6", "--force"], home,
                           "a TF-NAS table was measured on other hardware")
    one_line_and_untouched(["import", "tf-nas", gpu, "--device", "xeon-gold-6130"], home,
                           "latency_gpu.pkl is the table of titan-rtx")


# --- 4: impossible latencies -----------------------------------------------------------
@pytest.mark.parametrize("value, why", [(-42.0, "zero or negative latency"),
                                        (0.0, "zero or negative latency"),
                                        (float("inf"), "non-finite latency"),
                                        (float("nan"), "non-finite latency")])
def test_tables_with_impossible_latencies_are_refused(home, arch, value, why):
    t = synthetic_table("pixel6")
    key = next(iter(t.entries))
    t.entries[key] = Stats.single(value)
    t.save(home / "devices/pixel6/table.pkl")
    one_line_and_untouched(["predict", "--device", "pixel6", "--arch", arch], home,
                           f"table.pkl has a {why}")
    one_line_and_untouched(["search", "--device", "pixel6", "-r", 160, "--target-latency", 20],
                           home, why)


def test_nn_meter_all_negative_import_is_refused(home, tmp_path):
    lut = _nn_meter_json(tmp_path / "neg.json", value=-1.0)
    one_line_and_untouched(["import", "nn-meter", lut, "--device", "android"], home,
                           r"has a latency of -1\.0 ms; a latency must be positive")


def test_tf_nas_negatives_pass_only_flagged_and_stay_flagged(tmp_path):
    from hwnas import api

    t = api.import_table("tf-nas", _tf_nas_pickle(tmp_path / "t.pkl"), "titan-rtx",
                         home=tmp_path)
    key = "MBInvertedResBlock_112_16_0_24_k3_s2_relu_mid1"
    assert t.entries[key].median_ms == -0.1 and "TF-NAS interpolated" in t.flags[key]
    back = LatencyTable.load(tmp_path / "devices/titan-rtx/table-b32-fp32.pkl")
    assert back.flags == t.flags  # a reload keeps them flagged
    back.flags.clear()
    with pytest.raises(TableError, match="not flagged by their source"):
        LatencyTable.from_obj(back.to_obj())


def test_lut_predictions_are_never_zero_negative_or_non_finite():
    from hwnas.predictors.lut import LUTPredictor

    space = get_space("elasticvit", [160])
    table = synthetic_table("d")
    # flagged negatives that outweigh the rest: the source's own numbers, but no latency
    for k in table.entries:
        table.put(k, Stats.single(-1.0), flag="negative in source")
    pred = LUTPredictor(table, space, calibrate=False)
    with pytest.raises(PredictorError, match="not a positive, finite latency"):
        pred.predict([space.smallest(160)])
    good = LUTPredictor(synthetic_table("d"), space)
    archs = [space.sample(np.random.default_rng(i)) for i in range(6)]
    assert (good.predict(archs) > 0).all()
    good.coef_, good.intercept_ = 1.0, -1e6  # a calibration that would go below 0 ms
    with pytest.raises(PredictorError, match="calibrated prediction"):
        good.predict(archs)


# --- 5, 6, 11: option values -----------------------------------------------------------
@pytest.mark.parametrize("args, option", [
    (["search", "--device", "pixel6", "--target-latency", "1e308"], "--target-latency"),
    (["search", "--device", "pixel6", "--target-latency", "inf"], "--target-latency"),
    (["search", "--device", "pixel6", "--target-latency", "nan"], "--target-latency"),
    (["build-pools", "--metric", "flops", "--preset", "tiny", "--levels", "inf"], "--levels"),
    (["build-pools", "--metric", "flops", "--preset", "tiny", "--levels", "10,20", "--bound",
      "nan"], "--bound"),
])
def test_non_finite_and_absurd_values_are_refused_at_once(home, tmp_path, args, option):
    out = tmp_path / "pools.json"
    t0 = time.monotonic()
    one_line_and_untouched(args + (["--out", out] if args[0] == "build-pools" else []), home,
                           f"'{option}'")
    assert time.monotonic() - t0 < 5 and not out.exists()  # no 20,224 draws first


@pytest.mark.parametrize("args, option", [
    (["measure", "--device", "local-cpu", "--sample", "2", "--passes", "0"], "--passes"),
    (["measure", "--device", "local-cpu", "--sample", "2", "--passes", "-1"], "--passes"),
    (["measure", "--device", "local-cpu", "--sample", "-3"], "--sample"),
    (["fit", "--device", "local-cpu", "--kind", "lut", "--test-fraction", "-0.5"],
     "--test-fraction"),
    (["fit", "--device", "local-cpu", "--kind", "lut", "--test-fraction", "nan"],
     "--test-fraction"),
    (["fit", "--device", "local-cpu", "--kind", "lut", "--test-fraction", "1.5"],
     "--test-fraction"),
    (["profile", "--device", "local-cpu", "--model", "deit-tiny", "--runs", "0", "--budget", "5",
      "--fresh"], "--runs"),
    (["profile", "--device", "local-cpu", "--model", "deit-tiny", "--fresh"], "--fresh"),
    (["profile", "--device", "local-cpu", "--warmup", "-1"], "--warmup"),
    (["profile", "--device", "local-cpu", "-r", "0"], "--resolution"),
])
def test_numeric_options_are_range_checked(home, args, option):
    one_line_and_untouched(args, home, option)


@pytest.mark.parametrize("args", [
    ["search", "--device", "pixel6", "--target-latency", "20", "--seed", "-1"],
    ["build-pools", "--metric", "flops", "--preset", "tiny", "--levels", "10", "--seed", "-1",
     "--out", "OUT"],
    ["measure", "--device", "local-cpu", "--sample", "1", "--seed", "-1"],
])
def test_negative_seeds(home, args):
    args = [home.parent / "pools.json" if a == "OUT" else a for a in args]
    one_line_and_untouched(args, home, "'--seed': -1 is not in the range")


# --- 7: a read-only home ---------------------------------------------------------------
@pytest.fixture
def ro_home(home, tmp_path):
    if not read_only_supported(tmp_path):
        pytest.skip("this process cannot make a folder read-only for itself")
    with read_only(home):
        yield home


@pytest.mark.parametrize("args, pattern", [
    (["import", "nn-meter", "LUT", "--device", "pixel6", "--force"], "is read-only"),
    (["measure", "--device", "local-cpu", "--sample", "1"], "is read-only"),
    (["profile", "--device", "local-cpu", "-r", 128], "is read-only"),
    (["profile", "--device", "local-cpu", "--model", "deit-tiny"], "is read-only"),
    (["fit", "--device", "local-cpu", "--kind", "flops"], "is read-only"),
])
def test_read_only_home_fails_before_measuring(ro_home, tmp_path, args, pattern):
    lut = _nn_meter_json(tmp_path / "lut.json")
    t0 = time.monotonic()
    one_line_and_untouched([lut if a == "LUT" else a for a in args], ro_home, pattern)
    assert time.monotonic() - t0 < 10  # refused up front, not after measuring


def test_read_only_home_still_gives_the_search_result(ro_home, tmp_path):
    out = tmp_path / "best.json"
    r = invoke(["search", "--device", "pixel6", "-r", 160, "--target-latency", 20, "--out", out],
               ro_home)
    assert r.exit_code == 0, r.stderr
    assert "predicted:" in r.stdout and "no plot" in r.stdout
    assert "could not write the Pareto plot" in r.stderr
    doc = json.loads(out.read_text())
    assert 0 < doc["predicted_ms"] <= 20 and doc["pareto_plot"] is None
    assert_latencies_sane(r)


# --- 8, 9, 10: files where they should not be ------------------------------------------
@pytest.mark.parametrize("args", [
    ["predict", "--device", "local-cpu", "--arch", "ARCH"],
    ["search", "--device", "local-cpu", "-r", 160, "--target-latency", 20],
    ["measure", "--device", "local-cpu", "--arch", "ARCH"],
    ["fit", "--device", "local-cpu", "--kind", "lut"],
    ["evaluate", "--device", "local-cpu", "--predictor", "lut-raw"],
    ["records", "export", "--device", "local-cpu", "--csv", "OUT"],
])
def test_records_file_that_is_a_directory(home, arch, args):
    rec = home / "devices/local-cpu/records.json"
    rec.unlink()
    rec.mkdir()
    subs = {"ARCH": arch, "OUT": home.parent / "out.csv"}
    one_line_and_untouched([subs.get(a, a) for a in args], home,
                           "records.json is a directory")


def test_a_file_where_a_folder_should_be(home, arch, tmp_path):
    lut = _nn_meter_json(tmp_path / "lut.json")
    f = tmp_path / "a-file"
    f.write_text("x")
    for args in (["predict", "--device", "local-cpu", "--arch", arch],
                 ["import", "nn-meter", lut, "--device", "pixel6"],
                 ["measure", "--device", "local-cpu", "--arch", arch],
                 ["search", "--device", "pixel6", "--target-latency", 20]):
        one_line_and_untouched(args, f, r"a-file is a file, not a folder \(HWNAS_HOME\)",
                               root=tmp_path)
    (home / "devices/android").write_text("x")
    one_line_and_untouched(["import", "nn-meter", lut, "--device", "android"], home,
                           "devices/android is a file, not a folder")
    (home / "cache").write_text("x")
    one_line_and_untouched(["profile", "--device", "local-cpu", "--model", "deit-tiny"], home,
                           "cache is a file, not a folder")


def test_output_paths_are_checked_before_any_work(home, arch, tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for args, pattern in (
            (["search", "--device", "pixel6", "--target-latency", 20, "--out", folder],
             "'--out': .*a-folder is a folder; give a file name"),
            (["export", "--arch", arch, "--out", folder], "'--out'"),
            (["records", "export", "--device", "local-cpu", "--csv", folder], "'--csv'"),
            (["records", "export", "--device", "local-cpu", "--csv", a_file / "r.csv"],
             "a-file is a file, not a folder"),
            (["evaluate", "--device", "local-cpu", "--predictor", "lut-raw", "--plots", a_file],
             "'--plots': .*a-file")):
        one_line_and_untouched(args, home, pattern, root=tmp_path)


def test_output_paths_into_missing_folders_are_created(home, tmp_path):
    csv = tmp_path / "new" / "deeper" / "records.csv"
    r = invoke(["records", "export", "--device", "local-cpu", "--csv", csv], home)
    assert r.exit_code == 0, r.stderr
    assert csv.read_text().count("\n") == 1 + len(Records.load(
        home / "devices/local-cpu/records.json"))


# --- 12, 13: bad and corrupt files -------------------------------------------------------
def test_imports_of_bad_files(home, tmp_path):
    one_line_and_untouched(["import", "nn-meter", tmp_path, "--device", "android"], home,
                           "is a directory, not a file")
    big = tmp_path / "big.json"
    big.write_text('{"firstconv_160_3_16_2_3": 1' + "0" * 400 + "}")
    one_line_and_untouched(["import", "nn-meter", big, "--device", "android"], home,
                           "is not a finite number|holds an integer of 401 digits")
    for width in ("abc", None, (1, 2), True, -8):
        p = tmp_path / "latency_x.pkl"
        p.write_bytes(pickle.dumps({"base": 1.0, "MBInvertedResBlock_112_16_0_24_k3_s2_relu":
                                    {width: 1.0}}))
        one_line_and_untouched(["import", "tf-nas", p, "--device", "titan-rtx"], home,
                               "mid width .*; widths are positive integers")


def test_corrupt_meta_and_records_are_named(home, arch):
    table = home / "devices/local-cpu/table.pkl"
    t = LatencyTable.load(table)
    t.meta["call_overhead_ms"] = "x"
    t.save(table)
    one_line_and_untouched(["predict", "--device", "local-cpu", "--arch", arch], home,
                           r"local-cpu/table.pkl is corrupt: meta call_overhead_ms is 'x'")
    synthetic_table("local-cpu").save(table)
    rec = home / "devices/local-cpu/records.json"
    obj = json.loads(rec.read_text())
    obj["records"][0]["arch"] = 5
    rec.write_text(json.dumps(obj))
    for args in (["predict", "--device", "local-cpu", "--arch", arch],
                 ["records", "export", "--device", "local-cpu", "--csv", home / "r.csv"]):
        one_line_and_untouched(args, home, r"records.json is corrupt .*arch is a JSON object")


# --- the small things ------------------------------------------------------------------
def test_bad_supernet_checkpoint_is_one_line(home, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(pickle.dumps({"a": 1}))
    one_line_and_untouched(["search", "--device", "pixel6", "--target-latency", 20,
                            "--supernet", bad], home,
                           "not a loadable supernet checkpoint .*weights-only loader")


def test_written_files_follow_the_umask(home, arch, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "best.json"
        r = invoke(["search", "--device", "pixel6", "-r", 160, "--target-latency", 20, "--out",
                    out], home)
        assert r.exit_code == 0, r.stderr
        r = invoke(["export", "--arch", arch, "--out", tmp_path / "m.onnx"], home)
        assert r.exit_code == 0, r.stderr
        csv = tmp_path / "r.csv"
        r = invoke(["records", "export", "--device", "local-cpu", "--csv", csv], home)
        assert r.exit_code == 0, r.stderr
        synthetic_table("android").save(tmp_path / "t.pkl")
        for p in (out, tmp_path / "m.onnx", tmp_path / "t.pkl", csv):
            assert p.stat().st_mode & 0o777 == 0o644, p
        os.chmod(csv, 0o600)  # a file the user restricted keeps its mode when rewritten
        invoke(["records", "export", "--device", "local-cpu", "--csv", csv], home)
        assert csv.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_devices_needs_a_table_file(home):
    (home / "devices/android/table.pkl").mkdir(parents=True)
    r = invoke(["devices", "--json"], home)
    rows = {row["device"]: row["table"] for row in json.loads(r.stdout)}
    assert rows["android"] is False and rows["pixel6"] is True


def test_another_devices_table_is_refused(home, arch):
    synthetic_table("pixel1").save(home / "devices/pixel6/table.pkl")
    one_line_and_untouched(["predict", "--device", "pixel6", "--arch", arch], home,
                           "holds the latency table of pixel1, not of pixel6")


def test_negative_depth_is_named(home, tmp_path):
    lst = T1.to_elasticvit_list()
    lst[2] = [1, 2, -3, 1, 1, 1, 1]
    p = tmp_path / "neg.json"
    p.write_text(json.dumps(lst))
    one_line_and_untouched(["predict", "--device", "pixel6", "--arch", p], home,
                           r"depths\[2\]=-3 is negative")


def test_resumed_profile_bar_shows_where_it_is(tmp_path, export_cache_dir, capsys):
    from hwnas.profilers import make_profiler
    from hwnas.profilers.run import profile_ops

    ops = sorted(get_space("elasticvit").enumerate_ops(128), key=lambda o: o.macs())[:3]
    cfg = load_device("local-cpu").with_overrides(runs=3, warmup=1)
    path = tmp_path / "table.pkl"
    with make_profiler(cfg, export_cache_dir) as prof:
        profile_ops(prof, ops[:1], path, progress=False)
        capsys.readouterr()
        profile_ops(prof, ops, path, progress=True)
    err = capsys.readouterr().err
    assert "1/3" in err and "0/2" not in err


# --- the boundary itself ---------------------------------------------------------------
def test_boundary_prints_a_traceback_only_with_vv(home):
    (home / "devices/local-cpu/records.json").unlink()
    (home / "devices/local-cpu/records.json").mkdir()
    args = ["records", "export", "--device", "local-cpu", "--csv", home / "r.csv"]
    assert "Traceback" not in invoke(args, home).stderr
    r = invoke(["-vv", *args], home)
    assert r.exit_code == 1 and "Traceback" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("hwnas: error: ")


def test_boundary_turns_an_unexpected_error_into_one_line(home, monkeypatch):
    from hwnas import api

    def broken(*a, **k):
        raise TypeError("unsupported operand type(s)\nsecond line")

    monkeypatch.setattr(api, "import_table", broken)
    r = invoke(["import", "nn-meter", home, "--device", "pixel6"], home)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and "Traceback" not in r.stderr
    assert "unexpected TypeError" in lines[0] and "please report it" in lines[0]


def test_boundary_usage_errors_are_one_line(home):
    for args in (["search", "--target-latency", 5], ["nosuch"], ["predict", "--bogus"]):
        assert_one_line(invoke(args, home))


def test_a_ctrl_c_just_after_a_save_counts_that_save(tmp_path, monkeypatch):
    """A real SIGINT delivered the moment ``measure`` has written the records file (CI once
    caught one there: the file held a subnet, the message said nothing was measured). The
    save and its count are one block for Ctrl-C, so the message counts the subnet."""
    import os
    import signal

    from hwnas import api
    from hwnas.errors import Interrupted

    ctx = api.context("local-cpu", "elasticvit", [128], home=tmp_path, runs=3, warmup=1)
    real = Records.save

    def save_then_sigint(self, path):
        real(self, path)
        os.kill(os.getpid(), signal.SIGINT)  # handled at the next bytecode: inside the save

    monkeypatch.setattr(Records, "save", save_then_sigint)
    with pytest.raises(Interrupted, match="the 1 subnet measurement"):
        api.measure(ctx, [ctx.space.smallest(128), ctx.space.largest(128)], progress=False)
    assert len(Records.load(ctx.paths.records, "local-cpu")) == 1


def test_sigint_deferred_delivers_the_interrupt_when_the_block_ends():
    import os
    import signal

    from hwnas.interrupts import sigint_deferred

    steps = []
    with pytest.raises(KeyboardInterrupt):
        with sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("after the signal")  # not cut short
        steps.append("after the block")  # never reached: delivered at the block's end
    assert steps == ["after the signal"]
