"""Search by the supernet's own accuracy under a latency target.

Evolution over the space: every candidate must have predicted latency <= target (the latency
callable of the device); its fitness is the supernet's top-1 on the held-out split after BN
recalibration. Candidates of a generation can be spread over the ranks of a ``torchrun`` job:
every rank evolves the same population (same seeded Generator), scores its share, and the scores
are gathered, so the result does not depend on the number of ranks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from hwnas.arch import ElasticViTArch
from hwnas.errors import HwnasError, InfeasibleTargetError
from hwnas.latency.safeio import atomic_write_text
from hwnas.supernet.distributed import DistContext, all_gather_objects
from hwnas.supernet.pools import cost_range, sample_sized

log = logging.getLogger(__name__)
MeasureFn = Callable[[object, tuple], float]  # (static module, input shape) -> ms


@dataclass(frozen=True)
class AccuracySearchConfig:
    population: int = 16
    generations: int = 4
    parents: int = 4  # the best this many survive and breed
    mutate_prob: float = 0.3
    crossover_fraction: float = 0.5  # of the children; the rest are mutants
    batch_size: int = 64
    calib_batches: int = 8
    max_eval_images: int | None = None  # of the holdout split, per candidate
    seed: int = 0
    max_tries: int = 5000  # bounds every sampling loop

    def __post_init__(self):
        if self.population < 2 or not 1 <= self.parents <= self.population:
            raise HwnasError("need population >= 2 and 1 <= parents <= population")


@dataclass(frozen=True)
class Candidate:
    arch: ElasticViTArch
    top1: float  # on the holdout split
    predicted_ms: float


@dataclass(frozen=True)
class AccuracySearchResult:
    best: Candidate
    target_ms: float
    evaluated: tuple[Candidate, ...]
    test_top1: float | None = None  # of the best, on the test split (never used to choose)
    measured_ms: float | None = None
    arch_path: Path | None = None
    weights_path: Path | None = None


class _Latency:
    """Memoised predicted latency (the predictor is called in batches)."""

    def __init__(self, fn: Callable[[Sequence], np.ndarray]):
        self.fn, self.cache = fn, {}

    def __call__(self, archs: Sequence[ElasticViTArch]) -> list[float]:
        new = [a for a in dict.fromkeys(archs) if a not in self.cache]
        if new:
            self.cache.update(zip(new, (float(x) for x in self.fn(new))))
        return [self.cache[a] for a in archs]


def _feasible_initial(space, lat: _Latency, target: float, n: int, rng, max_tries: int):
    """``n`` distinct archs under the target: uniform draws plus size-biased ones (so that tight
    targets, which uniform sampling almost never meets, still fill the population)."""
    found: list[ElasticViTArch] = []
    tries = 0
    while len(found) < n and tries < max_tries:
        chunk = [space.sample(rng) if i % 2 else sample_sized(space, rng, float(rng.random()))
                 for i in range(64)]
        tries += len(chunk)
        for a, ms in zip(chunk, lat(chunk)):
            if ms <= target and a not in found and len(found) < n:
                found.append(a)
    if not found:
        lo, hi = cost_range(space, lat)
        raise InfeasibleTargetError(f"no architecture meets {target:g} ms; predicted latency in "
                                    f"this space runs from {lo:.3g} to {hi:.3g} ms")
    return found


def _children(space, parents, lat: _Latency, target: float, n: int, seen: set, rng,
              cfg: AccuracySearchConfig) -> list[ElasticViTArch]:
    kids: list[ElasticViTArch] = []
    for _ in range(cfg.max_tries):
        if len(kids) >= n:
            break
        if len(parents) > 1 and rng.random() < cfg.crossover_fraction:
            i, j = rng.choice(len(parents), size=2, replace=False)
            kid = space.crossover(parents[i], parents[j], rng)
        else:
            kid = space.mutate(parents[int(rng.integers(len(parents)))], rng, cfg.mutate_prob)
        if kid not in seen and lat([kid])[0] <= target:
            seen.add(kid)
            kids.append(kid)
    return kids


def _score(archs, score_fn, ctx: DistContext) -> dict:
    """Top-1 of each arch; with several ranks each scores a share and the shares are gathered."""
    mine = archs[ctx.rank::ctx.world]
    local = [(a.to_dict(), score_fn(a)) for a in mine]
    out = {}
    for part in all_gather_objects(local, ctx):
        out.update({ElasticViTArch.from_dict(d): s for d, s in part})
    return out


def evolve(space, score_fn: Callable[[ElasticViTArch], float], latency_fn, target_ms: float,
           cfg: AccuracySearchConfig, ctx: DistContext = DistContext()) -> list[Candidate]:
    """Every evaluated candidate, best first (ties: the faster one)."""
    rng = np.random.default_rng([cfg.seed, 2])
    lat = _Latency(latency_fn)
    pop = _feasible_initial(space, lat, target_ms, cfg.population, rng, cfg.max_tries)
    scores: dict = {}
    seen = set(pop)
    for gen in range(cfg.generations + 1):
        new = [a for a in pop if a not in scores]
        scores.update(_score(new, score_fn, ctx))
        ranked = sorted(pop, key=lambda a: (-scores[a], lat([a])[0]))
        log.info("generation %d: best top-1 %.4f at %.3f ms (%d evaluated)", gen,
                 scores[ranked[0]], lat([ranked[0]])[0], len(scores))
        if gen == cfg.generations:
            break
        parents = ranked[:cfg.parents]
        pop = parents + _children(space, parents, lat, target_ms, cfg.population - len(parents),
                                  seen, rng, cfg)
    everyone = sorted(scores, key=lambda a: (-scores[a], lat([a])[0]))
    return [Candidate(a, scores[a], lat([a])[0]) for a in everyone]


def search_by_accuracy(space, supernet, data, latency_fn, target_ms: float,
                       cfg: AccuracySearchConfig = AccuracySearchConfig(), *,
                       ctx: DistContext = DistContext(), measure_fn: MeasureFn | None = None,
                       out_dir: str | Path | None = None, device="cpu") -> AccuracySearchResult:
    """Evolve under ``latency_fn(archs) <= target_ms`` by holdout top-1 of the supernet.

    Writes (rank 0, when ``out_dir`` is given) ``arch.json`` (the arch, its ElasticViT list,
    top-1, predicted and measured ms) and ``subnet.pt`` (the extracted static model's
    state_dict, BN recalibrated; load it into ``space.build_model(arch)``).
    """
    from hwnas.supernet.evaluate import calibrate, evaluate_subnet, top1

    kw = dict(batch_size=cfg.batch_size, seed=cfg.seed, device=device)

    def score(arch):
        return evaluate_subnet(supernet, arch, data.train, data.holdout, calib_batches=
                               cfg.calib_batches, max_images=cfg.max_eval_images, **kw)

    ranked = evolve(space, score, latency_fn, target_ms, cfg, ctx)
    best = ranked[0]
    calibrate(supernet, best.arch, data.train, batches=cfg.calib_batches,
              batch_size=cfg.batch_size, seed=cfg.seed, device=device)
    test = top1(supernet, best.arch, data.test, batch_size=cfg.batch_size, device=device) \
        if len(data.test) else None
    static = supernet.extract(best.arch).cpu()
    measured = None
    if measure_fn is not None and ctx.is_main:
        measured = float(measure_fn(static, space.input_shape(best.arch)))
    result = AccuracySearchResult(best, float(target_ms), tuple(ranked), test, measured)
    if out_dir is not None and ctx.is_main:
        result = _write(result, static, space, Path(out_dir))
    return result


def _write(result: AccuracySearchResult, static, space, out: Path) -> AccuracySearchResult:
    import io

    import torch

    from hwnas.latency.safeio import atomic_write_bytes

    best = result.best
    arch_path, weights_path = out / "arch.json", out / "subnet.pt"
    doc = {"arch": best.arch.to_dict(), "elasticvit": best.arch.to_elasticvit_list(),
           "top1_holdout": best.top1, "top1_test": result.test_top1,
           "predicted_ms": best.predicted_ms, "measured_ms": result.measured_ms,
           "target_ms": result.target_ms, "evaluated": len(result.evaluated),
           "macs": space.macs(best.arch), "params": space.params(best.arch),
           "weights": weights_path.name}
    buf = io.BytesIO()
    torch.save(static.state_dict(), buf)
    atomic_write_bytes(weights_path, buf.getvalue())
    atomic_write_text(arch_path, json.dumps(doc, indent=1))
    log.info("chose %s: top-1 %.4f, %.3f ms predicted; wrote %s and %s", best.arch.to_dict(),
             best.top1, best.predicted_ms, arch_path, weights_path)
    return replace(result, arch_path=arch_path, weights_path=weights_path)


__all__ = ["AccuracySearchConfig", "AccuracySearchResult", "Candidate", "evolve",
           "search_by_accuracy"]
