"""NSGA-II (pymoo) over a search space: budget, front, determinism, cap, energy, hypervolume.

The objective is a cheap deterministic stand-in for accuracy (saturating in MACs), and latency
is a FLOPs-proportional STAND-IN: these check the search machinery, not a supernet.
"""

import sys

import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.supernet.latency import flops_standin_latency_fn
from hwnas.supernet.spec import SpaceSpec

pytest.importorskip("pymoo", reason="pymoo (the 'pareto' extra) is not installed")

from hwnas.search.nsga import (NSGAConfig, ParetoPoint, ScoreCache, hypervolume,  # noqa: E402
                               non_dominated, nsga2, require_pymoo)

SPACE = SpaceSpec("tiny", (64, 96), classes=10).build()
LAT = flops_standin_latency_fn(SPACE)


def accuracy(archs):
    return np.array([0.9 * (1 - np.exp(-SPACE.macs(a) / 5e6)) + 0.01 * (a.resolution == 96)
                     for a in archs])


def test_budget_is_exact_and_the_front_is_non_dominated():
    cache = ScoreCache(accuracy)
    res = nsga2(SPACE, LAT, accuracy, NSGAConfig(budget=40, seed=0), max_latency_ms=1.0,
                cache=cache)
    assert res.scored == 40 == cache.scored == len(res.evaluated)
    assert all(p.latency_ms <= 1.0 for p in res.evaluated)
    for p in res.front:
        assert not any(q.score >= p.score and q.latency_ms <= p.latency_ms and
                       (q.score > p.score or q.latency_ms < p.latency_ms) for q in res.evaluated)
    lat = [p.latency_ms for p in res.front]
    assert lat == sorted(lat) and [p.score for p in res.front] == sorted(p.score for p in res.front)
    best = res.best_under(0.6)
    assert best.latency_ms <= 0.6 and best.score == max(p.score for p in res.evaluated
                                                        if p.latency_ms <= 0.6)


def test_seeded_and_cached():
    a = nsga2(SPACE, LAT, accuracy, NSGAConfig(budget=30, seed=3), max_latency_ms=1.0)
    b = nsga2(SPACE, LAT, accuracy, NSGAConfig(budget=30, seed=3), max_latency_ms=1.0)
    assert [p.arch for p in a.front] == [p.arch for p in b.front]
    calls = []
    cache = ScoreCache(lambda archs: calls.append(len(archs)) or accuracy(archs))
    nsga2(SPACE, LAT, accuracy, NSGAConfig(budget=30, seed=3), max_latency_ms=1.0, cache=cache)
    first = sum(calls)
    again = nsga2(SPACE, LAT, accuracy, NSGAConfig(budget=30, seed=3), max_latency_ms=1.0,
                  cache=cache)  # everything it meets is already scored: it costs nothing new
    assert sum(calls) - first == again.scored


def test_nsga_beats_random_search_on_hypervolume():
    """A sanity check that the search searches: on the same budget, NSGA-II's front dominates
    more than the same number of random subnets'."""
    res = nsga2(SPACE, LAT, accuracy, NSGAConfig(budget=60, seed=0), max_latency_ms=1.2)
    rng = np.random.default_rng(0)
    rand = [SPACE.sample(rng) for _ in range(60)]
    pts = [ParetoPoint(a, float(l), float(s)) for a, l, s in zip(rand, LAT(rand), accuracy(rand))]
    hv_nsga, hv_rand = hypervolume(res.evaluated, 1.2), hypervolume(pts, 1.2)
    assert 0 < hv_rand < hv_nsga < 1


def test_energy_is_a_third_objective():
    def energy(archs):  # a stand-in that prefers the higher resolution: a real trade-off
        return np.array([SPACE.macs(a) / 1e6 * (0.5 if a.resolution == 96 else 1.0)
                         for a in archs])

    res = nsga2(SPACE, LAT, accuracy, NSGAConfig(budget=30, seed=0), energy_fn=energy)
    assert res.objectives == ("score", "latency_ms", "energy_mj")
    assert all(p.energy_mj is not None for p in res.front)
    assert "energy_mj" in res.to_dict()["front"][0]


def test_hypervolume_and_non_dominated():
    rng = np.random.default_rng(0)
    a, b, c = SPACE.smallest(64), SPACE.largest(96), SPACE.sample(rng)
    pts = [ParetoPoint(a, 1.0, 0.5), ParetoPoint(b, 2.0, 0.4), ParetoPoint(c, 3.0, 0.9)]
    assert [p.latency_ms for p in non_dominated(pts)] == [1.0, 3.0]
    assert hypervolume([ParetoPoint(a, 0.0, 1.0)], 1.0) == pytest.approx(1.0)
    assert hypervolume([ParetoPoint(a, 0.5, 0.5)], 1.0) == pytest.approx(0.25)
    assert hypervolume([ParetoPoint(a, 2.0, 0.9)], 1.0) == 0.0  # beyond the reference


def test_infeasible_cap_and_bad_config():
    with pytest.raises(HwnasError, match="no architecture under"):
        nsga2(SPACE, LAT, accuracy, NSGAConfig(budget=4, population=4, offspring=2,
                                               max_tries_factor=2), max_latency_ms=1e-6)
    with pytest.raises(HwnasError, match="budget"):
        NSGAConfig(budget=1)


def test_missing_pymoo_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymoo", None)
    with pytest.raises(HwnasError, match=r"pip install 'hwnas\[pareto\]'"):
        require_pymoo()
