import numpy as np
import pytest

from hwnas.errors import InfeasibleTargetError
from hwnas.latency.stats import Stats
from hwnas.latency.table import LatencyTable
from hwnas.predictors.lut import LUTPredictor
from hwnas.search.evolution import EvolutionConfig, evolve, feasible_range, pareto_front
from hwnas.spaces import get_space

FAST = EvolutionConfig(population=32, generations=15, parents=8)


def synthetic_predictor(space, seed=0):
    """A LUT whose entries are a noisy function of each op's MACs (no measurement needed)."""
    rng = np.random.default_rng(seed)
    entries = {}
    for r in space.resolutions:
        for op in space.enumerate_ops(r):
            entries[op.key] = Stats.single(0.02 + op.macs() / 5e7 * rng.uniform(0.7, 1.3))
    return LUTPredictor(LatencyTable({"device": "synthetic"}, entries), space, calibrate=False)


@pytest.fixture(scope="module")
def setup():
    space = get_space("elasticvit", [160, 192])
    return space, synthetic_predictor(space)


def test_search_uses_the_budget_and_is_seeded(setup):
    space, pred = setup
    lo, hi = feasible_range(space, pred.predict)
    target = lo + 0.4 * (hi - lo)
    a = evolve(space, pred.predict, target, np.random.default_rng(0), cfg=FAST)
    b = evolve(space, pred.predict, target, np.random.default_rng(0), cfg=FAST)
    assert a.best.arch == b.best.arch
    assert a.best.latency_ms <= target
    assert a.best.latency_ms >= 0.95 * target  # uses the budget
    assert pred.predict_one(a.best.arch) == pytest.approx(a.best.latency_ms)
    front = a.pareto
    assert all(c.latency_ms <= target for c in front)
    lats = [c.latency_ms for c in front]
    scores = [c.score for c in front]
    assert lats == sorted(lats) and scores == sorted(scores)
    assert a.history == sorted(a.history)  # elitist: never gets worse


def test_target_near_the_fast_end_is_still_met(setup):
    space, pred = setup
    lo, _ = feasible_range(space, pred.predict)
    r = evolve(space, pred.predict, lo * 1.05, np.random.default_rng(1), cfg=FAST)
    assert r.best.latency_ms <= lo * 1.05


@pytest.mark.parametrize("target", [-1.0, 0.0])
def test_non_positive_target_is_refused(setup, target):
    space, pred = setup
    with pytest.raises(InfeasibleTargetError, match="must be positive"):
        evolve(space, pred.predict, target, np.random.default_rng(0), cfg=FAST)


def test_infeasible_target_gives_the_range(setup):
    space, pred = setup
    lo, hi = feasible_range(space, pred.predict)
    with pytest.raises(InfeasibleTargetError, match=r"feasible range \d"):
        evolve(space, pred.predict, lo / 2, np.random.default_rng(0), cfg=FAST)


def test_pareto_front_drops_dominated():
    from hwnas.search.evolution import Candidate

    c = [Candidate("a", 1.0, 1.0), Candidate("b", 2.0, 0.5), Candidate("c", 2.0, 3.0),
         Candidate("d", 3.0, 2.0)]
    assert [x.arch for x in pareto_front(c)] == ["a", "c"]


def test_calibration_is_one_factor_and_rejects_bad_latencies(setup):
    from hwnas.errors import PredictorError

    space, _ = setup
    pred = synthetic_predictor(space)
    pred.calibrate = True
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(20)]
    raw = pred.predict_raw(archs)
    pred.fit(archs, 1.1 * raw)
    np.testing.assert_allclose(pred.predict(archs), 1.1 * raw, rtol=1e-9)
    assert pred.intercept_ == 0.0
    with pytest.raises(PredictorError, match="finite and positive"):
        pred.fit(archs[:3], [1.0, float("nan"), 2.0])
    with pytest.raises(PredictorError, match="at least 3"):
        pred.fit(archs[:2], [1.0, 2.0])


def test_calibration_never_turns_a_good_raw_prediction_into_a_miss_at_the_edge(setup):
    """The issue's failure: subnets measured smallest to largest on a machine that sped up by
    ~25% over the run. The raw LUT was right (within 3%); an affine fit learnt the drift as a
    size effect and predicted the smallest subnets ~30% too fast. One factor cannot do that."""
    space, _ = setup
    pred = synthetic_predictor(space)
    pred.calibrate = True
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(61)]
    raw = pred.predict_raw(archs)
    order = np.argsort(raw)  # measured in order of size...
    drift = np.empty(len(raw))
    drift[order] = np.linspace(1.12, 0.88, len(raw))  # ...while the machine sped up
    truth = raw * rng.uniform(0.97, 1.03, len(raw))
    measured = truth * drift
    pred.fit(archs, measured)
    edges = [order[0], order[-1]]
    err = np.abs(pred.predict([archs[i] for i in edges]) / truth[edges] - 1)
    assert err.max() < 0.06
    # the affine fit on the same data misses the edges badly: this test can tell them apart
    a, b = np.polyfit(raw, measured, 1)
    assert np.abs((a * raw[edges] + b) / truth[edges] - 1).max() > 0.15


def test_landing_measures_until_a_pick_lands_just_under_the_target(setup):
    """A world where the predictor is 12% optimistic near the target and measurements carry
    1% noise: plain evolution overshoots; landing measures, corrects and lands in the window.
    The 'device' here is a second synthetic table: this checks the search's logic."""
    from hwnas.search.landing import LandingConfig, land

    space, pred = setup
    truth = synthetic_predictor(space, seed=5)  # another draw of per-op costs: not the same
    noise = np.random.default_rng(3)
    calls = []

    def measure(archs):
        calls.append(len(archs))
        return truth.predict_raw(archs) * 1.12 * noise.uniform(0.99, 1.01, len(archs))

    lo, hi = feasible_range(space, pred.predict)
    target = lo + 0.4 * (hi - lo)
    plain = evolve(space, pred.predict, target, np.random.default_rng(0), cfg=FAST)
    over = truth.predict_raw([plain.best.arch])[0] * 1.12 / target - 1
    result, landing = land(space, pred.predict, target, 0, measure, evo=FAST,
                           cfg=LandingConfig(rounds=6))
    assert over > 0.03  # without measuring, the pick is well over the target
    # kept only inside the accept window, narrower than the promise [-3%, 0%]: the fresh
    # passes that re-measure the pick have room on both sides
    assert landing.in_window and -0.025 <= landing.best.measured_ms / target - 1 <= -0.0075
    assert result.best.latency_ms == pytest.approx(pred.predict([result.best.arch])[0])
    assert landing.correction > 1.03
    assert landing.confirmations >= 1  # the pick was measured twice before it was kept
    assert sum(calls) == len(landing.checked) + landing.confirmations


def test_landing_says_when_even_the_fastest_subnets_measure_over_the_target(setup):
    from hwnas.errors import InfeasibleTargetError
    from hwnas.search.landing import land

    space, pred = setup
    lo, _ = feasible_range(space, pred.predict)
    with pytest.raises(InfeasibleTargetError, match=r"fastest measured .*ask for at least"):
        land(space, pred.predict, 1.1 * lo, 0, lambda archs: 2.0 * pred.predict(archs), evo=FAST)


def _edge_measure(pred, target):
    """A deterministic 'device' whose subnets jump over the window: anything predicted at or
    above 92% of the target measures 5% over it, the rest as predicted."""
    def measure(archs):
        p = pred.predict(archs)
        return np.where(p < 0.92 * target, p, np.maximum(p, target) * 1.05)
    return measure


def test_landing_says_so_when_no_subnet_lies_in_the_window(setup):
    from hwnas.search.landing import land

    space, pred = setup
    lo, hi = feasible_range(space, pred.predict)
    target = lo + 0.3 * (hi - lo)
    result, landing = land(space, pred.predict, target, 0, _edge_measure(pred, target), evo=FAST)
    assert not landing.in_window and not landing.landed
    assert landing.best.measured_ms <= target  # the best one under the target is still kept
    below, above = landing.neighbours()
    assert below.measured_ms < 0.97 * target and above.measured_ms > target
    doc = landing.to_dict()
    assert doc["landed"] is False
    assert doc["nearest_below"]["gap"] == pytest.approx(below.measured_ms / target - 1)
    assert doc["nearest_above"]["gap"] > 0
    assert doc["window_ms"] == pytest.approx([0.97 * target, target])


def test_cli_search_prints_not_landed_with_both_neighbours(setup, hwnas_home, monkeypatch):
    import json as json_

    from cli_harness import invoke
    from hwnas import api
    from hwnas.api.workflows import SearchOutcome
    from hwnas.predictors.select import Chosen
    from hwnas.search.landing import land

    space, pred = setup
    lo, hi = feasible_range(space, pred.predict)
    target = round(lo + 0.3 * (hi - lo), 3)

    def fake_search(device, target_ms, **kw):
        result, landing = land(space, pred.predict, target_ms, 0,
                               _edge_measure(pred, target_ms), evo=FAST)
        return SearchOutcome(result, Chosen(pred, "lut", "synthetic"), None, None, landing)

    monkeypatch.setattr(api, "search", fake_search)
    r = invoke(["search", "--device", "local-cpu", "--target-latency", target], hwnas_home)
    assert r.exit_code == 0, r.stderr
    assert "NOT LANDED" in r.stdout and "nearest measured below" in r.stdout, r.stdout
    r = invoke(["search", "--device", "local-cpu", "--target-latency", target, "--json"],
               hwnas_home)
    assert r.exit_code == 0, r.stderr
    land_doc = json_.loads(r.stdout)["landing"]
    assert land_doc["landed"] is False
    assert land_doc["nearest_below"]["measured_ms"] < 0.97 * target
    assert land_doc["nearest_above"]["measured_ms"] > target


def test_the_landing_measures_a_ladder_around_the_aim(setup):
    """Step 2's candidates with ``ladder_step``: the best-scoring one per rung of predicted
    latency (0.75% apart, centred on the aim); without, the evolution's best few."""
    from hwnas.search.evolution import Candidate
    from hwnas.arch_key import arch_key
    from hwnas.search.landing import LandingConfig, _ladder

    space, _ = setup
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(40)]
    aim = 10.0
    # scores rise with latency (more capacity costs time), as on a real front
    lat = np.linspace(9.5, 10.3, len(archs))
    feasible = [Candidate(a, float(t), float(t)) for a, t in zip(archs, lat)]
    cfg = LandingConfig(ladder_step=0.0075, per_round=4)
    picks = _ladder(feasible, aim, cfg, set())
    got = [c.latency_ms for c in picks]
    # rungs (10.15, 10.3], (10.075, 10.15], (10.0, 10.075], (9.925, 10.0]: the top of each
    edges = [aim * (1 + cfg.ladder_step * (2 - i)) for i in range(4)]
    assert len(picks) == 4 and got == sorted(got, reverse=True)
    for t, hi in zip(got, edges):
        assert hi - aim * cfg.ladder_step < t <= hi
    twins = _ladder(feasible, aim, LandingConfig(per_round=4), set())
    assert [c.latency_ms for c in twins] == sorted(lat, reverse=True)[:4]
    # measured ones are skipped; empty rungs are filled with the best left under the top
    skip = {arch_key(c.arch) for c in feasible if c.latency_ms > 9.9}
    refill = _ladder(feasible, aim, cfg, skip)
    assert len(refill) == 4 and all(c.latency_ms <= 9.9 for c in refill)


def test_a_pick_that_pools_over_the_target_is_not_presented_as_landed(setup, hwnas_home,
                                                                      monkeypatch):
    """The pick's figure over every pass (the landing's and the fresh ones) has the last word:
    kept in the window by its landing passes, +1.6% over all of them is NOT LANDED, said so
    with both figures (seen on a 10 ms search on local-cpu)."""
    import json as json_

    from cli_harness import invoke
    from hwnas import api
    from hwnas.api.workflows import SearchOutcome
    from hwnas.predictors.select import Chosen
    from hwnas.search.landing import LandingConfig, land

    space, pred = setup
    lo, hi = feasible_range(space, pred.predict)
    target = round(lo + 0.4 * (hi - lo), 3)
    truth = synthetic_predictor(space, seed=5)
    noise = np.random.default_rng(3)

    def measure(archs):
        return truth.predict_raw(archs) * 1.12 * noise.uniform(0.99, 1.01, len(archs))

    result, landing = land(space, pred.predict, target, 0, measure, evo=FAST,
                           cfg=LandingConfig(rounds=6))
    assert landing.landed and not landing.left_window  # by its landing passes
    landing.final_ms = 1.016 * target
    assert not landing.landed and landing.left_window
    monkeypatch.setattr(api, "search", lambda device, target_ms, **kw: SearchOutcome(
        result, Chosen(pred, "lut", "synthetic"), None, None, landing))
    r = invoke(["search", "--device", "local-cpu", "--target-latency", target], hwnas_home)
    assert r.exit_code == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("NOT LANDED"))
    assert "over all its passes the pick measured" in line and "(+1.6% vs target)" in line
    assert "lower target" in line and "nearest measured" not in line
    doc = json_.loads(invoke(["search", "--device", "local-cpu", "--target-latency", target,
                              "--json"], hwnas_home).stdout)["landing"]
    assert doc["landed"] is False and doc["left_window"] is True
    assert doc["final_ms"] == pytest.approx(1.016 * target)
    landing.final_ms = 0.99 * target  # inside: landed, nothing said
    assert landing.landed and not landing.left_window


@pytest.mark.parametrize("given, passes", [([], 2), (["--landing-passes", "1"], 1)])
def test_landing_passes_reach_the_search(setup, hwnas_home, monkeypatch, given, passes):
    """`--landing-passes` is the landing's passes per candidate (2 unless given)."""
    from cli_harness import invoke
    from hwnas import api
    from hwnas.api.workflows import SearchOutcome
    from hwnas.predictors.select import Chosen
    from hwnas.search.evolution import evolve

    space, pred = setup
    lo, hi = feasible_range(space, pred.predict)
    result = evolve(space, pred.predict, (lo + hi) / 2, np.random.default_rng(0), cfg=FAST)
    seen = {}

    def search(device, target_ms, **kw):
        seen.update(kw)
        return SearchOutcome(result, Chosen(pred, "lut", "synthetic"), None, None, None)

    monkeypatch.setattr(api, "search", search)
    r = invoke(["search", "--device", "local-cpu", "--target-latency", (lo + hi) / 2, *given],
               hwnas_home)
    assert r.exit_code == 0, r.stderr
    assert seen["landing"].passes == passes


@pytest.mark.parametrize("prefer_promise", [True, False])
def test_a_landing_that_fails_keeps_a_candidate_measured_within_the_promise(setup,
                                                                            prefer_promise):
    """No round keeps a pick (every window hit fails its confirmation), but one candidate was
    measured at -0.2%: inside the promise [-3%, 0%], outside the steering window. The
    best-scoring candidate measured far under (-6%) is kept only by the rule before."""
    from hwnas.search.evolution import MacsObjective
    from hwnas.search.landing import LandingConfig, land

    space, pred = setup
    lo, hi = feasible_range(space, pred.predict)
    target = lo + 0.5 * (hi - lo)
    score = MacsObjective(space)

    def measure(archs):  # the best-scoring of each batch far under, the others at -0.2%
        s = np.asarray(score(archs))
        return np.where(s == s.max(), 0.94, 0.998) * target if len(archs) > 1 else \
            [0.94 * target]

    _, landing = land(space, pred.predict, target, 0, measure, evo=FAST,
                      cfg=LandingConfig(rounds=1, prefer_promise=prefer_promise))
    assert not landing.in_window
    if prefer_promise:
        assert landing.best.measured_ms == pytest.approx(0.998 * target) and landing.landed
    else:
        assert landing.best.measured_ms == pytest.approx(0.94 * target) and not landing.landed
