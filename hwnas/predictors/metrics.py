"""How close predictions are to measurements. All inputs in ms, same order."""

from __future__ import annotations

import numpy as np


def _arrays(pred, true):
    p, t = np.asarray(pred, dtype=float), np.asarray(true, dtype=float)
    if p.shape != t.shape or p.ndim != 1 or p.size == 0:
        raise ValueError("predictions and measurements must be non-empty 1-d arrays of one length")
    return p, t


def within(pred, true, tol: float) -> float:
    """Fraction of predictions within ±tol (relative) of the measurement."""
    p, t = _arrays(pred, true)
    return float(np.mean(np.abs(p - t) <= tol * t))


def rmse(pred, true) -> float:
    p, t = _arrays(pred, true)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def rmspe(pred, true) -> float:
    """Root mean squared percentage error, in percent."""
    p, t = _arrays(pred, true)
    return float(100 * np.sqrt(np.mean(((p - t) / t) ** 2)))


def mape(pred, true) -> float:
    p, t = _arrays(pred, true)
    return float(100 * np.mean(np.abs(p - t) / t))


def kendall(pred, true) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(*_arrays(pred, true)).statistic)


def spearman(pred, true) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(*_arrays(pred, true)).statistic)


def score(pred, true) -> dict[str, float]:
    """Every metric hwnas reports for a predictor."""
    return {"within5": within(pred, true, 0.05), "within10": within(pred, true, 0.10),
            "rmse_ms": rmse(pred, true), "rmspe": rmspe(pred, true), "mape": mape(pred, true),
            "kendall": kendall(pred, true), "spearman": spearman(pred, true),
            "bias": float(np.mean(np.asarray(pred) / np.asarray(true) - 1)), "n": len(pred)}
