"""Latency callables for pools and search: ``fn(list of archs) -> np.ndarray of ms``.

Everything in hwnas.supernet takes such a plain callable, so any predictor plugs in. The device's
own predictor (``hwnas.predictors.lut``) is imported lazily; until a device has one, its latency
table summed over ``space.ops`` serves (the nn-Meter way), and a FLOPs-proportional stand-in
exists only for tests and demos and says so in its name.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np

from hwnas.errors import HwnasError

log = logging.getLogger(__name__)
LatencyFn = Callable[[Sequence], np.ndarray]


def table_latency_fn(table, space) -> LatencyFn:
    """Sum of the table's per-op medians over ``space.ops(arch)``, plus the per-call overhead
    the profiler subtracted from each op (added back once per network). Missing ops raise
    MissingKeysError listing them; never 0 ms."""
    overhead = float(table.meta.get("call_overhead_ms", 0.0))

    def fn(archs):
        return np.array([table.lookup(space.op_keys(a)).sum() + overhead for a in archs])

    return fn


def load_latency_fn(device: str, space) -> LatencyFn:
    """The named device's latency predictor as a callable.

    Prefers ``hwnas.predictors.lut.load_lut_predictor(device)``; falls back to summing the
    device's latency table; raises HwnasError naming what to do when the device has neither.
    """
    try:
        from hwnas.predictors.lut import load_lut_predictor
    except ImportError:
        load_lut_predictor = None
    if load_lut_predictor is not None:
        predictor = load_lut_predictor(device)
        return lambda archs: np.asarray(predictor.predict(list(archs)), dtype=np.float64)
    from hwnas.home import device_paths
    from hwnas.latency.table import LatencyTable

    path = device_paths(device).table
    if not path.exists():
        raise HwnasError(f"no latency predictor or table for device {device!r} (looked for "
                         f"{path}); profile it ('hwnas profile --device {device}') or import its "
                         f"table ('hwnas import')")
    log.info("hwnas.predictors.lut is not available: summing %s's latency table", device)
    return table_latency_fn(LatencyTable.load(path), space)


def flops_standin_latency_fn(space, ms_per_mmac: float = 0.1) -> LatencyFn:
    """STAND-IN, not a measurement: latency taken as proportional to MACs. For tests/demos."""
    return lambda archs: np.array([space.macs(a) / 1e6 * ms_per_mmac for a in archs])
