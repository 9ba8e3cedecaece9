"""Latency callables for pools and search: ``fn(list of archs) -> np.ndarray of ms``.

Everything in hwnas.supernet takes such a plain callable, so any predictor plugs in: the
device's LUT predictor (``load_latency_fn``), a bare table sum (``table_latency_fn``, for tables
that live outside a device folder, as in the benchmark), or a FLOPs-proportional stand-in that
exists only for tests and demos and says so in its name.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np


log = logging.getLogger(__name__)
LatencyFn = Callable[[Sequence], np.ndarray]


def table_latency_fn(table, space) -> LatencyFn:
    """The uncalibrated LUT predictor of a table: per-op medians summed over ``space.ops``, plus
    the per-call overhead once per network. Missing ops raise MissingKeysError; never 0 ms."""
    from hwnas.predictors.lut import LUTPredictor

    predictor = LUTPredictor(table, space, calibrate=False)
    return lambda archs: np.asarray(predictor.predict(list(archs)), dtype=np.float64)


def load_latency_fn(device: str, space, predictor: str = "auto") -> LatencyFn:
    """The named device's predictor ``predictor`` (``--predictor``: auto, lut, kernel, e2e;
    see hwnas.predictors.select) for ``space`` (which may be a narrowed space), as a callable.

    Raises HwnasError naming what to do when the device has no table or no such predictor.
    """
    from dataclasses import replace

    from hwnas import api

    # The device's own context (its table and records paths), with the supernet's space.
    ctx = replace(api.context(device), space=space)
    chosen = api.predictor(ctx, predictor)
    log.warning("latency of %s: %s predictor", device, chosen.describe())
    return chosen.predict


def flops_standin_latency_fn(space, ms_per_mmac: float = 0.1) -> LatencyFn:
    """STAND-IN, not a measurement: latency taken as proportional to MACs. For tests/demos."""
    return lambda archs: np.array([space.macs(a) / 1e6 * ms_per_mmac for a in archs])
