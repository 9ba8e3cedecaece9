"""Which subnets each training step trains.

``PoolSampler`` is ElasticViT's conflict-aware sampling, driven by any cost (latency or FLOPs):

* complexity-aware: the step's level takes a random walk between adjacent levels, and the step
  trains ``subnets_per_step`` archs from that level's pool (plus, with ``min_subnet``, the
  level's minimum subnet), so consecutive steps train subnets of similar cost;
* performance-aware (``banks``): each level keeps a bank of its best subnets by loss. With a
  probability that rises over training a subnet is drawn from the bank (softmax over -loss);
  otherwise a few pool candidates are compared and the one that spends its cost on width rather
  than depth is kept (ElasticViT's comparison against an anchor subnet). The bank is re-scored
  periodically.

hwnas's default is the level walk alone (``RECIPES["walk"]``); ``SamplerConfig.recipe(
"elasticvit")`` (``--min-subnet --banks`` on the command line) is ElasticViT's full recipe.
Why the default differs from ElasticViT: see RECIPES below.

Who teaches whom (``teacher``), as each subnet's *role* in the step plan:

* ``"labels"`` (the default; ElasticViT's rule): every subnet drawn from the level learns from
  the labels, and the level's min subnet distils from the mean of their predictions. ElasticViT
  itself trains the level's subnets against an external ImageNet teacher (two ResNeXt-101s);
  hwnas has no such teacher for an arbitrary dataset, so the labels take its place.
* ``"level"``: the most expensive subnet drawn from the level learns from the labels and
  teaches the others (hwnas's first version). A weak teacher in the low levels, and 3 of the 4
  subnets of a step never see a label: the benchmark's ablation shows what this costs.
* ``"supernet"``: the sandwich rule's teacher: the supernet's largest subnet learns from the
  labels every step and teaches the level's subnets (one fewer drawn from the level, so the
  number of subnet passes per step stays the same).

``largest`` (with the default teacher) trains the supernet's largest subnet at every step too,
from the labels, in place of one drawn subnet, while the level's subnets keep learning from the
labels: the sandwich rule's anchor without its teacher. Not part of ElasticViT's recipe;
``benchmarks/supernet.py`` measures what it adds.

``SandwichSampler`` is the uniform baseline: the largest and smallest subnets plus uniform ones;
the largest learns from the labels and teaches the rest (BigNAS/AlphaNet).

Samplers draw only from their own seeded Generator and from losses that are averaged over
ranks, so every rank of a distributed run picks the same subnets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from hwnas.arch import arch_from_obj
from hwnas.spaces.elasticvit.arch import ElasticViTArch
from hwnas.errors import HwnasError
from hwnas.spaces.vit.space import ViTSpace
from hwnas.supernet.pools import Pools, assemble
from hwnas.spaces.vit.pools import depth_over_width_vit

ScoreFn = Callable[[Sequence[ElasticViTArch]], Sequence[float]]  # archs -> mean loss each


TEACHERS = ("labels", "level", "supernet")
WALKS = ("adjacent", "uniform")
LABEL, DISTILL = "label", "distill"  # a subnet's role in a step


@dataclass(frozen=True)
class SamplerConfig:
    """``subnets_per_step + 1`` subnets train at every step, whatever the other switches say,
    so that variants compare at the same number of subnet passes."""

    method: str = "pools"  # "pools" (complexity + performance aware) or "sandwich" (uniform)
    subnets_per_step: int = 3  # besides the level's min subnet (sandwich: besides max and min)
    bank_size: int = 16
    exploit_start: float = 0.2  # chance of drawing from a (half-full) bank at the start ...
    exploit_end: float = 0.8  # ... rising linearly to this at the end of training
    compare: int = 3  # pool candidates compared when exploring
    rescore_every: int = 50  # steps between re-scoring the current level's bank
    temperature: float = 1.0  # of the softmax over -loss
    teacher: str = "labels"  # pools only: see the module docstring
    # pools only: train the level's min subnet at every step (ElasticViT; off by default, see
    # RECIPES)
    min_subnet: bool = False
    # pools only: performance-aware (banks + comparison), else uniform in the level's pool
    # (ElasticViT; off by default, see RECIPES)
    banks: bool = False
    walk: str = "adjacent"  # pools only: "adjacent" levels, or a "uniform" level at each step
    # pools only: the supernet's largest subnet also trains at every step, from the labels, in
    # place of one drawn subnet (the sandwich rule's anchor); implied by teacher "supernet"
    largest: bool = False
    # sandwich only: the uniform subnets learn from the labels too (ElasticViT's rule) instead of
    # distilling from the largest; separates "which subnets" from "who teaches" in the ablation
    sandwich_labels: bool = False

    def __post_init__(self):
        if self.method not in ("pools", "sandwich"):
            raise HwnasError("sampling method must be 'pools' or 'sandwich'")
        if self.subnets_per_step < 1 or self.bank_size < 2 or self.compare < 1:
            raise HwnasError("subnets_per_step, compare must be >= 1 and bank_size >= 2")
        if self.teacher not in TEACHERS:
            raise HwnasError(f"teacher must be one of {', '.join(TEACHERS)}")
        if self.walk not in WALKS:
            raise HwnasError(f"walk must be one of {', '.join(WALKS)}")
        if self.method == "pools" and self.with_largest and self.subnets_per_step < 2:
            raise HwnasError("training the supernet's largest (teacher 'supernet' or largest) "
                             "needs subnets_per_step >= 2 (one pass is the supernet's largest)")

    @property
    def with_largest(self) -> bool:
        return self.teacher == "supernet" or self.largest

    @classmethod
    def recipe(cls, name: str, **overrides) -> "SamplerConfig":
        """A named recipe (RECIPES) with ``overrides`` on top."""
        if name not in RECIPES:
            raise HwnasError(f"unknown sampling recipe {name!r}; one of {', '.join(RECIPES)}")
        return cls(**{**RECIPES[name], **overrides})


# Named pools recipes. "elasticvit" is ElasticViT's full conflict-aware sampling (the level walk,
# the level's min subnet every step, the performance-aware banks). "walk" (hwnas's default) keeps
# only the level walk: in benchmarks/supernet.py (shapes:classes=8, 600 steps, 3 seeds each) the
# walk alone trained the 9 reference subnets 4-15 points better than the full recipe (the lowest
# level's 79-86% against 67-76%), because the min subnet and the banks spend a step's passes on
# a few subnets that the walk spreads over the level; ElasticViT's gains from them were shown
# on ImageNet at far longer schedules, so they stay one switch away.
RECIPES = {
    "walk": {"method": "pools", "walk": "adjacent", "min_subnet": False, "banks": False},
    "elasticvit": {"method": "pools", "walk": "adjacent", "min_subnet": True, "banks": True},
}


@dataclass(frozen=True)
class StepPlan:
    """The subnets of one step, in training order. ``roles``: "label" (cross-entropy with the
    labels; its prediction joins the step's teacher) or "distill" (learns from the mean
    prediction of the step's "label" subnets so far). Without roles, the first subnet learns
    from the labels and teaches the rest."""

    level: int | None
    archs: tuple[ElasticViTArch, ...]
    from_bank: tuple[bool, ...]
    bankable: tuple[bool, ...]  # whether the arch's loss may enter the level's bank
    roles: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.roles:
            object.__setattr__(self, "roles",
                               (LABEL,) + (DISTILL,) * (len(self.archs) - 1))
        if len(self.roles) != len(self.archs) or self.roles[0] != LABEL:
            raise ValueError("a step plan needs one role per subnet, the first 'label'")


def _rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


class PoolSampler:
    def __init__(self, pools: Pools, space, cfg: SamplerConfig, seed: int):
        self.pools, self.space, self.cfg = pools, space, cfg
        self.rng = np.random.default_rng([seed, 1])
        self.level = 0
        self.banks: list[list[list]] = [[] for _ in pools.levels]  # [arch, loss] per entry
        self._costs = [dict(m) for m in pools.members]

    # --- the step ------------------------------------------------------------------------
    def next_step(self, progress: float) -> StepPlan:
        """``progress`` in [0, 1]: the fraction of training done (drives the exploit rate)."""
        cfg, n = self.cfg, len(self.pools.levels)
        if cfg.walk == "adjacent":
            self.level = int(np.clip(self.level + self.rng.choice([-1, 0, 1]), 0, n - 1))
        else:
            self.level = int(self.rng.integers(n))
        k = cfg.subnets_per_step + (0 if cfg.min_subnet else 1) - cfg.with_largest
        drawn = [self._draw(progress) for _ in range(k)]
        drawn.sort(key=lambda d: -self._costs[self.level][d[0]])
        archs, banked = [a for a, _ in drawn], [b for _, b in drawn]
        bankable = [True] * len(drawn)
        if cfg.teacher == "labels":
            roles = [LABEL] * len(drawn)
        else:  # "level": the dearest drawn subnet teaches; "supernet": the largest, prepended
            roles = [LABEL] + [DISTILL] * (len(drawn) - 1)
        if cfg.with_largest:  # "supernet": it teaches the drawn; else they learn from labels
            top = max(self.space.resolutions)
            archs, banked = [self.space.largest(top)] + archs, [False] + banked
            drawn_roles = [DISTILL] * len(drawn) if cfg.teacher == "supernet" else roles
            bankable, roles = [False] + bankable, [LABEL] + drawn_roles
        if cfg.min_subnet:
            archs, banked = archs + [self.pools.min_arch(self.level)], banked + [False]
            bankable, roles = bankable + [False], roles + [DISTILL]
        return StepPlan(self.level, tuple(archs), tuple(banked), tuple(bankable), tuple(roles))

    def exploit_rate(self, progress: float) -> float:
        c = self.cfg
        return c.exploit_start + (c.exploit_end - c.exploit_start) * min(max(progress, 0.0), 1.0)

    def _draw(self, progress: float) -> tuple[ElasticViTArch, bool]:
        if not self.cfg.banks:  # complexity-aware only: uniform within the level's pool
            pool = self.pools.archs(self.level)
            return pool[int(self.rng.integers(len(pool)))], False
        bank = self.banks[self.level]
        half_full = len(bank) >= self.cfg.bank_size // 2
        if half_full and self.rng.random() < self.exploit_rate(progress):
            losses = np.array([loss for _, loss in bank])
            logits = -losses / self.cfg.temperature
            p = np.exp(logits - logits.max())
            return bank[int(self.rng.choice(len(bank), p=p / p.sum()))][0], True
        pool = self.pools.archs(self.level)
        k = self.cfg.compare if half_full else 1  # ElasticViT compares only once a bank fills
        cands = [pool[int(i)] for i in self.rng.choice(len(pool), size=min(k, len(pool)),
                                                       replace=False)]
        if len(cands) == 1:
            return cands[0], False
        anchor = self._anchor()
        return min(cands, key=lambda a: depth_over_width(self.space, a, anchor)), False

    def _anchor(self) -> ElasticViTArch:
        """The best subnet of the lowest level's bank, else the lowest level's min subnet."""
        if self.banks[0]:
            return min(self.banks[0], key=lambda e: e[1])[0]
        return self.pools.min_arch(0)

    # --- feedback ----------------------------------------------------------------------------
    def observe(self, plan: StepPlan, losses: Sequence[float]) -> None:
        """Record each bankable subnet's loss (rank-averaged) in the level's bank."""
        if not self.cfg.banks:
            return
        bank = self.banks[plan.level]
        for arch, loss, ok in zip(plan.archs, losses, plan.bankable):
            if not ok:
                continue
            entry = next((e for e in bank if e[0] == arch), None)
            if entry is not None:
                entry[1] = float(loss)  # a fresher loss for a subnet already in the bank
            elif len(bank) < self.cfg.bank_size:
                bank.append([arch, float(loss)])
            else:
                worst = max(range(len(bank)), key=lambda i: bank[i][1])
                if loss < bank[worst][1]:
                    bank[worst] = [arch, float(loss)]

    def due_rescore(self, step: int) -> bool:
        return self.cfg.banks and self.cfg.rescore_every > 0 and step > 0 and \
            step % self.cfg.rescore_every == 0

    def rescore(self, score_fn: ScoreFn) -> None:
        """Re-score the current level's bank: stored losses go stale as the weights move."""
        bank = self.banks[self.level]
        if bank:
            for entry, loss in zip(bank, score_fn([a for a, _ in bank])):
                entry[1] = float(loss)

    # --- checkpointing -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"level": self.level, "rng": _rng_state(self.rng),
                "banks": [[[a.to_dict(), loss] for a, loss in bank] for bank in self.banks]}

    def load_state_dict(self, state: dict) -> None:
        self.level = int(state["level"])
        self.rng.bit_generator.state = state["rng"]
        self.banks = [[[arch_from_obj(a), float(loss)] for a, loss in bank]
                      for bank in state["banks"]]


class SandwichSampler:
    """Uniform sampling with the sandwich rule: largest, ``subnets_per_step`` uniform, smallest."""

    def __init__(self, space, cfg: SamplerConfig, seed: int):
        self.space, self.cfg = space, cfg
        self.rng = np.random.default_rng([seed, 1])

    def next_step(self, progress: float) -> StepPlan:
        rand = sorted((self.space.sample(self.rng) for _ in range(self.cfg.subnets_per_step)),
                      key=lambda a: -self.space.macs(a))
        archs = (self.space.largest(max(self.space.resolutions)), *rand,
                 self.space.smallest(min(self.space.resolutions)))
        roles = ((LABEL,) * (len(archs) - 1) + (DISTILL,)) if self.cfg.sandwich_labels else ()
        return StepPlan(None, archs, (False,) * len(archs), (False,) * len(archs), roles)

    def observe(self, plan: StepPlan, losses) -> None:
        pass

    def due_rescore(self, step: int) -> bool:
        return False

    def rescore(self, score_fn) -> None:
        pass

    def state_dict(self) -> dict:
        return {"rng": _rng_state(self.rng)}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]


def _with_stages(space, arch: ElasticViTArch, stages: dict[int, tuple]) -> ElasticViTArch:
    split = [(arch.channels[i], arch.stage_layers(i)) for i in range(len(space.stages))]
    for i, stage in stages.items():
        split[i] = stage
    return assemble(arch.resolution, [st.kind for st in space.stages], split)


def depth_over_width(space, arch: ElasticViTArch, anchor: ElasticViTArch) -> float:
    """ElasticViT's candidate comparison, lower is preferred.

    MACs left when the transformer stages shrink to the anchor's widths (the cost the candidate
    puts into depth) minus MACs left when they shrink to the anchor's depths (the cost it puts
    into width): ElasticViT prefers subnets that are wide rather than deep.
    """
    if isinstance(space, ViTSpace):
        return depth_over_width_vit(space, arch, anchor)
    trans = [i for i, st in enumerate(space.stages) if st.kind == "trans"]
    narrow = _with_stages(space, arch, {i: (anchor.channels[i], arch.stage_layers(i))
                                        for i in trans})
    shallow = {}
    for i in trans:
        layers, d = arch.stage_layers(i), anchor.depths[i]
        shallow[i] = (arch.channels[i], (layers + [layers[-1]] * d)[:d])
    return float(space.macs(narrow) - space.macs(_with_stages(space, arch, shallow)))


def make_sampler(cfg: SamplerConfig, space, seed: int, pools: Pools | None):
    if cfg.method == "sandwich":
        return SandwichSampler(space, cfg, seed)
    if pools is None:
        raise HwnasError("pool sampling needs a pools file (build one with 'hwnas build-pools')")
    return PoolSampler(pools, space, cfg, seed)


__all__ = ["DISTILL", "LABEL", "PoolSampler", "SamplerConfig", "SandwichSampler", "StepPlan",
           "TEACHERS", "WALKS", "depth_over_width", "make_sampler"]
