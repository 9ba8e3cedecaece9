"""Offline pools and the conflict-aware samplers.

Latency here is a FLOPs-proportional STAND-IN (flops_standin_latency_fn); it exercises the
latency code paths without a device table.
"""

import numpy as np
import pytest

from hwnas.errors import InfeasibleTargetError
from hwnas.supernet.latency import flops_standin_latency_fn, table_latency_fn
from hwnas.supernet.pools import Pools, build_pools, sample_sized
from hwnas.supernet.sampling import (PoolSampler, SamplerConfig, SandwichSampler,
                                     depth_over_width)
from hwnas.supernet.spec import SpaceSpec

SPEC = SpaceSpec("tiny", (64,), classes=10)


@pytest.fixture(scope="module")
def space():
    return SPEC.build()


@pytest.fixture(scope="module")
def pools(space):
    return build_pools(SPEC, flops_standin_latency_fn(space), [0.3, 0.5, 0.7], metric="latency",
                       per_level=12, seed=0, device="stand-in")


def test_pool_members_lie_within_the_bound(pools, space):
    fn = flops_standin_latency_fn(space)
    assert pools.bound == pytest.approx(0.05)
    for level, members in zip(pools.levels, pools.members):
        assert len(members) == 12
        archs = [a for a, _ in members]
        assert len(set(archs)) == 12
        costs = fn(archs)
        assert np.allclose(costs, [c for _, c in members])
        assert np.all(np.abs(costs - level) <= pools.bound + 1e-12)


def test_pools_are_seeded_and_round_trip(pools, space, tmp_path):
    again = build_pools(SPEC, flops_standin_latency_fn(space), [0.3, 0.5, 0.7],
                        metric="latency", per_level=12, seed=0, device="stand-in")
    assert again.members == pools.members
    pools.save(tmp_path / "p.json")
    loaded = Pools.load(tmp_path / "p.json")
    assert loaded.members == pools.members and loaded.space == SPEC
    assert loaded.min_arch(1) == min(pools.members[1], key=lambda m: m[1])[0]


def test_infeasible_level_names_the_range(space):
    with pytest.raises(InfeasibleTargetError, match="outside what this space can reach"):
        build_pools(SPEC, flops_standin_latency_fn(space), [0.01], metric="latency", bound=0.001)


def test_sized_sampling_spans_the_range(space):
    rng = np.random.default_rng(0)
    small = [space.macs(sample_sized(space, rng, 0.0)) for _ in range(20)]
    large = [space.macs(sample_sized(space, rng, 1.0)) for _ in range(20)]
    assert np.mean(small) < 0.6 * np.mean(large)


def test_table_latency_fn_sums_ops(space):
    from hwnas.latency.stats import Stats
    from hwnas.latency.table import LatencyTable

    arch = space.smallest(64)
    keys = space.op_keys(arch)
    table = LatencyTable({"device": "x", "call_overhead_ms": 0.5},
                         {k: Stats.from_samples(np.array([1.0])) for k in keys})
    assert table_latency_fn(table, space)([arch])[0] == pytest.approx(len(keys) + 0.5)


def test_level_walk_and_step_structure(pools, space):
    s = PoolSampler(pools, space, SamplerConfig.recipe("elasticvit", bank_size=4), seed=0)
    prev = s.level
    for step in range(40):
        plan = s.next_step(step / 40)
        assert abs(plan.level - prev) <= 1
        prev = plan.level
        pool = set(pools.archs(plan.level))
        assert len(plan.archs) == 4 and set(plan.archs) <= pool
        assert plan.archs[-1] == pools.min_arch(plan.level)
        costs = [pools.cost(plan.level, a) for a in plan.archs[:-1]]
        assert costs == sorted(costs, reverse=True)  # the teacher comes first
        s.observe(plan, [1.0 + 0.01 * step] * 4)
    assert all(len(b) <= 4 for b in s.banks) and any(s.banks)


def test_bank_keeps_the_best_and_exploits_them(pools, space):
    cfg = SamplerConfig.recipe("elasticvit", bank_size=4, exploit_start=1.0, exploit_end=1.0,
                               temperature=0.1)
    s = PoolSampler(pools, space, cfg, seed=0)
    s.level = 0
    archs = pools.archs(0)
    plan = type("P", (), {"level": 0, "archs": archs[:8], "bankable": [True] * 8})
    s.observe(plan, [5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 6.0, 0.1])
    assert sorted(loss for _, loss in s.banks[0]) == [0.1, 0.5, 1.0, 2.0]
    s.rng = np.random.default_rng(1)
    drawn = [s._draw(progress=1.0) for _ in range(50)]
    assert all(from_bank for _, from_bank in drawn)
    counts = {a: sum(d == a for d, _ in drawn) for a, _ in s.banks[0]}
    assert counts[archs[7]] > counts[archs[3]]  # softmax over -loss favours the best


def test_exploit_rate_rises():
    s = SamplerConfig(exploit_start=0.2, exploit_end=0.8)
    sampler = PoolSampler.__new__(PoolSampler)
    sampler.cfg = s
    assert sampler.exploit_rate(0) == pytest.approx(0.2)
    assert sampler.exploit_rate(0.5) == pytest.approx(0.5)
    assert sampler.exploit_rate(1) == pytest.approx(0.8)


def test_sampler_state_round_trip(pools, space):
    a = PoolSampler(pools, space, SamplerConfig.recipe("elasticvit", bank_size=2), seed=3)
    for step in range(10):
        a.observe(a.next_step(0.5), [1.0, 2.0, 3.0, 4.0])
    b = PoolSampler(pools, space, SamplerConfig.recipe("elasticvit", bank_size=2), seed=99)
    b.load_state_dict(a.state_dict())
    assert [a.next_step(0.6).archs for _ in range(5)] == [b.next_step(0.6).archs for _ in range(5)]


def test_sandwich_has_largest_first_smallest_last(space):
    s = SandwichSampler(space, SamplerConfig(method="sandwich", subnets_per_step=2), seed=0)
    plan = s.next_step(0.0)
    assert plan.archs[0] == space.largest(64) and plan.archs[-1] == space.smallest(64)
    assert len(plan.archs) == 4


def test_comparison_prefers_wide_over_deep(space):
    st = space.stages
    anchor = space.smallest(64)

    def arch(width_pick, depth_pick):
        from hwnas.supernet.pools import assemble

        stages = []
        for s in st:
            w = width_pick(s.widths) if s.kind == "trans" else min(s.widths)
            d = depth_pick(s.depths) if s.kind == "trans" else min(s.depths)
            stages.append((w, [(min(s.choice_a), min(s.choice_b))] * d))
        return assemble(64, [s.kind for s in st], stages)

    wide, deep = arch(max, min), arch(min, max)
    assert depth_over_width(space, wide, anchor) < depth_over_width(space, deep, anchor)


# --- the recipe's switches: every variant trains subnets_per_step + 1 subnets per step -------
def _plans(pools, space, n=30, recipe="elasticvit", **kw):
    s = PoolSampler(pools, space, SamplerConfig.recipe(recipe, bank_size=4, **kw), seed=0)
    plans = []
    for step in range(n):
        plan = s.next_step(step / n)
        s.observe(plan, [1.0 + 0.01 * step] * len(plan.archs))
        plans.append(plan)
    return s, plans


def test_labels_teacher_every_level_subnet_sees_the_labels(pools, space):
    _, plans = _plans(pools, space)  # the default teacher: ElasticViT's rule
    for p in plans:
        assert p.roles == ("label", "label", "label", "distill")
        assert p.archs[-1] == pools.min_arch(p.level)


def test_level_teacher_is_the_first_version(pools, space):
    _, plans = _plans(pools, space, teacher="level")
    for p in plans:
        assert p.roles == ("label", "distill", "distill", "distill")
        costs = [pools.cost(p.level, a) for a in p.archs[:-1]]
        assert costs[0] == max(costs)


def test_supernet_teacher_is_the_largest_and_keeps_the_pass_count(pools, space):
    _, plans = _plans(pools, space, teacher="supernet")
    for p in plans:
        assert len(p.archs) == 4 and p.archs[0] == space.largest(64)
        assert p.roles == ("label", "distill", "distill", "distill")
        assert not p.bankable[0] and set(p.archs[1:]) <= set(pools.archs(p.level))
    with pytest.raises(Exception, match="subnets_per_step >= 2"):
        SamplerConfig(teacher="supernet", subnets_per_step=1)


def test_largest_trains_from_the_labels_beside_the_level(pools, space):
    _, plans = _plans(pools, space, largest=True)
    for p in plans:
        assert len(p.archs) == 4 and p.archs[0] == space.largest(64)
        assert p.roles == ("label", "label", "label", "distill")  # the level keeps its labels
        assert p.archs[-1] == pools.min_arch(p.level) and not p.bankable[0]
        assert set(p.archs[1:]) <= set(pools.archs(p.level))
    with pytest.raises(Exception, match="subnets_per_step >= 2"):
        SamplerConfig(largest=True, subnets_per_step=1)


def test_default_recipe_is_the_walk_without_min_subnet_or_banks(pools, space):
    assert SamplerConfig() == SamplerConfig.recipe("walk")
    assert SamplerConfig.recipe("elasticvit") == SamplerConfig(min_subnet=True, banks=True)
    s, plans = _plans(pools, space, recipe="walk")
    for p in plans:
        assert len(p.archs) == 4 and set(p.archs) <= set(pools.archs(p.level))
        assert p.roles == ("label",) * 4 and not any(p.from_bank)
    assert not any(s.banks) and not s.due_rescore(50)


def test_uniform_level_walk_jumps(pools, space):
    _, plans = _plans(pools, space, n=60, walk="uniform")
    jumps = [abs(b.level - a.level) for a, b in zip(plans, plans[1:])]
    assert max(jumps) == 2
    _, plans = _plans(pools, space, n=60)
    assert max(abs(b.level - a.level) for a, b in zip(plans, plans[1:])) == 1


def test_bad_switches():
    from hwnas.errors import HwnasError

    with pytest.raises(HwnasError, match="teacher"):
        SamplerConfig(teacher="oracle")
    with pytest.raises(HwnasError, match="walk"):
        SamplerConfig(walk="random")
    with pytest.raises(HwnasError, match="recipe"):
        SamplerConfig.recipe("bignas")


def test_sandwich_roles_and_plan_validation(space):
    from hwnas.supernet.sampling import StepPlan

    plan = SandwichSampler(space, SamplerConfig(method="sandwich"), seed=0).next_step(0.0)
    assert plan.roles == ("label",) + ("distill",) * (len(plan.archs) - 1)
    with pytest.raises(ValueError, match="one role per subnet"):
        StepPlan(None, plan.archs[:2], (False, False), (False, False), ("distill", "label"))
