"""The LUT predictor: the sum of per-op medians, times a multiplicative calibration.

Raw prediction = sum of the table's medians over ``space.ops(arch)`` + the runtime's per-call
overhead (subtracted from every op when profiling, so it must come back once per network).
Calibration scales it by one factor, fitted on end-to-end measurements when there are any: the
median of ``log(measured / raw)``, exponentiated.

Why not ``a * raw + b``: an intercept is not physical (a network of no ops does not take b ms),
and on 12-60 calibration subnets the affine fit learned whatever was confounded with size. With
subnets timed smallest to largest on a drifting machine, it fitted ``1.315 x raw - 2.14 ms``
and predicted a small subnet 30% too fast although its raw sum was within 5%. A single factor,
fitted robustly in log space, moves every prediction by the same relative amount: it cannot turn
a good raw prediction at the edge of the range into a bad one. What remains size-dependent is
for the model-level (e2e) predictor, which is scored on held-out subnets before it is used.

A key the table lacks raises MissingKeysError: a missing op is never 0 ms. Every prediction
leaves through ``_checked``: a latency at or under 0 ms, or not finite, raises PredictorError.
"""

from __future__ import annotations

import logging

import numpy as np

from hwnas.errors import PredictorError
from hwnas.latency.table import LatencyTable
from hwnas.spaces.base import SearchSpace

log = logging.getLogger(__name__)
MIN_CALIBRATION = 3


class LUTPredictor:
    """scikit-learn style: parameters in ``__init__``, learned attributes end in ``_``."""

    def __init__(self, table: LatencyTable, space: SearchSpace, calibrate: bool = True):
        self.table = table
        self.space = space
        self.calibrate = calibrate
        self.coef_, self.intercept_ = 1.0, 0.0
        self.n_calibration_ = 0
        self._compiled = None  # vectorised form of the table, built on first use

    def _fast(self):
        """The compiled LUT when the space has one (ElasticViT), else None."""
        from hwnas.spaces.elasticvit.space import ElasticViTSpace

        if self._compiled is None and isinstance(self.space, ElasticViTSpace):
            from hwnas.predictors.fastlut import CompiledElasticViTLUT

            self._compiled = CompiledElasticViTLUT(self.space, self.table)
        return self._compiled

    @property
    def overhead_ms(self) -> float:
        return float(self.table.meta.get("call_overhead_ms", 0.0))

    def get_params(self, deep: bool = False) -> dict:
        return {"table": self.table, "space": self.space, "calibrate": self.calibrate}

    def predict_raw(self, archs) -> np.ndarray:
        fast = self._fast()
        if fast is not None and len(archs):
            out = fast.predict_encoded(np.stack([self.space.encode(a) for a in archs]))
            if not np.isnan(out).any():
                return self._checked(out, "LUT sum")
        return self._checked(self._predict_walk(archs), "LUT sum")

    def _checked(self, ms: np.ndarray, what: str) -> np.ndarray:
        """The one exit of every prediction: never a latency <= 0 ms or a non-finite one."""
        bad = ~np.isfinite(ms) | (ms <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            cal = (f"; calibrated as {self.coef_:.4g} x sum {self.intercept_:+.4g} ms on "
                   f"{self.n_calibration_} subnets" if self.n_calibration_ else "")
            raise PredictorError(
                f"the {what} of {int(bad.sum())} architecture(s) on {self.table.device} is "
                f"{ms[i]:.4g} ms (not a positive, finite latency){cal}; the table or the "
                f"calibration is wrong: check them, re-profile or re-measure")
        return ms

    def _predict_walk(self, archs) -> np.ndarray:
        """The plain walk over each arch's ops; lists every missing key."""
        medians = self.table.entries
        out = np.empty(len(archs))
        missing: list[str] = []
        for i, arch in enumerate(archs):
            total = 0.0
            for key in self.space.op_keys(arch):
                s = medians.get(key)
                if s is None:
                    missing.append(key)
                else:
                    total += s.median_ms
            out[i] = total + self.overhead_ms
        if missing:
            self.table.lookup(missing)  # raises MissingKeysError listing them all
        return out

    def fit(self, archs, latencies_ms) -> "LUTPredictor":
        y = np.asarray(latencies_ms, dtype=float)
        if len(archs) != len(y):
            raise PredictorError("archs and latencies differ in length")
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise PredictorError("latencies must be finite and positive (found NaN, 0 or < 0)")
        if not self.calibrate:
            return self
        if len(y) < MIN_CALIBRATION:
            raise PredictorError(f"calibration needs at least {MIN_CALIBRATION} measured "
                                 f"subnets, got {len(y)}")
        raw = self.predict_raw(archs)
        coef = float(np.exp(np.median(np.log(y / raw))))
        if not (np.isfinite(coef) and coef > 0):  # cannot happen for finite positive y, raw
            log.warning("calibration on %d subnets gave a factor of %s; using the raw LUT sum",
                        len(y), coef)
            return self
        self.coef_ = coef
        self.intercept_ = 0.0  # kept for the state's layout; always 0 since the log-space fit
        self.n_calibration_ = len(y)
        return self

    def predict(self, archs) -> np.ndarray:
        return self._checked(self.coef_ * self.predict_raw(archs) + self.intercept_,
                             "calibrated prediction")

    def predict_encoded(self, x: np.ndarray) -> np.ndarray:
        """Calibrated predictions of a batch of ``space.encode`` rows (the fast path only)."""
        fast = self._fast()
        if fast is None:
            raise PredictorError(f"no compiled LUT for space {self.space.name}")
        return self._checked(self.coef_ * fast.predict_encoded(x) + self.intercept_,
                             "calibrated prediction")

    def predict_one(self, arch) -> float:
        return float(self.predict([arch])[0])
