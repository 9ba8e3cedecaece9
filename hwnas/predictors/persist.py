"""Saving and loading fitted predictors safely.

A predictor file is a pickle of a plain dict: a format tag and version, the library versions it
was fitted with, the device and space it belongs to, and a ``state`` that may hold fitted
scikit-learn / xgboost estimators. It is read with the restricted unpickler, extended by an
explicit list of estimator classes whose unpickling only restores arrays. Anything else (a
function, ``os.system``, an arbitrary class) is refused before it runs.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from hwnas import __version__
from hwnas.errors import PredictorError
from hwnas.latency.safeio import SAFE_GLOBALS, dump_pickle, safe_load

log = logging.getLogger(__name__)
FORMAT_TAG = "hwnas-predictor"
# 2: calibration is one factor (log space); tables and records are drift-free (ratios to the
# reference network); the file keeps its held-out score and the protocol it was fitted under
FORMAT_VERSION = 2

_ESTIMATORS = {
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy.random._mt19937", "MT19937"), ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random.bit_generator", "SeedSequence"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("sklearn._loss._loss", "CyHalfSquaredError"), ("sklearn._loss.link", "IdentityLink"),
    ("sklearn._loss.link", "Interval"), ("sklearn._loss.loss", "HalfSquaredError"),
    ("sklearn.compose._target", "TransformedTargetRegressor"),
    ("sklearn.dummy", "DummyRegressor"),
    ("sklearn.ensemble._forest", "RandomForestRegressor"),
    ("sklearn.ensemble._gb", "GradientBoostingRegressor"),
    ("sklearn.linear_model._base", "LinearRegression"),
    ("sklearn.linear_model._ridge", "Ridge"),
    ("sklearn.neural_network._multilayer_perceptron", "MLPRegressor"),
    ("sklearn.neural_network._stochastic_optimizers", "AdamOptimizer"),
    ("sklearn.pipeline", "Pipeline"), ("sklearn.preprocessing._data", "StandardScaler"),
    ("sklearn.tree._classes", "DecisionTreeRegressor"), ("sklearn.tree._tree", "Tree"),
    ("xgboost.sklearn", "XGBRegressor"), ("xgboost.core", "Booster"), ("builtins", "bytearray"),
}
PREDICTOR_GLOBALS = frozenset(SAFE_GLOBALS | _ESTIMATORS)


def library_versions() -> dict[str, str]:
    import numpy
    import sklearn

    libs = {"hwnas": __version__, "numpy": numpy.__version__, "scikit-learn": sklearn.__version__}
    try:
        import xgboost

        libs["xgboost"] = xgboost.__version__
    except ImportError:
        pass
    return libs


def save_predictor(path: str | Path, *, kind: str, device: str, space: str,
                   resolutions: list[int], state: dict, trained_on: list[str], model: str = "",
                   holdout: dict | None = None, protocol: dict | None = None) -> None:
    from hwnas.locks import folder_lock

    with folder_lock(Path(path).parent):  # two fits of one device take turns
        dump_pickle(path, {
            "format": FORMAT_TAG, "version": FORMAT_VERSION, "libs": library_versions(),
            "kind": kind, "model": model, "device": device, "space": space,
            "resolutions": list(resolutions), "state": state, "trained_on": list(trained_on),
            "holdout": holdout, "protocol": protocol,
        })


def load_predictor_file(path: str | Path, device: str, space: str) -> dict:
    """The saved dict, after checking it belongs to this device and space."""
    path = Path(path)
    if not path.exists():
        raise PredictorError(f"no fitted predictor at {path}; run 'hwnas fit' first")
    obj = safe_load(path, allowed=PREDICTOR_GLOBALS)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_TAG:
        raise PredictorError(f"{path} is not an hwnas predictor")
    if obj.get("version") != FORMAT_VERSION:
        raise PredictorError(f"{path} has predictor format {obj.get('version')}, this hwnas "
                             f"reads {FORMAT_VERSION}; refit it")
    if obj.get("device") != device:
        raise PredictorError(f"{path} was fitted for device {obj.get('device')!r}, not {device!r}")
    if obj.get("space") != space:
        raise PredictorError(f"{path} was fitted for space {obj.get('space')!r}, not {space!r}")
    now = library_versions()
    changed = {k: (v, now.get(k)) for k, v in obj.get("libs", {}).items() if now.get(k) != v}
    if changed:
        msg = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())
        warnings.warn(f"{path.name} was fitted with other library versions ({msg}); "
                      f"predictions may differ, refit to be sure", stacklevel=2)
    return obj
