"""The main job: make the device ready (profile, calibrate), search under the latency target,
land on it by measuring, and re-measure the pick."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from hwnas.arch_key import arch_key
from hwnas.errors import (DeviceError, HwnasError, TableError)
from hwnas.latency.stats import Stats
from hwnas.latency.table import LatencyTable
from hwnas.predictors.select import Chosen
from hwnas.search.evolution import EvolutionConfig, MacsObjective, SearchResult, evolve
from hwnas.search.landing import Landing, LandingConfig

from hwnas.api.device import (Context, context, load_table, session, _imported, _can_save,
                              _plot_or_warn)
from hwnas.api.measuring import profile, measure, measure_passes
from hwnas.api.predicting import (calibration_set, _space_ops_missing, predictor, _budget_error,
                                  budget_summary, profile_command)

log = logging.getLogger(__name__)
CALIBRATION_SUBNETS = 12  # the LUT's calibration (a complete table: --full, or after profile)
# The first search on a fresh home profiles this share of the ops and lets kernel regressors
# price the rest (BENCHMARKS.md, "Accuracy against profiling cost": 20% + rf fill predicts
# 98.1% of held-out subnets within ±10%). The landing measures the pick anyway, so the fill only
# has to steer the search near the target; 'hwnas profile' completes the table later.
FIRST_BUDGET = 0.2
# ... and calibrates the fill's sum by one factor on this many subnets near the target (the
# search's own best picks under it, measured once each); the landing refines it from there
FIRST_CALIBRATION = 4


class Phases(dict):
    """Seconds spent per phase of the main job (profile, calibration, fit, search, landing,
    remeasure), for the output: what the first minutes were spent on."""

    @contextlib.contextmanager
    def timed(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - t0


# --- the main job ----------------------------------------------------------------------------
@dataclass
class SearchOutcome:
    result: SearchResult
    predictor: Chosen
    # measured end to end on the device, when it is local: every pass made of the pick
    measured: Stats | None
    plot: Path | None = None  # the Pareto front PNG
    landing: Landing | None = None  # the candidates measured while landing on the target
    profiler_sessions: int | None = None  # profilers the search opened (its session's: 0 or 1)
    table: dict | None = None  # a budgeted table: ops measured and predicted (budget_summary)
    phases_s: dict = field(default_factory=dict)  # seconds per phase (Phases)
    remeasured: Stats | None = None  # the pick's 3 fresh passes alone, after the landing


def ensure_ready(ctx: Context, progress: bool = True, kind: str = "auto", full: bool = False,
                 phases: Phases | None = None) -> LatencyTable:
    """Profile what the table lacks (live devices), unless it was profiled on a budget: then
    kernel regressors price the rest, and nothing more is profiled.

    On a fresh home (no table) the first search profiles a budget (``FIRST_BUDGET``) of the
    ops for ``auto`` and ``kernel``; ``full`` profiles every op instead (and completes a
    budgeted table), as ``hwnas profile`` does. A device with a few-shot predictor of the space
    (``hwnas adapt``, ``fit --kind fewshot``) needs no table of it: None, or the table as it
    is, and nothing is profiled."""
    phases = Phases() if phases is None else phases
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
            full_res = [r for r, m in lacking.items() if not m]
            hint = (f"it covers resolution(s) {full_res}: pass -r {full_res[0]}" if full_res else
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
        budget = (None if full or kind not in ("auto", "kernel") or not _fill_can_learn(ctx)
                  else FIRST_BUDGET)
        if budget:
            if ctx.session is not None:
                # open the profiler first: an unreachable device is one line, not this line
                # and then the error
                ctx.session.profiler()
            log.warning("first search on %s: profiling %d%% of the ops; kernel regressors "
                        "predict the rest ('%s' completes the table later, 'search --full' "
                        "profiles every op first)", ctx.cfg.name, round(100 * budget),
                        profile_command(ctx))
        with phases.timed("profile"):
            return profile(ctx, progress=progress, budget=budget)
    budget = table.meta.get("budget") or {}
    if budget.get("unfinished") and not full and kind in ("auto", "kernel"):
        # the first search (or 'profile --budget') was stopped while profiling: resume it
        log.warning("resuming the interrupted profile of %s on a budget: %d of the %d ops "
                    "measured so far, %d%% wanted", ctx.cfg.name, len(table), budget["of"],
                    round(100 * budget["fraction"]))
        with phases.timed("profile"):
            return profile(ctx, progress=progress, budget=budget["fraction"])
    if _space_ops_missing(ctx, table):
        budgeted = bool(budget)
        if full or not budgeted:
            with phases.timed("profile"):  # an interrupted profile, or --full: complete it
                return profile(ctx, progress=progress)
        fill = [k for k in ("kernel", "e2e") if ctx.predictor_path(k).exists()]
        if kind not in ("auto", "kernel") and not (fill and kind != "lut"):
            raise _budget_error(ctx, table)
    return table


def _fill_can_learn(ctx: Context) -> bool:
    """Whether kernel regressors can learn every op kind of the space (a user's space whose
    ops have no shape features is profiled in full instead)."""
    from hwnas.ops import parse_key
    from hwnas.predictors.kernel import _features

    first = {}
    for r in ctx.space.resolutions:
        for op in ctx.space.enumerate_ops(r):
            first.setdefault(op.kind, op.key)
    try:
        for key in first.values():
            _features([parse_key(key)])
    except Exception as e:  # noqa: BLE001 - a user's op class can fail in any way here
        log.info("kernel regressors cannot learn %s's ops (%s): profiling every op",
                 ctx.space.name, e)
        return False
    return True


def _fill_ahead(ctx: Context, kind: str, table: LatencyTable | None) -> bool:
    """Whether ``predictor`` will fit the kernel fill of a budgeted table on the fly (no fitted
    predictor file takes its place)."""
    from hwnas.predictors.select import FITTED

    if kind not in ("auto", "kernel") or table is None or not table.meta.get("budget"):
        return False
    files = ("kernel",) if kind == "kernel" else FITTED
    return (not any(ctx.predictor_path(k).exists() for k in files)
            and bool(_space_ops_missing(ctx, table)))


def ready_predictor(ctx: Context, kind: str, table: LatencyTable,
                    progress: bool = True, phases: Phases | None = None,
                    target_ms: float | None = None, seed: int = 0,
                    cfg: EvolutionConfig = EvolutionConfig()) -> Chosen:
    """The predictor to use, calibrated on subnets measured first (live devices): the LUT on
    ``CALIBRATION_SUBNETS`` stratified over the space, the kernel fill of a budgeted table on
    ``FIRST_CALIBRATION`` subnets near ``target_ms`` (stratified when there is no target)."""
    from hwnas.api.predicting import _dataset

    phases = Phases() if phases is None else phases
    if ctx.live and _fill_ahead(ctx, kind, table):
        with phases.timed("fit"):
            chosen = predictor(ctx, kind, table)
        have = len(_dataset(ctx, None, missing_ok=True).archs)
        with phases.timed("search"):  # an evolution: the search's own work, done early
            near = (_near_target(ctx, chosen, target_ms, FIRST_CALIBRATION, seed, cfg)
                    if target_ms is not None and have < FIRST_CALIBRATION else None)
        if _calibrate(ctx, table, have, FIRST_CALIBRATION, progress, phases, near):
            with phases.timed("fit"):
                chosen = predictor(ctx, kind, table)
        return chosen
    with phases.timed("fit"):
        chosen = predictor(ctx, kind, table)
    if (chosen.kind == "lut" and ctx.live
            and _calibrate(ctx, table, len(calibration_set(ctx, table)[1]),
                           CALIBRATION_SUBNETS, progress, phases)):
        with phases.timed("fit"):
            chosen = predictor(ctx, kind, table)
    return chosen


def _near_target(ctx: Context, chosen: Chosen, target_ms: float, n: int, seed: int,
                 cfg: EvolutionConfig) -> list | None:
    """The ``n`` best subnets the search would pick under ``target_ms`` with the uncalibrated
    kernel fill: where the search will look, so one factor fitted on them is right there.

    The fill's sum is not off by one factor over the whole space: on local-cpu it measured
    x1.21 on 4 subnets stratified over the space but a further x1.14 at 15 ms, so the landing
    spent two rounds finding the bias near the target. None when the target is out of the
    fill's range (the stratified sample then calibrates, and the search says what is
    reachable)."""
    from hwnas.errors import InfeasibleTargetError

    try:
        found = evolve(ctx.space, chosen.predict, target_ms, np.random.default_rng(seed),
                       cfg=cfg)
    except InfeasibleTargetError:
        return None
    picks, seen = [], set()
    for c in sorted(found.feasible, key=lambda c: -c.score):
        key = arch_key(c.arch)
        if key not in seen:
            seen.add(key)
            picks.append(c.arch)
        if len(picks) == n:
            break
    return picks if len(picks) == n else None


def _calibrate(ctx: Context, table: LatencyTable, have: int, want: int, progress: bool,
               phases: Phases, archs: list | None = None) -> bool:
    """Measure ``archs``, else ``want`` stratified subnets, when fewer than ``want`` are
    recorded; whether any were measured."""
    if have >= want:
        return False
    if not _can_save(ctx):
        log.warning("%s is read-only: no subnets are measured to calibrate the predictor "
                    "(they could not be saved); predictions are uncalibrated",
                    ctx.paths.root)
        return False
    try:
        with phases.timed("calibration"):
            if archs:
                measure(ctx, archs=archs, progress=progress)
            else:
                measure(ctx, sample=want, seed=12345, progress=progress)
    except DeviceError as e:
        if not _imported(table):
            raise
        # an imported table (TF-NAS's titan-rtx) prices the space without the device
        log.warning("%s; using the imported table uncalibrated", e)
        return False
    return True


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
           landing: LandingConfig = LandingConfig(), full: bool = False,
           **overrides) -> SearchOutcome:
    """Best subnet under ``target_ms`` on the device.

    On a device hwnas can measure, the search lands on the target: it measures the best
    candidates and corrects itself until one measures within a few percent under the target
    (hwnas.search.landing). Then the pick is re-measured in 3 fresh passes. In a read-only
    HWNAS_HOME nothing is measured (it could not be saved): the search says so and goes on.
    Everything it measures goes through one profiler session (``api.session``).

    On a fresh home the first search profiles ``FIRST_BUDGET`` of the ops and kernel
    regressors price the rest (the outcome's ``table`` says how many of each); ``full``
    profiles every op and calibrates the LUT on ``CALIBRATION_SUBNETS`` subnets first."""
    with session(context(device, space, resolutions, home, **overrides)) as ctx:
        return _search(ctx, target_ms, seed, remeasure, progress, cfg, elasticity,
                       predictor_kind, landing, full)


def _search(ctx: Context, target_ms: float, seed: int, remeasure: bool, progress: bool,
            cfg: EvolutionConfig, elasticity: bool, predictor_kind: str,
            landing: LandingConfig, full: bool = False) -> SearchOutcome:
    from hwnas.search import landing as landing_

    phases = Phases()
    table = ensure_ready(ctx, progress, predictor_kind, full, phases)
    chosen = ready_predictor(ctx, predictor_kind, table, progress, phases, target_ms, seed,
                             cfg)
    measured, remeasured, landed = None, None, None
    made: dict[str, list[float]] = {}  # per-pass ms of every subnet measured, by arch
    if remeasure and ctx.live and not _can_save(ctx):
        log.warning("%s is read-only: the pick is not measured (its measurements could not "
                    "be saved)", ctx.paths.root)
        remeasure = False
    try:
        if remeasure and ctx.live and not elasticity:
            def measure_fn(archs):
                with phases.timed("landing"):
                    per = measure_passes(ctx, archs, passes=landing.passes)
                for arch, ms in zip(archs, per):
                    made.setdefault(arch_key(arch), []).extend(ms)
                return [float(np.median(ms)) for ms in per]

            t0 = time.perf_counter()
            result, landed = landing_.land(ctx.space, chosen.predict, target_ms, seed,
                                           measure_fn, evo=cfg, cfg=landing)
            # the evolution rounds: the landing's time less its measurements
            phases["search"] = (phases.get("search", 0.0) + time.perf_counter() - t0
                                - phases.get("landing", 0.0))
        else:
            with phases.timed("search"):
                result = evolve(ctx.space, chosen.predict, target_ms,
                                np.random.default_rng(seed), cfg=cfg)
        if elasticity:
            result = _rescale_widths(ctx, chosen, result)
        if remeasure and ctx.live:
            with phases.timed("remeasure"):
                fresh = measure_passes(ctx, [result.best.arch], passes=3)[0]
            # One pass of a subnet differs from the next by 1-2% (SD) on local-cpu, most of it
            # the process's own draw (each pass is timed in a process of its own where the
            # profiler can: Profiler.fresh_process), so the pick's latency pools every pass
            # made of it in this run: the landing's 2-4 and these 3 fresh ones (the output
            # says how many).
            measured = Stats.from_samples(made.get(arch_key(result.best.arch), []) + fresh)
            remeasured = Stats.from_samples(fresh)
            if landed is not None:  # the pooled figure has the last word on the landing
                landed.final_ms = measured.median_ms
    except DeviceError as e:
        if not _imported(table):
            raise
        log.warning("%s; the chosen subnet is not measured", e)
        result = evolve(ctx.space, chosen.predict, target_ms, np.random.default_rng(seed),
                        cfg=cfg)
    png = _pareto_png(ctx, result, target_ms, measured)
    summary = budget_summary(ctx, table) if chosen.kind == "kernel" else None
    return SearchOutcome(result, chosen, measured, png, landed,
                         ctx.session.opened if ctx.session is not None else None,
                         summary, dict(phases), remeasured)


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


