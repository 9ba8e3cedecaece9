"""The onnxruntime profiler behind ``local-cpu``.

Protocol for one op: export (cached), open a session with the config's threads, warm up, then
time ``runs`` single calls with ``perf_counter_ns``.

Context matters. Inside a network a block's weights were pushed out of the caches by the other
blocks, but its input was just written and the runtime's scratch buffers were just used. Timed
alone, a block keeps its weights cached and the sum of blocks comes out ~15% under the network.
Flushing the caches alone overshoots: it also makes the scratch buffers cold. So in ``flush``
context each timed call follows (1) a read of a buffer bigger than L2 and most of L3, (2) a run
of a *twin* session of the same block, with its own copy of the weights, that draws its scratch
buffers from the same shared arena, and (3) a read of the input. The timed run then finds cold
weights, warm scratch memory and a hot input, as in a network.

The per-call overhead (binding, output allocation) is measured on an identity model and
subtracted from each op; the LUT adds it back once per network.

Drift: with ``reference: true`` (the default) every op and every whole network is timed in rounds
between runs of the reference network (drift.py), and the Measurement carries the ratio beside
the milliseconds.
"""

from __future__ import annotations

import logging
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from hwnas import __version__
from hwnas.device_configs import DeviceConfig
from hwnas.latency.stats import Stats
from hwnas.ops import OpSpec
from hwnas.profilers import KernelJob, Measurement, Profiler
from hwnas.profilers.affinity import PinnedProcess
from hwnas.profilers.base import OVERHEAD_CALLS, network_read
from hwnas.profilers.drift import Interleaved, interleave, plan_of, protocol_reference
from hwnas.profilers.export import export_onnx, onnx_for_op

log = logging.getLogger(__name__)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class _OrtBench:
    """One session and its input; with a twin, each timed call runs in network-like context."""

    def __init__(self, sess, shape, twin=None, flush_buf=None):
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        name = sess.get_inputs()[0].name
        self.sess, self.twin, self.flush_buf, self.x = sess, twin, flush_buf, x
        self.feed, self.twin_feed = {name: x}, {name: x.copy()}

    def time_calls(self, n: int) -> np.ndarray:
        out = np.empty(n)
        clock = time.perf_counter_ns
        sess, feed, twin = self.sess, self.feed, self.twin
        for i in range(n):
            if twin is not None:
                self.flush_buf.sum()  # (1) evict this block's weights
                twin.run(None, self.twin_feed)  # (2) warm the shared scratch buffers, the code
                self.x.sum()  # (3) the input is hot: the previous block just wrote it
            t0 = clock()
            sess.run(None, feed)
            out[i] = (clock() - t0) / 1e6
        return out


def _bind(sess, feeds: dict):
    """An io binding of ``feeds`` with outputs allocated once and written in place after."""
    binding = sess.io_binding()
    for name, x in feeds.items():
        binding.bind_cpu_input(name, x)
    outputs = [o.name for o in sess.get_outputs()]
    for name in outputs:
        binding.bind_output(name, "cpu")
    sess.run_with_iobinding(binding)
    for name, value in zip(outputs, binding.get_outputs()):
        binding.bind_ortvalue_output(name, value)  # written in place from now on
    return binding


class _KernelBench:
    """One kernel of any model (hwnas.anymodel) as its own session. Inputs and outputs are
    bound once to buffers allocated up front, as a network's kernels write into its planned
    arena (a fresh multi-MB output each call would time page faults).

    Hot (no twin): each timed call follows an untimed one, so the reference network timed
    between rounds does not leave the kernel cold. Network context (a twin session of the same
    kernel with its own weights, sharing the arena): each timed call follows a cache-evicting
    read, a run of the twin (code and scratch warm) and a read of the inputs and outputs (the
    kernel before it just wrote them): only the weights are cold (anymodel/profile.py)."""

    def __init__(self, sess, feeds: dict, twin=None, flush_buf=None):
        self.sess, self.twin, self.flush_buf = sess, twin, flush_buf
        self.binding = _bind(sess, feeds)
        if twin is not None:
            self.twin_binding = _bind(twin, {n: x.copy() for n, x in feeds.items()})
            self.touch = [x for x in feeds.values() if x.size] + \
                [v.numpy() for v in self.binding.get_outputs()]

    def time_calls(self, n: int) -> np.ndarray:
        out = np.empty(n)
        clock = time.perf_counter_ns
        run, binding, twin = self.sess.run_with_iobinding, self.binding, self.twin
        for i in range(n):
            if twin is None:
                run(binding)
            else:
                self.flush_buf.sum()  # (1) evict the weights
                twin.run_with_iobinding(self.twin_binding)  # (2) warm code and scratch
                with np.errstate(all="ignore"):  # (3) inputs and outputs hot
                    for x in self.touch:
                        x.sum()
            t0 = clock()
            run(binding)
            out[i] = (clock() - t0) / 1e6
        return out


class OrtProfiler(Profiler):
    """Use as a context manager: it pins the process on entry and restores it on exit."""

    runtime = "onnxruntime"

    def __init__(self, cfg: DeviceConfig, cache_dir: Path):
        import onnxruntime as ort

        self.ort = ort
        self.cfg = cfg
        self.cache_dir = Path(cache_dir)
        self._pinned = PinnedProcess(cfg.affinity, cfg.threads)
        self.cpus: list[int] | None = None
        self.flush_buf = np.ones(cfg.flush_mb * (1 << 20) // 8) if cfg.context == "flush" else None
        self.call_overhead_ms = 0.0
        self.plan = plan_of(cfg)
        self._reference: _OrtBench | None = None
        self._reference_file: tuple[Path, tuple] | None = None  # (ONNX, input shape)
        # per kernel context (and network context's read size), measured on the first kernel
        # timed in it
        self._kernel_overhead_ms: dict[str, float] = {}
        self._kernel_flush: dict[int, np.ndarray] = {}  # network context's eviction reads

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "OrtProfiler":
        self.cpus = self._pinned.__enter__()
        try:
            if self.cfg.context == "flush":
                self._shared_arena()
            self.call_overhead_ms = self._measure_overhead()
            if self.plan is not None:
                self._reference = self._reference_bench()
        except BaseException:
            self._pinned.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._reference = None
        self._pinned.__exit__(*exc)

    def _reference_bench(self) -> _OrtBench:
        from hwnas.profilers.reference import reference_error, reference_model, reference_onnx

        try:
            self._reference_file = (reference_onnx(self.cache_dir), reference_model()[1])
            bench = _OrtBench(self._session(self._reference_file[0]), self._reference_file[1])
            bench.time_calls(1)
        except Exception as e:  # a corrupt cached file, a runtime that cannot run it
            raise reference_error(self.cfg.name, e) from None
        return bench

    def meta(self) -> dict:
        return {
            "device": self.cfg.name, "runtime": self.runtime,
            "runtime_version": self.ort.__version__, "threads": self.cfg.threads,
            "affinity": self.cpus, "batch": 1, "precision": "fp32",
            "warmup": self.cfg.warmup, "runs": self.cfg.runs, "context": self.cfg.context,
            "flush_mb": self.cfg.flush_mb if self.cfg.context == "flush" else 0,
            "call_overhead_ms": self.call_overhead_ms, "cpu": _cpu_model(),
            "host": platform.node(), "hwnas_version": __version__,
            "latency_unit": "ms per batch",
        }

    def protocol(self) -> dict:
        """The settings that must match for two measurements to share one table."""
        return {"runtime": self.runtime, "threads": self.cfg.threads, "context": self.cfg.context,
                "batch": 1, "precision": "fp32", **protocol_reference(self.plan)}

    # --- sessions ----------------------------------------------------------------------------
    def _shared_arena(self) -> None:
        """Register one CPU arena for all sessions of this process (idempotent).

        onnxruntime keeps this in its process-wide environment; there is no other way to let
        two sessions share scratch memory, which is what a network's consecutive blocks do.
        """
        ort = self.ort
        mem = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                ort.OrtMemType.DEFAULT)
        try:
            ort.create_and_register_allocator(mem, ort.OrtArenaCfg(0, -1, -1, -1))
        except Exception as e:  # already registered by an earlier profiler in this process
            log.debug("shared arena: %s", e)

    def _session(self, path: Path | bytes, shared_arena: bool = False):
        so = self.ort.SessionOptions()
        if self.cfg.context == "flush" or shared_arena:
            so.add_session_config_entry("session.use_env_allocators", "1")
        so.intra_op_num_threads = self.cfg.threads
        so.inter_op_num_threads = 1
        so.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 4  # fatal only: its errors come back as exceptions (one line)
        model = path if isinstance(path, bytes) else str(path)
        return self.ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])

    def _measure_overhead(self) -> float:
        """Median time of one call on a model that does nothing (Identity on 1 float)."""
        from onnx import TensorProto, helper

        g = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "noop",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1])])
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        sess = self.ort.InferenceSession(model.SerializeToString(),
                                         providers=["CPUExecutionProvider"])
        bench = _OrtBench(sess, (1,))
        bench.time_calls(self.cfg.warmup)
        return float(np.median(bench.time_calls(max(self.cfg.runs, OVERHEAD_CALLS))))

    def fresh_process(self):
        """Whole networks timed in a new onnxruntime process of their own, beside the same
        reference network (local_runner.py: why). Without the drift-free protocol, here."""
        import contextlib

        from hwnas.profilers.local_runner import LocalRunner

        if self._reference is None:
            return contextlib.nullcontext(self)
        return LocalRunner(self.cfg, self.plan, self._reference_file)

    # --- measuring ---------------------------------------------------------------------------
    def _run(self, bench: _OrtBench, overhead_ms: float, network: bool = False) -> Measurement:
        """Time a bench: interleaved with the reference when the protocol says so."""
        if self._reference is None:
            bench.time_calls(self.cfg.warmup)
            return Measurement(Stats.from_samples(bench.time_calls(self.cfg.runs) - overhead_ms))
        plan = (self.plan.for_networks(self.cfg.runs, self.cfg.reference_batches) if network
                else self.plan)
        timing: Interleaved = interleave(bench, self._reference, self.cfg.runs, self.cfg.warmup,
                                         plan)
        return Measurement(timing.stats(overhead_ms), ratio=timing.ratio(overhead_ms),
                           reference_ms=timing.reference_ms)

    def measure_op_full(self, op: OpSpec) -> Measurement:
        """One block, in the config's context, with the per-call overhead subtracted."""
        path = onnx_for_op(op, self.cache_dir)
        sess = self._session(path)
        twin = self._session(path) if self.cfg.context == "flush" else None
        return self._run(_OrtBench(sess, op.input_shape(), twin, self.flush_buf),
                         self.call_overhead_ms)

    def measure_model_full(self, module, input_shape) -> Measurement:
        """A whole network, end to end (overhead included: it is part of a real call)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(module, input_shape, Path(tmp) / "model.onnx")
            sess = self._session(path)
        return self._run(_OrtBench(sess, input_shape), 0.0, network=True)

    def measure_kernel_full(self, job: KernelJob) -> Measurement:
        """One kernel of any model as its own ONNX model (hwnas.anymodel): every input fed,
        outputs bound once, in ``job.context`` (hot, or network: weights evicted, scratch
        warm, input hot), and the per-call overhead of such a call subtracted."""
        self.only_format(job.fmt, "onnx")
        network = job.context == "network"
        size, flush = None, None
        if network:
            self._shared_arena()
            # twice the L2 by default (network_flush_bytes), as on LiteRT. A 24 MB read (the
            # block tables' flush_mb), kept until then, brought 80% of 25 zoo models' kernel
            # sums within 10% of the network, against 92% with twice the L2 and 72% hot, in
            # one run with the small networks settled (BENCHMARKS.md, "The latency of any
            # model", 2026-12-07 21:00): the 24 MB read made the small elementwise kinds and
            # the reorders cold as they are not in the network (Mul +49%, ReorderInput +52%
            # over onnxruntime's own profile of them inside it; with twice the L2 +14%, +30%)
            size, flush = network_read(self._kernel_flush, job.evict_bytes)
        # the no-op call subtracted is timed in the same context, with the same read
        key = f"network:{size}" if network else job.context

        def bench(model: bytes, feeds: dict) -> _KernelBench:
            sess = self._session(model, shared_arena=network)
            twin = self._session(model, shared_arena=network) if network else None
            return _KernelBench(sess, feeds, twin, flush)

        if key not in self._kernel_overhead_ms:
            from onnx import TensorProto, helper

            g = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "noop",
                                  [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                 [1])],
                                  [helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                                                 [1])])
            noop = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
            b = bench(noop.SerializeToString(), {"input": np.ones(1, np.float32)})
            b.time_calls(self.cfg.warmup)
            self._kernel_overhead_ms[key] = float(np.median(b.time_calls(
                max(self.cfg.runs, OVERHEAD_CALLS))))
        return self._run(bench(job.model, dict(job.feeds)), self._kernel_overhead_ms[key])

    def measure_file_full(self, path: Path, fmt: str, input_shape=None) -> Measurement:
        """A model file as given (a user's ONNX), end to end, like ``measure_model``."""
        from hwnas.errors import ModelError

        self.only_format(fmt, "onnx")
        if input_shape is None:
            raise ValueError("an ONNX file is measured at its input shape; pass input_shape")
        try:
            sess = self._session(Path(path))
        except Exception as e:  # noqa: BLE001 - onnxruntime's own (a custom-domain op, ...)
            if not type(e).__module__.startswith("onnxruntime"):
                raise
            raise ModelError(f"onnxruntime cannot run {path}: "
                             f"{str(e).strip().splitlines()[0][:300]}") from None
        return self._run(_OrtBench(sess, input_shape), 0.0, network=True)
