"""Predicting on a device: imports of others' tables, the LUT and fitted predictors, and
fitting and scoring them against end-to-end records."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from hwnas.device_configs import load_device
from hwnas.errors import (HwnasError, MissingKeysError, PredictorError, TableError)
from hwnas.home import check_folder, device_paths
from hwnas.latency.importers import IMPORTERS
from hwnas.latency.table import LatencyTable
from hwnas.predictors.lut import MIN_CALIBRATION, LUTPredictor
from hwnas.predictors.select import Chosen
from hwnas.spaces import get_space

from hwnas.api.device import Context, load_table, load_records, _plot_or_warn

log = logging.getLogger(__name__)


# --- importing -------------------------------------------------------------------------------
def import_table(fmt: str, path: str | Path, device: str, home: Path | None = None,
                 force: bool = False) -> LatencyTable:
    """Import a foreign table as ``device``'s. An existing table is replaced only with
    ``force``, and then kept as a timestamped backup (named in ``meta["replaced"]``)."""
    from hwnas.latency.safeio import backup, dump_pickle
    from hwnas.locks import folder_lock

    if fmt not in IMPORTERS:
        raise HwnasError(f"unknown import format {fmt!r}; known: {', '.join(IMPORTERS)}")
    cfg = load_device(device, home)
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
              archs: Sequence | None = None, covered: bool | None = None) -> Chosen:
    """The predictor ``kind`` for this device and space (see hwnas.predictors.select).

    ``archs``: the subnets to predict, when known (``hwnas predict``): then the LUT needs to
    cover only their ops, not the whole space's. ``covered``: the caller has checked that the
    table covers them (batch prediction prices encoded rows without Arch objects)."""
    from hwnas.predictors.select import CHOICES, FITTED, best_fitted, load_kind

    if kind not in CHOICES:
        raise PredictorError(f"unknown predictor {kind!r}; one of {', '.join(CHOICES)}")
    if kind == "fewshot" or (kind == "auto" and table is None and not ctx.paths.table.exists()
                             and ctx.predictor_path("fewshot").exists()):
        # fitted on records (the device's few and others'): it needs no table of the device
        return load_kind("fewshot", ctx.predictor_path("fewshot"), ctx.cfg.name, ctx.space,
                         table if table is not None or not ctx.paths.table.exists()
                         else load_table(ctx))
    table = table or load_table(ctx)
    if covered is None:
        covered = not _space_ops_missing(ctx, table, archs)
    if (kind == "kernel" and not ctx.predictor_path(kind).exists()
            and table.meta.get("budget") and not covered):
        return kernel_fill(ctx, table)
    if kind in ("kernel", "e2e"):
        return load_kind(kind, ctx.predictor_path(kind), ctx.cfg.name, ctx.space, table)
    if kind == "auto":
        # a fitted LUT cannot price ops a budgeted table lacks; the kernel fill can
        paths = {k: ctx.predictor_path(k) for k in FITTED if covered or k != "lut"}
        chosen = best_fitted(paths, ctx.cfg.name, ctx.space, table)
        if chosen is not None:
            return chosen
        if not covered and table.meta.get("budget"):
            return kernel_fill(ctx, table)
    if not covered:
        raise _budget_error(ctx, table, archs)
    return _lut_chosen(ctx, table)


def kernel_fill(ctx: Context, table: LatencyTable) -> Chosen:
    """A table profiled on a budget (the first search's, ``hwnas profile --budget``) with no
    fitted predictor: kernel regressors (rf) fitted now on its measured ops price the ops it
    lacks, and the whole-network sum is calibrated on every recorded subnet of the space.

    Fitted afresh by each command (about a second): nothing is saved that could go stale, so
    once ``hwnas profile`` completes the table the LUT takes over by itself, calibrated on the
    same records."""
    from hwnas.predictors.fitting import build

    data = _dataset(ctx, None, missing_ok=True)
    pred, _ = build("kernel", ctx.space, table, data, None)
    missing = len(_space_ops_missing(ctx, table))
    cal = (f"x{pred.coef_:.3f} calibrated on {pred.n_calibration_} measured subnets"
           if getattr(pred, "n_calibration_", 0) else "uncalibrated")
    return Chosen(pred, "kernel", f"rf kernel regressors fitted on the {len(table)} profiled ops "
                                  f"price the {missing} the budgeted table lacks; {cal}")


def profile_command(ctx: Context) -> str:
    """The ``hwnas profile`` command that measures this context's ops (its space and
    resolutions, where they are not the defaults)."""
    cmd = f"hwnas profile --device {ctx.cfg.name}"
    if ctx.space.name != "elasticvit":
        cmd += f" --space {ctx.space.name}"
    try:  # the resolutions a plain 'hwnas profile' would take
        default = ((ctx.space.name == "elasticvit" and list(ctx.cfg.resolutions))
                   or list(get_space(ctx.space.name).resolutions))
    except HwnasError:
        default = []
    if list(ctx.space.resolutions) != default:
        cmd += "".join(f" -r {r}" for r in ctx.space.resolutions)
    return cmd


def budget_summary(ctx: Context, table: LatencyTable | None) -> dict | None:
    """What the table measured and what is predicted, for a table profiled on a budget (None
    for any other table): the numbers every search on it states."""
    if table is None or not table.meta.get("budget"):
        return None
    keys = {op.key for r in ctx.space.resolutions for op in ctx.space.enumerate_ops(r)}
    missing = len(table.missing(keys))
    if not missing:
        return None
    cmd = profile_command(ctx)
    return {"ops": len(keys), "measured_ops": len(keys) - missing, "predicted_ops": missing,
            "budget": table.meta["budget"].get("fraction"), "complete_with": cmd}


def _budget_error(ctx: Context, table: LatencyTable, archs=None) -> HwnasError:
    """What to say when the table lacks ops of the space and nothing fills them."""
    missing = _space_ops_missing(ctx, table, archs)
    budget = table.meta.get("budget")
    how = (f"it was profiled with --budget {budget['fraction']:g} ({len(table)} of "
           f"{budget['of']} ops); complete it ('{profile_command(ctx)}') or let kernel "
           f"regressors price the rest (--predictor auto or kernel; 'hwnas fit --device "
           f"{ctx.cfg.name} --kind kernel' saves them)" if budget else
           f"profile them ('hwnas profile --device {ctx.cfg.name}') or fill them with kernel "
           f"regressors ('hwnas fit --device {ctx.cfg.name} --kind kernel')")
    return MissingKeysError(missing, f"the latency table of {ctx.cfg.name}").with_hint(how)


def predict(ctx: Context, archs: Sequence, kind: str = "auto") -> np.ndarray:
    archs = [ctx.space.validate(a) for a in archs]
    ctx = arch_context(ctx, archs)
    return predictor(ctx, kind, archs=archs).predict(archs)


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
    check_folder(ctx.predictor_path(kind).parent, write=True)
    data = _dataset(ctx, records_path, missing_ok=kind == "kernel" and records_path is None)
    table = load_table(ctx) if kind not in ("flops", "flops+blocks") else None
    return fit_and_save(ctx.predictor_path(kind), kind, ctx.cfg.name, ctx.space, table, data,
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
    from hwnas.arch_key import arch_key
    from hwnas.predictors.fitting import load_fitted, noise_floor, plot

    data = _dataset(ctx, records_path)
    table = load_table(ctx) if kind not in ("flops", "flops+blocks") else None
    if kind == "lut-raw":
        from hwnas.predictors.fitting import restore

        pred, seen = restore(kind, ctx.space, table, {}), set()
    else:
        pred, seen = load_fitted(ctx.predictor_path(kind), kind, ctx.cfg.name, ctx.space, table)
    held = data.subset([arch_key(a.to_dict()) not in seen for a in data.archs])
    if len(held.archs) < 5:
        raise HwnasError(f"only {len(held.archs)} held-out subnets to score on; measure more "
                         f"with 'hwnas measure --sample N'")
    p = pred.predict(held.archs)
    pngs = _plot_or_warn(lambda: plot(p, held.pooled_ms, f"{kind} on {ctx.cfg.name}",
                                      plots_dir or ctx.paths.plots, kind.replace("+", "_")),
                         "the evaluation plots") or []
    return Evaluation(kind, metrics.score(p, held.pooled_ms), noise_floor(held), pngs)
