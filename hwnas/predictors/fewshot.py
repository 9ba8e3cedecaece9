"""Few-shot latency prediction: a device from ~10 measured networks and what hwnas already knows.

Devices rank networks alike when they run alike (one GPU at batch 1 like another, one Xeon like
another), so a new device's latency is close to a known device's, rescaled. From the target's
few records (>= 5) and the proxies (other devices' records in the space, optionally a LUT of
the space; see fewshot_proxies.ProxyBank), candidates are fitted in log space and compared by
leave-one-out (LOO) error on the few records:

* ``scale:<proxy>``: the proxy's latency times one factor (1 parameter);
* ``linear:<proxy>``: log latency linear in the proxy's log latency (a power law, 2 parameters);
* ``flops-linear``: ms linear in MACs (the baseline every predictor must beat);
* ``weighted``: the average of all of the above in log space, each weighted by 1/LOO-MSE^2
  (its own LOO error is nested: the weights are recomputed without the left-out network).
  Averaging several proxies cancels their own measurement noise and hedges the choice of the
  one proxy, which on 10 networks is often wrong; on HELP's data (10 networks, 20 draws) it
  lifts the mean Spearman rho over picking the lowest-LOO candidate from 0.971 to 0.976 on
  NAS-Bench-201 and from 0.951 to 0.960 on FBNet, and narrows the worst draws (BENCHMARKS.md,
  "Few-shot adaptation").

The weighted average is kept (``select="loo"`` keeps the lowest LOO RMSPE instead); ``report()`` says which, from which inputs,
and its LOO error beside FLOPs-linear's. Predictions are exp(log prediction): always positive.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from hwnas.errors import PredictorError
from hwnas.predictors.fewshot_proxies import ProxyBank, _pairs

MIN_TARGET = 5        # fewer records cannot compare candidates by leave-one-out
MIN_WEIGHT = 1e-3     # candidates under this share of the weighted average are dropped
MSE_FLOOR = 1e-8      # a candidate that fits perfectly gets a large, finite weight
STATE_VERSION = 1


@dataclass(frozen=True)
class Candidate:
    """One fitted candidate: pred_log = slope * log(proxy ms) + offset (scale, linear), or
    log(max(slope * MACs + offset, floor_ms)) (flops-linear)."""

    name: str
    kind: str        # "scale", "linear", "flops"
    column: int      # the proxy's column in the bank (-1: MACs)
    slope: float
    offset: float
    floor_ms: float  # flops-linear only: predictions never go under it
    loo_rmspe: float  # percent


@dataclass(frozen=True)
class FewShotReport:
    chosen: str                    # "weighted", "scale:1080ti_1", "flops-linear", ...
    inputs: dict                   # input (proxy name or "flops") -> weight in the prediction
    loo_rmspe: float               # percent, the chosen candidate's
    loo_within10: float            # fraction of the target's networks
    flops_loo_rmspe: float         # FLOPs-linear's LOO RMSPE on the same records
    n_target: int
    candidates: tuple              # (name, LOO RMSPE %) best first
    cleaned: dict                  # proxy -> stored values its op model replaced

    def describe(self) -> str:
        used = ", ".join(f"{k} {100 * w:.0f}%" for k, w in
                         sorted(self.inputs.items(), key=lambda kv: -kv[1]) if w >= 0.005)
        return (f"{self.chosen} ({used}); leave-one-out RMSPE {self.loo_rmspe:.1f}%, "
                f"{100 * self.loo_within10:.0f}% within ±10% on {self.n_target} networks "
                f"(FLOPs-linear {self.flops_loo_rmspe:.1f}%)")


# --- leave-one-out for one-variable fits (closed form, vectorised over the left-out point) ---
FAR_LOWER = 1.25  # the average is kept while its LOO error is under 1.25x the best one's


def _fit(kind: str, x: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    if kind == "scale":
        return 1.0, float(np.mean(y - x))
    xm = x.mean()
    sxx = float(np.sum((x - xm) ** 2))
    if sxx <= 1e-12 * max(1.0, float(np.sum(x ** 2))):
        return None  # a constant input cannot carry a slope
    b = float(np.sum((x - xm) * (y - y.mean())) / sxx)
    return b, float(y.mean() - b * xm)


def _loo(kind: str, x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Each point's prediction from a fit on the others."""
    n = len(y)
    if kind == "scale":
        d = y - x
        return x + (d.sum() - d) / (n - 1)
    fit = _fit(kind, x, y)
    if fit is None:
        return None
    b, a = fit
    xm = x.mean()
    h = 1.0 / n + (x - xm) ** 2 / np.sum((x - xm) ** 2)  # leverages of the OLS fit
    if np.any(h >= 1 - 1e-9):
        return None  # one point decides the slope alone: no honest LOO
    e = y - (a + b * x)
    return y - e / (1 - h)


def _rel_mse(pred_log: np.ndarray, y_log: np.ndarray) -> float:
    return float(np.mean(np.expm1(pred_log - y_log) ** 2))


class _Design:
    """The target's records against every candidate's input, in the space candidates fit in."""

    def __init__(self, names: list[str], x_ms: np.ndarray, macs: np.ndarray, y_ms: np.ndarray):
        self.names = names
        self.xl = np.log(x_ms)
        self.macs = macs
        self.y_ms = y_ms
        self.yl = np.log(y_ms)
        self.specs = [(f"{k}:{n}", k, j) for j, n in enumerate(names)
                      for k in ("scale", "linear")] + [("flops-linear", "flops", -1)]

    def _input(self, col: int, rows) -> np.ndarray:
        return self.macs[rows] if col < 0 else self.xl[rows, col]

    def loo_log(self, kind: str, col: int, rows: np.ndarray) -> np.ndarray | None:
        x, y = self._input(col, rows), self.yl[rows]
        if kind != "flops":
            return _loo(kind, x, y)
        p = _loo("linear", x, self.y_ms[rows])  # linear in ms, not in log ms
        if p is None:
            return None
        return np.log(np.maximum(p, _floor(self.y_ms[rows])))

    def fit(self, name: str, kind: str, col: int, rows: np.ndarray, loo_rmspe: float
            ) -> Candidate | None:
        x = self._input(col, rows)
        if kind == "flops":
            f = _fit("linear", x, self.y_ms[rows])
            return None if f is None else Candidate(name, kind, col, f[0], f[1],
                                                    _floor(self.y_ms[rows]), loo_rmspe)
        f = _fit(kind, x, self.yl[rows])
        return None if f is None else Candidate(name, kind, col, f[0], f[1], 0.0, loo_rmspe)

    def singles(self, rows: np.ndarray) -> list[tuple[Candidate, np.ndarray]]:
        """Every candidate fitted on ``rows``, with its LOO log predictions there."""
        out = []
        for name, kind, col in self.specs:
            p = self.loo_log(kind, col, rows)
            if p is None:
                continue
            c = self.fit(name, kind, col, rows, 100 * math.sqrt(_rel_mse(p, self.yl[rows])))
            if c is not None:
                out.append((c, p))
        return out


def _floor(y_ms: np.ndarray) -> float:
    # FLOPs-linear can go negative below the smallest measured network; a quarter of it is a
    # floor no real network of the space reaches
    return float(0.25 * np.min(y_ms))


def _weights(cands: list[tuple[Candidate, np.ndarray]], y_log: np.ndarray) -> np.ndarray:
    mse = np.array([max(_rel_mse(p, y_log), MSE_FLOOR) for _, p in cands])
    w = mse ** -2.0
    w /= w.sum()
    w[w < MIN_WEIGHT] = 0.0
    return w / w.sum()


def _predict_log(c: Candidate, xl: np.ndarray, macs: np.ndarray) -> np.ndarray:
    if c.kind == "flops":
        return np.log(np.maximum(c.slope * macs + c.offset, c.floor_ms))
    return c.slope * xl[:, c.column] + c.offset


class FewShotPredictor:
    """latency = exp(sum_c w_c * candidate_c(log proxies, MACs)); see the module's text."""

    def __init__(self, space, bank: ProxyBank, parts: list[Candidate], weights: list[float],
                 report: FewShotReport):
        self.space = space
        self.bank = bank
        self.parts = parts
        self.weights = np.asarray(weights, dtype=float)
        self._report = report

    def report(self) -> FewShotReport:
        return self._report

    def predict_from(self, x_ms: np.ndarray, macs: np.ndarray) -> np.ndarray:
        """Predictions from the bank's proxy columns (ms) and MACs, already looked up."""
        xl = np.log(x_ms)
        out = np.zeros(len(macs))
        for c, w in zip(self.parts, self.weights):
            out += w * _predict_log(c, xl, macs)
        ms = np.exp(out)
        if not np.all(np.isfinite(ms) & (ms > 0)):  # cannot happen with positive proxies
            raise PredictorError("the few-shot predictor produced a non-finite latency; refit it")
        return ms

    def predict(self, archs) -> np.ndarray:
        archs = list(archs)
        if not archs:
            return np.empty(0)
        x, macs = self.bank.lookup(self.space, archs)
        return self.predict_from(x, macs)

    def get_params(self, deep: bool = False) -> dict:
        return {"space": self.space}

    # --- persistence (plain containers and arrays: the restricted unpickler reads them) -----
    def state(self) -> dict:
        return {"version": STATE_VERSION, "bank": self.bank.state(),
                "parts": [asdict(c) for c in self.parts], "weights": self.weights.tolist(),
                "report": {**asdict(self._report), "candidates": [list(c) for c in
                                                                  self._report.candidates]}}

    @classmethod
    def from_state(cls, space, state: dict) -> "FewShotPredictor":
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise PredictorError("the saved few-shot predictor is of another version; refit it")
        bank = ProxyBank.from_state(state["bank"])
        if bank.space_name != space.name:
            raise PredictorError(f"the saved few-shot predictor is for space {bank.space_name}, "
                                 f"not {space.name}")
        rep = dict(state["report"])
        rep["candidates"] = tuple(tuple(c) for c in rep["candidates"])
        return cls(space, bank, [Candidate(**c) for c in state["parts"]], state["weights"],
                   FewShotReport(**rep))


def _target(space, target) -> tuple[list, np.ndarray]:
    """The target's networks (one per key; repeats pooled by median) and their ms."""
    by: dict[str, list] = {}
    arch_of = {}
    for key, arch, ms in _pairs(space, target):
        by.setdefault(key, []).append(ms)
        arch_of.setdefault(key, arch)
    keys = list(by)
    return [arch_of[k] for k in keys], np.array([float(np.median(by[k])) for k in keys])


def fit_fewshot(space, target, proxies, table=None, seed: int = 0,
                select: str = "weighted") -> FewShotPredictor:
    """A few-shot predictor of the target device.

    ``target``: its records in the space ([(arch, ms)], {arch key: ms} or Records), >= 5.
    ``proxies``: other devices' records in the space (name -> the same forms), or a ProxyBank
    built once for many fits. ``table``: a LatencyTable of the space (any device), one more
    proxy. ``select``: "weighted" (the LOO-weighted average) or "loo" (the candidate with the
    lowest LOO error). PredictorError (one line) for too few records or no proxy in the space."""
    archs, y = _target(space, target)
    if len(y) < MIN_TARGET:
        raise PredictorError(f"a few-shot fit needs at least {MIN_TARGET} measured {space.name} "
                             f"networks of the device, got {len(y)}; measure more")
    bank = proxies if isinstance(proxies, ProxyBank) else ProxyBank.build(space, proxies, table,
                                                                           seed)
    x, macs = bank.lookup(space, archs)
    d = _Design(bank.names, x, macs, y)
    rows = np.arange(len(y))
    singles = d.singles(rows)
    if not singles:
        raise PredictorError("no candidate could be fitted: the target's networks do not differ "
                             "in any proxy's latency or in FLOPs")
    # the weighted average's own LOO: the weights and fits redone without each network
    nested = np.empty(len(y))
    for i in rows:
        others = rows[rows != i]
        inner = d.singles(others)
        if not inner:
            nested[i] = np.nan
            continue
        w = _weights(inner, d.yl[others])
        nested[i] = sum(wk * _predict_log(c, d.xl[i:i + 1], d.macs[i:i + 1])[0]
                        for (c, _), wk in zip(inner, w) if wk > 0)
    w_all = _weights(singles, d.yl)
    scored = [(c.loo_rmspe, c.name, [c], [1.0], p) for c, p in singles]
    if np.all(np.isfinite(nested)):
        used = [(c, wk) for (c, _), wk in zip(singles, w_all) if wk > 0]
        scored.append((100 * math.sqrt(_rel_mse(nested, d.yl)), "weighted",
                       [c for c, _ in used], [wk for _, wk in used], nested))
    scored.sort(key=lambda s: s[0])
    if select not in ("weighted", "loo"):
        raise PredictorError(f"select is 'weighted' or 'loo', not {select!r}")
    # "weighted" keeps the LOO-weighted average even where one candidate's LOO error is lower:
    # on 10 networks that error is too noisy to pick one model by (HELP's data: mean rho
    # 0.971 / 0.951 picking the lowest, 0.976 / 0.960 averaging, NAS-Bench-201 / FBNet;
    # BENCHMARKS.md); "loo" picks the lowest
    pick = scored[0]
    if select == "weighted":
        # ... unless one candidate's leave-one-out error is far lower: a device unlike every
        # proxy, where FLOPs alone explain it (local-cpu on nb201: FLOPs-linear 12% against the
        # average's 22%), must not be averaged with proxies that mislead
        avg = next((s for s in scored if s[1] == "weighted"), None)
        if avg is not None and avg[0] <= FAR_LOWER * scored[0][0]:
            pick = avg
    rmspe, chosen, parts, weights, loo_pred = pick
    inputs: dict[str, float] = {}
    for c, wk in zip(parts, weights):
        name = "flops" if c.kind == "flops" else bank.names[c.column]
        inputs[name] = inputs.get(name, 0.0) + float(wk)
    flops = next((s[0] for s in scored if s[1] == "flops-linear"), math.nan)
    report = FewShotReport(
        chosen=chosen, inputs=inputs, loo_rmspe=float(rmspe),
        loo_within10=float(np.mean(np.abs(np.expm1(loo_pred - d.yl)) <= 0.10)),
        flops_loo_rmspe=float(flops), n_target=len(y),
        candidates=tuple((s[1], round(float(s[0]), 3)) for s in scored),
        cleaned=dict(bank.cleaned))
    # keep only the proxies the prediction uses: the saved state stays small and says so
    keep = sorted({c.column for c in parts if c.column >= 0})
    small = bank.subset([bank.names[j] for j in keep])
    remap = {j: i for i, j in enumerate(keep)}
    parts = [Candidate(**{**asdict(c), "column": remap.get(c.column, -1)}) for c in parts]
    return FewShotPredictor(space, small, parts, weights, report)


def choose_networks(space, proxies, n: int, seed: int = 0, exclude=()) -> list:
    """``n`` networks to measure on a new device, spread over what the proxies know: the
    networks the proxies measured, sorted by the first principal component of their
    standardised log latencies (the direction along which devices mostly agree: slow vs
    fast), cut into ``n`` strata of equal size, one network drawn from each. Leave-one-out
    then sees the whole latency range, and the fit is not extrapolated at the ends."""
    if not isinstance(n, int) or n < 1:
        raise PredictorError(f"the number of networks to choose must be a positive integer, "
                             f"not {n!r}")
    bank = proxies if isinstance(proxies, ProxyBank) else ProxyBank.build(space, proxies,
                                                                           seed=seed)
    skip = {k if isinstance(k, str) else json.dumps(k.to_dict() if hasattr(k, "to_dict") else k,
                                                    sort_keys=True) for k in exclude}
    rows = np.array([i for i, k in enumerate(bank.keys) if k not in skip], dtype=np.int64)
    if len(rows) < n:
        raise PredictorError(f"the proxies know {len(rows)} {space.name} networks, fewer than "
                             f"the {n} asked for")
    z = np.log(bank.values_ms[rows])
    z = (z - z.mean(axis=0)) / np.maximum(z.std(axis=0), 1e-12)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    score = z @ vt[0]
    if np.corrcoef(score, z.mean(axis=1))[0, 1] < 0:
        score = -score  # slow networks last, whatever sign the SVD chose
    order = rows[np.argsort(score, kind="stable")]
    rng = np.random.default_rng(seed)
    picks = [int(rng.choice(stratum)) for stratum in np.array_split(order, n)]
    return [space.arch_from_obj(json.loads(bank.keys[i])) for i in picks]
