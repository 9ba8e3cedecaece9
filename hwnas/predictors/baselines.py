"""Proxy baselines the seeds argue against: latency as a linear function of FLOPs.

``flops`` fits ms = a * MACs + b. ``flops+blocks`` adds the number of blocks, which captures the
per-block fixed cost (kernel launches, memory passes) that FLOPs miss; on one x86 core it is a
strong baseline, and an honest predictor must beat it.
"""

from __future__ import annotations

import numpy as np

from hwnas.errors import PredictorError
from hwnas.spaces.base import SearchSpace

MIN_FIT = 5


class FlopsPredictor:
    def __init__(self, space: SearchSpace, features: str = "flops"):
        if features not in ("flops", "flops+blocks"):
            raise PredictorError(f"unknown FLOPs features {features!r}")
        self.space = space
        self.features = features

    def get_params(self, deep: bool = False) -> dict:
        return {"space": self.space, "features": self.features}

    def _x(self, archs) -> np.ndarray:
        cols = [[self.space.macs(a) / 1e6 for a in archs]]
        if self.features == "flops+blocks":
            cols.append([len(self.space.ops(a)) for a in archs])
        return np.column_stack(cols + [np.ones(len(archs))])

    def fit(self, archs, latencies_ms) -> "FlopsPredictor":
        y = np.asarray(latencies_ms, dtype=float)
        if len(y) < MIN_FIT:
            raise PredictorError(f"a FLOPs fit needs at least {MIN_FIT} measured subnets, "
                                 f"got {len(y)}")
        self.coef_, *_ = np.linalg.lstsq(self._x(archs), y, rcond=None)
        return self

    def predict(self, archs) -> np.ndarray:
        return self._x(archs) @ self.coef_

    def state(self) -> dict:
        return {"features": self.features, "coef": self.coef_.tolist()}

    @classmethod
    def from_state(cls, space, state: dict) -> "FlopsPredictor":
        p = cls(space, state["features"])
        p.coef_ = np.asarray(state["coef"])
        return p
