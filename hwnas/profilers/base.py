"""The one profiler base class, and the values it measures with and returns.

Every profiler subclasses ``Profiler`` and overrides the methods of the capabilities its
device kind declares (``hwnas.devices``: ``Capabilities`` ops, models, kernels, formats);
the base class answers every other one with a one-line ProfileError naming the device and
what it cannot do. So callers call the method they need and never ask ``hasattr``: a device
that cannot do something says so, and where a choice depends on what a device can do, the
caller asks its kind (``kind_of(cfg).capabilities(cfg)``) before opening a profiler.

One capability, one method, one signature:

============  =============================================================================
ops           ``measure_op_full(op)``: one block of a search space (its table entry)
models        ``measure_model_full(module, input_shape)``: a torch module, exported as the
              runtime needs (ONNX, NHWC .tflite) or run eagerly
formats       ``measure_file_full(path, fmt, input_shape=None)``: a model file as given
kernels       ``measure_kernel_full(job)``: one kernel of any model (a ``KernelJob``), hot
============  =============================================================================

Each returns a Measurement; ``measure_op``/``measure_model`` are its Stats.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from hwnas.errors import ProfileError
from hwnas.latency.energy import Energy
from hwnas.latency.stats import RatioStats, Stats

if TYPE_CHECKING:
    from hwnas.ops import OpSpec

KERNEL_FORMATS = ("onnx", "tflite")
# Calls timed on a model that does nothing, for the per-call overhead subtracted from every
# block: at least this many whatever the protocol's runs. A few microseconds each, so it costs
# nothing; with --runs 2 the median of 2 calls took one scheduling spike on a loaded CI box
# for the overhead, every block came out under it and was kept at the floor, flagged (stop 29).
OVERHEAD_CALLS = 200
# How a kernel is timed. "hot": an untimed call of the same kernel before each timed one
# (everything it touches is cached). "network": as a network's kernel finds the machine: the
# core's private caches flushed (a read of twice the L2, network_flush_bytes), a twin of the
# kernel with its own weights run to warm the code and the runtime's scratch memory, then its
# input (and output buffers) touched, since the kernel before it just wrote them.
KERNEL_CONTEXTS = ("hot", "network")


def network_flush_bytes() -> int:
    """How much a kernel in network context reads to evict its weights: twice this core's L2,
    on every runtime. The kernels between two uses of a weight in a network pass through the
    core's private caches, not necessarily through the whole last-level cache: a network
    whose weights fit in L3 reads them from there, and one whose weights do not streams them
    (the overhead model's weights term carries that, per MB, per network). Evicting the whole
    LLC (24 MB) as well made two small networks' LiteRT kernels sum to +14% and +39% over the
    network (MobileNetV2-0.5 at 160 px, ElasticViT-T1: their weights fit in L3), and on
    onnxruntime brought 80% of 25 zoo models within 10% against 92% with this read."""
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text().strip()
        size = int(text[:-1]) * {"K": 1 << 10, "M": 1 << 20}[text[-1]] if text[-1] in "KM" \
            else int(text)
    except (OSError, ValueError, KeyError, IndexError):
        size = 1 << 20
    return 2 * size


def network_read(reads: dict, evict_bytes: int | None):
    """(size in bytes, buffer) of a network-context kernel's eviction read: ``evict_bytes``
    (None: network_flush_bytes), allocated once per size into the profiler's ``reads``."""
    import numpy as np

    size = network_flush_bytes() if evict_bytes is None else evict_bytes
    if size not in reads:
        reads[size] = np.ones(max(1, size // 8))  # summed: every byte read once
    return size, reads[size]


class CapabilityError(ProfileError):
    """A device asked for something it cannot do at all (time kernels, run a format). A
    ProfileError like any other for the CLI; its own class so that loops which skip the one
    item a runtime refuses (a kernel it cannot run) stop instead of skipping every item."""


@dataclass(frozen=True)
class Measurement:
    """Everything one measurement produced: what every ``measure_*_full`` returns."""

    stats: Stats  # as timed, in ms (blocks: the per-call overhead subtracted)
    energy: Energy | None = None  # None: not measured or unavailable; never a zero
    flag: str = ""  # why this number deserves a second look; "" when nothing is amiss
    # The drift-free protocol (drift.py): the item's per-call times over the reference
    # network's median timed around them, and that median. None: timed without a reference.
    ratio: RatioStats | None = None
    reference_ms: float | None = None


# eq=False: feeds hold numpy arrays, whose == is elementwise; a job is compared by identity
@dataclass(frozen=True, eq=False)
class KernelJob:
    """One kernel of any model (hwnas.anymodel) cut out as a model of its own, to be timed.

    It carries what every runtime needs, so that ``measure_kernel_full`` has one signature:
    the model's bytes (onnxruntime opens sessions from bytes), its format, a name that is
    stable across runs (the kernel's signature: runtimes that load files cache them by it)
    and, for ONNX, the value of every input (a kernel's inputs are not all images: a Gather
    needs valid indices). LiteRT fills its interpreters' inputs itself.
    """

    model: bytes
    fmt: str  # "onnx" or "tflite"
    name: str  # the kernel's signature
    feeds: Mapping | None = None  # input name -> numpy array; ONNX only
    context: str = "hot"  # one of KERNEL_CONTEXTS
    # Network context only: how many bytes the eviction read before each timed call reads.
    # None: the default, twice the L2 (network_flush_bytes). 0: no read, the twin's run alone
    # displaces what it can. For studying what the read does (benchmarks/kernel_context.py,
    # benchmarks/anymodel.py --contexts network@MB), not for tables.
    evict_bytes: int | None = None

    def __post_init__(self):
        if self.fmt not in KERNEL_FORMATS:
            raise ValueError(f"a kernel job is one of {KERNEL_FORMATS}, not {self.fmt!r}")
        if self.context not in KERNEL_CONTEXTS:
            raise ValueError(f"a kernel is timed in one of {KERNEL_CONTEXTS}, not "
                             f"{self.context!r}")
        if self.fmt == "onnx" and self.feeds is None:
            raise ValueError("an ONNX kernel job needs feeds (every input's value)")
        if self.evict_bytes is not None and (self.context != "network" or self.evict_bytes < 0):
            raise ValueError(f"evict_bytes is a network-context kernel's read of >= 0 bytes, "
                             f"not {self.evict_bytes!r} in context {self.context!r}")

    def file(self, folder: Path) -> Path:
        """The model as a file in ``folder`` (for runtimes that load or copy files), written
        once: a rerun of the same kernels writes nothing new."""
        from hwnas.latency.safeio import atomic_write_bytes

        safe = self.name.replace(":", "_").replace("/", "-")
        path = Path(folder) / f"{safe}.{self.fmt}"
        if not path.exists():
            atomic_write_bytes(path, self.model)
        return path


class Profiler(abc.ABC):
    """A live profiler of one device. Use it as a context manager: entering acquires the
    hardware (pins cores, connects, opens the GPU, times the call overhead and the reference),
    leaving gives it back."""

    runtime: str = ""  # the runtime's name in tables ("onnxruntime", "litert", ...)
    cfg = None  # the DeviceConfig; every built-in profiler sets it, and names the device by it
    plan = None  # the drift-free plan (drift.plan_of); None: timed without the reference
    # The profilers this one shares an op list among (parallel.Fleet: several phones); the
    # driver hands such a profiler to the parallel driver. Empty for one device.
    members: tuple = ()

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "Profiler":
        return self

    def __exit__(self, *exc) -> None:
        return None

    @abc.abstractmethod
    def meta(self) -> dict:
        """Facts about the device and runtime, stored in the table's meta."""

    @abc.abstractmethod
    def protocol(self) -> dict:
        """Settings that must match for new measurements to extend an existing table."""

    # --- what cannot be done says so, in one line ---------------------------------------
    @property
    def device_name(self) -> str:
        return self.cfg.name if self.cfg is not None else type(self).__name__

    def cannot(self, what: str) -> CapabilityError:
        """The one line a missing capability raises: the device, its runtime, what it lacks."""
        runtime = f" ({self.runtime})" if self.runtime else ""
        return CapabilityError(f"{self.device_name}{runtime} cannot {what}")

    # --- capabilities: one method each, overridden where the kind declares it ---------------
    def measure_op_full(self, op: "OpSpec") -> Measurement:
        """ops: one block, in the device's context, with the per-call overhead subtracted."""
        raise self.cannot("time single blocks")

    def measure_model_full(self, module, input_shape) -> Measurement:
        """models: a whole torch module end to end (overhead included), exported by the
        profiler as its runtime needs; ``input_shape`` is NCHW, batch included."""
        raise self.cannot("time whole networks")

    def measure_file_full(self, path: Path, fmt: str, input_shape=None) -> Measurement:
        """formats: a model file as given (a user's ONNX or .tflite), end to end. ``fmt`` is
        "onnx" or "tflite"; ``input_shape`` is the file's fixed input shape (ONNX runtimes
        make their input from it; LiteRT reads it from the file)."""
        raise self.cannot(f"run {fmt} model files")

    def measure_kernel_full(self, job: KernelJob) -> Measurement:
        """kernels: one kernel of any model in ``job.context`` (hot: an untimed call before
        each timed one; network: weights evicted, scratch warm, input hot), every input fed,
        the per-call overhead of such a call subtracted."""
        raise self.cannot("time single kernels")

    def fresh_process(self):
        """A context manager giving what times whole networks (``measure_model_full``,
        ``measure_file_full``) in a new process of its own, where this profiler can
        (onnxruntime: local_runner.py); a pass over several networks opens one, so that its
        figures carry a process draw independent of the other passes'. Elsewhere (a phone, a
        board, a GPU: already a process per run or a process that is the device's own), this
        profiler itself."""
        return contextlib.nullcontext(self)

    def measure_op(self, op: "OpSpec") -> Stats:
        return self.measure_op_full(op).stats

    def measure_model(self, module, input_shape) -> Stats:
        return self.measure_model_full(module, input_shape).stats

    def only_format(self, fmt: str, runs: str) -> None:
        """ProfileError unless ``fmt`` is the one model format this profiler runs."""
        if fmt != runs:
            raise self.cannot(f"run {fmt} models: it runs {runs}")

    def only_hot(self, job: KernelJob) -> None:
        """ProfileError unless the job asks for hot timing (what remote runners time)."""
        if job.context != "hot":
            raise self.cannot(f"time kernels in {job.context} context (only hot)")

    # --- optional hooks, with the answer of a profiler that has nothing to say -------------
    def drain_events(self) -> list[dict]:
        """What happened since the last call that the table's meta should keep (cool-down
        waits on a phone or a board); the driver appends it at every save."""
        return []

    def memory_bytes(self) -> int | None:
        """What the device can give a model now (checked before a model is measured): this
        machine's available memory unless the profiler knows better (a GPU, a phone, a
        board); None when it cannot be read."""
        try:
            return mem_available(Path("/proc/meminfo").read_text())
        except OSError:
            return None


def mem_available(meminfo: str) -> int | None:
    """MemAvailable of a /proc/meminfo text, in bytes; None when it has none."""
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            try:
                return int(line.split()[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None
