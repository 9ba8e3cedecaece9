"""Profilers: turn an OpSpec (or a whole model) into Stats on one device.

Every profiler follows the same small protocol, so the driver (``run.profile_ops``), the table,
the predictors and the search never care which runtime measured a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hwnas.device_configs import DeviceConfig
from hwnas.latency.energy import Energy
from hwnas.latency.stats import RatioStats, Stats
from hwnas.ops import OpSpec


@dataclass(frozen=True)
class Measurement:
    """Everything one measurement produced: what the optional ``measure_op_full`` returns.

    Profilers that can say more than Stats (energy, a warm-up that never settled) implement
    ``measure_op_full(op) -> Measurement``; the driver uses it when present, so a wrapper that
    changes ``measure_op`` must change (or hide) ``measure_op_full`` too.
    """

    stats: Stats  # as timed, in ms (blocks: the per-call overhead subtracted)
    energy: Energy | None = None  # None: not measured or unavailable; never a zero
    flag: str = ""  # why this number deserves a second look; "" when nothing is amiss
    # The drift-free protocol (drift.py): the item's per-call times over the reference
    # network's median timed around them, and that median. None: timed without a reference.
    ratio: RatioStats | None = None
    reference_ms: float | None = None


class Profiler(Protocol):
    runtime: str

    def __enter__(self) -> "Profiler": ...  # acquire: pin cores, connect, open the GPU

    def __exit__(self, *exc) -> None: ...

    def meta(self) -> dict:
        """Facts about the device and runtime, stored in the table's meta."""

    def protocol(self) -> dict:
        """Settings that must match for new measurements to extend an existing table."""

    def measure_op(self, op: OpSpec) -> Stats: ...

    def measure_model(self, module, input_shape) -> Stats: ...


def make_profiler(cfg: DeviceConfig, cache_dir: Path, serials: tuple[str, ...] = ()) -> Profiler:
    """The live profiler for a device config: its kind's factory (hwnas.devices), which imports
    the runtime only now.

    ``serials`` pick phones for adb devices: none = the config's serial or the only phone
    attached; several = one profiler that shares the op list among the phones in parallel.
    """
    from hwnas.devices import kind_of

    return kind_of(cfg).make_profiler(cfg, cache_dir, tuple(serials))
