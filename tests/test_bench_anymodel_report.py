"""benchmarks/anymodel.py's additivity report and ±5% goal (pure functions, nothing timed)."""

import math

from benchmarks.anymodel import ZooResult, additivity_lines, goal5_line, ranking_line


def _rows():
    rows = []
    for i, fam in enumerate(["convnet", "vit", "hybrid", "convnet"]):
        r = ZooResult(f"m{i}", fam, 1.0, 10, measured_units=[1.0, 1.0])
        r.ctx_sums = {"hot": 0.8 + 0.05 * i, "network": 0.97}
        rows.append(r)
    return rows


def test_additivity_per_context_family_and_kind():
    res = {"contexts": ["hot", "network"], "kind_add": {
        "hot": {"Conv": [1.0, 2.0, 2.5, 5], "Gemm": [0.5, 1.0, 0.0, 3]},
        "network": {"Conv": [1.1, 2.4, 2.5, 5], "Gemm": [0.6, 1.2, 0.0, 3]}}}
    text = "\n".join(additivity_lines(res, _rows()))
    # hot: 0.80, 0.85, 0.90, 0.95 of the network -> -20%, -15%, -10%, -5%: two within 10%
    assert "| hot | 4 | 50% | -20.0% / -12.5% / -5.0% | -15.0% / -15.0% / -15.0% |" in text
    assert "| network | 4 | 100% |" in text
    # per kind against the kernels' time inside the network; a kind it did not report: n/a
    assert "| Conv | 5 | 2.00 | 2.40 | 2.50 | -20% | -4% |" in text
    assert "| Gemm | 3 | 1.00 | 1.20 | n/a | n/a | n/a |" in text


def test_litert_reports_no_time_inside_the_network():
    res = {"contexts": ["hot"], "kind_add": {"hot": {"CONV_2D": [1.0, 2.0, 0.0, 4]}}}
    text = "\n".join(additivity_lines(res, _rows()))
    assert "reports no per-kernel time inside the network" in text
    assert "| CONV_2D | 4 | 2.00 |" in text and "in network" not in text.split("\n")[-1]


def test_the_5_percent_goal_and_what_the_noise_leaves_of_it():
    line = goal5_line([0.01, 0.013, 0.02])
    assert "±5% goal: 60%" in line and "sigma here is 1.4%" in line
    noisy = goal5_line([0.05, 0.06])
    sigma = 100 * 0.055 / 0.954
    assert f"{sigma:.1f}%" in noisy
    assert f"{100 * math.erf(5 / (math.sqrt(2) * sigma)):.0f}% within" in noisy


def _fused_res():
    from hwnas.anymodel.predictor import Overhead

    rows = []
    for i, fam in enumerate(["convnet", "vit", "hybrid", "convnet"]):
        r = ZooResult(f"m{i}", fam, 1.0 + i, 4, measured_units=[1.1, 1.1],
                      predicted_units=1.1 * (1 + 0.02 * i), kernel_sum_units=1.0)
        r.ctx_sums, r.fused_sums, r.dispatched = {"hot": 1.0}, {"hot": 0.2}, 3
        rows.append(r)
    return {"results": rows, "nets": [(1.0, 1.0), (2.0, 2.1)], "contexts": ["hot"],
            "overhead": Overhead(1.0, 0.1, 0.0, 20), "kind_add": {"hot": {"PAD": [0.2, 1, 0, 4]}},
            "device": "local-tflite", "runtime": "tflite", "version": "x", "budget": 10,
            "summary": {"kernels": 10, "kinds": {"PAD": 4}, "nets": 2, "minutes": 1.5},
            "prof_wall": 90.0, "prof_cpu": 80.0, "scale": 2.0, "cv": {}, "per_kind": {},
            "drift": []}


def test_the_overhead_model_scores_the_measured_kernels_as_the_predictor_counts_them():
    """Fused kernels (a PAD XNNPACK folds into its convolution) neither run nor dispatch:
    1.0 measured, 0.2 of it fused, 3 kernels dispatched at 0.1 -> 1.1, the network."""
    from benchmarks.anymodel import evaluate

    ev = evaluate(_fused_res())
    assert ev["ksum_over"]["within5"] == 1.0 and ev["ksum_over"]["rmspe"] < 1e-6
    assert ev["ksum_unfused"]["rmspe"] > 20  # 0.8 of 1.1: the fused ones alone miss it
    text = "\n".join(additivity_lines(_fused_res(), ev["rows"]))
    assert "| hot | 4 | 100% |" in text  # 1.0 / 1.1 - 1 = -9.1%
    assert "| hot, less the fused | 4 | 0% | -27.3% / -27.3% / -27.3% |" in text


def test_a_rescored_section_says_nothing_was_timed_and_when_it_was():
    import argparse

    from benchmarks.anymodel import render

    res = _fused_res()
    res["rescored"] = {"kept": "/k", "measured": "2026-12-06 22:48 UTC", "argv": ["--skip-cpu"]}
    args = argparse.Namespace(quick=False, cpu_clock=False, passes=2, warmup=10, runs=30)
    text = render(args, [res], "T")
    assert "_Rescored " in text and "_Measured " not in text
    assert "every measurement is from 2026-12-06 22:48 UTC" in text
    assert "`python -m benchmarks.anymodel --skip-cpu`" in text
    assert "RESCORED from kept measurements: no device timed" in text
    assert "the table's own account" in text
    assert "sum of measured kernels less the fused ones" in text


def test_the_ranking_is_scored_against_what_the_measurement_itself_can_order():
    def row(name, passes, predicted):
        r = ZooResult(name, "vit", 1.0, 10, measured_units=passes)
        r.predicted_units = predicted
        return r

    # a and b swap places between the passes (near-twins); c and d are ordered alike by both
    rows = [row("a", [1.00, 1.02], 1.00), row("b", [1.01, 1.00], 1.05),
            row("c", [2.00, 2.01], 2.50), row("d", [3.00, 2.98], 2.40)]
    line = ranking_line(rows)
    assert "pass 1 against pass 2, is 0.667" in line
    assert "Both passes order 5 of the 6 pairs alike" in line  # all but a / b
    # the predictor puts d under c: wrong on c / d only, of those 5
    assert "orders 4 of them so (tau over those pairs 0.600)" in line
    assert "c / d (-32.9%)" in line
    assert ranking_line(rows[:2]) == ""


def test_the_models_outside_the_calibration_networks_families_are_scored_apart():
    """hwnas's named models come from the spaces the calibration networks are drawn from; the
    other zoo models alone are scored too, so that a flattering overlap shows."""
    from benchmarks.anymodel import evaluate

    res = _fused_res()
    names = ["deit-tiny", "elastic_T1", "resnet-18", "vit-tiny-patch16", "levit-128s"]
    rows = []
    for i, name in enumerate(names):  # the named models exact, the others 20% over
        off = 1.0 if i < 2 else 1.2
        r = ZooResult(name, "vit", 1.0 + i, 4, measured_units=[1.0, 1.0],
                      predicted_units=off, kernel_sum_units=1.0)
        r.ctx_sums, r.dispatched = {"hot": 1.0}, 3
        rows.append(r)
    res["results"] = rows
    ev = evaluate(res)
    assert ev["kernels"]["n"] == 5 and abs(ev["kernels"]["within10"] - 0.4) < 1e-9
    assert ev["kernels_outside"]["n"] == 3 and ev["kernels_outside"]["within10"] == 0.0
