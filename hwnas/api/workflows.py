"""The main job: make the device ready (profile, calibrate), search under the latency target,
land on it by measuring, and re-measure the pick."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from hwnas.errors import (DeviceError, HwnasError, TableError)
from hwnas.latency.stats import Stats
from hwnas.latency.table import LatencyTable
from hwnas.predictors.select import Chosen
from hwnas.search.evolution import EvolutionConfig, MacsObjective, SearchResult, evolve
from hwnas.search.landing import Landing, LandingConfig

from hwnas.api.device import (Context, context, load_table, session, _imported, _can_save,
                              _plot_or_warn)
from hwnas.api.measuring import profile, measure, measure_arch, measure_archs
from hwnas.api.predicting import calibration_set, _space_ops_missing, predictor, _budget_error

log = logging.getLogger(__name__)
CALIBRATION_SUBNETS = 12


# --- the main job ----------------------------------------------------------------------------
@dataclass
class SearchOutcome:
    result: SearchResult
    predictor: Chosen
    measured: Stats | None  # re-measured end to end on the device, when it is local
    plot: Path | None = None  # the Pareto front PNG
    landing: Landing | None = None  # the candidates measured while landing on the target
    profiler_sessions: int | None = None  # profilers the search opened (its session's: 0 or 1)


def ensure_ready(ctx: Context, progress: bool = True, kind: str = "auto") -> LatencyTable:
    """Profile what the table lacks (live devices), unless it was profiled on a budget: then
    the fitted kernel regressors price the rest, and nothing more is profiled. A device with a
    few-shot predictor of the space (``hwnas adapt``, ``fit --kind fewshot``) needs no table
    of it: None, or the table as it is, and nothing is profiled."""
    if kind in ("auto", "fewshot") and ctx.predictor_path("fewshot").exists():
        table = load_table(ctx) if ctx.paths.table.exists() else None
        if table is None or _space_ops_missing(ctx, table):
            return table
    if not ctx.live:
        table = load_table(ctx)
        missing = _space_ops_missing(ctx, table)
        fill = [k for k in ("kernel", "e2e") if ctx.predictor_path(k).exists()]
        if missing and not (fill and kind != "lut"):
            # nothing prices those ops: every search would stop at the first subnet using one
            lacking = {r: table.missing(op.key for op in ctx.space.enumerate_ops(r))
                       for r in ctx.space.resolutions}
            full = [r for r, m in lacking.items() if not m]
            hint = (f"it covers resolution(s) {full}: pass -r {full[0]}" if full else
                    "it covers none of them fully")
            raise TableError(f"{ctx.cfg.name}'s table lacks {len(missing)} op key(s) of "
                             f"{ctx.space.name} at resolution(s) "
                             f"{[r for r, m in lacking.items() if m]}; {hint}")
        if missing:
            log.warning("%s's table lacks %d op keys of this space; the fitted %s predictor "
                        "prices them", ctx.cfg.name, len(missing), fill[0])
        return table
    table = load_table(ctx) if ctx.paths.table.exists() else None
    if table is None:
        return profile(ctx, progress=progress)
    if _space_ops_missing(ctx, table):
        fill = [k for k in ("kernel", "e2e") if ctx.predictor_path(k).exists()]
        if table.meta.get("budget") and not (fill and kind != "lut"):
            raise _budget_error(ctx, table)
        if not table.meta.get("budget"):
            table = profile(ctx, progress=progress)  # an interrupted profile: resume it
    return table


def ready_predictor(ctx: Context, kind: str, table: LatencyTable,
                    progress: bool = True) -> Chosen:
    """The predictor to use; the LUT gets calibration subnets measured first (live devices)."""
    chosen = predictor(ctx, kind, table)
    if (chosen.kind == "lut" and ctx.live
            and len(calibration_set(ctx, table)[1]) < CALIBRATION_SUBNETS):
        if not _can_save(ctx):
            log.warning("%s is read-only: no subnets are measured to calibrate the predictor "
                        "(they could not be saved); predictions are uncalibrated",
                        ctx.paths.root)
            return chosen
        try:
            measure(ctx, sample=CALIBRATION_SUBNETS, seed=12345, progress=progress)
            chosen = predictor(ctx, kind, table)
        except DeviceError as e:
            if not _imported(table):
                raise
            # an imported table (TF-NAS's titan-rtx) prices the space without the device
            log.warning("%s; using the imported table uncalibrated", e)
    return chosen


def _rescale_widths(ctx: Context, pred: Chosen, result: SearchResult) -> SearchResult:
    """TF-NAS's width elasticity: shrink then re-grow the pick's widths to sit under target."""
    from dataclasses import replace

    from hwnas.search.evolution import Candidate
    from hwnas.spaces.elasticity import elasticity_scale

    if not hasattr(ctx.space, "width_bounds"):
        raise HwnasError(f"--elasticity needs a space with elastic widths (tfnas); "
                         f"{ctx.space.name} has none")
    fit = elasticity_scale(ctx.space, result.best.arch, lambda a: float(pred.predict([a])[0]),
                           result.target_ms)
    if not fit.feasible or fit.latency_ms > result.target_ms:
        log.warning("width elasticity could not improve the pick; keeping it")
        return result
    score = float(MacsObjective(ctx.space)([fit.arch])[0])
    return replace(result, best=Candidate(fit.arch, fit.latency_ms, score),
                   objective=result.objective + "; widths rescaled by TF-NAS elasticity")


def search(device: str, target_ms: float, seed: int = 0, space: str = "elasticvit",
           resolutions: Sequence[int] | None = None, remeasure: bool = True,
           progress: bool = True, cfg: EvolutionConfig = EvolutionConfig(),
           home: Path | None = None, elasticity: bool = False, predictor_kind: str = "auto",
           landing: LandingConfig = LandingConfig(), **overrides) -> SearchOutcome:
    """Best subnet under ``target_ms`` on the device.

    On a device hwnas can measure, the search lands on the target: it measures the best
    candidates and corrects itself until one measures within a few percent under the target
    (hwnas.search.landing). Then the pick is re-measured in 3 fresh passes. In a read-only
    HWNAS_HOME nothing is measured (it could not be saved): the search says so and goes on.
    Everything it measures goes through one profiler session (``api.session``)."""
    with session(context(device, space, resolutions, home, **overrides)) as ctx:
        return _search(ctx, target_ms, seed, remeasure, progress, cfg, elasticity,
                       predictor_kind, landing)


def _search(ctx: Context, target_ms: float, seed: int, remeasure: bool, progress: bool,
            cfg: EvolutionConfig, elasticity: bool, predictor_kind: str,
            landing: LandingConfig) -> SearchOutcome:
    from hwnas.search import landing as landing_

    table = ensure_ready(ctx, progress, predictor_kind)
    chosen = ready_predictor(ctx, predictor_kind, table, progress)
    measured, landed = None, None
    if remeasure and ctx.live and not _can_save(ctx):
        log.warning("%s is read-only: the pick is not measured (its measurements could not "
                    "be saved)", ctx.paths.root)
        remeasure = False
    try:
        if remeasure and ctx.live and not elasticity:
            def measure_fn(archs):
                return [s.median_ms for s in measure_archs(ctx, archs, passes=2)]

            result, landed = landing_.land(ctx.space, chosen.predict, target_ms, seed,
                                           measure_fn, evo=cfg, cfg=landing)
        else:
            result = evolve(ctx.space, chosen.predict, target_ms, np.random.default_rng(seed),
                            cfg=cfg)
        if elasticity:
            result = _rescale_widths(ctx, chosen, result)
        if remeasure and ctx.live:
            measured = measure_arch(ctx, result.best.arch, passes=3)
    except DeviceError as e:
        if not _imported(table):
            raise
        log.warning("%s; the chosen subnet is not measured", e)
        result = evolve(ctx.space, chosen.predict, target_ms, np.random.default_rng(seed),
                        cfg=cfg)
    png = _pareto_png(ctx, result, target_ms, measured)
    return SearchOutcome(result, chosen, measured, png, landed,
                         ctx.session.opened if ctx.session is not None else None)


def _pareto_png(ctx: Context, result: SearchResult, target_ms: float,
                measured: Stats | None) -> Path | None:
    """The Pareto plot; a plot that cannot be written is a warning, never a lost result."""
    from hwnas.search.evolution import plot_pareto

    def make():
        ctx.paths.plots.mkdir(parents=True, exist_ok=True)
        return plot_pareto(result, ctx.paths.plots / f"pareto_{target_ms:g}ms.png",
                           f"{ctx.space.name} on {ctx.cfg.name}, target {target_ms:g} ms",
                           measured.median_ms if measured else None)

    return _plot_or_warn(make, "the Pareto plot")


