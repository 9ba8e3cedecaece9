"""Latency callables for pools and search: ``fn(list of archs) -> np.ndarray of ms``.

Everything in hwnas.supernet takes such a plain callable, so any predictor plugs in: a bare
table sum (``table_latency_fn``, for tables that live outside a device folder, as in the
benchmark), a FLOPs-proportional stand-in that exists only for tests and demos and says so in
its name, or a named device's own predictor, which the API builds
(``hwnas.api.supernet.load_latency_fn``).

hwnas.supernet never resolves a device name itself (its config, table, predictor, profiler):
that is the API's job, one layer up, and this package must not call back up into it. Where a
device's latency or energy is needed for a space only known once a checkpoint is read, the
caller hands down a factory (``LatencyFor``, ``EnergyFor``) instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from hwnas.spaces.base import SearchSpace

LatencyFn = Callable[[Sequence], np.ndarray]
# (device name, the checkpoint's space) -> that device's latency callable; raises HwnasError
# naming what to do when the device has no table or predictor for the space
LatencyFor = Callable[[str, "SearchSpace"], LatencyFn]
# (device name, space) -> energy per call (mJ) for archs, or None when the device has none
EnergyFor = Callable[[str, "SearchSpace"], "LatencyFn | None"]


def table_latency_fn(table, space) -> LatencyFn:
    """The uncalibrated LUT predictor of a table: per-op medians summed over ``space.ops``, plus
    the per-call overhead once per network. Missing ops raise MissingKeysError; never 0 ms."""
    from hwnas.predictors.lut import LUTPredictor

    predictor = LUTPredictor(table, space, calibrate=False)
    return lambda archs: np.asarray(predictor.predict(list(archs)), dtype=np.float64)


def flops_standin_latency_fn(space, ms_per_mmac: float = 0.1) -> LatencyFn:
    """STAND-IN, not a measurement: latency taken as proportional to MACs. For tests/demos."""
    return lambda archs: np.array([space.macs(a) / 1e6 * ms_per_mmac for a in archs])
