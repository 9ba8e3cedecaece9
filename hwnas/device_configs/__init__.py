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
# The cuda profiler's runtimes and precisions. "tf32" is fp32 storage with TensorFloat-32 math in
# matmuls and convolutions: on Ampere and later cuDNN uses it for "fp32" convolutions unless told
# not to, so hwnas names it and keeps plain "fp32" strict.
CUDA_BACKENDS = ("torch", "ort-cuda", "ort-trt")
CUDA_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")


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
    # The drift-free protocol (profilers/drift.py): time every op and network in rounds between
    # runs of a fixed reference network, and keep the ratio to it beside the milliseconds.
    reference: bool = True
    reference_rounds: int = 10  # an op's timed runs are split into this many rounds
    reference_runs: int = 1  # reference calls before each round and after the last
    # whole networks: while the median ratio's relative standard error is above this, time
    # another batch of `runs`, up to `reference_batches` batches in all
    reference_precision: float = 0.004
    reference_batches: int = 4
    resolutions: tuple[int, ...] = ()  # resolutions the main job profiles by default
    source: str = ""  # where an imported table comes from
    notes: str = ""
    # --- cuda profiler only (ignored by the others) ---
    backend: str = "torch"  # one of CUDA_BACKENDS
    include_copies: bool = False  # time host->device input and device->host output copies too
    cudnn_benchmark: bool = True  # let cuDNN (or ORT's conv search) pick the fastest algorithms
    warmup_max: int = 1000  # warm up at least `warmup` calls, until stable, at most this many
    warmup_tolerance: float = 0.02  # stable: the median of the last window moved less than this
    energy: bool = True  # also measure energy per call from NVML's total-energy counter
    energy_min_s: float = 1.0  # the counter ticks coarsely: integrate over at least this long
    # --- TFLite (local-tflite and adb devices) ---------------------------------------------
    use_xnnpack: bool = True  # the XNNPACK delegate (TFLite's default CPU path since 2.3)
    # --- adb (Android phones) ----------------------------------------------------------------
    serial: str = ""  # pick this phone when several are attached (--serial overrides)
    benchmark_bin: str = ""  # host path of TFLite's android_aarch64 benchmark_model
    remote_dir: str = "/data/local/tmp/hwnas"  # where models and the binary go on the phone
    thermal_zones: str = "cpu|big|mid|little|soc|tsens"  # regex on thermal zone types to watch
    thermal_limit_c: float = 50.0  # cool down before measuring when a watched zone is hotter
    freq_drop: float = 0.10  # cool down when a pinned core's clock is this far under its peak
    cool_poll_s: float = 5.0  # how often to re-read the phone while cooling down
    cool_max_s: float = 300.0  # give up waiting (and record it) after this long

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
        if not isinstance(self.reference, bool):
            raise DeviceError(f"device {self.name}: reference must be true or false")
        if isinstance(self.reference_precision, bool) or not isinstance(
                self.reference_precision, (int, float)) or not 0 < self.reference_precision < 1:
            raise DeviceError(f"device {self.name}: reference_precision must be in (0, 1)")
        for name in ("reference_rounds", "reference_runs", "reference_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DeviceError(f"device {self.name}: {name} must be a positive integer")
        if not isinstance(self.use_xnnpack, bool):
            raise DeviceError(f"device {self.name}: use_xnnpack must be true or false")
        for name in ("thermal_limit_c", "freq_drop", "cool_poll_s", "cool_max_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise DeviceError(f"device {self.name}: {name} must be a non-negative number")
        if not 0 <= self.freq_drop < 1:
            raise DeviceError(f"device {self.name}: freq_drop must be a fraction in [0, 1)")
        if self.profiler == "cuda":
            self._check_cuda()

    def _check_cuda(self) -> None:
        if self.backend not in CUDA_BACKENDS:
            raise DeviceError(f"device {self.name}: backend {self.backend!r} unknown; "
                              f"one of {', '.join(CUDA_BACKENDS)}")
        if self.precision not in CUDA_PRECISIONS:
            raise DeviceError(f"device {self.name}: precision {self.precision!r} unknown; "
                              f"one of {', '.join(CUDA_PRECISIONS)}")
        for name in ("include_copies", "cudnn_benchmark", "energy"):
            if not isinstance(getattr(self, name), bool):
                raise DeviceError(f"device {self.name}: {name} must be true or false")
        if not isinstance(self.warmup_max, int) or self.warmup_max < self.warmup:
            raise DeviceError(f"device {self.name}: warmup_max must be an integer >= warmup "
                              f"({self.warmup})")
        if not 0 < self.warmup_tolerance < 1:
            raise DeviceError(f"device {self.name}: warmup_tolerance must be in (0, 1)")
        if not self.energy_min_s > 0:
            raise DeviceError(f"device {self.name}: energy_min_s must be > 0 seconds")

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
