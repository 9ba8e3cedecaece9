"""benchmarks/landing_sim.py: its simulated device and one search per policy (nothing timed)."""

from benchmarks.landing_sim import _table_predictors, main, subnet_sd
from hwnas.spaces import get_space


def test_the_simulated_device_errs_per_subnet_as_asked():
    space = get_space("elasticvit", [160])
    sds = [subnet_sd(space, *_table_predictors(space, op_sd), n=100) for op_sd in (0.0, 0.12)]
    assert sds[0] < 1e-9 and 0.015 < sds[1] < 0.04  # 0: the predictor is the device


def test_one_search_per_policy_reports_both(capsys):
    main(["--searches", "1", "--worlds", "0.01:0.12", "--no-write"])
    out = capsys.readouterr().out
    assert "| 2 a round, up to 8 (hwnas) | 1 |" in out and "| 4 a round, up to 4 (before) | 1 |" in out
    assert "| 4 a round as a ladder 0.75% apart | 1 |" in out
    assert "| failed rounds keep the best under T | 1 |" in out
    assert "a SIMULATION (nothing timed" in out
