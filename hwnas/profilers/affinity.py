"""Pinning the measuring process to CPU cores, as a device config asks."""

from __future__ import annotations

import os

from hwnas.errors import DeviceError


def parse_affinity(spec: str, threads: int, allowed: set[int]) -> set[int] | None:
    """CPU ids for ``spec``: "auto" = the last ``threads`` allowed cores (core 0 takes most
    interrupts), "none" = leave as is, "0,2" = a list, "0x30" = a mask."""
    spec = str(spec).strip().lower()
    if spec == "none":
        return None
    if spec == "auto":
        cores = sorted(allowed)
        return set(cores[-threads:]) if len(cores) >= threads else set(cores)
    try:
        if spec.startswith("0x"):
            mask = int(spec, 16)
            cpus = {i for i in range(mask.bit_length()) if mask >> i & 1}
        else:
            cpus = {int(c) for c in spec.split(",") if c.strip()}
    except ValueError:
        raise DeviceError(f"bad affinity {spec!r}: use auto, none, a list like 0,1 or a hex mask")
    if not cpus or not cpus <= allowed:
        raise DeviceError(f"affinity {spec!r} names CPUs {sorted(cpus)} but this process may use "
                          f"{sorted(allowed)}")
    return cpus


def pin(spec: str, threads: int) -> list[int] | None:
    """Pin the current process; returns the CPUs used (recorded in the table's meta)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = parse_affinity(spec, threads, os.sched_getaffinity(0))
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    return sorted(cpus) if cpus is not None else None


class PinnedProcess:
    """Pins the process on ``__enter__`` (returning the CPUs used) and restores the CPU set it
    had on ``__exit__``, so a profiler used inside a larger program (a test run, a notebook)
    does not leave it confined to one core."""

    def __init__(self, spec: str, threads: int):
        self.spec, self.threads = spec, threads
        self._saved: set[int] | None = None

    def __enter__(self) -> list[int] | None:
        if hasattr(os, "sched_getaffinity"):
            self._saved = os.sched_getaffinity(0)
        return pin(self.spec, self.threads)

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            os.sched_setaffinity(0, self._saved)
            self._saved = None
