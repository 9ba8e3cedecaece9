"""Search by the supernet's own accuracy under a latency target.

The evolution is hwnas's one latency-constrained evolution (``hwnas.search.evolution.evolve``:
every candidate's predicted latency must be <= target); only the objective changes, from the
MACs proxy to the supernet's top-1 on the held-out split after BN recalibration. Under
``torchrun`` every rank evolves the same population (same seeded Generator), scores its share of
each batch of candidates, and the scores are gathered, so the result does not depend on the
number of ranks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from hwnas.arch import arch_from_obj
from hwnas.latency.safeio import atomic_write_text
from hwnas.search.evolution import EvolutionConfig, SearchResult, evolve
from hwnas.supernet.distributed import DistContext, all_gather_objects

log = logging.getLogger(__name__)
MeasureFn = Callable[[object, tuple], float]  # (static module, input shape) -> ms


@dataclass(frozen=True)
class AccuracySearchConfig:
    evolution: EvolutionConfig = field(default_factory=lambda: EvolutionConfig(
        population=16, generations=4, parents=4))  # each candidate costs an evaluation
    batch_size: int = 64
    calib_batches: int = 8  # un-augmented training batches for BN recalibration
    max_eval_images: int | None = None  # of the holdout split, per candidate
    seed: int = 0


@dataclass(frozen=True)
class AccuracySearchResult:
    search: SearchResult  # best / pareto / feasible: Candidate(arch, latency_ms, score=top-1)
    test_top1: float | None = None  # of the best, on the test split (never used to choose)
    measured_ms: float | None = None
    arch_path: Path | None = None
    weights_path: Path | None = None

    @property
    def best(self):
        return self.search.best


class SupernetAccuracy:
    """Objective for ``evolve``: holdout top-1 of each arch, scored across ranks."""

    name = "supernet top-1 on the held-out split (higher is better)"

    def __init__(self, score_fn: Callable[[object], float],
                 ctx: DistContext = DistContext()):
        self.score_fn, self.ctx = score_fn, ctx

    def __call__(self, archs) -> np.ndarray:
        archs = list(archs)
        mine = archs[self.ctx.rank::self.ctx.world]
        local = [(a.to_dict(), float(self.score_fn(a))) for a in mine]
        scores = {}
        for part in all_gather_objects(local, self.ctx):
            scores.update({arch_from_obj(d): s for d, s in part})
        log.info("scored %d candidates (best of them %.4f)", len(archs),
                 max(scores.values(), default=float("nan")))
        return np.array([scores[a] for a in archs])


def search_by_accuracy(space, supernet, data, latency_fn, target_ms: float,
                       cfg: AccuracySearchConfig = AccuracySearchConfig(), *,
                       ctx: DistContext = DistContext(), measure_fn: MeasureFn | None = None,
                       out_dir: str | Path | None = None, device="cpu") -> AccuracySearchResult:
    """Evolve under ``latency_fn(archs) <= target_ms`` by holdout top-1 of the supernet.

    Writes (rank 0, when ``out_dir`` is given) ``arch.json`` (the arch, its ElasticViT list for
    ElasticViT archs, top-1, predicted and measured ms) and ``subnet.pt`` (the extracted static
    model's state_dict, BN recalibrated; load it into ``space.build_model(arch)``).
    """
    from hwnas.supernet.evaluate import calibrate, evaluate_subnet, top1

    def score(arch):
        return evaluate_subnet(supernet, arch, data.train, data.holdout,
                               batch_size=cfg.batch_size, calib_batches=cfg.calib_batches,
                               max_images=cfg.max_eval_images, seed=cfg.seed, device=device)

    result = evolve(space, latency_fn, target_ms, np.random.default_rng([cfg.seed, 2]),
                    objective=SupernetAccuracy(score, ctx), cfg=cfg.evolution)
    best = result.best
    calibrate(supernet, best.arch, data.train, batches=cfg.calib_batches,
              batch_size=cfg.batch_size, seed=cfg.seed, device=device)
    test = top1(supernet, best.arch, data.test, batch_size=cfg.batch_size, device=device) \
        if len(data.test) else None
    static = supernet.extract(best.arch).cpu()
    measured = None
    if measure_fn is not None and ctx.is_main:
        measured = float(measure_fn(static, space.input_shape(best.arch)))
    out = AccuracySearchResult(result, test, measured)
    if out_dir is not None and ctx.is_main:
        out = _write(out, static, space, Path(out_dir))
    return out


def _write(result: AccuracySearchResult, static, space, out: Path) -> AccuracySearchResult:
    import io

    import torch

    from hwnas.latency.safeio import atomic_write_bytes

    best = result.best
    arch_path, weights_path = out / "arch.json", out / "subnet.pt"
    doc = {"arch": best.arch.to_dict(), "top1_holdout": best.score, "top1_test": result.test_top1,
           "predicted_ms": best.latency_ms, "measured_ms": result.measured_ms,
           "target_ms": result.search.target_ms, "evaluated": result.search.evaluated,
           "objective": result.search.objective, "macs": space.macs(best.arch),
           "params": space.params(best.arch), "weights": weights_path.name,
           "pareto": [c.to_dict() for c in result.search.pareto]}
    if hasattr(best.arch, "to_elasticvit_list"):  # ElasticViT's own format, for its tools
        doc["elasticvit_list"] = best.arch.to_elasticvit_list()
    buf = io.BytesIO()
    torch.save(static.state_dict(), buf)
    atomic_write_bytes(weights_path, buf.getvalue())
    atomic_write_text(arch_path, json.dumps(doc, indent=1))
    log.info("chose %s: top-1 %.4f, %.3f ms predicted; wrote %s and %s", best.arch.to_dict(),
             best.score, best.latency_ms, arch_path, weights_path)
    return replace(result, arch_path=arch_path, weights_path=weights_path)


__all__ = ["AccuracySearchConfig", "AccuracySearchResult", "SupernetAccuracy",
           "search_by_accuracy"]
