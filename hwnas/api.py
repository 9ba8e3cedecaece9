"""The Python API behind the CLI: every command is one call here, with explicit arguments.

The pieces (space, device config, table, records, profiler, predictor, search) are passed
around as values; nothing is global. A typical session::

    from hwnas import api
    res = api.search("local-cpu", target_ms=8.0, seed=0)
    print(res.result.best.arch, res.result.best.latency_ms, res.measured.median_ms)
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np

from hwnas.device_configs import DeviceConfig, load_device
from hwnas.errors import DeviceError, HwnasError, Interrupted, MissingKeysError, TableError
from hwnas.home import DevicePaths, check_folder, device_paths, export_cache, hwnas_home
from hwnas.latency.importers import IMPORTERS
from hwnas.latency.records import Records
from hwnas.latency.sampling import stratified_sample
from hwnas.latency.stats import Stats
from hwnas.latency.table import LatencyTable
from hwnas.predictors.lut import MIN_CALIBRATION, LUTPredictor
from hwnas.search.evolution import EvolutionConfig, MacsObjective, SearchResult, evolve
from hwnas.spaces import SearchSpace, get_space

log = logging.getLogger(__name__)
CALIBRATION_SUBNETS = 12


@dataclass(frozen=True)
class Context:
    """Everything a command needs about one device, resolved once."""

    cfg: DeviceConfig
    space: SearchSpace
    paths: DevicePaths
    home: Path | None = None

    @cached_property  # reading a phone's table is not free; a command asks this many times
    def live(self) -> bool:
        """Whether hwnas measures this device itself. Phones are live (adb), but a phone whose
        table came from elsewhere (nn-Meter's, imported: no measuring protocol in its meta) is
        used as imported: nothing is profiled or measured on the phone behind the user's back.
        """
        if self.cfg.profiler == "imported":
            return False
        if self.cfg.profiler == "adb" and self.paths.table.exists():
            return bool(LatencyTable.load(self.paths.table, self.cfg.name).meta.get("protocol"))
        return True


def context(device: str, space: str = "elasticvit", resolutions: Sequence[int] | None = None,
            home: Path | None = None, **overrides) -> Context:
    cfg = load_device(device)
    if overrides:
        cfg = cfg.with_overrides(**overrides)
    res = tuple(resolutions or ()) or (cfg.resolutions if space == "elasticvit" else ())
    paths = device_paths(device, home, cfg.batch, cfg.precision)
    check_folder(paths.root)  # HWNAS_HOME or the device's folder being a file: say so now
    return Context(cfg, get_space(space, res or None), paths, home)


def load_table(ctx: Context) -> LatencyTable:
    if not ctx.paths.table.exists():
        hint = ("run 'hwnas profile --device %s'" % ctx.cfg.name if ctx.live
                else "import one with 'hwnas import'")
        if ctx.live and ctx.cfg.source:  # a phone nn-Meter measured: its table can be imported
            hint += f", or import one with 'hwnas import' ({ctx.cfg.source})"
        raise TableError(f"no latency table for {ctx.cfg.name} at {ctx.paths.table}; {hint}")
    return LatencyTable.load(ctx.paths.table, ctx.cfg.name)


# --- profiling and measuring -----------------------------------------------------------------
@contextlib.contextmanager
def _profiler(ctx: Context, serials: tuple[str, ...] = ()):
    """The device's profiler, entered, while this process holds the measuring lock of the
    hardware it times on (another process measuring there makes this one wait)."""
    from hwnas.locks import measuring, measuring_resources
    from hwnas.profilers import make_profiler

    check_folder(export_cache(ctx.home), write=True)  # exports go there: say so before timing
    prof = make_profiler(ctx.cfg, export_cache(ctx.home), serials=serials)
    with measuring(ctx.home or hwnas_home(),
                   measuring_resources(ctx.cfg.profiler, serials, ctx.cfg.serial)), prof as p:
        yield p


def _check_budget(budget) -> None:
    if budget is not None and not (isinstance(budget, (int, float)) and 0 < budget <= 1):
        raise HwnasError(f"budget must be a fraction in (0, 1], got {budget}")


def profile(ctx: Context, fresh: bool = False, progress: bool = True,
            serials: tuple[str, ...] = (), budget: float | None = None) -> LatencyTable:
    """Measure the ops of the space at its resolutions that the table lacks (resumable).

    With ``budget`` (a fraction), only that share of the ops is measured, chosen for coverage
    and then where kernel regressors are least sure; ``hwnas fit --kind kernel`` fills the rest.
    """
    from hwnas.predictors.kernel import select_ops
    from hwnas.profilers.run import profile_ops

    # everything is checked before anything on disk is touched; --fresh moves the old table
    # aside (a timestamped backup) only when the new one is first saved
    _check_budget(budget)
    check_folder(ctx.paths.root, write=True)
    if not fresh and ctx.paths.table.exists():
        LatencyTable.load(ctx.paths.table, ctx.cfg.name)  # unreadable or another device's
    ops = [op for r in ctx.space.resolutions for op in ctx.space.enumerate_ops(r)]
    rounds = [0]  # profile_ops calls finished (the budget path makes several)
    try:
        with _profiler(ctx, serials) as prof:
            def run(subset):
                table = profile_ops(prof, subset, ctx.paths.table, fresh=fresh and not rounds[0],
                                    sentinel_every=ctx.cfg.sentinel_every,
                                    drift_tolerance=ctx.cfg.drift_tolerance, progress=progress)
                rounds[0] += 1
                return table

            if budget is None:
                table = run(ops)
            else:
                select_ops(ops, budget, lambda subset: run(subset).medians())
                table = LatencyTable.load(ctx.paths.table)
                table.meta["budget"] = {"fraction": budget, "measured": len(table),
                                        "of": len({o.key for o in ops})}
    except Interrupted:
        raise  # the driver says what it saved
    except KeyboardInterrupt:  # waiting for the CPU, opening the profiler, between rounds
        raise Interrupted(f"what this run measured is saved in {ctx.paths.table}; rerun to "
                          f"resume" if rounds[0] else "nothing was measured by this run") from None
    done = set(table.meta.get("resolutions", [])) | set(ctx.space.resolutions)
    table.meta["resolutions"] = sorted(done)
    table.save_merged(ctx.paths.table)
    return table


def measure(ctx: Context, archs: Sequence | None = None, sample: int = 0, passes: int = 1,
            seed: int = 0, progress: bool = True) -> Records:
    """Measure whole subnets end to end into the device's records file (resumable).

    With ``sample``, picks that many subnets stratified over the latency range (the LUT sum if
    the table covers the space, else MACs). Each pass over all subnets is a separate set of
    sessions, so passes give independent measurements (the noise floor).
    """
    from tqdm import tqdm

    for name, value, low in (("passes", passes, 1), ("sample", sample, 0), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise HwnasError(f"{name} must be an integer >= {low}, got {value!r}")
    check_folder(ctx.paths.root, write=True)  # measurements that cannot be saved are lost
    Records.load_or_new(ctx.paths.records, ctx.cfg.name)  # a corrupt file fails now, not later
    todo = list(archs or [])
    if sample:
        todo += stratified_sample(ctx.space, sample, np.random.default_rng(seed),
                                  _cheap_estimate(ctx))
    done = 0
    try:
        with _profiler(ctx) as prof:
            # read now, under the measuring lock: what a process that held it before measured
            records = Records.load_or_new(ctx.paths.records, ctx.cfg.name)
            records.meta.update(prof.meta())
            jobs = [(p, a) for p in range(passes) for a in todo]
            for p, arch in tqdm(jobs, desc=f"measuring on {ctx.cfg.name}", unit="net",
                                disable=not progress, leave=False):
                rec = records.find(arch.to_dict())
                if rec is not None and len(rec.passes) > p:
                    continue  # measured by an earlier, interrupted run
                stats = prof.measure_model(ctx.space.build_model(arch),
                                           ctx.space.input_shape(arch))
                records.add(arch.to_dict(), stats)
                records.save(ctx.paths.records)  # merges what others saved meanwhile
                done += 1
    except KeyboardInterrupt:  # also while waiting for the CPU, or opening the profiler
        raise Interrupted(
            f"the {done} subnet measurement(s) made by this run are saved in "
            f"{ctx.paths.records}; rerun to resume" if done else
            "nothing was measured by this run") from None
    return records


def _cheap_estimate(ctx: Context):
    if ctx.paths.table.exists():
        pred = LUTPredictor(load_table(ctx), ctx.space, calibrate=False)
        try:
            pred.predict_raw([ctx.space.smallest(r) for r in ctx.space.resolutions])
            return pred.predict_raw
        except MissingKeysError:
            pass
    return lambda archs: np.array([ctx.space.macs(a) for a in archs], dtype=float)


def measure_arch(ctx: Context, arch, passes: int = 3) -> Stats:
    """Pooled end-to-end latency of one subnet: the median over passes of per-pass medians."""
    with _profiler(ctx) as prof:
        runs = [prof.measure_model(ctx.space.build_model(arch), ctx.space.input_shape(arch))
                for _ in range(passes)]
    med = [s.median_ms for s in runs]
    return Stats.from_samples(med) if passes > 1 else runs[0]


# --- importing -------------------------------------------------------------------------------
def import_table(fmt: str, path: str | Path, device: str, home: Path | None = None,
                 force: bool = False) -> LatencyTable:
    """Import a foreign table as ``device``'s. An existing table is replaced only with
    ``force``, and then kept as a timestamped backup (named in ``meta["replaced"]``)."""
    from hwnas.latency.safeio import backup, dump_pickle
    from hwnas.locks import folder_lock

    if fmt not in IMPORTERS:
        raise HwnasError(f"unknown import format {fmt!r}; known: {', '.join(IMPORTERS)}")
    cfg = load_device(device)
    dest = device_paths(device, home, cfg.batch, cfg.precision).table
    check_folder(dest.parent, write=True)
    if dest.exists() and not force:  # said before the file is read, and again under the lock
        raise TableError(_existing_table(dest, device))
    table = IMPORTERS[fmt](path, cfg)
    with folder_lock(dest.parent):
        if dest.is_dir():
            raise TableError(f"{dest} is a directory, not a table file")
        if dest.exists():
            if not force:
                raise TableError(_existing_table(dest, device))
            old = _describe_table(dest)
            table.meta["replaced"] = {"backup": str(backup(dest)), "was": old}
        dump_pickle(dest, table.to_obj())
    return table


def _describe_table(path: Path) -> str:
    try:
        t = LatencyTable.load(path)
    except TableError:
        return "an unreadable table"
    how = t.meta.get("source_format") or t.meta.get("runtime") or "unknown origin"
    return f"{len(t)} entries, {how}"


def _existing_table(path: Path, device: str) -> str:
    return (f"{device} already has a latency table ({_describe_table(path)}) at {path}; "
            f"pass --force to replace it (the old one is kept as a backup)")


# --- predicting ------------------------------------------------------------------------------
def calibration_set(ctx: Context, table: LatencyTable) -> tuple[list, np.ndarray]:
    """Recorded subnets of this space and these resolutions that the table fully covers."""
    if not ctx.paths.records.exists():
        return [], np.empty(0)
    archs, ys = [], []
    for rec in Records.load(ctx.paths.records, ctx.cfg.name).records:
        # no name check: presets (vit-autoformer-t, ...) share their family's arch type ("vit"),
        # so the space's own validation decides what belongs to it
        try:
            arch = ctx.space.arch_from_obj(rec.arch)
        except HwnasError:
            continue  # another space, another resolution or a wider space
        if not table.missing(ctx.space.op_keys(arch)):
            archs.append(arch)
            ys.append(rec.pooled_ms)
    return archs, np.asarray(ys)


def lut_predictor(ctx: Context, table: LatencyTable | None = None) -> LUTPredictor:
    """The device's LUT predictor, calibrated on its records when there are enough."""
    table = table or load_table(ctx)
    archs, ys = calibration_set(ctx, table)
    pred = LUTPredictor(table, ctx.space, calibrate=len(ys) >= MIN_CALIBRATION)
    return pred.fit(archs, ys) if len(ys) >= MIN_CALIBRATION else pred


def predict(ctx: Context, archs: Sequence) -> np.ndarray:
    return lut_predictor(ctx).predict([ctx.space.validate(a) for a in archs])


def model_context(device: str, model: str, home: Path | None = None):
    """A Context whose space is the named model's own (hwnas.models), plus the model."""
    from hwnas.models import named_model

    m = named_model(model)
    cfg = load_device(device)
    paths = device_paths(device, home, cfg.batch, cfg.precision)
    check_folder(paths.root)
    return Context(cfg, m.space, paths, home), m


def profile_model(device: str, model: str, home: Path | None = None,
                  progress: bool = True, **overrides) -> LatencyTable:
    """Measure the blocks of one named model that the device's table lacks (``overrides``:
    the device config's warmup, runs, ... as for ``context``)."""
    from dataclasses import replace

    from hwnas.profilers.run import profile_ops

    ctx, m = model_context(device, model, home)
    if any(v is not None for v in overrides.values()):
        cfg = ctx.cfg.with_overrides(**overrides)
        ctx = replace(ctx, cfg=cfg, paths=device_paths(device, home, cfg.batch, cfg.precision))
    check_folder(ctx.paths.root, write=True)
    if ctx.paths.table.exists():
        LatencyTable.load(ctx.paths.table, ctx.cfg.name)  # unreadable or another device's
    try:
        with _profiler(ctx) as prof:
            return profile_ops(prof, m.ops(), ctx.paths.table,
                               sentinel_every=ctx.cfg.sentinel_every,
                               drift_tolerance=ctx.cfg.drift_tolerance, progress=progress)
    except Interrupted:
        raise
    except KeyboardInterrupt:  # before the driver measured anything
        raise Interrupted("nothing was measured by this run") from None


# --- exporting -------------------------------------------------------------------------------
def export(space: SearchSpace, arch, fmt: str, out: str | Path) -> Path:
    if fmt != "onnx":
        raise HwnasError(f"unknown export format {fmt!r}; supported: onnx")
    from hwnas.profilers.export import export_onnx

    return export_onnx(space.build_model(arch), space.input_shape(arch), out)


# --- the main job ----------------------------------------------------------------------------
@dataclass
class SearchOutcome:
    result: SearchResult
    predictor: LUTPredictor
    measured: Stats | None  # re-measured end to end on the device, when it is local
    plot: Path | None = None  # the Pareto front PNG


def ensure_ready(ctx: Context, progress: bool = True) -> LatencyTable:
    """Profile what the table lacks and measure a few subnets for calibration (live devices)."""
    if not ctx.live:
        table = load_table(ctx)
        lacking = {r: table.missing(op.key for op in ctx.space.enumerate_ops(r))
                   for r in ctx.space.resolutions}
        if any(lacking.values()):  # every search would stop at the first subnet priced there
            full = [r for r, m in lacking.items() if not m]
            n = sum(len(m) for m in lacking.values())
            hint = (f"it covers resolution(s) {full}: pass -r {full[0]}" if full else
                    "it covers none of them fully")
            raise TableError(f"{ctx.cfg.name}'s table lacks {n} op key(s) of {ctx.space.name} "
                             f"at resolution(s) {[r for r, m in lacking.items() if m]}; {hint}")
        return table
    needed = [op.key for r in ctx.space.resolutions for op in ctx.space.enumerate_ops(r)]
    table = load_table(ctx) if ctx.paths.table.exists() else None
    if table is None or table.missing(needed):
        table = profile(ctx, progress=progress)
    if len(calibration_set(ctx, table)[1]) >= CALIBRATION_SUBNETS:
        return table
    if not _can_save(ctx):
        log.warning("%s is read-only: no subnets are measured to calibrate the predictor "
                    "(they could not be saved); predictions are uncalibrated", ctx.paths.root)
        return table
    try:
        measure(ctx, sample=CALIBRATION_SUBNETS, seed=12345, progress=progress)
    except DeviceError as e:
        if not _imported(table):
            raise
        # an imported table (TF-NAS's titan-rtx) prices the space without the device
        log.warning("%s; using the imported table uncalibrated", e)
    return table


VERIFY_TOP, VERIFY_ROUNDS = 4, 3


def _verified_pick(ctx: Context, pred: LUTPredictor, result: SearchResult, seed: int,
                   cfg: EvolutionConfig, progress: bool) -> SearchResult:
    """Measure the best few candidates and keep the best one that really meets the target.

    Search maximises capacity under *predicted* latency, so among the many candidates close to
    the target it favours those the predictor underestimates (the winner's curse): on local-cpu
    the picks measured 6-15% over target with a predictor whose error is unbiased on random
    subnets. Where the device is at hand, measuring the top few removes that bias. If none of
    them fits, search again against the target scaled by how far the measured ones were off.
    """
    from dataclasses import replace

    target = result.target_ms
    for round_ in range(VERIFY_ROUNDS):
        top = sorted(result.feasible, key=lambda c: -c.score)[:VERIFY_TOP]
        recs = measure(ctx, [c.arch for c in top], progress=progress)
        real = [recs.find(c.arch.to_dict()).pooled_ms for c in top]
        fits = [c for c, m in zip(top, real) if m <= target]
        if fits:
            return replace(result, best=max(fits, key=lambda c: c.score),
                           objective=result.objective + "; top candidates measured on device")
        ratio = float(np.median([c.latency_ms / m for c, m in zip(top, real)]))
        log.info("round %d: the %d best candidates all measured over %g ms; searching again "
                 "with the target scaled by %.3f", round_, len(top), target, ratio)
        result = replace(evolve(ctx.space, pred.predict, target * ratio,
                                np.random.default_rng(seed + round_ + 1), cfg=cfg),
                         target_ms=target)
    log.warning("no measured candidate met %g ms after %d rounds; reporting the last pick",
                target, VERIFY_ROUNDS)
    return result


def _rescale_widths(ctx: Context, pred: LUTPredictor, result: SearchResult) -> SearchResult:
    """TF-NAS's width elasticity: shrink then re-grow the pick's widths to sit under target."""
    from dataclasses import replace

    from hwnas.search.evolution import Candidate
    from hwnas.spaces.elasticity import elasticity_scale

    if not hasattr(ctx.space, "width_bounds"):
        raise HwnasError(f"--elasticity needs a space with elastic widths (tfnas); "
                         f"{ctx.space.name} has none")
    fit = elasticity_scale(ctx.space, result.best.arch, pred.predict_one, result.target_ms)
    if not fit.feasible or fit.latency_ms > result.target_ms:
        log.warning("width elasticity could not improve the pick; keeping it")
        return result
    score = float(MacsObjective(ctx.space)([fit.arch])[0])
    return replace(result, best=Candidate(fit.arch, fit.latency_ms, score),
                   objective=result.objective + "; widths rescaled by TF-NAS elasticity")


def _imported(table: LatencyTable) -> bool:
    return bool(table.meta.get("source_format"))


def _can_save(ctx: Context) -> bool:
    try:
        check_folder(ctx.paths.root, write=True)
    except DeviceError:
        return False
    return True


def _plot_or_warn(make, what: str):
    """A plot must never cost a result: on any failure, warn and go on without it."""
    try:
        return make()
    except Exception as e:  # noqa: BLE001 - a figure is never worth the result it illustrates
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        log.warning("could not write %s (%s: %s); the result is unaffected", what,
                    getattr(e, "filename", None) or type(e).__name__, reason)
        return None


def search(device: str, target_ms: float, seed: int = 0, space: str = "elasticvit",
           resolutions: Sequence[int] | None = None, remeasure: bool = True,
           progress: bool = True, cfg: EvolutionConfig = EvolutionConfig(),
           home: Path | None = None, elasticity: bool = False) -> SearchOutcome:
    ctx = context(device, space, resolutions, home)
    table = ensure_ready(ctx, progress)
    pred = lut_predictor(ctx, table)
    result = evolve(ctx.space, pred.predict, target_ms, np.random.default_rng(seed), cfg=cfg)
    if elasticity:
        result = _rescale_widths(ctx, pred, result)
    measured = None
    if remeasure and ctx.live and not _can_save(ctx):
        log.warning("%s is read-only: the pick is not re-measured (its measurements could not "
                    "be saved)", ctx.paths.root)
        remeasure = False
    if remeasure and ctx.live:
        try:
            if not elasticity:
                result = _verified_pick(ctx, pred, result, seed, cfg, progress)
            measured = measure_arch(ctx, result.best.arch)
        except DeviceError as e:
            if not _imported(table):
                raise
            log.warning("%s; the chosen subnet is not re-measured", e)
    from hwnas.search.evolution import plot_pareto

    def make():
        ctx.paths.plots.mkdir(parents=True, exist_ok=True)
        return plot_pareto(result, ctx.paths.plots / f"pareto_{target_ms:g}ms.png",
                           f"{ctx.space.name} on {device}, target {target_ms:g} ms",
                           measured.median_ms if measured else None)

    return SearchOutcome(result, pred, measured, _plot_or_warn(make, "the Pareto plot"))


# --- predictors: fit and evaluate against end-to-end records ---------------------------------
def _dataset(ctx: Context, records_path: str | Path | None):
    from hwnas.predictors.fitting import load_dataset

    recs = Records.load(records_path or ctx.paths.records, ctx.cfg.name)
    return load_dataset(ctx.space, recs)


def fit(ctx: Context, kind: str, model: str | None = None,
        records_path: str | Path | None = None, test_fraction: float = 0.5, seed: int = 0):
    """Fit a predictor of ``kind`` on the training share of the records and save it."""
    from hwnas.predictors.fitting import fit_and_save

    if not (isinstance(test_fraction, (int, float)) and 0 <= test_fraction < 1):
        raise HwnasError(f"test fraction must be in [0, 1), got {test_fraction}")
    check_folder(ctx.paths.predictor(kind).parent, write=True)
    data = _dataset(ctx, records_path)
    table = load_table(ctx) if kind not in ("flops", "flops+blocks") else None
    return fit_and_save(ctx.paths.predictor(kind), kind, ctx.cfg.name, ctx.space, table, data,
                        model, test_fraction, seed)


@dataclass
class Evaluation:
    kind: str
    scores: dict
    noise: dict | None
    plots: list


def evaluate(ctx: Context, kind: str, records_path: str | Path | None = None,
             plots_dir: Path | None = None) -> Evaluation:
    """Score a fitted predictor on the records it was not trained on."""
    from hwnas.predictors import metrics
    from hwnas.predictors.fitting import arch_key, load_fitted, noise_floor, plot

    data = _dataset(ctx, records_path)
    table = load_table(ctx) if kind not in ("flops", "flops+blocks") else None
    if kind == "lut-raw":
        from hwnas.predictors.fitting import restore

        pred, seen = restore(kind, ctx.space, table, {}), set()
    else:
        pred, seen = load_fitted(ctx.paths.predictor(kind), kind, ctx.cfg.name, ctx.space, table)
    held = data.subset([arch_key(a.to_dict()) not in seen for a in data.archs])
    if len(held.archs) < 5:
        raise HwnasError(f"only {len(held.archs)} held-out subnets to score on; measure more "
                         f"with 'hwnas measure --sample N'")
    p = pred.predict(held.archs)
    pngs = _plot_or_warn(lambda: plot(p, held.pooled_ms, f"{kind} on {ctx.cfg.name}",
                                      plots_dir or ctx.paths.plots, kind.replace("+", "_")),
                         "the evaluation plots") or []
    return Evaluation(kind, metrics.score(p, held.pooled_ms), noise_floor(held), pngs)
