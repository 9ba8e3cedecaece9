"""The registry of device kinds: what a kind of device is, in one place.

A device yaml names its kind (``kind: onnxruntime``; the older spelling ``profiler:`` is the
same key). Everything hwnas does differently per kind is declared here, once, by the kind:

* ``keys``: the yaml keys it takes besides the common ones, checked strictly (a misspelt
  ``warmpu`` is one line naming the file and the key, never a silent default);
* ``profiler``: ``"module:function"`` building its live profiler from a DeviceConfig (imported
  only when something is measured), or "" for a kind that measures nothing here;
* ``caps``: what it can measure (ops, whole models, kernels) and which model formats it runs;
* ``resources``: the measuring locks it takes (two processes never time on one CPU, GPU,
  phone or board at once);
* ``reachable``: a cheap check that says why the device cannot be reached now, or None;
* ``validate``: the kind's own value checks.

hwnas's kinds are in ``hwnas.devices.builtin``. Another package adds one through an entry point
in the group ``hwnas.devices`` naming a DeviceKind (or a module that calls ``register_kind``),
as spaces come in through ``hwnas.spaces``. No code outside this package asks which kind a
device is; it asks the kind what it can do.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Callable

from hwnas.errors import DeviceError

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "hwnas.devices"
BUILTIN = "hwnas.devices.builtin"

# Keys every device yaml may hold, whatever its kind.
COMMON_KEYS = frozenset({"name", "description", "kind", "source", "notes", "resolutions", "batch",
                         "precision", "extends", "override"})
# The measuring protocol's keys (hwnas/profilers/drift.py), for every kind that times.
MEASURING_KEYS = frozenset({
    "threads", "affinity", "warmup", "runs", "context", "flush_mb", "sentinel_every",
    "drift_tolerance", "reference", "reference_rounds", "reference_runs", "reference_precision",
    "reference_batches"})


@dataclass(frozen=True)
class Capabilities:
    """What a kind of device can measure, and how hwnas may use it."""

    ops: bool = False  # per-op latency tables (hwnas profile)
    models: bool = False  # whole networks end to end (hwnas measure, the landing)
    kernels: bool = False  # the runtime's kernels one by one (hwnas profile --kernels)
    formats: tuple[str, ...] = ()  # model files it runs, the first being what it exports to
    kernel_runtime: str = ""  # the kernel view of any-model prediction: onnxruntime or tflite
    torch_modules: bool = False  # times torch modules directly (eager CUDA)
    serials: bool = False  # picks among several attached devices (--serial)
    # imports that describe this kind's hardware without a yaml `source` (nn-Meter's phones)
    table_formats: tuple[str, ...] = ()


def _no_resources(cfg, serials=()) -> list[str]:
    return []


def _always_reachable(cfg) -> str | None:
    return None


def _no_checks(cfg) -> None:
    return None


@dataclass(frozen=True)
class DeviceKind:
    name: str
    description: str
    keys: frozenset = frozenset()  # besides COMMON_KEYS
    profiler: str = ""  # "module:function(cfg, cache_dir, serials) -> Profiler"; "" = none here
    caps: Capabilities = Capabilities()
    resources: Callable = _no_resources  # (cfg, serials) -> measuring lock names
    reachable: Callable = _always_reachable  # (cfg) -> None, or why it cannot be reached
    validate: Callable = _no_checks  # (cfg) -> None, or raise DeviceError
    caps_fn: Callable | None = None  # (cfg) -> Capabilities, where the yaml decides (ssh)
    # (cfg) -> the CPU model its tables must have been measured on, "" when that cannot be
    # told without reaching the device (a board's CPU is in its table's protocol instead)
    host_cpu: Callable = lambda cfg: ""

    @property
    def live(self) -> bool:
        """Whether hwnas measures devices of this kind itself."""
        return bool(self.profiler)

    def capabilities(self, cfg) -> Capabilities:
        return self.caps_fn(cfg) if self.caps_fn is not None else self.caps

    @property
    def allowed_keys(self) -> frozenset:
        return COMMON_KEYS | self.keys

    def make_profiler(self, cfg, cache_dir, serials: tuple[str, ...] = ()):
        """The live profiler of a device of this kind (its runtime imported now)."""
        if serials and not self.caps.serials:
            raise DeviceError(f"--serial is for phones; {cfg.name} is a {self.name} device")
        if not self.profiler:
            raise DeviceError(f"{cfg.name} is {self.description}: hwnas does not measure it; "
                              f"it has only what was imported for it"
                              + (f" ({cfg.source})" if cfg.source else ""))
        module, _, attr = self.profiler.partition(":")
        return getattr(importlib.import_module(module), attr)(cfg, cache_dir, serials)


# name -> DeviceKind; filled by register_kind (builtin first, then entry points)
KINDS: dict[str, DeviceKind] = {}
_loaded = False


def register_kind(kind: DeviceKind) -> DeviceKind:
    if not isinstance(kind, DeviceKind):
        raise DeviceError(f"a device kind is a hwnas.devices.DeviceKind, got {kind!r}")
    old = KINDS.get(kind.name)
    if old is not None and old != kind:
        raise DeviceError(f"device kind {kind.name!r} is registered twice")
    if kind.keys & COMMON_KEYS:
        raise DeviceError(f"device kind {kind.name!r} redeclares common keys "
                          f"{sorted(kind.keys & COMMON_KEYS)}")
    KINDS[kind.name] = kind
    return kind


def load_kinds() -> dict[str, DeviceKind]:
    """hwnas's own kinds, then other packages' (once)."""
    global _loaded
    if not _loaded:
        _loaded = True
        importlib.import_module(BUILTIN)
        for ep in _entry_points():
            try:
                obj = ep.load()
            except Exception as e:  # another package's bug must not take hwnas down with it
                log.warning("device kind entry point %s = %s does not load (%s: %s); skipped",
                            ep.name, ep.value, type(e).__name__, e)
                continue
            if isinstance(obj, DeviceKind) and obj.name not in KINDS:
                register_kind(obj)
    return KINDS


def _entry_points():
    from importlib.metadata import entry_points

    try:
        return list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception as e:  # a broken installed distribution's metadata
        log.warning("cannot read %s entry points: %s", ENTRY_POINT_GROUP, e)
        return []


def get_kind(name: str) -> DeviceKind:
    kinds = load_kinds()
    if name not in kinds:
        raise DeviceError(f"unknown device kind {name!r}; one of {', '.join(sorted(kinds))}")
    return kinds[name]


def kind_of(cfg) -> DeviceKind:
    """The kind of a DeviceConfig."""
    return get_kind(cfg.kind)
