"""Profilers: turn an OpSpec (or a whole model) into Stats on one device.

Every profiler follows the same small protocol, so the driver (``run.profile_ops``), the table,
the predictors and the search never care which runtime measured a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hwnas.device_configs import DeviceConfig
from hwnas.errors import DeviceError
from hwnas.latency.energy import Energy
from hwnas.latency.stats import Stats
from hwnas.ops import OpSpec


@dataclass(frozen=True)
class Measurement:
    """Everything one measurement produced: what the optional ``measure_op_full`` returns.

    Profilers that can say more than Stats (energy, a warm-up that never settled) implement
    ``measure_op_full(op) -> Measurement``; the driver uses it when present, so a wrapper that
    changes ``measure_op`` must change (or hide) ``measure_op_full`` too.
    """

    stats: Stats
    energy: Energy | None = None  # None: not measured or unavailable; never a zero
    flag: str = ""  # why this number deserves a second look; "" when nothing is amiss


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
    """The live profiler for a device config (runtimes are imported lazily)."""
    if cfg.profiler == "onnxruntime":
        from hwnas.profilers.onnxrt import OrtProfiler

        return OrtProfiler(cfg, cache_dir)
    if cfg.profiler == "cuda":
        from hwnas.profilers.cuda import CudaProfiler

        return CudaProfiler(cfg, cache_dir)  # raises DeviceError at once when no GPU is visible
    if cfg.profiler == "imported":
        raise DeviceError(f"{cfg.name} has no live profiler in hwnas yet; import its table with "
                          f"'hwnas import' ({cfg.source or 'see hwnas devices'})")
    raise DeviceError(f"{cfg.name}: the {cfg.profiler} profiler is not available in this build")
