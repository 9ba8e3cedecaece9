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
from hwnas.errors import (DeviceError, HwnasError, Interrupted, MissingKeysError,
                          PredictorError, TableError)
from hwnas.home import DevicePaths, check_folder, device_paths, export_cache, hwnas_home
from hwnas.latency.importers import IMPORTERS
from hwnas.latency.records import Pass, Records
from hwnas.latency.sampling import stratified_sample
from hwnas.latency.stats import Stats
from hwnas.latency.table import LatencyTable
from hwnas.predictors.lut import MIN_CALIBRATION, LUTPredictor
from hwnas.predictors.select import Chosen
from hwnas.profilers.reference import REFERENCE_KEY, check_records_reference, same_reference
from hwnas.search.evolution import EvolutionConfig, MacsObjective, SearchResult, evolve
from hwnas.search.landing import Landing, LandingConfig
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
        from hwnas.devices import kind_of

        if not kind_of(self.cfg).live:
            return False
        if self.paths.table.exists():  # a table someone else measured has no protocol of ours
            return bool(LatencyTable.load(self.paths.table, self.cfg.name).meta.get("protocol"))
        return True


def context(device: str, space: str | None = "elasticvit",
            resolutions: Sequence[int] | None = None, home: Path | None = None,
            **overrides) -> Context:
    space = space or "elasticvit"
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
                   measuring_resources(ctx.cfg, serials)), prof as p:
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
                table.meta.pop("budget", None)  # every op measured now: nothing left to predict
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


def reference_scale_ms(ctx: Context, table: LatencyTable | None = None,
                       key: str | None = None) -> float | None:
    """The device's one machine speed: the reference network's ms in its table.

    Drift-free numbers are ratios to the reference; this turns them into ms. The table's is the
    device's scale, so records, tables and predictions agree; a device with records but no
    table yet uses the records' own. ``key`` is the reference the ratios to convert are to
    (default: the one this hwnas times against): a table timed against another reference has
    another unit, so then None (the ratios' own reference speed), with a warning."""
    if table is None and ctx.paths.table.exists():
        table = load_table(ctx)
    if table is None or not table.reference_ms:
        return None
    table_key = table.reference.get("key")
    if not same_reference(table_key, key or REFERENCE_KEY):
        log.warning("%s: the table was timed against reference %s, not %s: measurements are "
                    "put in ms at their own reference speed; re-profile the table (--fresh) "
                    "for one drift-free scale", ctx.cfg.name, table_key, key or REFERENCE_KEY)
        return None
    return table.reference_ms


def load_records(ctx: Context, path: str | Path | None = None,
                 table: LatencyTable | None = None, missing_ok: bool = False) -> Records:
    """The device's records (or those at ``path``), drift-free passes at the device's scale."""
    path = Path(path or ctx.paths.records)
    recs = (Records.load_or_new(path, ctx.cfg.name) if missing_ok
            else Records.load(path, ctx.cfg.name))
    return recs.rescale(reference_scale_ms(ctx, table, recs.reference_key))


def _measure_pass(prof, space: SearchSpace, arch) -> Pass:
    """One end-to-end measurement of a subnet, drift-free when the profiler can."""
    from hwnas.profilers import Measurement

    module, shape = space.build_model(arch), space.input_shape(arch)
    full = getattr(prof, "measure_model_full", None)
    m = full(module, shape) if full is not None else Measurement(prof.measure_model(module, shape))
    return Pass(m.stats, m.ratio, m.reference_ms)


def measure(ctx: Context, archs: Sequence | None = None, sample: int = 0, passes: int = 1,
            seed: int = 0, progress: bool = True) -> Records:
    """Measure whole subnets end to end into the device's records file (resumable).

    With ``sample``, picks that many subnets stratified over the latency range (the LUT sum if
    the table covers the space, else MACs). Each pass over all subnets is a separate set of
    sessions, so passes give independent measurements (the noise floor).

    Every pass visits the subnets in its own random order: measured smallest to largest, the
    machine's drift over the run would look like a size effect, and a calibration would learn
    it. Each subnet is timed beside the reference network (drift-free) where the profiler can.
    """
    from tqdm import tqdm

    for name, value, low in (("passes", passes, 1), ("sample", sample, 0), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise HwnasError(f"{name} must be an integer >= {low}, got {value!r}")
    check_folder(ctx.paths.root, write=True)  # measurements that cannot be saved are lost
    # a corrupt file, or one timed against another reference, fails now, not later
    check_records_reference(Records.load_or_new(ctx.paths.records, ctx.cfg.name),
                            ctx.paths.records)
    todo = list(archs or [])
    if sample:
        todo += stratified_sample(ctx.space, sample, np.random.default_rng(seed),
                                  _cheap_estimate(ctx))
    rng = np.random.default_rng([seed, 7919])  # the order: its own stream, not the sample's
    jobs = [(p, todo[i]) for p in range(passes) for i in rng.permutation(len(todo))]
    done = 0
    try:
        with _profiler(ctx) as prof:
            # read now, under the measuring lock: what a process that held it before measured
            records = Records.load_or_new(ctx.paths.records, ctx.cfg.name)
            check_records_reference(records, ctx.paths.records)
            records.meta.update(prof.meta(), protocol=prof.protocol())
            for p, arch in tqdm(jobs, desc=f"measuring on {ctx.cfg.name}", unit="net",
                                disable=not progress, leave=False):
                rec = records.find(arch.to_dict())
                if rec is not None and len(rec.passes) > p:
                    continue  # measured by an earlier, interrupted run
                records.add(arch.to_dict(), _measure_pass(prof, ctx.space, arch))
                records.save(ctx.paths.records)  # merges what others saved meanwhile
                done += 1
    except KeyboardInterrupt:  # also while waiting for the CPU, or opening the profiler
        raise Interrupted(
            f"the {done} subnet measurement(s) made by this run are saved in "
            f"{ctx.paths.records}; rerun to resume" if done else
            "nothing was measured by this run") from None
    return records.rescale(reference_scale_ms(ctx))


def _cheap_estimate(ctx: Context):
    if ctx.paths.table.exists():
        pred = LUTPredictor(load_table(ctx), ctx.space, calibrate=False)
        try:
            pred.predict_raw([ctx.space.smallest(r) for r in ctx.space.resolutions])
            return pred.predict_raw
        except MissingKeysError:
            pass
    return lambda archs: np.array([ctx.space.macs(a) for a in archs], dtype=float)


def measure_arch(ctx: Context, arch, passes: int = 3, record: bool = True) -> Stats:
    """Pooled end-to-end latency of one subnet over ``passes`` independent passes.

    Its median is the median of the per-pass medians, drift-free at the device's scale where
    the profiler times beside the reference. The passes go into the records (``record``), so
    nothing measured is thrown away."""
    recs = measure_archs(ctx, [arch], passes, record)
    return recs[0]


def measure_archs(ctx: Context, archs: Sequence, passes: int = 2,
                  record: bool = True) -> list[Stats]:
    """``measure_arch`` for several subnets, interleaved: pass 1 of every subnet (in a random
    order), then pass 2, so that a slow minute does not fall on one subnet's passes."""
    scale = reference_scale_ms(ctx)
    rng = np.random.default_rng(len(archs) * 1000 + passes)
    got: list[list[Pass]] = [[] for _ in archs]
    if record:  # a corrupt file, or one timed against another reference, fails now
        check_records_reference(Records.load_or_new(ctx.paths.records, ctx.cfg.name),
                                ctx.paths.records)

    def keep() -> int:
        """Record every pass made so far (merged with what others saved meanwhile)."""
        n = sum(len(ps) for ps in got)
        if record and n:
            records = Records.load_or_new(ctx.paths.records, ctx.cfg.name)
            for arch, ps in zip(archs, got):
                for p in ps:
                    records.add(arch.to_dict(), p)
            records.meta.setdefault("device", ctx.cfg.name)
            if any(p.ratio is not None for ps in got for p in ps):  # name the passes' unit
                records.meta.setdefault("protocol", {}).setdefault("reference", REFERENCE_KEY)
            records.save(ctx.paths.records)
        return n if record else 0

    try:
        with _profiler(ctx) as prof:
            for _ in range(passes):
                for i in rng.permutation(len(archs)):
                    got[i].append(_measure_pass(prof, ctx.space, archs[i]))
    except KeyboardInterrupt:  # the passes finished before Ctrl-C are not thrown away
        n = keep()
        raise Interrupted(f"the {n} subnet measurement(s) made by this run are saved in "
                          f"{ctx.paths.records}" if n else
                          "nothing measured by this run was saved") from None
    keep()
    if scale is None:  # no table yet: the passes' own reference speed
        refs = [p.reference_ms for ps in got for p in ps if p.reference_ms]
        scale = float(np.median(refs)) if refs else None
    return [_pooled(ps, scale) for ps in got]


def _pooled(passes: list[Pass], scale_ms: float | None) -> Stats:
    """One pass: its per-call spread; several: the spread of their medians."""
    if len(passes) == 1:
        p = passes[0]
        return p.ratio.to_ms(scale_ms) if p.ratio is not None and scale_ms else p.timed
    return Stats.from_samples([p.ms(scale_ms) for p in passes])


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
    for rec in load_records(ctx, table=table).records:
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


def _lut_chosen(ctx: Context, table: LatencyTable) -> Chosen:
    pred = lut_predictor(ctx, table)
    cal = (f"x{pred.coef_:.3f} calibrated on {pred.n_calibration_} measured subnets"
           if pred.n_calibration_ else "uncalibrated")
    return Chosen(pred, "lut", cal)


def _space_ops_missing(ctx: Context, table: LatencyTable, archs=None) -> list[str]:
    """Op keys the table lacks: of ``archs`` when given, else of the whole space."""
    if archs is not None:
        return table.missing({k for a in archs for k in ctx.space.op_keys(a)})
    return table.missing({op.key for r in ctx.space.resolutions
                          for op in ctx.space.enumerate_ops(r)})


def arch_context(ctx: Context, archs: Sequence) -> Context:
    """``ctx`` narrowed to the resolutions of ``archs`` (what a fitted predictor must cover)."""
    from dataclasses import replace

    res = sorted({ctx.space.input_shape(a)[-1] for a in archs})
    try:
        return replace(ctx, space=get_space(ctx.space.name, res))
    except HwnasError:  # a named model's own space, or a space that cannot be narrowed so
        return ctx


def predictor(ctx: Context, kind: str = "auto", table: LatencyTable | None = None,
              archs: Sequence | None = None) -> Chosen:
    """The predictor ``kind`` for this device and space (see hwnas.predictors.select).

    ``archs``: the subnets to predict, when known (``hwnas predict``): then the LUT needs to
    cover only their ops, not the whole space's."""
    from hwnas.predictors.select import CHOICES, FITTED, best_fitted, load_kind

    if kind not in CHOICES:
        raise PredictorError(f"unknown predictor {kind!r}; one of {', '.join(CHOICES)}")
    table = table or load_table(ctx)
    covered = not _space_ops_missing(ctx, table, archs)
    if kind in ("kernel", "e2e"):
        return load_kind(kind, ctx.paths.predictor(kind), ctx.cfg.name, ctx.space, table)
    if kind == "auto":
        # a fitted LUT cannot price ops a budgeted table lacks; the kernel fill can
        paths = {k: ctx.paths.predictor(k) for k in FITTED if covered or k != "lut"}
        chosen = best_fitted(paths, ctx.cfg.name, ctx.space, table)
        if chosen is not None:
            return chosen
    if not covered:
        raise _budget_error(ctx, table, archs)
    return _lut_chosen(ctx, table)


def _budget_error(ctx: Context, table: LatencyTable, archs=None) -> HwnasError:
    """What to say when the table lacks ops of the space and nothing fills them."""
    missing = _space_ops_missing(ctx, table, archs)
    budget = table.meta.get("budget")
    how = (f"it was profiled with --budget {budget['fraction']:g} ({budget['measured']} of "
           f"{budget['of']} ops); fill the rest with kernel regressors ('hwnas fit --device "
           f"{ctx.cfg.name} --kind kernel', then --predictor kernel or auto)" if budget else
           f"profile them ('hwnas profile --device {ctx.cfg.name}') or fill them with kernel "
           f"regressors ('hwnas fit --device {ctx.cfg.name} --kind kernel')")
    return MissingKeysError(missing, f"the latency table of {ctx.cfg.name}").with_hint(how)


def predict(ctx: Context, archs: Sequence, kind: str = "auto") -> np.ndarray:
    archs = [ctx.space.validate(a) for a in archs]
    ctx = arch_context(ctx, archs)
    return predictor(ctx, kind, archs=archs).predict(archs)


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
    predictor: Chosen
    measured: Stats | None  # re-measured end to end on the device, when it is local
    plot: Path | None = None  # the Pareto front PNG
    landing: Landing | None = None  # the candidates measured while landing on the target


def ensure_ready(ctx: Context, progress: bool = True, kind: str = "auto") -> LatencyTable:
    """Profile what the table lacks (live devices), unless it was profiled on a budget: then
    the fitted kernel regressors price the rest, and nothing more is profiled."""
    if not ctx.live:
        table = load_table(ctx)
        missing = _space_ops_missing(ctx, table)
        fill = [k for k in ("kernel", "e2e") if ctx.paths.predictor(k).exists()]
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
        fill = [k for k in ("kernel", "e2e") if ctx.paths.predictor(k).exists()]
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
           home: Path | None = None, elasticity: bool = False, predictor_kind: str = "auto",
           landing: LandingConfig = LandingConfig(), **overrides) -> SearchOutcome:
    """Best subnet under ``target_ms`` on the device.

    On a device hwnas can measure, the search lands on the target: it measures the best
    candidates and corrects itself until one measures within a few percent under the target
    (hwnas.search.landing). Then the pick is re-measured in 3 fresh passes. In a read-only
    HWNAS_HOME nothing is measured (it could not be saved): the search says so and goes on."""
    from hwnas.search import landing as landing_

    ctx = context(device, space, resolutions, home, **overrides)
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
    return SearchOutcome(result, chosen, measured, png, landed)


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


# --- predictors: fit and evaluate against end-to-end records ---------------------------------
def _dataset(ctx: Context, records_path: str | Path | None, missing_ok: bool = False):
    from hwnas.predictors.fitting import load_dataset

    return load_dataset(ctx.space, load_records(ctx, records_path, missing_ok=missing_ok))


def fit(ctx: Context, kind: str, model: str | None = None,
        records_path: str | Path | None = None, test_fraction: float = 0.5, seed: int = 0):
    """Fit a predictor of ``kind`` on the training share of the records and save it.

    ``kernel`` needs no records: after a budgeted profile it fills the ops the table lacks, and
    calibrates on the records when there are any."""
    from hwnas.predictors.fitting import fit_and_save

    if not (isinstance(test_fraction, (int, float)) and 0 <= test_fraction < 1):
        raise HwnasError(f"test fraction must be in [0, 1), got {test_fraction}")
    check_folder(ctx.paths.predictor(kind).parent, write=True)
    data = _dataset(ctx, records_path, missing_ok=kind == "kernel" and records_path is None)
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
