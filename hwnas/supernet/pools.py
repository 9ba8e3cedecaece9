"""Offline pools of architectures per complexity level (ElasticViT's "offline models").

A level is a target cost: predicted latency in ms on one device (hwnas's point), or MMACs
(ElasticViT's FLOPs levels, for comparison). A level's pool holds architectures whose cost lies
within ``bound`` of it. Pools are built once, before training, because the predictor is far too
slow to call inside the training loop and rejection sampling from the whole space hardly ever
lands on small levels.

Pools are JSON (archs in hwnas's JSON form), written atomically.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from hwnas import __version__
from hwnas.arch import arch_from_obj
from hwnas.spaces.elasticvit.arch import ElasticViTArch
from hwnas.errors import HwnasError, InfeasibleTargetError
from hwnas.latency.safeio import atomic_write_text
from hwnas.spaces.vit.space import ViTSpace
from hwnas.spaces.vit.pools import sample_sized_vit
from hwnas.supernet.spec import SpaceSpec

log = logging.getLogger(__name__)
METRICS = {"latency": "ms", "flops": "MMACs"}
FORMAT_TAG = "hwnas-supernet-pools"
CostFn = Callable[[Sequence[ElasticViTArch]], np.ndarray]


@dataclass(frozen=True, eq=False)
class Pools:
    metric: str  # "latency" or "flops"
    device: str  # the device the latency was predicted for ("" for flops)
    space: SpaceSpec
    levels: tuple[float, ...]
    bound: float
    members: tuple[tuple[tuple[object, float], ...], ...]  # per level: (arch, cost); any family
    meta: dict = field(default_factory=dict)

    @property
    def unit(self) -> str:
        return METRICS[self.metric]

    def archs(self, level: int) -> list[ElasticViTArch]:
        return [a for a, _ in self.members[level]]

    def cost(self, level: int, arch: ElasticViTArch) -> float:
        return dict(self.members[level])[arch]

    def min_arch(self, level: int) -> ElasticViTArch:
        """The level's cheapest member: the 'minimum subnet' trained at every step of the level."""
        return min(self.members[level], key=lambda m: m[1])[0]

    def to_obj(self) -> dict:
        return {"format": FORMAT_TAG, "metric": self.metric, "unit": self.unit,
                "device": self.device, "space": self.space.to_dict(), "levels": list(self.levels),
                "bound": self.bound, "meta": self.meta,
                "members": [[{"arch": a.to_dict(), "cost": c} for a, c in level]
                            for level in self.members]}

    @classmethod
    def from_obj(cls, obj, source: str = "pools") -> "Pools":
        if not isinstance(obj, dict) or obj.get("format") != FORMAT_TAG:
            raise HwnasError(f"{source} is not an hwnas pools file (make one with build-pools)")
        try:
            members = tuple(tuple((arch_from_obj(m["arch"]), float(m["cost"]))
                                  for m in level) for level in obj["members"])
            return cls(obj["metric"], obj["device"], SpaceSpec.from_dict(obj["space"]),
                       tuple(float(x) for x in obj["levels"]), float(obj["bound"]), members,
                       dict(obj.get("meta", {})))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise HwnasError(f"{source} is corrupt ({type(e).__name__}: {e})") from None

    def check_matches(self, spec: SpaceSpec, device: str | None = None,
                      source: str = "the pools") -> None:
        """One clear error when these pools were built for another space (preset, resolution
        set, depth cap) or, for latency pools, another device than ``device``."""
        mine, theirs = self.space.to_dict(), {**spec.to_dict(), "classes": self.space.classes}
        diff = [f"{k} {mine[k]!r} (pools) vs {theirs[k]!r}" for k in mine
                if k != "classes" and mine[k] != theirs[k]]
        if diff:
            raise HwnasError(f"{source} were built for another space: {'; '.join(diff)}; "
                             f"rebuild them with build-pools or drop the differing options")
        if device is not None and self.metric == "latency" and self.device != device:
            raise HwnasError(f"{source} were built for latency on {self.device}, not {device}; "
                             f"rebuild them with build-pools --device {device}")

    def save(self, path: str | Path) -> None:
        # allow_nan=False: 'Infinity' is not JSON, and no reader of this file could use it
        atomic_write_text(path, json.dumps(self.to_obj(), indent=1, allow_nan=False))

    @classmethod
    def load(cls, path: str | Path) -> "Pools":
        from hwnas.latency.safeio import MAX_ARCH_BYTES, load_json, read_capped

        if not os.path.lexists(path):  # (a symlink loop exists: read_capped names it)
            raise HwnasError(f"pools file not found: {path}")
        # a regular file under the cap (never a FIFO or /dev/zero), JSON under depth limits
        data = read_capped(path, MAX_ARCH_BYTES, "pools file")
        try:
            obj = load_json(data, f"pools file {path}")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise HwnasError(f"pools file {path} is not valid JSON: {e}") from None
        return cls.from_obj(obj, str(path))


def assemble(resolution: int, stage_kinds: Sequence[str],
             stages: Sequence[tuple[int, list[tuple[int, int]]]]) -> ElasticViTArch:
    """An arch from per-stage (width, [(a, b) per layer]); a/b are expand/kernel in conv stages
    and mlp_ratio/v_scale in transformer stages."""
    conv = [ab for k, (_, layers) in zip(stage_kinds, stages) if k == "conv" for ab in layers]
    trans = [ab for k, (_, layers) in zip(stage_kinds, stages) if k == "trans" for ab in layers]
    return ElasticViTArch(resolution, tuple(w for w, _ in stages), tuple(len(l) for _, l in stages),
                          tuple(a for a, _ in conv), tuple(b for _, b in conv),
                          tuple(a for a, _ in trans), tuple(b for _, b in trans))


def sample_sized(space, rng: np.random.Generator, size: float):
    """A random arch whose every choice leans small (size near 0) or large (near 1).

    Uniform sampling piles architectures up in the middle of the cost range; drawing ``size``
    uniformly and biasing each choice towards it covers the small and large ends as well.
    """
    alpha, beta = 1 + 6 * size, 1 + 6 * (1 - size)

    def pick(options, ordered: bool = False):
        options = list(options) if ordered else sorted(options)
        return options[min(int(rng.beta(alpha, beta) * len(options)), len(options) - 1)]

    if isinstance(space, ViTSpace):
        return sample_sized_vit(space, lambda options: pick(options, ordered=True))
    stages = [(pick(st.widths), [(pick(st.choice_a), pick(st.choice_b))
                                 for _ in range(pick(st.depths))]) for st in space.stages]
    return assemble(pick(space.resolutions), [st.kind for st in space.stages], stages)


def cost_range(space, cost_fn: CostFn) -> tuple[float, float]:
    """(cheapest, dearest) cost in the space: its smallest and largest archs at each resolution."""
    ext = [space.smallest(r) for r in space.resolutions] + [space.largest(r)
                                                            for r in space.resolutions]
    costs = np.asarray(cost_fn(ext), dtype=np.float64)
    return float(costs.min()), float(costs.max())


def _check_levels(levels, bound: float, lo: float, hi: float, unit: str) -> None:
    if not levels or not all(math.isfinite(x) and x > 0 for x in levels):
        raise HwnasError(f"levels must be positive finite numbers, got {list(levels)}")
    if list(levels) != sorted(set(levels)):
        raise HwnasError("levels must be distinct and ascending")
    if not (math.isfinite(bound) and bound > 0):  # NaN would make every draw miss, silently
        raise HwnasError(f"the bound around each level must be a positive finite number, got "
                         f"{bound}")
    for lv in levels:
        if lv + bound < lo or lv - bound > hi:
            raise InfeasibleTargetError(
                f"level {lv:g} {unit} (+/- {bound:g}) is outside what this space can reach: "
                f"{lo:.3g} to {hi:.3g} {unit}")


def fill_pools(space, cost_fn: CostFn, levels: Sequence[float], *, bound: float,
               per_level: int, rng: np.random.Generator, unit: str = "",
               max_draws: int = 20000, chunk: int = 256) -> list[list[tuple]]:
    """Sample until every level holds ``per_level`` archs within ``bound`` (or draws run out).

    Half of each chunk is drawn at random sizes; the other half aims at unfilled levels, at
    sizes near the draw whose cost came closest to them so far.
    """
    lo, hi = cost_range(space, cost_fn)
    _check_levels(levels, bound, lo, hi, unit)
    members: list[list[tuple]] = [[] for _ in levels]
    seen: set = set()
    sizes, costs = np.empty(0), np.empty(0)
    draws = 0
    while draws < max_draws and any(len(m) < per_level for m in members):
        todo = [i for i, m in enumerate(members) if len(m) < per_level]
        batch_sizes = list(rng.random(chunk // 2))
        for _ in range(chunk - len(batch_sizes)):
            target = levels[todo[int(rng.integers(len(todo)))]]
            base = sizes[np.argmin(np.abs(costs - target))] if len(costs) else rng.random()
            batch_sizes.append(float(np.clip(base + rng.normal(0, 0.05), 0, 1)))
        archs = [sample_sized(space, rng, s) for s in batch_sizes]
        c = np.asarray(cost_fn(archs), dtype=np.float64)
        sizes, costs, draws = np.r_[sizes, batch_sizes], np.r_[costs, c], draws + len(archs)
        for arch, cost in zip(archs, c):
            for i, lv in enumerate(levels):
                fits = abs(cost - lv) <= bound and len(members[i]) < per_level
                if fits and (i, arch) not in seen:
                    seen.add((i, arch))
                    members[i].append((arch, float(cost)))
    _report_fill(members, levels, per_level, unit, lo, hi, draws)
    return members


def _report_fill(members, levels, per_level, unit, lo, hi, draws) -> None:
    empty = [lv for lv, m in zip(levels, members) if not m]
    if empty:
        shown = ", ".join(f"{x:g}" for x in empty)
        raise InfeasibleTargetError(
            f"no architecture found within the bound of level(s) {shown} {unit} after {draws} "
            f"draws; this space spans {lo:.3g} to {hi:.3g} {unit}")
    for lv, m in zip(levels, members):
        if len(m) < per_level:
            log.warning("level %g %s: only %d of %d architectures found", lv, unit, len(m),
                        per_level)


def build_pools(spec: SpaceSpec, cost_fn: CostFn, levels: Sequence[float], *, metric: str,
                bound: float | None = None, per_level: int = 64, seed: int = 0,
                device: str = "", cost_source: str = "", max_draws: int = 20000) -> Pools:
    """Pools for a space. ``cost_fn`` gives ms (metric "latency") or MMACs ("flops")."""
    if metric not in METRICS:
        raise HwnasError(f"metric must be one of {', '.join(METRICS)}")
    levels = tuple(float(x) for x in levels)
    if bound is None:  # a quarter of the closest spacing keeps adjacent levels apart
        gaps = np.diff(levels)
        bound = float(gaps.min() / 4) if len(gaps) else levels[0] * 0.1
    space = spec.build()
    members = fill_pools(space, cost_fn, levels, bound=bound, per_level=per_level,
                         rng=np.random.default_rng(seed), unit=METRICS[metric],
                         max_draws=max_draws)
    meta = {"hwnas_version": __version__, "seed": seed, "per_level": per_level,
            "cost_source": cost_source,
            "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    return Pools(metric, device if metric == "latency" else "", spec, levels, bound,
                 tuple(tuple(m) for m in members), meta)


def flops_cost_fn(space) -> CostFn:
    """MMACs of each arch (analytic, from the space's one walk)."""
    return lambda archs: np.array([space.macs(a) / 1e6 for a in archs], dtype=np.float64)
