"""The LiteRT (TFLite) profiler behind ``local-tflite``: the phone's runtime, on this machine.

It times the same exported ``.tflite`` blocks the adb profiler pushes to a phone, with the
protocol of ``local-cpu`` (onnxrt.py): pin the process, warm up, time ``runs`` single
``invoke()`` calls with ``perf_counter_ns``, and in ``flush`` context precede each timed call by a
cache-evicting read and a run of a twin interpreter of the same block (see onnxrt.py for why a
block timed alone is not the block inside a network). LiteRT interpreters cannot share one
scratch arena, so here the twin warms the code and the XNNPACK microkernels, not the buffers.

Threads and the XNNPACK delegate come from the device config. The per-call overhead, timed on a
one-op model, is subtracted from each block; the LUT adds it back once per network.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from hwnas import __version__
from hwnas.device_configs import DeviceConfig
from hwnas.errors import ProfileError
from hwnas.latency.stats import Stats
from hwnas.ops import OpSpec
from hwnas.profilers import KernelJob, Measurement, Profiler
from hwnas.profilers.affinity import PinnedProcess
from hwnas.profilers.base import OVERHEAD_CALLS, network_read
from hwnas.profilers.drift import interleave, plan_of, protocol_reference
from hwnas.profilers.export import (_native_stderr_to_log, export_tflite, tflite_for_op,
                                     tflite_overhead_model)
from hwnas.profilers.onnxrt import _cpu_model

log = logging.getLogger(__name__)
INTERPRETER_HINT = ("local-tflite needs the LiteRT interpreter: pip install 'hwnas[tflite]' "
                    "(ai-edge-litert; tflite-runtime also works)")


def load_interpreter():
    """(Interpreter class, OpResolverType enum, "package version"): LiteRT, else tflite_runtime."""
    try:
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        return Interpreter, OpResolverType, f"ai-edge-litert {ai_edge_litert.__version__}"
    except ImportError:
        pass
    try:
        import tflite_runtime
        from tflite_runtime.interpreter import Interpreter, OpResolverType

        return Interpreter, OpResolverType, f"tflite-runtime {tflite_runtime.__version__}"
    except ImportError:
        raise ProfileError(INTERPRETER_HINT) from None


class _LiteBench:
    """One interpreter with its input set; with a twin, each call runs in network context."""

    def __init__(self, it, twin=None, flush_buf=None, hot=False, outputs=False):
        rng = np.random.default_rng(0)
        details = it.get_input_details()
        for d in details:  # a kernel of any model may take several activations
            x = (rng.standard_normal(d["shape"]).astype(d["dtype"])
                 if np.issubdtype(d["dtype"], np.floating) else np.zeros(d["shape"], d["dtype"]))
            it.set_tensor(d["index"], x)
            if twin is not None:
                twin.set_tensor(d["index"], x.copy())
        self.it, self.twin, self.flush_buf, self.index = it, twin, flush_buf, details[0]["index"]
        self.indices = [d["index"] for d in details]
        if outputs:  # a kernel's output buffer: the network's arena, warm (blocks: not)
            self.indices += [d["index"] for d in it.get_output_details()]
        self.hot = hot

    def time_calls(self, n: int) -> np.ndarray:
        it, twin = self.it, self.twin
        views = [it.tensor(j) for j in self.indices]  # live views of the inputs, to touch them
        out = np.empty(n)
        clock = time.perf_counter_ns
        for i in range(n):
            if twin is not None:
                self.flush_buf.sum()  # (1) evict this block's weights
                twin.invoke()  # (2) warm the code paths, as the previous block of a network does
                # (3) the input is hot: the previous block just wrote it (an output buffer
                # holds whatever was there: no warnings for its infs)
                with np.errstate(all="ignore"):
                    for view in views:
                        view().sum()
            elif self.hot:  # a kernel: hot caches whatever ran just before (the reference)
                it.invoke()
            t0 = clock()
            it.invoke()
            out[i] = (clock() - t0) / 1e6
        del views  # a live view must not outlive the interpreter's buffers
        return out


class LiteRTProfiler(Profiler):
    """Use as a context manager: it pins the process on entry and restores it on exit."""

    runtime = "litert"

    def __init__(self, cfg: DeviceConfig, cache_dir: Path):
        self.Interpreter, self.resolvers, self.version = load_interpreter()
        self.cfg = cfg
        self.cache_dir = Path(cache_dir)
        self._pinned = PinnedProcess(cfg.affinity, cfg.threads)
        self.cpus: list[int] | None = None
        self.flush_buf = np.ones(cfg.flush_mb * (1 << 20) // 8) if cfg.context == "flush" else None
        self.call_overhead_ms = 0.0
        self.plan = plan_of(cfg)
        self._reference: _LiteBench | None = None
        # kernels in network context, per eviction read (bytes): the no-op call's overhead
        # and the read itself
        self._network_overhead_ms: dict[int, float] = {}
        self._kernel_flush: dict[int, np.ndarray] = {}

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "LiteRTProfiler":
        self.cpus = self._pinned.__enter__()
        try:
            bench = _LiteBench(self._interpreter(tflite_overhead_model(self.cache_dir)))
            bench.time_calls(self.cfg.warmup)
            self.call_overhead_ms = float(np.median(bench.time_calls(
                max(self.cfg.runs, OVERHEAD_CALLS))))
            if self.plan is not None:
                from hwnas.profilers.reference import reference_error, reference_tflite

                try:
                    self._reference = _LiteBench(self._interpreter(
                        reference_tflite(self.cache_dir)))
                    self._reference.time_calls(1)
                except Exception as e:  # a corrupt cached file, no converter to make it
                    raise reference_error(self.cfg.name, e) from None
        except BaseException:
            self._pinned.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._reference = None
        self._pinned.__exit__(*exc)

    def meta(self) -> dict:
        return {
            "device": self.cfg.name, "runtime": self.runtime, "runtime_version": self.version,
            "threads": self.cfg.threads, "affinity": self.cpus, "batch": 1, "precision": "fp32",
            "use_xnnpack": self.cfg.use_xnnpack, "warmup": self.cfg.warmup,
            "runs": self.cfg.runs, "context": self.cfg.context,
            "flush_mb": self.cfg.flush_mb if self.cfg.context == "flush" else 0,
            "call_overhead_ms": self.call_overhead_ms, "cpu": _cpu_model(),
            "host": os.uname().nodename if hasattr(os, "uname") else "",
            "hwnas_version": __version__, "latency_unit": "ms per batch",
            "export": "litert-torch, conv blocks with NHWC I/O",
        }

    def protocol(self) -> dict:
        """The settings that must match for two measurements to share one table."""
        return {"runtime": self.runtime, "threads": self.cfg.threads,
                "use_xnnpack": self.cfg.use_xnnpack, "context": self.cfg.context,
                "batch": 1, "precision": "fp32", **protocol_reference(self.plan)}

    # --- interpreters ------------------------------------------------------------------------
    def _interpreter(self, path: Path):
        resolver = (self.resolvers.AUTO if self.cfg.use_xnnpack
                    else self.resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        try:
            with _native_stderr_to_log("LiteRT"):  # its C++ logging, never onto stderr
                it = self.Interpreter(model_path=str(path), num_threads=self.cfg.threads,
                                      experimental_op_resolver_type=resolver)
                it.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ProfileError(f"LiteRT cannot run {path.name}: {e}") from None
        return it

    # --- measuring ---------------------------------------------------------------------------
    def _run(self, bench: _LiteBench, overhead_ms: float, network: bool = False) -> Measurement:
        """Time a bench: interleaved with the reference when the protocol says so."""
        if self._reference is None:
            bench.time_calls(self.cfg.warmup)
            return Measurement(Stats.from_samples(bench.time_calls(self.cfg.runs) - overhead_ms))
        plan = (self.plan.for_networks(self.cfg.runs, self.cfg.reference_batches) if network
                else self.plan)
        timing = interleave(bench, self._reference, self.cfg.runs, self.cfg.warmup, plan)
        return Measurement(timing.stats(overhead_ms), ratio=timing.ratio(overhead_ms),
                           reference_ms=timing.reference_ms)

    def measure_op_full(self, op: OpSpec) -> Measurement:
        """One block, in the config's context, with the per-call overhead subtracted."""
        path = tflite_for_op(op, self.cache_dir)
        it = self._interpreter(path)
        twin = self._interpreter(path) if self.cfg.context == "flush" else None
        return self._run(_LiteBench(it, twin, self.flush_buf), self.call_overhead_ms)

    def measure_model_full(self, module, input_shape) -> Measurement:
        """A whole network with NHWC input, end to end (overhead included)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = export_tflite(module, input_shape, Path(tmp) / "model.tflite",
                                 channels_last=True)
            return self._run(_LiteBench(self._interpreter(path)), 0.0, network=True)

    def measure_kernel_full(self, job: KernelJob) -> Measurement:
        """One kernel of any model as its own .tflite (hwnas.anymodel): hot (an untimed call
        before each timed one, see anymodel/profile.py), every input fed, the per-call
        overhead subtracted."""
        self.only_format(job.fmt, "tflite")
        path = job.file(self.cache_dir / "kernels-tflite")
        if job.context == "hot":
            return self._run(_LiteBench(self._interpreter(path), hot=True),
                             self.call_overhead_ms)
        # network context: weights evicted, a twin warms the code, the inputs hot (the twin
        # cannot share the interpreter's arena: LiteRT has no such thing)
        size, flush = network_read(self._kernel_flush, job.evict_bytes)
        if size not in self._network_overhead_ms:  # a one-op model's call, same context
            model = tflite_overhead_model(self.cache_dir)
            b = _LiteBench(self._interpreter(model), self._interpreter(model), flush,
                           outputs=True)
            b.time_calls(self.cfg.warmup)
            self._network_overhead_ms[size] = float(np.median(b.time_calls(
                max(self.cfg.runs, OVERHEAD_CALLS))))
        return self._run(_LiteBench(self._interpreter(path), self._interpreter(path), flush,
                                    outputs=True),
                         self._network_overhead_ms[size])

    def measure_file_full(self, path: Path, fmt: str, input_shape=None) -> Measurement:
        """A model file as given (a user's .tflite), end to end; its input shape is the
        file's."""
        self.only_format(fmt, "tflite")
        return self._run(_LiteBench(self._interpreter(Path(path))), 0.0, network=True)
