"""Profilers: turn an OpSpec (or a whole model, a model file, a kernel) into a Measurement on
one device.

Every profiler subclasses one base class (``base.Profiler``), so the driver
(``run.profile_ops``), the table, the predictors and the search never care which runtime
measured a number, and never ask a profiler what it has: a capability it lacks raises one
ProfileError line.
"""

from __future__ import annotations

from pathlib import Path

from hwnas.device_configs import DeviceConfig
from hwnas.profilers.base import CapabilityError, KernelJob, Measurement, Profiler

__all__ = ["CapabilityError", "KernelJob", "Measurement", "Profiler", "make_profiler"]


def make_profiler(cfg: DeviceConfig, cache_dir: Path, serials: tuple[str, ...] = ()) -> Profiler:
    """The live profiler for a device config: its kind's factory (hwnas.devices), which imports
    the runtime only now.

    ``serials`` pick phones for adb devices: none = the config's serial or the only phone
    attached; several = one profiler that shares the op list among the phones in parallel.
    """
    from hwnas.devices import kind_of
    from hwnas.errors import DeviceError

    kind = kind_of(cfg)
    prof = kind.make_profiler(cfg, cache_dir, tuple(serials))
    if not isinstance(prof, Profiler):  # another package's kind: the driver calls its methods
        raise DeviceError(f"device kind {kind.name!r} ({kind.profiler}) made a "
                          f"{type(prof).__name__}, not a hwnas.profilers.Profiler subclass")
    return prof
