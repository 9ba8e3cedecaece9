"""Which predictor a command uses: ``--predictor lut|kernel|e2e|auto``.

``lut`` is the table's sum, calibrated by one factor on the device's records (api.lut_predictor).
``kernel``, ``e2e`` and ``fewshot`` are the predictors ``hwnas fit`` saved for the device
(``fewshot``'s score is its leave-one-out error on the device's few records). ``auto`` takes the
fitted predictor with the best held-out score (RMSPE on the subnets it was not fitted on), and
the LUT when none is fitted. Whatever is chosen says what it is, so every command can print it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwnas.errors import HwnasError, PredictorError

log = logging.getLogger(__name__)
CHOICES = ("auto", "lut", "kernel", "e2e", "fewshot")
FITTED = ("kernel", "e2e", "lut", "fewshot")  # kinds `auto` considers, when fitted


@dataclass(frozen=True)
class Chosen:
    """A predictor ready to use, and what to tell the user about it."""

    predictor: object  # .predict(archs) -> ms
    kind: str  # "lut", "kernel", "e2e"
    detail: str  # how it was fitted or calibrated, and its held-out score

    def describe(self) -> str:
        return f"{self.kind} ({self.detail})" if self.detail else self.kind

    def predict(self, archs) -> np.ndarray:
        """Predicted ms; a prediction that is not a finite positive number is an error."""
        out = np.asarray(self.predictor.predict(list(archs)), dtype=np.float64)
        bad = ~np.isfinite(out) | (out <= 0)
        if bad.any():
            raise PredictorError(f"the {self.kind} predictor gave {out[bad][0]!r} ms for a subnet; "
                                 f"check the device's table (negative, zero or infinite entries) "
                                 f"or refit the predictor")
        return out


def fitted_summary(obj: dict) -> str:
    """'rf; held-out RMSPE 2.1%, 98% within ±10% on 180 subnets' for a loaded predictor file."""
    model = obj.get("model") or ""
    h = obj.get("holdout")
    how = "leave-one-out" if h and h.get("method") == "leave-one-out" else "held-out"
    score = (f"{how} RMSPE {h['rmspe']:.1f}%, {100 * h['within10']:.0f}% within ±10% on "
             f"{h['n']} subnets" if h else "no held-out score")
    trained = f"fitted on {len(obj.get('trained_on', []))} subnets"
    return "; ".join(x for x in (model, trained, score) if x)


def load_kind(kind: str, path: Path, device: str, space, table) -> Chosen:
    """A fitted predictor of ``kind`` from ``path``, checked against this device, space and
    table (protocol, resolutions); PredictorError saying how to fit one when there is none."""
    from hwnas.predictors.fitting import check_fitted, restore
    from hwnas.predictors.persist import load_predictor_file

    if not path.exists():
        raise PredictorError(f"no fitted {kind} predictor for {device} ({path}); fit one with "
                             f"'hwnas fit --device {device} --kind {kind}'")
    obj = load_predictor_file(path, device, space.name)
    if obj["kind"] != kind:
        raise PredictorError(f"{path} holds a {obj['kind']} predictor, not {kind}")
    check_fitted(obj, path, space, table)
    return Chosen(restore(kind, space, table, obj["state"]), kind, fitted_summary(obj))


def best_fitted(paths: dict[str, Path], device: str, space, table) -> Chosen | None:
    """The fitted predictor with the lowest held-out RMSPE among ``paths`` (kind -> file), or
    None when none is usable."""
    from hwnas.predictors.persist import load_predictor_file

    ranked = []
    for kind in FITTED:
        path = paths.get(kind)
        if path is None or not path.exists():
            continue
        try:
            obj = load_predictor_file(path, device, space.name)
            from hwnas.predictors.fitting import check_fitted

            check_fitted(obj, path, space, table)
        except HwnasError as e:
            log.warning("--predictor auto skips %s: %s", path.name, e)
            continue
        h = obj.get("holdout")
        ranked.append((h["rmspe"] if h else np.inf, kind))
    for _, kind in sorted(ranked):
        try:
            return load_kind(kind, paths[kind], device, space, table)
        except HwnasError as e:  # e.g. a kind the table cannot restore: try the next one
            log.warning("--predictor auto skips %s: %s", kind, e)
    return None
