"""Named devices, one strict yaml file each (package data).

An unknown key in a yaml is an error, not silently ignored: a typo in ``warmup`` must not fall
back to a default and quietly change what a number means.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from importlib import resources

import yaml

from hwnas.errors import DeviceError

PROFILERS = ("onnxruntime", "tflite", "adb", "cuda", "imported")


@dataclass(frozen=True)
class DeviceConfig:
    name: str
    description: str
    profiler: str  # one of PROFILERS; "imported" devices have tables but no live profiler here
    threads: int = 1
    affinity: str = "auto"  # "auto" (last allowed core), "none", a CPU list "0,2", or a hex mask
    warmup: int = 10
    runs: int = 30
    batch: int = 1
    precision: str = "fp32"
    context: str = "flush"  # "flush": time blocks after a cache-evicting predecessor; "isolated"
    flush_mb: int = 24
    sentinel_every: int = 50  # re-time the sentinel op every N ops to catch drift
    drift_tolerance: float = 0.10
    resolutions: tuple[int, ...] = ()  # resolutions the main job profiles by default
    source: str = ""  # where an imported table comes from
    notes: str = ""

    def __post_init__(self):
        if self.profiler not in PROFILERS:
            raise DeviceError(f"device {self.name}: profiler {self.profiler!r} unknown; "
                              f"one of {', '.join(PROFILERS)}")
        if self.context not in ("flush", "isolated"):
            raise DeviceError(f"device {self.name}: context must be 'flush' or 'isolated'")
        for name in ("threads", "warmup", "runs", "batch"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < (
                    0 if name == "warmup" else 1):
                raise DeviceError(f"device {self.name}: {name} must be a positive integer")
        object.__setattr__(self, "resolutions", tuple(self.resolutions))

    def with_overrides(self, **changes) -> "DeviceConfig":
        """A copy with some fields changed (from the command line), re-validated."""
        known = {f.name for f in fields(self)}
        bad = set(changes) - known
        if bad:
            raise DeviceError(f"unknown device option(s): {sorted(bad)}")
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update({k: v for k, v in changes.items() if v is not None})
        return DeviceConfig(**d)


def _config_files() -> dict[str, object]:
    root = resources.files(__name__)
    return {p.name[:-5]: p for p in root.iterdir() if p.name.endswith(".yaml")}


def device_names() -> list[str]:
    return sorted(_config_files())


def parse_config(name: str, text: str) -> DeviceConfig:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DeviceError(f"device config {name}: invalid yaml ({e})") from None
    if not isinstance(raw, dict):
        raise DeviceError(f"device config {name}: expected a mapping")
    known = {f.name for f in fields(DeviceConfig)}
    unknown = set(raw) - known
    if unknown:
        raise DeviceError(f"device config {name}: unknown key(s) {sorted(unknown)}; "
                          f"allowed: {sorted(known)}")
    raw.setdefault("name", name)
    try:
        return DeviceConfig(**raw)
    except TypeError as e:
        raise DeviceError(f"device config {name}: {e}") from None


def load_device(name: str) -> DeviceConfig:
    files = _config_files()
    if name not in files:
        raise DeviceError(f"unknown device {name!r}; known devices: {', '.join(sorted(files))}")
    return parse_config(name, files[name].read_text())
