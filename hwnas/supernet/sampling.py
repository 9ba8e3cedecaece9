"""Which subnets each training step trains.

``PoolSampler`` is ElasticViT's conflict-aware sampling, driven by any cost (latency or FLOPs):

* complexity-aware: the step's level takes a random walk between adjacent levels, and the step
  trains ``subnets_per_step`` archs from that level's pool plus the level's minimum subnet, so
  consecutive steps train subnets of similar cost;
* performance-aware: each level keeps a bank of its best subnets by loss. With a probability
  that rises over training a subnet is drawn from the bank (softmax over -loss); otherwise a few
  pool candidates are compared and the one that spends its cost on width rather than depth is
  kept (ElasticViT's comparison against an anchor subnet). The bank is re-scored periodically.

``SandwichSampler`` is the uniform baseline: the largest and smallest subnets plus uniform ones.

Samplers draw only from their own seeded Generator and from losses that are averaged over
ranks, so every rank of a distributed run picks the same subnets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from hwnas.arch import ElasticViTArch, arch_from_obj
from hwnas.errors import HwnasError
from hwnas.spaces.vit import ViTSpace
from hwnas.supernet.pools import Pools, assemble
from hwnas.supernet.pools_vit import depth_over_width_vit

ScoreFn = Callable[[Sequence[ElasticViTArch]], Sequence[float]]  # archs -> mean loss each


@dataclass(frozen=True)
class SamplerConfig:
    method: str = "pools"  # "pools" (complexity + performance aware) or "sandwich" (uniform)
    subnets_per_step: int = 3  # besides the level's min subnet (sandwich: besides max and min)
    bank_size: int = 16
    exploit_start: float = 0.2  # chance of drawing from a (half-full) bank at the start ...
    exploit_end: float = 0.8  # ... rising linearly to this at the end of training
    compare: int = 3  # pool candidates compared when exploring
    rescore_every: int = 50  # steps between re-scoring the current level's bank
    temperature: float = 1.0  # of the softmax over -loss

    def __post_init__(self):
        if self.method not in ("pools", "sandwich"):
            raise HwnasError("sampling method must be 'pools' or 'sandwich'")
        if self.subnets_per_step < 1 or self.bank_size < 2 or self.compare < 1:
            raise HwnasError("subnets_per_step, compare must be >= 1 and bank_size >= 2")


@dataclass(frozen=True)
class StepPlan:
    """The subnets of one step, largest first (it is the distillation teacher)."""

    level: int | None
    archs: tuple[ElasticViTArch, ...]
    from_bank: tuple[bool, ...]
    bankable: tuple[bool, ...]  # whether the arch's loss may enter the level's bank


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
        n = len(self.pools.levels)
        self.level = int(np.clip(self.level + self.rng.choice([-1, 0, 1]), 0, n - 1))
        drawn = [self._draw(progress) for _ in range(self.cfg.subnets_per_step)]
        drawn.sort(key=lambda d: -self._costs[self.level][d[0]])
        minimum = self.pools.min_arch(self.level)
        return StepPlan(self.level, tuple(a for a, _ in drawn) + (minimum,),
                        tuple(b for _, b in drawn) + (False,),
                        (True,) * len(drawn) + (False,))

    def exploit_rate(self, progress: float) -> float:
        c = self.cfg
        return c.exploit_start + (c.exploit_end - c.exploit_start) * min(max(progress, 0.0), 1.0)

    def _draw(self, progress: float) -> tuple[ElasticViTArch, bool]:
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
        return self.cfg.rescore_every > 0 and step > 0 and step % self.cfg.rescore_every == 0

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
        return StepPlan(None, archs, (False,) * len(archs), (False,) * len(archs))

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


__all__ = ["PoolSampler", "SamplerConfig", "SandwichSampler", "StepPlan", "depth_over_width",
           "make_sampler"]
