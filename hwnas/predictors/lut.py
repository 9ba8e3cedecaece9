"""The LUT predictor: the sum of per-op medians, plus an affine calibration.

Raw prediction = sum of the table's medians over ``space.ops(arch)`` + the runtime's per-call
overhead (subtracted from every op when profiling, so it must come back once per network).
Calibration fits ``a * raw + b`` on end-to-end measurements, when there are any. A key the table
lacks raises MissingKeysError: a missing op is never 0 ms. Every prediction leaves through
``_checked``: a latency at or under 0 ms, or not finite, raises PredictorError instead.
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
        from hwnas.spaces.elasticvit import ElasticViTSpace

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
        a, b = np.polyfit(raw, y, 1)
        if not (np.isfinite(a) and np.isfinite(b) and a > 0):
            # a bigger LUT sum must mean a slower network; a flat or falling fit is noise (or
            # subnets that span no range) and would price big networks at 0 ms or less
            log.warning("calibration on %d subnets gave %.3g x sum %+.3g ms (not increasing); "
                        "using the raw LUT sum", len(y), a, b)
            return self
        self.coef_, self.intercept_ = float(a), float(b)
        self.n_calibration_ = len(y)
        return self

    def predict(self, archs) -> np.ndarray:
        return self._checked(self.coef_ * self.predict_raw(archs) + self.intercept_,
                             "calibrated prediction")

    def predict_one(self, arch) -> float:
        return float(self.predict([arch])[0])
