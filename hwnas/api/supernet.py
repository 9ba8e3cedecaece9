"""The supernet jobs on named devices: pools priced by a device's predictor, a checkpoint
searched under a device's latency target (the chosen subnet timed there), and one supernet
searched for many devices.

hwnas.supernet takes what it needs from a device as callables (a latency function, a factory
of them per space, a measurer); resolving a device's name into them (its Context, table,
predictor, profiler, measuring lock) is this layer's job, so that the supernet package never
imports the API. The functions here keep the signatures the supernet's own used to have.

torch and the supernet modules are imported inside the functions: importing this module stays
as cheap as importing the rest of the API.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from hwnas.errors import DeviceError, HwnasError, MissingKeysError

from hwnas.api.device import context, load_table, reference_scale_ms
from hwnas.api.predicting import predictor as choose_predictor

if TYPE_CHECKING:
    from hwnas.search.nsga import NSGAConfig
    from hwnas.supernet.latency import LatencyFn
    from hwnas.supernet.multidevice import MultiSearchResult, Pair
    from hwnas.supernet.pools import Pools
    from hwnas.supernet.search import AccuracySearchConfig, AccuracySearchResult, MeasureFn
    from hwnas.supernet.spec import SpaceSpec

log = logging.getLogger(__name__)


def load_latency_fn(device: str, space, predictor: str = "auto") -> "LatencyFn":
    """The named device's predictor ``predictor`` (``--predictor``: auto, lut, kernel, e2e;
    see hwnas.predictors.select) for ``space`` (which may be a narrowed space), as a callable.

    Raises HwnasError naming what to do when the device has no table or no such predictor.
    """
    # The device's own context (its table and records paths), with the supernet's space.
    ctx = replace(context(device), space=space)
    chosen = choose_predictor(ctx, predictor)
    log.warning("latency of %s: %s predictor", device, chosen.describe())
    return chosen.predict


def energy_fn_for(device: str, space) -> "LatencyFn | None":
    """Energy per call (mJ) from the device's table, when it measured energy (GPUs)."""
    ctx = replace(context(device), space=space)
    try:
        table = load_table(ctx)
    except HwnasError:
        return None
    if not table.energy:
        return None

    def fn(archs):
        return np.array([float(table.lookup_energy(space.op_keys(a)).sum()) for a in archs])

    try:
        fn([space.smallest(r) for r in space.resolutions])
    except MissingKeysError as e:
        log.warning("%s: the table's energy does not cover this space (%s); Pareto search "
                    "on accuracy and latency only", device, e)
        return None
    return fn


@contextlib.contextmanager
def local_measure(device: str) -> "Iterator[MeasureFn | None]":
    """A whole-model latency measurer on ``device`` when hwnas can run it here, else None.

    Drift-free where the profiler times beside the reference: the ratio at the device's table's
    reference speed, the scale its predictions are in."""
    from hwnas.home import export_cache, hwnas_home
    from hwnas.locks import measuring, measuring_resources
    from hwnas.profilers import make_profiler

    ctx = context(device)
    scale = reference_scale_ms(ctx)
    try:
        profiler = make_profiler(ctx.cfg, export_cache())
    except DeviceError as e:
        log.info("not measuring the chosen subnet on %s: %s", device, e)
        yield None
        return

    def measure(p, module, shape) -> float:
        m = p.measure_model_full(module, shape)
        return m.ratio.median * scale if m.ratio is not None and scale else m.stats.median_ms

    with contextlib.ExitStack() as stack:
        # held for the whole search: evaluating candidates on this CPU would disturb another
        # process's timings as much as timing does
        try:
            stack.enter_context(measuring(hwnas_home(), measuring_resources(ctx.cfg)))
        except OSError as e:  # a read-only HWNAS_HOME: search, but do not time anything
            log.warning("not measuring the chosen subnet on %s (no measuring lock: %s)", device,
                        (e.strerror or str(e)).lower())
            yield None
            return
        p = stack.enter_context(profiler)
        yield lambda module, shape: measure(p, module, shape)


def build_pools_for(spec: "SpaceSpec", *, metric: str, levels: Sequence[float],
                    out: str | Path, device: str | None = None, bound: float | None = None,
                    per_level: int = 64, seed: int = 0, max_draws: int = 20000,
                    latency_fn: "LatencyFn | None" = None, predictor: str = "auto") -> "Pools":
    """Pools per latency level on ``device`` (metric "latency") or per MMACs level ("flops")."""
    from hwnas.supernet.pools import build_pools, flops_cost_fn

    space = spec.build()
    if metric == "latency":
        if device is None and latency_fn is None:
            raise HwnasError("latency pools need --device (whose predictor gives the latency)")
        fn = latency_fn or load_latency_fn(device, space, predictor)
        source = f"latency predictor of {device}"
    else:
        fn, source = flops_cost_fn(space), "analytic MACs (space.macs)"
    pools = build_pools(spec, fn, levels, metric=metric, bound=bound, per_level=per_level,
                        seed=seed, device=device or "", cost_source=source, max_draws=max_draws)
    pools.save(out)
    return pools


def search_from_checkpoint(checkpoint: str | Path, *, device: str, target_ms: float,
                           out_dir: str | Path, data: str | None = None,
                           cfg: "AccuracySearchConfig | None" = None,
                           measure: bool = True, run_on: str | None = None,
                           latency_fn: "LatencyFn | None" = None,
                           predictor: str = "auto") -> "AccuracySearchResult":
    """``hwnas search --supernet CKPT``: evolve under the device's predicted latency (or
    ``latency_fn``), scored by the supernet's holdout top-1; with ``measure``, the pick is timed
    on the device when hwnas can run it here (``local_measure``). Works under ``torchrun``;
    see ``hwnas.supernet.workflows.search_checkpoint``."""
    from hwnas.supernet.search import AccuracySearchConfig
    from hwnas.supernet.workflows import search_checkpoint

    def latency_for(space) -> "LatencyFn":
        return latency_fn or load_latency_fn(device, space, predictor)

    return search_checkpoint(checkpoint, latency_for=latency_for, target_ms=target_ms,
                             out_dir=out_dir, data=data, cfg=cfg or AccuracySearchConfig(),
                             measurer=(lambda: local_measure(device)) if measure else None,
                             run_on=run_on)


def search_devices(checkpoint: str | Path, pairs: "Sequence[Pair]", out_dir: str | Path, *,
                   data: str | None = None, cfg: "AccuracySearchConfig | None" = None,
                   pareto: "NSGAConfig | None" = None,
                   latency_fns: "dict[str, LatencyFn] | None" = None,
                   energy: bool = True, space_name: str | None = None,
                   resolutions: Sequence[int] = (),
                   run_on: str | None = None) -> "MultiSearchResult":
    """Search ``checkpoint`` for every (device, target) pair, sharing one accuracy cache
    (``hwnas.supernet.multidevice``), on the devices' own predictors.

    ``latency_fns`` replaces the devices' own predictors (tests, benchmarks); then no energy is
    read from the devices' tables either. ``pareto``: one NSGA-II run per device instead of one
    evolution per target.
    """
    from hwnas.supernet import multidevice
    from hwnas.supernet.search import AccuracySearchConfig

    def latency_for(device: str, space) -> "LatencyFn":
        return (latency_fns or {}).get(device) or load_latency_fn(device, space)

    return multidevice.search_devices(
        checkpoint, pairs, out_dir, latency_for=latency_for,
        energy_for=energy_fn_for if energy and latency_fns is None else None, data=data,
        cfg=cfg or AccuracySearchConfig(), pareto=pareto, space_name=space_name,
        resolutions=resolutions, run_on=run_on)


__all__ = ["build_pools_for", "energy_fn_for", "load_latency_fn", "local_measure",
           "search_devices", "search_from_checkpoint"]
