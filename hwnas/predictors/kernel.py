"""Kernel-level regressors (nn-Meter style): predict an op's latency from its shape.

One regressor per op kind, trained on the ops a device actually measured, predicts the ops it
never measured, so a device needs only a fraction of its ops profiled. Targets are log(ms): op
latencies span three orders of magnitude and a relative error is what matters for a sum.
``select_ops`` chooses which ops to measure under a budget: first coverage (ops spread over
each kind's range), then the ops where the random forest's trees disagree most.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np

from hwnas.errors import PredictorError
from hwnas.latency.stats import Stats
from hwnas.latency.table import LatencyTable
from hwnas.ops import OpSpec, kind_of, parse_key

log = logging.getLogger(__name__)
MODELS = ("rf", "gbr", "xgb")
PREDICTED_FLAG = "predicted by kernel regressor"
MIN_PER_KIND = 3


def make_regressor(model: str, seed: int = 0):
    if model == "rf":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=200, min_samples_leaf=1, random_state=seed,
                                     n_jobs=1)
    if model == "gbr":
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=300, max_depth=3, learning_rate=0.05,
                                         random_state=seed)
    if model == "xgb":
        try:
            from xgboost import XGBRegressor
        except ImportError:
            raise PredictorError("the xgb model needs xgboost: pip install 'hwnas[xgboost]'")
        return XGBRegressor(n_estimators=300, max_depth=4, learning_rate=0.05, n_jobs=1,
                            random_state=seed)
    raise PredictorError(f"unknown kernel model {model!r}; one of {', '.join(MODELS)}")


def _features(specs: Sequence[OpSpec]) -> np.ndarray:
    rows = [s.features() for s in specs]
    names = sorted(rows[0])
    x = np.array([[r[n] for n in names] for r in rows], dtype=float)
    # log of the size features: latency is closer to a power law than a linear function of them
    return np.column_stack([x, np.log1p(np.abs(x))])


class KernelModel:
    """Per-kind regressors of log latency on op shape features."""

    def __init__(self, model: str = "rf", seed: int = 0):
        self.model = model
        self.seed = seed

    def get_params(self, deep: bool = False) -> dict:
        return {"model": self.model, "seed": self.seed}

    def fit(self, keys: Sequence[str], latencies_ms) -> "KernelModel":
        y = np.asarray(latencies_ms, dtype=float)
        if np.any(~np.isfinite(y)) or np.any(y <= 0):
            raise PredictorError("kernel regressors need finite, positive op latencies")
        by_kind: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            by_kind.setdefault(kind_of(k), []).append(i)
        self.regressors_ = {}
        for kind, idx in by_kind.items():
            specs = [parse_key(keys[i]) for i in idx]
            if len(idx) < MIN_PER_KIND:
                # Too few to learn a shape: scale by MACs (a kind this rare, e.g. the stem at one
                # resolution, is usually fully measured and never needs predicting anyway).
                macs = np.array([s.macs() for s in specs], dtype=float)
                self.regressors_[kind] = {"ms_per_mac": float(np.mean(y[idx] / macs))}
                continue
            reg = make_regressor(self.model, self.seed)
            reg.fit(_features(specs), np.log(y[idx]))
            self.regressors_[kind] = reg
        return self

    def _check_kinds(self, keys) -> dict[str, list[int]]:
        by_kind: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            by_kind.setdefault(kind_of(k), []).append(i)
        unknown = sorted(set(by_kind) - set(self.regressors_))
        if unknown:
            raise PredictorError(f"no measured ops of kind(s) {unknown} to learn from")
        return by_kind

    def predict(self, keys: Sequence[str]) -> np.ndarray:
        out = np.empty(len(keys))
        for kind, idx in self._check_kinds(keys).items():
            specs = [parse_key(keys[i]) for i in idx]
            reg = self.regressors_[kind]
            if isinstance(reg, dict):
                out[idx] = reg["ms_per_mac"] * np.array([s.macs() for s in specs], dtype=float)
            else:
                out[idx] = np.exp(reg.predict(_features(specs)))
        return out

    def uncertainty(self, keys: Sequence[str]) -> np.ndarray:
        """Spread of the forest's trees in log space (rf only; others give 0)."""
        out = np.zeros(len(keys))
        for kind, idx in self._check_kinds(keys).items():
            reg = self.regressors_[kind]
            if isinstance(reg, dict):
                out[idx] = 1.0  # no model of this kind's shape: as unsure as it gets
            elif hasattr(reg, "estimators_") and isinstance(reg.estimators_, list):
                x = _features([parse_key(keys[i]) for i in idx])
                per_tree = np.stack([t.predict(x) for t in reg.estimators_])
                out[idx] = per_tree.std(axis=0)
        return out

    def fill(self, table: LatencyTable, keys: Sequence[str], scale: float = 1.0) -> LatencyTable:
        """A copy of the table with every missing key predicted (and flagged as predicted).

        ``scale`` multiplies the predictions: the regressors learnt ms at the table's reference
        speed when they were fitted; a table re-expressed at another speed since passes the
        ratio of the two."""
        missing = sorted(set(table.missing(keys)))
        filled = LatencyTable(dict(table.meta), dict(table.entries), dict(table.flags))
        if missing:
            for k, ms in zip(missing, self.predict(missing) * scale):
                filled.entries[k] = Stats.single(float(ms))
                filled.flags[k] = f"{PREDICTED_FLAG} ({self.model})"
        filled.meta["kernel_filled"] = len(missing)
        return filled

    def state(self) -> dict:
        return {"model": self.model, "seed": self.seed, "regressors": self.regressors_,
                "reference_ms": getattr(self, "reference_ms_", None)}

    @classmethod
    def from_state(cls, state: dict) -> "KernelModel":
        m = cls(state["model"], state["seed"])
        m.regressors_ = dict(state["regressors"])
        return m


def select_ops(ops: Sequence[OpSpec], fraction: float, measure: Callable[[list], dict],
               rounds: int = 4, seed: int = 0) -> dict[str, float]:
    """Measure ``fraction`` of ``ops``: half for coverage, the rest by forest disagreement.

    ``measure(list_of_ops) -> {key: median_ms}`` for all ops measured so far (it may resume).
    """
    if not 0 < fraction <= 1:
        raise PredictorError(f"budget must be a fraction in (0, 1], got {fraction}")
    ops = list({o.key: o for o in ops}.values())
    budget = max(int(round(fraction * len(ops))), MIN_PER_KIND * len({o.kind for o in ops}))
    chosen = _coverage(ops, budget // 2)
    measured = measure(chosen)
    per_round = max(1, (budget - len(chosen)) // rounds)
    while len(chosen) < budget:
        keys = list(measured)
        model = KernelModel("rf", seed).fit(keys, [measured[k] for k in keys])
        rest = [o for o in ops if o.key not in measured]
        if not rest:
            break
        unc = model.uncertainty([o.key for o in rest])
        take = np.argsort(-unc)[:min(per_round, budget - len(chosen))]
        chosen += [rest[i] for i in take]
        measured = measure(chosen)
    return measured


def _coverage(ops: Sequence[OpSpec], n: int) -> list[OpSpec]:
    """Per kind, ops evenly spaced in MACs, in proportion to the kind's share (>= 3 each)."""
    by_kind: dict[str, list[OpSpec]] = {}
    for o in ops:
        by_kind.setdefault(o.kind, []).append(o)
    out = []
    for kind, members in by_kind.items():
        k = min(len(members), max(MIN_PER_KIND, round(n * len(members) / len(ops))))
        members = sorted(members, key=lambda o: o.macs())
        idx = np.unique(np.linspace(0, len(members) - 1, k).round().astype(int))
        out += [members[i] for i in idx]
    return out
