"""NVML (nvidia-ml-py): the GPU's driver, clocks, power limit and total-energy counter.

Every query is optional. A GPU or driver that lacks one leaves that fact out of the meta, and a
missing energy counter is reported with its reason; nothing is ever filled in with a zero.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

log = logging.getLogger(__name__)


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class Nvml:
    """An NVML session on the GPU that torch (or onnxruntime) uses; ``close()`` it when done."""

    def __init__(self, pynvml, handle, how: str):
        self.nv, self.handle, self.how = pynvml, handle, how

    @classmethod
    def open(cls, uuid: str = "", pci_bus_id: str = "") -> tuple["Nvml | None", str]:
        """(session, "") or (None, why not). Finds the GPU by UUID, then PCI bus, then index."""
        try:
            import pynvml
        except ImportError:
            return None, "nvidia-ml-py is not installed (pip install 'hwnas[gpu]')"
        try:
            pynvml.nvmlInit()
        except Exception as e:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
            return None, f"NVML did not start: {e}"
        try:
            handle, how = cls._handle(pynvml, uuid, pci_bus_id)
        except Exception as e:
            pynvml.nvmlShutdown()
            return None, f"NVML found no handle for this GPU: {e}"
        return cls(pynvml, handle, how), ""

    @staticmethod
    def _handle(nv, uuid: str, pci_bus_id: str):
        # CUDA and NVML number GPUs differently (CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER), so an
        # index is the last resort, and the meta says which way the GPU was matched.
        if uuid:
            try:
                full = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
                return nv.nvmlDeviceGetHandleByUUID(full), "uuid"
            except Exception as e:
                log.debug("NVML by UUID %s: %s", uuid, e)
        if pci_bus_id:
            try:
                return nv.nvmlDeviceGetHandleByPciBusId(pci_bus_id), "pci"
            except Exception as e:
                log.debug("NVML by PCI %s: %s", pci_bus_id, e)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
        index = int(visible) if visible.isdigit() else 0
        return nv.nvmlDeviceGetHandleByIndex(index), f"index {index} (assumed)"

    def close(self) -> None:
        try:
            self.nv.nvmlShutdown()
        except Exception as e:
            log.debug("nvmlShutdown: %s", e)

    def info(self) -> dict:
        """Driver, clocks and power facts for the meta; absent where the GPU does not say."""
        nv, out = self.nv, {"nvml_match": self.how}
        try:
            out["driver_version"] = _text(nv.nvmlSystemGetDriverVersion())
            v = nv.nvmlSystemGetCudaDriverVersion()
            out["driver_cuda_version"] = f"{v // 1000}.{v % 1000 // 10}"
        except Exception as e:
            log.debug("NVML driver version: %s", e)
        queries = {
            "nvml_name": (nv.nvmlDeviceGetName,),
            "sm_clock_mhz": (nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_SM),
            "mem_clock_mhz": (nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_MEM),
            "max_sm_clock_mhz": (nv.nvmlDeviceGetMaxClockInfo, nv.NVML_CLOCK_SM),
            "max_mem_clock_mhz": (nv.nvmlDeviceGetMaxClockInfo, nv.NVML_CLOCK_MEM),
            "app_sm_clock_mhz": (nv.nvmlDeviceGetApplicationsClock, nv.NVML_CLOCK_SM),
            "power_limit_w": (nv.nvmlDeviceGetPowerManagementLimit,),
            "enforced_power_limit_w": (nv.nvmlDeviceGetEnforcedPowerLimit,),
            "temperature_c": (nv.nvmlDeviceGetTemperature, nv.NVML_TEMPERATURE_GPU),
            "persistence_mode": (nv.nvmlDeviceGetPersistenceMode,),
        }
        for name, (fn, *args) in queries.items():
            try:
                v = fn(self.handle, *args)
            except Exception as e:  # NotSupported on this GPU: leave it out
                log.debug("NVML %s: %s", name, e)
                continue
            out[name] = _text(v) if name == "nvml_name" else (
                v / 1000.0 if name.endswith("_w") else v)  # NVML reports power in mW
        return out

    def energy_counter(self) -> tuple[Callable[[], int] | None, str]:
        """(read() -> mJ since driver load, "") or (None, why the counter is unavailable)."""
        fn = self.nv.nvmlDeviceGetTotalEnergyConsumption
        try:
            fn(self.handle)
        except Exception as e:  # pre-Volta GPUs, some vGPUs
            return None, f"NVML total-energy counter not supported on this GPU ({e})"
        return (lambda: int(fn(self.handle))), ""
