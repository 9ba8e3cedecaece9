"""TF-NAS's elasticity scaling: fit a searched network's widths to a latency target.

TF-NAS (``train_search.py``: ``fit_mc_num_by_latency``) first shrinks (or grows) every block's mid
width together, in steps proportional to the block's width, until the predicted latency crosses
the target; then it re-grows the widths of stages 2..6, then 3..6, ... 6 alone, each time as far
as the target allows. Coarse steps come first and finer ones later, so the result sits just under
the target. Widths stay in each block's [min, max] (TF-NAS: half the maximum up to the maximum).

Any space can use it by providing ``widths(arch)``, ``width_bounds(arch)``, ``width_groups(arch)``
(the stage of each width) and ``with_widths(arch, widths)``; ``hwnas.spaces.tfnas.TFNASSpace`` does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from hwnas.errors import HwnasError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ElasticityResult:
    arch: Any
    latency_ms: float
    feasible: bool  # False: even the narrowest widths miss the target
    evaluations: int  # calls of latency_fn


class _Fitter:
    def __init__(self, space, arch, latency_fn: Callable[[Any], float], target_ms: float):
        self.space, self.arch, self.latency_fn, self.target = space, arch, latency_fn, target_ms
        self.bounds = list(space.width_bounds(arch))
        self.evaluations = 0

    def latency(self, widths: Sequence[int]) -> float:
        self.evaluations += 1
        return float(self.latency_fn(self.space.with_widths(self.arch, widths)))

    def fit(self, widths: list[int], lat: float, idx: list[int], sign: int):
        """One pass of TF-NAS's fit_mc_num_by_latency over the blocks in ``idx``."""
        smallest = min(widths[i] for i in idx)
        steps = [max(1, round(widths[i] / smallest)) for i in idx]
        new, new_lat, moving = list(widths), lat, True
        while moving and sign * new_lat <= sign * self.target:
            widths, lat = new, new_lat
            new, moving = list(widths), False
            for i, step in zip(idx, steps):
                lo, hi = self.bounds[i]
                new[i] = min(hi, max(lo, widths[i] + sign * step))
                moving |= lo < new[i] < hi
            if new == widths:
                break
            new_lat = self.latency(new)
        # shrinking keeps the first widths under the target; growing keeps the last ones under
        # it (TF-NAS also drops a final step that hit the bounds while still under: kept here)
        if sign < 0 or new_lat <= self.target:
            return new, new_lat
        return widths, lat


def elasticity_scale(space, arch, latency_fn: Callable[[Any], float],
                     target_ms: float) -> ElasticityResult:
    """Shrink, then re-grow, ``arch``'s widths until ``latency_fn`` sits just under ``target_ms``.

    ``latency_fn`` maps an architecture to milliseconds (a LUT or predictor). The number of
    evaluations is bounded by the total width range; nothing loops forever.
    """
    if target_ms <= 0:
        raise HwnasError(f"target latency must be positive, got {target_ms} ms")
    fitter = _Fitter(space, space.validate(arch), latency_fn, target_ms)
    widths = [int(w) for w in space.widths(arch)]
    lat = fitter.latency(widths)
    groups = list(space.width_groups(arch))
    every = list(range(len(widths)))
    if lat != target_ms:
        widths, lat = fitter.fit(widths, lat, every, -1 if lat > target_ms else 1)
    for start in sorted(set(groups))[1:]:
        later = [i for i in every if groups[i] >= start]
        widths, lat = fitter.fit(widths, lat, later, 1)
    result = space.with_widths(arch, widths)
    log.info("elasticity scaling: %.3f ms for a %.3f ms target after %d evaluations", lat,
             target_ms, fitter.evaluations)
    return ElasticityResult(result, lat, lat <= target_ms, fitter.evaluations)
