"""The built-in device kinds' profiler factories (``hwnas.devices.builtin`` names them as
``module:function``), each importing its runtime only when called."""

from __future__ import annotations

from pathlib import Path

from hwnas.device_configs import DeviceConfig


def onnxruntime(cfg: DeviceConfig, cache_dir: Path, serials: tuple[str, ...] = ()):
    from hwnas.profilers.onnxrt import OrtProfiler

    return OrtProfiler(cfg, cache_dir)


def tflite(cfg: DeviceConfig, cache_dir: Path, serials: tuple[str, ...] = ()):
    from hwnas.profilers.litert import LiteRTProfiler

    return LiteRTProfiler(cfg, cache_dir)


def cuda(cfg: DeviceConfig, cache_dir: Path, serials: tuple[str, ...] = ()):
    from hwnas.profilers.cuda import CudaProfiler

    return CudaProfiler(cfg, cache_dir)  # raises DeviceError at once when no GPU is visible


def adb(cfg: DeviceConfig, cache_dir: Path, serials: tuple[str, ...] = ()):
    """One phone, or with several serials one Fleet sharing the op list among them."""
    import threading

    from hwnas.profilers.adb import AdbProfiler

    serials = tuple(dict.fromkeys(serials))  # the same phone twice would race with itself
    if len(serials) <= 1:
        return AdbProfiler(cfg, cache_dir, serial=serials[0] if serials else "")
    from hwnas.profilers.parallel import Fleet

    lock = threading.Lock()  # one export at a time, shared by the phones' threads
    return Fleet([AdbProfiler(cfg, cache_dir, serial=s, export_lock=lock) for s in serials])


def ssh(cfg: DeviceConfig, cache_dir: Path, serials: tuple[str, ...] = ()):
    from hwnas.profilers.ssh import SshProfiler

    return SshProfiler(cfg, cache_dir)
