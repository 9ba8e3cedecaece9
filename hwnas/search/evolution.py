"""Latency-constrained evolutionary search over any SearchSpace.

Aging-free (mu + lambda) evolution: each generation keeps the best feasible parents and breeds
children by mutation and crossover; children over the latency budget are discarded. Every loop
is bounded, and a target below the fastest architecture raises an error that gives the range.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from hwnas.arch_key import arch_key
from hwnas.errors import InfeasibleTargetError
from hwnas.spaces.base import SearchSpace

log = logging.getLogger(__name__)

LatencyFn = Callable[[Sequence], np.ndarray]  # archs -> predicted ms
ObjectiveFn = Callable[[Sequence], np.ndarray]  # archs -> score (higher is better)


@dataclass(frozen=True)
class EvolutionConfig:
    population: int = 64
    generations: int = 30
    parents: int = 16
    mutate_prob: float = 0.2
    crossover_share: float = 0.5  # fraction of children made by crossover (then mutated lightly)
    max_tries_factor: int = 50  # sampling attempts per wanted individual, then give up


@dataclass(frozen=True)
class Candidate:
    arch: object
    latency_ms: float
    score: float

    def to_dict(self) -> dict:
        return {"arch": self.arch.to_dict(), "latency_ms": self.latency_ms, "score": self.score}


@dataclass
class SearchResult:
    best: Candidate
    pareto: list[Candidate]
    target_ms: float
    objective: str
    evaluated: int
    history: list[float] = field(default_factory=list)  # best score per generation
    feasible: list[Candidate] = field(default_factory=list, repr=False)  # for plots, not saved

    def to_dict(self) -> dict:
        return {"target_ms": self.target_ms, "objective": self.objective,
                "evaluated": self.evaluated, "best": self.best.to_dict(),
                "pareto": [c.to_dict() for c in self.pareto], "history": self.history}


class MacsObjective:
    """Capacity proxy used until a supernet gives real accuracy: MACs (more is better).

    Under a latency cap, the architecture with the most multiply-accumulates is the one that
    spends the budget on computation rather than on overheads; ElasticViT's accuracy grows
    monotonically with MACs across its published models (60M -> 67.2%, 800M -> 80.0%).
    """

    name = "capacity proxy: MACs (higher is better)"

    def __init__(self, space: SearchSpace):
        self.space = space

    def __call__(self, archs) -> np.ndarray:
        return np.array([float(self.space.macs(a)) for a in archs])


def feasible_range(space: SearchSpace, latency_fn: LatencyFn) -> tuple[float, float]:
    """Predicted latency of the smallest and largest subnet over the space's resolutions."""
    small = latency_fn([space.smallest(r) for r in space.resolutions])
    large = latency_fn([space.largest(r) for r in space.resolutions])
    return float(np.min(small)), float(np.max(large))


def pareto_front(cands: Sequence[Candidate]) -> list[Candidate]:
    """Non-dominated candidates: nothing else is both faster-or-equal and better-or-equal."""
    front: list[Candidate] = []
    best_score = -np.inf
    for c in sorted(cands, key=lambda c: (c.latency_ms, -c.score)):
        if c.score > best_score:
            front.append(c)
            best_score = c.score
    return front


class _Evaluator:
    """Scores archs once each and remembers every feasible one (for the Pareto set)."""

    def __init__(self, latency_fn, objective, target_ms):
        self.latency_fn, self.objective, self.target = latency_fn, objective, target_ms
        self.seen: dict[str, Candidate | None] = {}

    def __call__(self, archs) -> list[Candidate]:
        keys = [arch_key(a) for a in archs]  # once per arch: a JSON dump, on the hot path
        todo = {k: a for k, a in zip(keys, archs) if k not in self.seen}
        if todo:
            new_keys, new = list(todo), list(todo.values())
            lat = self.latency_fn(new)
            ok = [i for i, l in enumerate(lat) if l <= self.target]
            scores = self.objective([new[i] for i in ok]) if ok else []
            for k in new_keys:
                self.seen[k] = None
            for i, s in zip(ok, scores):
                self.seen[new_keys[i]] = Candidate(new[i], float(lat[i]), float(s))
        return [c for k in keys if (c := self.seen[k]) is not None]

    def feasible(self) -> list[Candidate]:
        return [c for c in self.seen.values() if c is not None]


def evolve(space: SearchSpace, latency_fn: LatencyFn, target_ms: float,
           rng: np.random.Generator, objective: ObjectiveFn | None = None,
           cfg: EvolutionConfig = EvolutionConfig()) -> SearchResult:
    """Best architecture by ``objective`` whose predicted latency is at or under ``target_ms``."""
    if not target_ms > 0:
        raise InfeasibleTargetError(f"target latency must be positive, got {target_ms} ms")
    objective = objective or MacsObjective(space)
    lo, hi = feasible_range(space, latency_fn)
    if target_ms < lo:
        raise InfeasibleTargetError(
            f"target {target_ms:g} ms is below the fastest {space.name} subnet "
            f"(feasible range {lo:.3g}-{hi:.3g} ms predicted at resolutions "
            f"{list(space.resolutions)})")
    ev = _Evaluator(latency_fn, objective, target_ms)
    pop = _initial_population(space, ev, rng, cfg)
    history = []
    for _ in range(cfg.generations):
        parents = sorted(pop, key=lambda c: -c.score)[:cfg.parents]
        history.append(parents[0].score)
        children = ev(_breed(space, parents, rng, cfg))
        pop = sorted({arch_key(c.arch): c for c in parents + children}.values(),
                     key=lambda c: -c.score)[:cfg.population]
    feasible = ev.feasible()
    best = max(feasible, key=lambda c: (c.score, -c.latency_ms))
    return SearchResult(best, pareto_front(feasible), target_ms, getattr(
        objective, "name", "objective"), len(ev.seen), history, feasible)


def plot_pareto(result: SearchResult, path, title: str = "", measured_ms: float | None = None):
    """Every feasible subnet the search scored, its Pareto front, the target and the pick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    pts = np.array([(c.latency_ms, c.score) for c in result.feasible])
    front = np.array([(c.latency_ms, c.score) for c in result.pareto])
    ax.scatter(pts[:, 0], pts[:, 1], s=4, alpha=0.3, label="feasible subnets scored")
    ax.step(front[:, 0], front[:, 1], where="post", color="tab:red", label="Pareto front")
    ax.axvline(result.target_ms, color="k", ls="--", lw=1, label="target")
    ax.scatter([result.best.latency_ms], [result.best.score], marker="*", s=150,
               color="tab:orange", zorder=3, label="chosen (predicted)")
    if measured_ms is not None:
        ax.scatter([measured_ms], [result.best.score], marker="x", s=80, color="k", zorder=3,
                   label="chosen (re-measured)")
    ax.set(xlabel="predicted latency (ms)", ylabel=result.objective.split(":")[-1].strip(),
           title=title)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _initial_population(space, ev, rng, cfg) -> list[Candidate]:
    """Random feasible subnets; near the lower end of the range, mutants of the smallest."""
    pop = ev([space.smallest(r) for r in space.resolutions])
    tries = 0
    while len(pop) < cfg.population and tries < cfg.max_tries_factor * cfg.population:
        batch = [space.sample(rng) for _ in range(cfg.population)]
        if tries and len(pop) < cfg.population // 4:  # random samples rarely fit: grow from below
            batch += [space.mutate(c.arch, rng, cfg.mutate_prob) for c in pop]
        pop = list({arch_key(c.arch): c for c in pop + ev(batch)}.values())
        tries += len(batch)
    return pop


def _breed(space, parents, rng, cfg) -> list:
    children = []
    for _ in range(cfg.population):
        a = parents[rng.integers(len(parents))].arch
        if rng.random() < cfg.crossover_share and len(parents) > 1:
            b = parents[rng.integers(len(parents))].arch
            child = space.mutate(space.crossover(a, b, rng), rng, cfg.mutate_prob / 2)
        else:
            child = space.mutate(a, rng, cfg.mutate_prob)
        children.append(child)
    return children
