"""Pareto search with NSGA-II from pymoo (the library ViTAS's search uses).

Objectives: maximise a score (a supernet's held-out top-1) and minimise predicted latency, and
minimise energy as a third objective when the caller has it (tables measured on a GPU with
NVML). An optional latency cap is a pymoo inequality constraint; a candidate over it is never
scored, so the cap saves evaluations exactly as the single-target evolution's budget does.

The individuals are architectures themselves (one object-valued variable), bred by the space's
own seeded ``sample`` / ``crossover`` / ``mutate``, so NSGA-II searches exactly the space the
evolution searches. pymoo's ``random_state`` (seeded by ``seed``) drives both pymoo and those
operators: one seed, one result. The budget counts *distinct architectures scored*, the cost
that matters when every score is a supernet evaluation, and the same count the evolution
reports (``ScoreCache.scored``).

pymoo is an optional dependency (``pip install 'hwnas[pareto]'``); without it,
``require_pymoo`` raises one clear error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from hwnas.arch_key import arch_key
from hwnas.errors import HwnasError, InfeasibleTargetError

log = logging.getLogger(__name__)
ArchFn = Callable[[Sequence], np.ndarray]


def require_pymoo() -> None:
    try:
        import pymoo  # noqa: F401
    except ImportError:
        raise HwnasError("--pareto needs pymoo (NSGA-II): pip install 'hwnas[pareto]'") from None


class ScoreCache:
    """Scores each distinct architecture once; ``scored`` counts the distinct ones scored.

    ``preloaded`` are scores known from elsewhere (a resumed search's cache): they cost
    nothing and do not count.
    """

    def __init__(self, objective: ArchFn, preloaded: dict[str, float] | None = None):
        self.objective = objective
        self.scores: dict[str, float] = dict(preloaded or {})
        self.scored = 0

    def __call__(self, archs) -> np.ndarray:
        archs = list(archs)
        keys = [arch_key(a) for a in archs]  # once per arch
        todo = list({k: a for k, a in zip(keys, archs) if k not in self.scores}.items())
        if todo:
            values = self.objective([a for _, a in todo])
            for (k, _), v in zip(todo, values):
                self.scores[k] = float(v)
            self.scored += len(todo)
        return np.array([self.scores[k] for k in keys], dtype=np.float64)


@dataclass(frozen=True)
class ParetoPoint:
    arch: object
    latency_ms: float
    score: float
    energy_mj: float | None = None

    def to_dict(self) -> dict:
        d = {"arch": self.arch.to_dict(), "latency_ms": self.latency_ms, "score": self.score}
        if self.energy_mj is not None:
            d["energy_mj"] = self.energy_mj
        return d


@dataclass(frozen=True)
class NSGAConfig:
    budget: int = 96  # distinct architectures scored
    population: int = 16
    offspring: int = 16
    mutate_prob: float = 0.2
    max_tries_factor: int = 50  # draws per wanted initial individual before giving up
    seed: int = 0

    def __post_init__(self):
        if self.budget < 2 or self.population < 2 or self.offspring < 1:
            raise HwnasError("NSGA-II needs budget >= 2, population >= 2 and offspring >= 1")


@dataclass
class ParetoResult:
    front: list[ParetoPoint]  # non-dominated, by latency ascending
    evaluated: list[ParetoPoint] = field(repr=False)  # every scored candidate
    scored: int = 0  # distinct architectures scored by the objective
    objectives: tuple[str, ...] = ("score", "latency_ms")
    max_latency_ms: float | None = None

    def best_under(self, target_ms: float) -> ParetoPoint | None:
        fits = [p for p in self.evaluated if p.latency_ms <= target_ms]
        return max(fits, key=lambda p: (p.score, -p.latency_ms)) if fits else None

    def to_dict(self) -> dict:
        return {"objectives": list(self.objectives), "scored": self.scored,
                "max_latency_ms": self.max_latency_ms,
                "front": [p.to_dict() for p in self.front]}


def non_dominated(points: Sequence[ParetoPoint]) -> list[ParetoPoint]:
    """Points no other point beats on every objective (score up, latency and energy down)."""
    def objs(p):
        return (-p.score, p.latency_ms) + ((p.energy_mj,) if p.energy_mj is not None else ())

    vals = [np.array(objs(p)) for p in points]
    front = [p for i, p in enumerate(points)
             if not any(np.all(vals[j] <= vals[i]) and np.any(vals[j] < vals[i])
                        for j in range(len(points)) if j != i)]
    unique = {(arch_key(p.arch)): p for p in front}
    return sorted(unique.values(), key=lambda p: (p.latency_ms, -p.score))


def hypervolume(points: Sequence[ParetoPoint], ref_latency_ms: float) -> float:
    """Area dominated by (score, latency) points in the unit square of (score in [0, 1],
    latency / ref_latency_ms in [0, 1]): higher is better, 1 would be a perfect, free subnet.
    Points slower than the reference add nothing."""
    from pymoo.indicators.hv import HV

    f = np.array([[1.0 - p.score, p.latency_ms / ref_latency_ms] for p in points
                  if p.latency_ms <= ref_latency_ms])
    if len(f) == 0:
        return 0.0
    return float(HV(ref_point=np.array([1.0, 1.0]))(f))


def nsga2(space, latency_fn: ArchFn, objective: ArchFn, cfg: NSGAConfig = NSGAConfig(), *,
          max_latency_ms: float | None = None, energy_fn: ArchFn | None = None,
          cache: ScoreCache | None = None) -> ParetoResult:
    """NSGA-II over ``space``: maximise ``objective`` (e.g. supernet top-1), minimise
    ``latency_fn`` (and ``energy_fn`` if given), subject to latency <= ``max_latency_ms``.

    Stops once ``cfg.budget`` distinct architectures have been scored (by ``cache``, which may
    hold scores from earlier searches: those are free).
    """
    require_pymoo()
    from pymoo.core.crossover import Crossover
    from pymoo.core.duplicate import ElementwiseDuplicateElimination
    from pymoo.core.mutation import Mutation
    from pymoo.core.problem import Problem
    from pymoo.core.sampling import Sampling
    from pymoo.core.termination import Termination
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.optimize import minimize

    if max_latency_ms is not None:
        from hwnas.search.evolution import feasible_range

        lo, hi = feasible_range(space, latency_fn)
        if max_latency_ms < lo:
            raise InfeasibleTargetError(
                f"NSGA-II: no architecture under {max_latency_ms:g} ms; the fastest "
                f"{space.name} subnet takes {lo:.3g} ms (range {lo:.3g}-{hi:.3g} ms)")
    cache = cache or ScoreCache(objective)
    start = cache.scored
    points: dict[str, ParetoPoint] = {}
    n_obj = 3 if energy_fn is not None else 2

    class _Problem(Problem):
        def __init__(self):
            super().__init__(n_var=1, n_obj=n_obj, n_ieq_constr=1, vtype=object)

        def _evaluate(self, X, out, *args, **kwargs):
            archs = [x[0] for x in X]
            lat = np.asarray(latency_fn(archs), dtype=np.float64)
            cap = max_latency_ms or np.inf
            ok = lat <= cap
            # the budget is exact: past it, unscored newcomers count as infeasible
            left = cfg.budget - (cache.scored - start)
            for i in np.flatnonzero(ok):
                if arch_key(archs[i]) not in cache.scores:
                    ok[i], left = left > 0, left - 1
            score = np.zeros(len(archs))  # infeasible ones are never scored (constraint-ranked)
            if ok.any():
                score[ok] = cache([a for a, o in zip(archs, ok) if o])
            energy = (np.asarray(energy_fn(archs), dtype=np.float64) if energy_fn is not None
                      else None)
            for i, a in enumerate(archs):
                if ok[i]:
                    points[arch_key(a)] = ParetoPoint(a, float(lat[i]), float(score[i]),
                                                  None if energy is None else float(energy[i]))
            cols = [-score, lat] + ([energy] if energy is not None else [])
            out["F"] = np.column_stack(cols)
            out["G"] = np.where(ok, np.minimum(lat - cap, 0.0), 1e9)[:, None]

    def fits(archs) -> list:
        if not max_latency_ms or not archs:
            return list(archs)
        lat = np.asarray(latency_fn(archs))
        return [a for a, l in zip(archs, lat) if l <= max_latency_ms]

    class _Sampling(Sampling):
        """Distinct random subnets under the cap; near the cap's low end, where random draws
        rarely fit, mutants of those found (as the evolution's initial population)."""

        def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
            rng = random_state
            found = {arch_key(a): a for a in fits([space.smallest(r) for r in space.resolutions])}
            tries = 0
            while len(found) < n_samples and tries < cfg.max_tries_factor * n_samples:
                batch = [space.sample(rng) for _ in range(n_samples)]
                if tries and len(found) < n_samples // 4:
                    batch += [space.mutate(a, rng, cfg.mutate_prob) for a in found.values()]
                tries += len(batch)
                for a in fits(batch):
                    found.setdefault(arch_key(a), a)
            chosen = list(found.values())[:n_samples]
            X = np.full((len(chosen), 1), None, dtype=object)
            for i, a in enumerate(chosen):
                X[i, 0] = a
            return X

    class _Crossover(Crossover):
        def __init__(self):
            super().__init__(n_parents=2, n_offsprings=1, prob=0.5)

        def _do(self, problem, X, *args, random_state=None, **kwargs):
            _, n_matings, _ = X.shape
            Y = np.full((1, n_matings, 1), None, dtype=object)
            for k in range(n_matings):
                Y[0, k, 0] = space.crossover(X[0, k, 0], X[1, k, 0], random_state)
            return Y

    class _Mutation(Mutation):
        def _do(self, problem, X, *args, random_state=None, **kwargs):
            Y = np.full_like(X, None, dtype=object)
            for i in range(len(X)):
                Y[i, 0] = space.mutate(X[i, 0], random_state, cfg.mutate_prob)
            return Y

    class _Same(ElementwiseDuplicateElimination):
        def is_equal(self, a, b):
            return a.X[0] == b.X[0]

    max_gen = 20 * max(1, cfg.budget // cfg.offspring)  # if breeding stops finding new archs

    class _Budget(Termination):
        def _update(self, algorithm):
            return min(1.0, max((cache.scored - start) / cfg.budget, algorithm.n_gen / max_gen))

    algorithm = NSGA2(pop_size=cfg.population, n_offsprings=cfg.offspring, sampling=_Sampling(),
                      crossover=_Crossover(), mutation=_Mutation(),
                      eliminate_duplicates=_Same())
    minimize(_Problem(), algorithm, _Budget(), seed=cfg.seed, verbose=False)
    evaluated = list(points.values())
    if not evaluated:
        raise HwnasError(f"NSGA-II found no architecture under {max_latency_ms:g} ms "
                         f"(latency-constrained search needs a feasible cap)")
    objs = ("score", "latency_ms") + (("energy_mj",) if energy_fn is not None else ())
    return ParetoResult(non_dominated(evaluated), evaluated, cache.scored - start, objs,
                        max_latency_ms)


def plot_front(results: dict[str, ParetoResult], path, title: str = "",
               targets: Sequence[float] = (), ylabel: str = "score") -> None:
    """Every scored candidate and the front, one colour per key (e.g. per device)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (name, res) in enumerate(results.items()):
        colour = f"C{i}"
        pts = np.array([(p.latency_ms, p.score) for p in res.evaluated])
        ax.scatter(pts[:, 0], pts[:, 1], s=5, alpha=0.25, color=colour)
        front = np.array([(p.latency_ms, p.score) for p in res.front])
        ax.step(front[:, 0], front[:, 1], where="post", color=colour, label=f"{name} front")
    for t in targets:
        ax.axvline(t, color="k", ls=":", lw=0.8)
    ax.set(xlabel="predicted latency (ms)", ylabel=ylabel, title=title)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


__all__ = ["NSGAConfig", "ParetoPoint", "ParetoResult", "ScoreCache", "hypervolume",
           "non_dominated", "nsga2", "plot_front", "require_pymoo"]
