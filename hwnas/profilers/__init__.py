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
    """The live profiler for a device config (runtimes are imported lazily).

    ``serials`` pick phones for adb devices: none = the config's serial or the only phone
    attached; several = one profiler that shares the op list among the phones in parallel.
    """
    if serials and cfg.profiler != "adb":
        raise DeviceError(f"--serial is for phones; {cfg.name} is profiled with {cfg.profiler}")
    if cfg.profiler == "onnxruntime":
        from hwnas.profilers.onnxrt import OrtProfiler

        return OrtProfiler(cfg, cache_dir)
    if cfg.profiler == "tflite":
        from hwnas.profilers.litert import LiteRTProfiler

        return LiteRTProfiler(cfg, cache_dir)
    if cfg.profiler == "adb":
        return _adb_profiler(cfg, cache_dir, serials)
    if cfg.profiler == "cuda":
        from hwnas.profilers.cuda import CudaProfiler

        return CudaProfiler(cfg, cache_dir)  # raises DeviceError at once when no GPU is visible
    if cfg.profiler == "imported":
        raise DeviceError(f"{cfg.name} has no live profiler in hwnas yet; import its table with "
                          f"'hwnas import' ({cfg.source or 'see hwnas devices'})")
    raise DeviceError(f"{cfg.name}: the {cfg.profiler} profiler is not available in this build")


def _adb_profiler(cfg: DeviceConfig, cache_dir: Path, serials: tuple[str, ...]) -> Profiler:
    import threading

    from hwnas.profilers.adb import AdbProfiler

    serials = tuple(dict.fromkeys(serials))  # the same phone twice would race with itself
    if len(serials) <= 1:
        return AdbProfiler(cfg, cache_dir, serial=serials[0] if serials else "")
    from hwnas.profilers.parallel import Fleet

    lock = threading.Lock()  # one export at a time, shared by the phones' threads
    return Fleet([AdbProfiler(cfg, cache_dir, serial=s, export_lock=lock) for s in serials])
