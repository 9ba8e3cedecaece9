"""benchmarks/anymodel.py's additivity report and ±5% goal (pure functions, nothing timed)."""

import math

from benchmarks.anymodel import ZooResult, additivity_lines, goal5_line


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
