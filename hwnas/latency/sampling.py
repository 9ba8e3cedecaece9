"""Choosing which whole subnets to measure: stratified over the latency range, not uniform.

Uniform sampling of a big space piles up in the middle of the latency range (a sum of many
independent choices is close to normal), so the fast and slow ends a search cares about get few
measurements. Stratifying a cheap estimate (the LUT sum, or MACs) into equal-width bins spreads
the measurements over the whole range.

The picks come back in a random order, never sorted by the estimate: a run that measured them
smallest to largest would turn the machine's drift over the run into a fake size effect.
"""

from __future__ import annotations

import json
from typing import Callable, Sequence

import numpy as np

from hwnas.spaces.base import SearchSpace


def stratified_sample(space: SearchSpace, n: int, rng: np.random.Generator,
                      estimate: Callable[[Sequence], np.ndarray],
                      oversample: int = 20) -> list:
    """``n`` distinct architectures spread evenly over ``estimate``'s range."""
    if n <= 0:
        return []
    pool = {}
    for _ in range(n * oversample):
        a = space.sample(rng)
        pool.setdefault(json.dumps(a.to_dict(), sort_keys=True), a)
    cands = list(pool.values())
    est = np.asarray(estimate(cands), dtype=float)
    order = np.argsort(est)
    cands, est = [cands[i] for i in order], est[order]
    edges = np.linspace(est[0], est[-1], n + 1)
    bins = np.clip(np.searchsorted(edges, est, side="right") - 1, 0, n - 1)
    chosen: list[int] = []
    for b in range(n):
        members = np.flatnonzero(bins == b)
        if members.size:
            chosen.append(int(rng.choice(members)))
    rest = [i for i in range(len(cands)) if i not in set(chosen)]
    extra = rng.choice(rest, size=min(n - len(chosen), len(rest)), replace=False) if rest else []
    chosen += [int(i) for i in extra]
    return [cands[i] for i in rng.permutation(chosen)]
