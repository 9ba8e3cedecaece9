"""Fit, save, load and score every predictor kind against a device's end-to-end records.

Records are split into train and held-out subnets by a hash of the architecture, so the split
is stable across runs and machines, and a predictor file remembers which subnets it saw:
``evaluate`` scores only the others.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwnas.arch_key import arch_key
from hwnas.errors import HwnasError, PredictorError
from hwnas.latency.records import Records
from hwnas.latency.table import LatencyTable
from hwnas.predictors import metrics
from hwnas.predictors.baselines import FlopsPredictor
from hwnas.predictors.e2e import E2EPredictor
from hwnas.ops import kind_of
from hwnas.predictors.kernel import MIN_PER_KIND, KernelModel
from hwnas.predictors.lut import MIN_CALIBRATION, LUTPredictor
from hwnas.predictors.persist import load_predictor_file, save_predictor

log = logging.getLogger(__name__)

KINDS = ("flops", "flops+blocks", "lut-raw", "lut", "kernel", "e2e")
# fitted from the device's records *and* other devices' (proxies): build/fit_and_save take them
FEWSHOT = "fewshot"
ALL_KINDS = KINDS + (FEWSHOT,)
DEFAULT_MODEL = {"kernel": "rf", "e2e": "xgb"}


def is_held_out(arch_dict: dict, test_fraction: float = 0.5) -> bool:
    h = int(hashlib.sha256(arch_key(arch_dict).encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < test_fraction


@dataclass
class Dataset:
    archs: list
    pooled_ms: np.ndarray
    records: list  # the Record objects, for per-pass noise

    def subset(self, mask) -> "Dataset":
        idx = np.flatnonzero(mask)
        return Dataset([self.archs[i] for i in idx], self.pooled_ms[idx],
                       [self.records[i] for i in idx])


def load_dataset(space, records: Records) -> Dataset:
    """The recorded subnets that belong to ``space`` (other resolutions are skipped)."""
    archs, ys, recs = [], [], []
    for r in records.records:
        if r.arch.get("space") != space.name:
            continue
        try:
            archs.append(space.arch_from_obj(r.arch))
        except HwnasError:
            continue
        ys.append(r.pooled_ms)
        recs.append(r)
    return Dataset(archs, np.asarray(ys, dtype=float), recs)


def split(data: Dataset, test_fraction: float) -> tuple[Dataset, Dataset]:
    held = np.array([is_held_out(a.to_dict(), test_fraction) for a in data.archs], dtype=bool)
    return data.subset(~held), data.subset(held)


def kernel_filled(table: LatencyTable, space, model: str, seed: int = 0):
    """The table with every op of the space that it lacks predicted by kernel regressors.

    The regressors learn from every measured op of the op kinds this space uses, at any
    resolution, not only the space's current ones: more shapes, better fills."""
    keys = [op.key for r in space.resolutions for op in space.enumerate_ops(r)]
    measured = _learnable(table, {kind_of(k) for k in keys})
    km = KernelModel(model, seed).fit(measured, [table.entries[k].median_ms for k in measured])
    km.reference_ms_ = table.reference_ms
    return km.fill(table, keys), km


def _learnable(table: LatencyTable, kinds: set[str]) -> list[str]:
    """The measured ops of ``kinds`` that kernel regressors learn from: the unflagged ones.

    A kind with fewer than ``MIN_PER_KIND`` unflagged ops learns from its flagged ones too
    (logged), those with a positive time. On a loaded CPU every tiny op of a kind (fbnet's
    skips at 32 px) can come out at the per-call overhead and be kept at the timer's floor,
    flagged; dropping them all left the kind with nothing to learn from, and the first search
    failed (CI, 2026-12-07). A floor is a truer price of such an op than no price at all."""
    by_kind: dict[str, list[str]] = {}
    for k in table.entries:
        if kind_of(k) in kinds:
            by_kind.setdefault(kind_of(k), []).append(k)
    out = []
    for kind, members in by_kind.items():
        clean = [k for k in members if k not in table.flags]
        flagged = [k for k in members if k in table.flags
                   and 0 < table.entries[k].median_ms < float("inf")]
        if len(clean) < MIN_PER_KIND and flagged:
            log.warning("kernel regressors: %d of the %d measured %s ops are flagged (%s); "
                        "learning from them too", len(members) - len(clean), len(members), kind,
                        table.flags[flagged[0]])
            clean += flagged
        out += clean
    return out


def build(kind: str, space, table: LatencyTable | None, train: Dataset, model: str | None,
          seed: int = 0, proxies=None):
    """A fitted predictor of ``kind`` plus the state to persist. ``proxies`` (fewshot only):
    other devices' records in the space, name -> Records or [(arch, ms)]."""
    if kind not in ALL_KINDS:
        raise PredictorError(f"unknown predictor kind {kind!r}; one of {', '.join(ALL_KINDS)}")
    if kind == FEWSHOT:
        from hwnas.predictors.fewshot import fit_fewshot

        if not proxies:
            raise PredictorError(f"the fewshot predictor needs other devices' records of "
                                 f"{space.name} networks (proxies); none were given")
        p = fit_fewshot(space, list(zip(train.archs, train.pooled_ms)), proxies, table, seed)
        return p, {"fewshot": p.state()}
    if kind in ("flops", "flops+blocks"):
        p = FlopsPredictor(space, kind).fit(train.archs, train.pooled_ms)
        return p, {"flops": p.state()}
    if table is None:
        raise PredictorError(f"the {kind} predictor needs the device's latency table")
    model = model or DEFAULT_MODEL.get(kind)
    if kind == "lut-raw":
        return LUTPredictor(table, space, calibrate=False), {}
    if kind == "lut":
        p = LUTPredictor(table, space).fit(train.archs, train.pooled_ms)
        return p, {"calibration": [p.coef_, p.intercept_]}
    filled, km = kernel_filled(table, space, model if kind == "kernel" else "rf", seed)
    if kind == "kernel":
        # a budgeted profile may come before any whole subnet is measured: then the filled
        # table is used uncalibrated, as the LUT is
        p = LUTPredictor(filled, space, calibrate=len(train.archs) >= MIN_CALIBRATION)
        p.fit(train.archs, train.pooled_ms)
        return p, {"kernel": km.state(), "calibration": [p.coef_, p.intercept_],
                   "calibrated_on": len(train.archs) if p.calibrate else 0}
    base = LUTPredictor(filled, space, calibrate=False)
    p = E2EPredictor(base, model, seed).fit(train.archs, train.pooled_ms)
    return p, {"kernel": km.state(), "e2e": p.state()}


def restore(kind: str, space, table: LatencyTable | None, state: dict):
    if kind == "fewshot":  # it stores its proxies' values: the table is not read
        from hwnas.predictors.fewshot import FewShotPredictor

        return FewShotPredictor.from_state(space, state["fewshot"])
    if kind in ("flops", "flops+blocks"):
        return FlopsPredictor.from_state(space, state["flops"])
    if kind == "lut-raw":
        return LUTPredictor(table, space, calibrate=False)
    if kind == "lut":
        p = LUTPredictor(table, space)
        p.coef_, p.intercept_ = state["calibration"]
        return p
    km = KernelModel.from_state(state["kernel"])
    keys = [op.key for r in space.resolutions for op in space.enumerate_ops(r)]
    # predictions were learnt at the table's reference speed then; express them at today's
    then, now = state["kernel"].get("reference_ms"), table.reference_ms
    filled = km.fill(table, keys, scale=now / then if then and now else 1.0)
    if kind == "kernel":
        p = LUTPredictor(filled, space)
        p.coef_, p.intercept_ = state["calibration"]
        return p
    return E2EPredictor.from_state(LUTPredictor(filled, space, calibrate=False), state["e2e"])


def fit_and_save(path: Path, kind: str, device: str, space, table, data: Dataset,
                 model: str | None, test_fraction: float, seed: int = 0, proxies=None):
    """Fit on the training share, score on the held-out share, save both.

    The held-out score is what ``--predictor auto`` ranks fitted predictors by. ``fewshot``
    fits on every record (there are ~10) and its score is its leave-one-out error."""
    if kind == "fewshot":
        train = data
        pred, state = build(kind, space, table, train, model, seed, proxies)
        rep = pred.report()
        holdout = {"rmspe": rep.loo_rmspe, "within10": rep.loo_within10, "n": rep.n_target,
                   "method": "leave-one-out"}
    else:
        train, held = split(data, test_fraction)
        pred, state = build(kind, space, table, train, model, seed)
        holdout = None
        if len(held.archs) >= MIN_HOLDOUT:
            holdout = metrics.score(pred.predict(held.archs), held.pooled_ms)
    save_predictor(path, kind=kind, device=device, space=space.name,
                   resolutions=list(space.resolutions), state=state,
                   trained_on=[arch_key(a.to_dict()) for a in train.archs],
                   model=model or DEFAULT_MODEL.get(kind, ""), holdout=holdout,
                   protocol=protocol_of(table))
    return pred, train


MIN_HOLDOUT = 5


def protocol_of(table: LatencyTable | None) -> dict | None:
    """What a predictor fitted on this table depends on: how the table was measured."""
    if table is None:
        return None
    return {"protocol": table.meta.get("protocol"),
            "reference": (table.reference or {}).get("key"),
            "source_format": table.meta.get("source_format")}


def check_fitted(obj: dict, path: Path, space, table) -> None:
    """Refuse a predictor fitted under another protocol or for other resolutions."""
    # a few-shot predictor stores the values of every input it uses (a table's too)
    if "protocol" in obj and obj["protocol"] != protocol_of(table) and obj["kind"] != "fewshot":
        raise PredictorError(f"{path} was fitted on a table measured with another protocol "
                             f"({obj['protocol']}); refit it with 'hwnas fit'")
    missing = sorted(set(space.resolutions) - set(obj.get("resolutions", [])))
    if missing and obj["kind"] not in ("kernel",):
        raise PredictorError(f"{path} was fitted at resolutions {obj.get('resolutions')}, not "
                             f"{missing}; refit it with 'hwnas fit -r ...'")


def load_fitted(path: Path, kind: str, device: str, space, table):
    obj = load_predictor_file(path, device, space.name)
    if obj["kind"] != kind:
        raise PredictorError(f"{path} holds a {obj['kind']} predictor, not {kind}")
    check_fitted(obj, path, space, table)
    return restore(kind, space, table, obj["state"]), set(obj["trained_on"])


def noise_floor(data: Dataset) -> dict | None:
    """Metrics between two independent passes over the same subnets (the best achievable)."""
    two = [r for r in data.records if len(r.passes) >= 2]
    if len(two) < 5:
        return None
    a = np.array([r.pass_ms()[0] for r in two])
    b = np.array([r.pass_ms()[1] for r in two])
    return metrics.score(b, a)


def plot(pred, true, title: str, out_dir: Path, stem: str) -> list[Path]:
    """Predicted vs measured with ±10% bands, and the error histogram (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    pred, true = np.asarray(pred), np.asarray(true)
    lo, hi = min(pred.min(), true.min()) * 0.95, max(pred.max(), true.max()) * 1.05
    xs = np.linspace(lo, hi, 10)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.fill_between(xs, 0.9 * xs, 1.1 * xs, color="tab:green", alpha=0.15, label="±10%")
    ax.plot(xs, xs, "k--", lw=1)
    ax.scatter(true, pred, s=10)
    ax.set(xlabel="measured ms", ylabel="predicted ms", title=title, xlim=(lo, hi), ylim=(lo, hi))
    ax.legend()
    p1 = out_dir / f"{stem}_pred_vs_measured.png"
    fig.savefig(p1, dpi=110, bbox_inches="tight")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(100 * (pred / true - 1), bins=30)
    ax.axvline(-10, color="r", ls=":")
    ax.axvline(10, color="r", ls=":")
    ax.set(xlabel="error %", ylabel="subnets", title=title)
    p2 = out_dir / f"{stem}_error_hist.png"
    fig.savefig(p2, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return [p1, p2]
