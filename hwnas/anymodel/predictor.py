"""Predict a model's latency from its kernels: per-kind regressors plus a per-network overhead.

Everything is fitted in *reference units* (a kernel's time over the device's reference
network, the drift-free ratio) and turned into ms at one fixed reference speed at the end,
the device's, as records and tables are.

* **Per-kind regressors.** One per kernel kind (``nchwc.Conv``, ``nchwc.Conv/dw``, ``Gemm``,
  ``FusedMatMul``, ``CONV_2D``, ...): a ridge regression of log(time) on the log of the
  kernel's shape features (it extrapolates like a power law) and a random forest on what the
  ridge leaves (it learns the runtime's steps and cliffs). A kind with fewer than 6 samples
  falls back to a power law of its work (FLOPs plus elements moved). A kernel whose exact
  signature was measured uses that measurement.
* **Views** (Reshape, Flatten, ... on onnxruntime) cost no work in a network: their output
  aliases their input. They cost what every kernel costs, the executor's dispatch.
* **Fused** kernels (a PAD that XNNPACK folds into the convolution reading it, on LiteRT:
  ``kernels.fused_mask``) are not run in a network at all: no time, no dispatch.
* **Per-network overhead.** measured(network) ~ c * sum(kernels) + b * n_kernels
  + w * weight_MB + a, fitted by non-negative least squares on calibration networks (random
  subnets of hwnas's own spaces, anymodel/calibration.py) measured end to end: ``a``
  is the call, ``b`` the dispatch per kernel, ``c`` what a network does to its kernels (warm
  caches), ``w`` reading the weights from memory. A kernel timed alone runs with its weights
  in cache; in a network whose weights outgrow the cache it streams them. Measured on the
  zoo (local-cpu, BENCHMARKS.md): the sum of the hot kernels fell 0-39% short of the network,
  and the weights' size, not the kernels' count, explained it (without ``w`` the zoo's
  predictions were within 10% for 68%, with it 84%).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from hwnas.anymodel.kernels import Kernel, fused_mask
from hwnas.errors import PredictorError

log = logging.getLogger(__name__)
MIN_FIT = 6  # fewer samples of a kind: a power law of its work instead of a regressor
MODELS = ("rf", "xgb", "gbr")
CLAMP = math.log(8.0)  # how far a regressor may stray from its kind's power law of work


def _matrix(kernels: Sequence[Kernel], names: list[str]) -> np.ndarray:
    rows = []
    for k in kernels:
        f = k.features()
        rows.append([f.get(n, 0.0) for n in names])
    return np.log1p(np.abs(np.asarray(rows, dtype=float)))


def _make_trees(model: str, seed: int):
    if model == "rf":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=120, min_samples_leaf=2, max_features=0.6,
                                     random_state=seed, n_jobs=1)
    if model == "gbr":
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=250, max_depth=3, learning_rate=0.05,
                                         subsample=0.8, random_state=seed)
    if model == "xgb":
        try:
            from xgboost import XGBRegressor
        except ImportError:
            raise PredictorError("the xgb model needs xgboost: pip install 'hwnas[xgboost]'") \
                from None
        return XGBRegressor(n_estimators=300, max_depth=4, learning_rate=0.05, subsample=0.8,
                            n_jobs=1, random_state=seed)
    raise PredictorError(f"unknown kernel model {model!r}; one of {', '.join(MODELS)}")


def _work(kernels: Sequence[Kernel]) -> np.ndarray:
    """FLOPs plus elements moved: what a kernel's time grows with, compute- or memory-bound."""
    out = []
    for k in kernels:
        f = k.features()
        out.append(max(1.0, f["flops"] + f["in"] + f["out"] + f["w"]))
    return np.asarray(out)


def _power_law(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """log time = slope * log work + intercept, the slope kept to what kernels do (0.3-1.2);
    one sample: time proportional to work."""
    slope = 1.0
    if len(x) >= 2 and np.var(x) > 1e-9:
        slope = float(np.clip(np.cov(x, y, bias=True)[0, 1] / np.var(x), 0.3, 1.2))
    return slope, float(np.mean(y) - slope * np.mean(x))


class KindRegressors:
    """log(reference units) of a kernel from its shape, one model per kind."""

    def __init__(self, model: str = "rf", seed: int = 0):
        self.model, self.seed = model, seed
        self.kinds_: dict[str, dict] = {}

    def fit(self, kernels: Sequence[Kernel], ratios) -> "KindRegressors":
        from sklearn.linear_model import Ridge

        y = np.log(np.asarray(ratios, dtype=float))
        if not np.all(np.isfinite(y)):
            raise PredictorError("kernel times must be finite and positive")
        by_kind: dict[str, list[int]] = {}
        for i, k in enumerate(kernels):
            by_kind.setdefault(k.kind, []).append(i)
        self.kinds_ = {}
        for kind, idx in by_kind.items():
            ks = [kernels[i] for i in idx]
            entry = {"n": len(idx), "power": _power_law(np.log(_work(ks)), y[idx])}
            if len(idx) >= MIN_FIT:
                names = sorted(ks[0].features())
                x = _matrix(ks, names)
                ridge = Ridge(alpha=1.0).fit(x, y[idx])
                trees = _make_trees(self.model, self.seed).fit(x, y[idx] - ridge.predict(x))
                entry.update(names=names, ridge=ridge, trees=trees)
            self.kinds_[kind] = entry
        return self

    @property
    def kinds(self) -> set[str]:
        return set(self.kinds_)

    def _log_predict(self, kind: str, ks: list[Kernel]) -> tuple[np.ndarray, np.ndarray]:
        entry = self.kinds_[kind]
        if "ridge" not in entry:  # too few samples for a regressor: a power law of the work
            slope, icpt = entry["power"]
            return icpt + slope * np.log(_work(ks)), np.ones(len(ks))
        x = _matrix(ks, entry["names"])
        base = entry["ridge"].predict(x)
        trees = entry["trees"]
        if hasattr(trees, "estimators_") and isinstance(trees.estimators_, list):
            per_tree = np.stack([t.predict(x) for t in trees.estimators_])
            out, unc = base + per_tree.mean(0), per_tree.std(0)
        else:
            out, unc = base + trees.predict(x), np.zeros(len(ks))
        # far outside the samples a linear model in many log features can run away; the
        # kind's power law of work cannot, so it bounds the answer (x/÷ 8)
        slope, icpt = entry["power"]
        anchor = icpt + slope * np.log(_work(ks))
        return np.clip(out, anchor - CLAMP, anchor + CLAMP), unc

    def predict(self, kernels: Sequence[Kernel]) -> tuple[np.ndarray, np.ndarray]:
        """(reference units, log-space uncertainty) per kernel; PredictorError for kinds
        never measured."""
        missing = sorted({k.kind for k in kernels} - self.kinds)
        if missing:
            raise PredictorError(f"no measured kernels of kind(s) {', '.join(missing)}")
        out, unc = np.empty(len(kernels)), np.empty(len(kernels))
        by_kind: dict[str, list[int]] = {}
        for i, k in enumerate(kernels):
            by_kind.setdefault(k.kind, []).append(i)
        for kind, idx in by_kind.items():
            lp, u = self._log_predict(kind, [kernels[i] for i in idx])
            out[idx], unc[idx] = np.exp(lp), u
        return out, unc

    def state(self) -> dict:
        return {"model": self.model, "seed": self.seed, "kinds": self.kinds_}

    @classmethod
    def from_state(cls, state: dict) -> "KindRegressors":
        r = cls(state["model"], state["seed"])
        r.kinds_ = dict(state["kinds"])
        return r


MIN_NETWORKS = 4  # what the overhead model's four coefficients are fitted on, at least


@dataclass(frozen=True)
class Overhead:
    """measured ~ scale * sum(kernels) + per_kernel * n_kernels + per_call, in reference units."""

    scale: float = 1.0
    per_kernel: float = 0.0
    per_call: float = 0.0
    n_networks: int = 0  # how many networks it was fitted on (0: not fitted)
    per_weight_mb: float = 0.0  # reference units per MB of weights (streamed from memory)
    n_own: int = 0  # of those, the device's own models measured end to end (api.own_networks)
    nets_kind: str = "calibration"  # the others: profile.nets_kind of the kernel table

    def apply(self, kernel_sum: float, n_kernels: int, weight_mb: float = 0.0) -> float:
        return (self.scale * kernel_sum + self.per_kernel * n_kernels
                + self.per_weight_mb * weight_mb + self.per_call)

    @classmethod
    def fit(cls, kernel_sums, n_kernels, measured, call_overhead: float = 0.0,
            weight_mb=None, n_own: int = 0) -> "Overhead":
        """Non-negative least squares, weighted so that every network counts by its relative
        error (a big network must not decide alone). ``n_own``: how many of the networks are
        the device's own models (said in the output, fitted alike)."""
        from scipy.optimize import nnls

        s, n, m = (np.asarray(v, dtype=float) for v in (kernel_sums, n_kernels, measured))
        wmb = np.zeros_like(s) if weight_mb is None else np.asarray(weight_mb, dtype=float)
        if len(m) < MIN_NETWORKS:
            return cls(1.0, 0.0, call_overhead, 0)
        w = 1.0 / m
        a = np.column_stack([s, n, wmb, np.ones_like(s)]) * w[:, None]
        coef, _ = nnls(a, m * w)
        if coef[0] <= 0:  # degenerate: keep the kernels' sum as it is, and fit the other
            # terms on what it leaves (setting the scale to 1 after a fit that chose 0 kept
            # terms that had stood in for the kernels, and overshot by up to 2x)
            rest, _ = nnls(a[:, 1:], (m - s) * w)
            coef = np.concatenate([[1.0], rest])
        return cls(float(coef[0]), float(coef[1]), float(coef[3]), int(len(m)),
                   float(coef[2]), int(n_own))

    def to_obj(self) -> dict:
        return {"scale": self.scale, "per_kernel": self.per_kernel, "per_call": self.per_call,
                "n_networks": self.n_networks, "per_weight_mb": self.per_weight_mb,
                "n_own": self.n_own, "nets_kind": self.nets_kind}

    @classmethod
    def from_obj(cls, obj: dict) -> "Overhead":
        # predictors saved before the weights term have none (0: as they were fitted), before
        # the device's own models joined the fit none of those, and before the calibration
        # networks (2026-12-07) they were fitted on synthetic ones
        return cls(float(obj["scale"]), float(obj["per_kernel"]), float(obj["per_call"]),
                   int(obj["n_networks"]), float(obj.get("per_weight_mb", 0.0)),
                   int(obj.get("n_own", 0)), str(obj.get("nets_kind", "synthetic")))

    def fitted_on(self) -> str:
        """What it was fitted on, in words."""
        if not self.n_networks:
            return "not fitted (fewer than 4 networks)"
        others = self.n_networks - self.n_own
        own = (f" and {self.n_own} model{'s' if self.n_own != 1 else ''} measured on this "
               f"device" if self.n_own else "")
        return f"fitted on {others} {self.nets_kind} networks{own}"


@dataclass(frozen=True)
class KernelRow:
    """One kernel of a prediction (the ``--breakdown``)."""

    index: int
    name: str
    kind: str
    shapes: str
    flops: float
    latency_ms: float | None  # None: not covered (its kind was never measured)
    # "measured", "predicted", "view", "fused" (0 ms: folded into the next one) or "missing"
    source: str


@dataclass(frozen=True)
class Prediction:
    latency_ms: float
    kernels_ms: float  # the sum of the covered kernels, before the overhead model
    overhead_ms: float  # what the overhead model added on top
    rows: tuple[KernelRow, ...]
    missing_kinds: tuple[str, ...]
    covered_kernels: int
    total_kernels: int
    covered_flops: float  # share of the graph's FLOPs
    scale_ms: float  # the reference ms that turned reference units into ms
    weight_mb: float = 0.0  # MB of weights the covered kernels read (overhead's memory term)
    dispatched_kernels: int = -1  # covered kernels the network runs (less the fused): the
    # overhead's per-kernel term; -1: as covered_kernels

    @property
    def complete(self) -> bool:
        return not self.missing_kinds

    def coverage_line(self) -> str:
        if self.complete:
            return f"all {self.total_kernels} kernels covered"
        return (f"covers {self.covered_kernels} of {self.total_kernels} kernels "
                f"({100 * self.covered_flops:.1f}% of FLOPs); not covered: "
                f"{', '.join(self.missing_kinds)}")


def weights_mb(kernels) -> float:
    """MB of weights the kernels read (views read none)."""
    return sum(k.weight_bytes for k in kernels if not k.view) / 1e6


def _shapes(k: Kernel) -> str:
    ins = " ".join("x".join(map(str, t.shape)) for t in k.dynamic_inputs)
    return f"{ins} -> {'x'.join(map(str, k.outputs[0].shape)) if k.outputs else '-'}"


class AnyModelPredictor:
    """Per-kind regressors + measured signatures + the overhead model, in reference units."""

    def __init__(self, regressors: KindRegressors, measured: dict[str, float],
                 overhead: Overhead, runtime: str):
        self.regressors, self.measured = regressors, dict(measured)
        self.overhead, self.runtime = overhead, runtime

    @property
    def kinds(self) -> set[str]:
        return self.regressors.kinds

    def kernel_units(self, kernels: Sequence[Kernel], use_measured: bool = True,
                     fused: Sequence[bool] | None = None) -> np.ndarray:
        """Each kernel's time in reference units (views: 0, the overhead's dispatch covers
        them; ``fused`` ones, see ``fused_mask``: 0); kinds never measured raise
        PredictorError."""
        out = np.zeros(len(kernels))
        fused = fused if fused is not None else [False] * len(kernels)
        todo = [i for i, k in enumerate(kernels) if not k.view and not fused[i]]
        if use_measured:
            hit = [i for i in todo if kernels[i].signature in self.measured]
            for i in hit:
                out[i] = self.measured[kernels[i].signature]
            todo = [i for i in todo if kernels[i].signature not in self.measured]
        if todo:
            pred, _ = self.regressors.predict([kernels[i] for i in todo])
            out[todo] = pred
        return out

    def missing_kinds(self, kernels: Sequence[Kernel],
                      fused: Sequence[bool] | None = None) -> list[str]:
        """Kinds of the kernels that no regressor covers. Views cost dispatch only, and a
        fused kernel (``fused_mask``) is not run: neither kind needs a regressor."""
        fused = fused_mask(kernels) if fused is None else fused
        return sorted({k.kind for k, f in zip(kernels, fused) if not (k.view or f)}
                      - self.kinds)

    def predict(self, kernels: Sequence[Kernel], scale_ms: float, allow_missing: bool = False,
                use_measured: bool = True) -> Prediction:
        if not kernels:
            raise PredictorError("the model has no kernels")
        if not (math.isfinite(scale_ms) and scale_ms > 0):
            raise PredictorError(f"bad reference scale {scale_ms!r} ms")
        fused = fused_mask(kernels)  # in the graph's order: a PAD and the conv after it
        missing = self.missing_kinds(kernels, fused)
        if missing and not allow_missing:
            n = sum(1 for k, f in zip(kernels, fused) if k.kind in missing and not f)
            raise PredictorError(
                f"{n} of the model's {len(kernels)} kernels are of {len(missing)} kind(s) never "
                f"measured on this device: {', '.join(missing)}; profile more kernels ('hwnas "
                f"profile --kernels --budget N'), or pass --allow-missing to predict the rest "
                f"and see how much of the graph is covered")
        covered = [i for i, k in enumerate(kernels)
                   if k.view or fused[i] or k.kind not in missing]
        units = np.zeros(len(kernels))
        if covered:
            units[covered] = self.kernel_units([kernels[i] for i in covered], use_measured,
                                               [fused[i] for i in covered])
        if not covered or not np.any(units > 0):
            raise PredictorError(f"no kernel of the model is covered by the measured kinds "
                                 f"({', '.join(missing)} never measured)")
        kernel_sum = float(units.sum())
        weight_mb = weights_mb(kernels[i] for i in covered if not fused[i])
        dispatched = sum(1 for i in covered if not fused[i])
        total = self.overhead.apply(kernel_sum, dispatched, weight_mb)
        if not (math.isfinite(total) and total > 0):
            raise PredictorError(f"the prediction is not a positive number ({total})")
        rows = []
        dispatch_ms = self.overhead.per_kernel * scale_ms
        for i, k in enumerate(kernels):
            if k.view:
                ms, src = dispatch_ms, "view"
            elif fused[i]:
                ms, src = 0.0, "fused"
            elif k.kind in missing:
                ms, src = None, "missing"
            else:  # its share of every term but the call: the rows add up to the rest
                ms = (units[i] * self.overhead.scale + self.overhead.per_weight_mb
                      * k.weight_bytes / 1e6) * scale_ms + dispatch_ms
                src = "measured" if use_measured and k.signature in self.measured else \
                    "predicted"
            rows.append(KernelRow(i, k.name, k.kind, _shapes(k), k.flops, ms, src))
        flops_all = sum(k.flops for k in kernels) or 1.0
        flops_cov = sum(kernels[i].flops for i in covered)
        return Prediction(total * scale_ms, kernel_sum * scale_ms,
                          (total - kernel_sum) * scale_ms, tuple(rows), tuple(missing),
                          len(covered), len(kernels), flops_cov / flops_all, scale_ms,
                          weight_mb, dispatched)

    def state(self) -> dict:
        return {"regressors": self.regressors.state(), "measured": dict(self.measured),
                "overhead": self.overhead.to_obj(), "runtime": self.runtime}

    @classmethod
    def from_state(cls, state: dict) -> "AnyModelPredictor":
        return cls(KindRegressors.from_state(state["regressors"]), state["measured"],
                   Overhead.from_obj(state["overhead"]), state["runtime"])
