"""The cuda profiler: NVIDIA GPUs, with eager torch or onnxruntime-gpu (CUDA or TensorRT).

What a number in a cuda table means, exactly:

* Latency is per call of one batch of ``cfg.batch`` images (``LatencyTable.lookup_per_image``
  divides). The torch backend times each call with CUDA events and synchronises before reading
  them; the onnxruntime backends time synchronous calls on the host clock. Host-device copies
  are outside the timed call unless ``include_copies`` is set.
* Warm-up runs until the median stops moving (``rules.warm_up``), because cuDNN's autotuner
  (``cudnn_benchmark``, always set explicitly), lazy kernel loading and clock ramp-up each take
  their own time. A block that never settles is measured anyway and flagged in the table.
* ``fp32`` is strict fp32 (TF32 off); ``tf32``, ``fp16`` and ``bf16`` say what they run.
  ``rules.precision_detail`` writes the exact meaning into the table's meta.
* Energy, where NVML has a total-energy counter, is board energy per call, integrated over at
  least ``energy_min_s`` of back-to-back calls. Where there is no counter, the meta says why
  and the table holds no energy at all.
* A batch that does not fit raises ProfileError naming the largest batch that did.
* Drift (``reference: true``): after warm-up, the timed calls run in rounds between calls of
  the reference network (profilers/drift.py) on the same backend, batch and precision, and the
  ratio to it is kept. A GPU's clocks move with its temperature and power limit; the reference
  runs at the same clocks as the block beside it.

torch is always needed, also for the onnxruntime backends: it finds the GPU, checks what the GPU
supports, and builds the blocks. The GPU is the one torch calls current (CUDA_VISIBLE_DEVICES
picks it).

``CudaProfiler(..., gpu=GpuInfo(...), device="cpu")`` is a debug mode that runs the same code on
the CPU (host timers, the CPU execution provider) so that it can be tested without a GPU. Its
runtime name and meta say so, and its tables cannot be mixed with GPU ones.
"""

from __future__ import annotations

import copy
import gc
import logging
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hwnas import __version__
from hwnas.device_configs import DeviceConfig
from hwnas.errors import DeviceError, ProfileError
from hwnas.latency.energy import Energy, calls_for_duration, energy_from_counter
from hwnas.latency.stats import Stats
from hwnas.ops import OpSpec
from hwnas.profilers import Measurement, Profiler
from hwnas.profilers.drift import interleave, plan_of, protocol_reference
from hwnas.profilers.cuda.rules import (check_ort_providers, check_precision, is_oom_error,
                                        largest_fitting_batch, precision_detail, warm_up,
                                        with_batch)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    capability: tuple[int, int]
    memory_gib: float
    bf16: bool  # native bf16, emulation excluded
    uuid: str = ""
    facts: dict = field(default_factory=dict)  # for the meta


def probe_gpu(device: str) -> GpuInfo:
    """The GPU torch uses, or a one-line DeviceError saying why there is none."""
    import torch

    if not torch.cuda.is_available():
        why = (f"torch {torch.__version__} is a CPU-only build" if torch.version.cuda is None
               else f"torch {torch.__version__} is built for CUDA {torch.version.cuda}; check "
                    f"nvidia-smi and CUDA_VISIBLE_DEVICES")
        raise DeviceError(f"{device}: no CUDA GPU visible (torch.cuda.is_available() is False; "
                          f"{why}); run it on a machine with an NVIDIA GPU")
    # torch's device properties (not a profiler): older torch builds lack L2_cache_size and uuid
    p = torch.cuda.get_device_properties(torch.cuda.current_device())
    try:
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch before 2.3 had no emulation and no argument
        bf16 = torch.cuda.is_bf16_supported()
    facts = {
        "gpu": p.name, "compute_capability": f"{p.major}.{p.minor}",
        "gpu_memory_gib": round(p.total_memory / 2**30, 1),
        "multiprocessors": p.multi_processor_count,
        "l2_cache_mib": round(getattr(p, "L2_cache_size", 0) / 2**20, 1) or None,
        "torch_version": torch.__version__, "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version(),
    }
    return GpuInfo(p.name, (p.major, p.minor), p.total_memory / 2**30, bool(bf16),
                   str(getattr(p, "uuid", "") or ""), {k: v for k, v in facts.items() if v})


class CudaProfiler(Profiler):
    """Use as a context manager: it sets cuDNN/TF32 flags and opens NVML on entry, and restores
    the flags and closes NVML on exit."""

    def __init__(self, cfg: DeviceConfig, cache_dir: Path, *, gpu: GpuInfo | None = None,
                 device: str = "cuda"):
        if cfg.context != "isolated":
            raise DeviceError(
                f"{cfg.name}: the cuda profiler supports context 'isolated' only: flushing the L2 "
                f"cache between calls lets the host run ahead and hides launch costs, so blocks "
                f"would stop adding up to the network; set context: isolated")
        if device not in ("cuda", "cpu"):
            raise DeviceError(f"{cfg.name}: device must be 'cuda' (or 'cpu' to debug)")
        self.cfg, self.cache_dir, self.device = cfg, Path(cache_dir), device
        self.runtime = f"cuda-{cfg.backend}" + ("" if device == "cuda" else "-cpu-debug")
        self.gpu = gpu if gpu is not None else probe_gpu(cfg.name)
        check_precision(cfg.name, cfg.precision, cfg.backend, self.gpu.capability, self.gpu.bf16)
        self.ort = None
        if cfg.backend != "torch":
            import onnxruntime as ort

            if device == "cuda":
                check_ort_providers(cfg.name, cfg.backend, ort.get_available_providers(),
                                    ort.__version__)
            self.ort = ort
        self.call_overhead_ms = 0.0
        self.plan = plan_of(cfg)
        self._references: dict[int, object] = {}  # batch -> the reference's bench
        self._saved_flags: tuple | None = None
        self._nvml = None
        self._nvml_info: dict = {}
        self._read_energy = None
        self._energy_note = "not probed (the profiler was not entered)"

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "CudaProfiler":
        import torch

        b = torch.backends
        self._saved_flags = (b.cudnn.benchmark, b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32)
        # torch's defaults differ (cuDNN allows TF32, matmul does not): set all three, always
        b.cudnn.benchmark = self.cfg.cudnn_benchmark
        b.cudnn.allow_tf32 = b.cuda.matmul.allow_tf32 = self.cfg.precision == "tf32"
        try:
            self._open_nvml()
            if self.ort is not None:
                self.call_overhead_ms = self._ort_overhead()
        except BaseException:
            self.__exit__()  # a failed entry must not leave torch's flags changed
            raise
        return self

    def __exit__(self, *exc) -> None:
        import torch

        for bench in self._references.values():
            bench.close()
        self._references = {}
        if self._saved_flags is not None:
            b = torch.backends
            b.cudnn.benchmark, b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = self._saved_flags
            self._saved_flags = None
        if self._nvml is not None:
            self._nvml.close()
            self._nvml = self._read_energy = None

    def _open_nvml(self) -> None:
        from hwnas.profilers.cuda.nvml import Nvml

        if self.device != "cuda":
            self._energy_note = "unavailable (cpu debug mode)"
            return
        self._nvml, why = Nvml.open(uuid=self.gpu.uuid)
        if self._nvml is None:
            self._energy_note = f"unavailable ({why})"
            log.warning("%s: energy unavailable: %s", self.cfg.name, why)
            return
        self._nvml_info = self._nvml.info()
        if not self.cfg.energy:
            self._energy_note = "not measured (energy: false in the device config)"
            return
        self._read_energy, why = self._nvml.energy_counter()
        self._energy_note = (f"unavailable ({why})" if self._read_energy is None else
                             f"NVML total-energy counter: board energy (idle power included) "
                             f"over >= {self.cfg.energy_min_s} s of back-to-back calls")

    def meta(self) -> dict:
        cfg = self.cfg
        d = {
            "device": cfg.name, "runtime": self.runtime, "backend": cfg.backend,
            "batch": cfg.batch, "precision": cfg.precision,
            "precision_detail": precision_detail(cfg.precision, cfg.backend),
            "warmup": cfg.warmup, "warmup_max": cfg.warmup_max,
            "warmup_tolerance": cfg.warmup_tolerance, "runs": cfg.runs, "context": cfg.context,
            "include_copies": cfg.include_copies, "cudnn_benchmark": cfg.cudnn_benchmark,
            "timer": ("CUDA events around each call, calls queued back to back, one synchronize "
                      "before reading" if self.ort is None else
                      "host clock around run_with_iobinding + synchronize_outputs"),
            "call_overhead_ms": self.call_overhead_ms,
            "latency_unit": "ms per batch", "energy": self._energy_note,
            "energy_unit": "mJ per batch", "host": platform.node(),
            "hwnas_version": __version__,
        }
        if self.device != "cuda":
            d["debug"] = "device=cpu: host timers on the CPU; these are not GPU numbers"
        d.update(self.gpu.facts)
        d.update(self._nvml_info)
        if self.ort is not None:
            d.update(onnxruntime_version=self.ort.__version__,
                     providers=[p for p, _ in self._providers()])
        return d

    def protocol(self) -> dict:
        """The settings that must match for two measurements to share one table."""
        c = self.cfg
        return {"runtime": self.runtime, "gpu": self.gpu.name, "batch": c.batch,
                "precision": c.precision, "context": c.context,
                "include_copies": c.include_copies, "cudnn_benchmark": c.cudnn_benchmark,
                "device": self.device, **protocol_reference(self.plan)}

    # --- measuring ---------------------------------------------------------------------------
    def measure_op_full(self, op: OpSpec) -> Measurement:
        """One block at the config's batch, with the per-call overhead subtracted."""
        return self._measure(op.key, lambda b: self._op_bench(op, b), self.call_overhead_ms)

    def measure_model_full(self, module, input_shape) -> Measurement:
        """A whole network end to end (overhead included). ``input_shape``'s batch is replaced
        by the config's batch; ``module`` itself is left as it was (a copy goes to the GPU)."""
        return self._measure("the model", lambda b: self._model_bench(module, input_shape, b),
                             network=True)

    def measure_file_full(self, path: Path, fmt: str, input_shape=None) -> Measurement:
        """A model file as given (a user's float32 ONNX, hwnas.anymodel), end to end through
        the onnxruntime backend: its input shape, batch included, is the file's."""
        from hwnas.profilers.cuda.ort_bench import onnx_dtype

        self.only_format(fmt, "onnx")
        if input_shape is None:
            raise ValueError("an ONNX file is measured at its input shape; pass input_shape")
        if self.ort is None:
            raise ProfileError(f"{self.cfg.name} runs eager torch (backend torch); measure ONNX "
                               f"files with --backend ort-cuda or ort-trt")
        shape = tuple(input_shape)
        if shape[0] != self.cfg.batch:
            raise ProfileError(f"{self.cfg.name} measures batch {self.cfg.batch}, but the model's "
                               f"input is fixed at batch {shape[0]}; pass --batch {shape[0]} "
                               f"or a model with a free batch dimension and --input-shape")
        if onnx_dtype(self.cfg.precision, self.cfg.backend) != "float32":
            raise ProfileError(f"{self.cfg.name} runs {self.cfg.precision} graphs on "
                               f"{self.cfg.backend}; a float32 model file needs --precision fp32 "
                               f"(or ort-trt, which lowers float32 graphs itself)")
        data = Path(path).read_bytes()
        try:
            return self._measure_at(lambda b: self._ort_bench(data, shape), shape[0],
                                    network=True)
        except Exception as e:
            if not is_oom_error(e):
                raise
        self._free_memory()
        raise ProfileError(f"{Path(path).name} does not fit in the GPU's "
                           f"{self.gpu.memory_gib:.0f} GiB at batch {shape[0]}")

    def memory_bytes(self) -> int | None:
        """The GPU's memory (in cpu debug mode: this machine's available memory)."""
        if self.device != "cuda":
            return super().memory_bytes()
        return int(self.gpu.memory_gib * 2 ** 30)

    def _measure(self, what: str, make_bench, overhead_ms: float = 0.0,
                 network: bool = False) -> Measurement:
        try:
            return self._measure_at(make_bench, self.cfg.batch, overhead_ms, network)
        except Exception as e:
            if not is_oom_error(e):
                raise
            log.info("%s at batch %d: %s", what, self.cfg.batch, str(e).splitlines()[0])
        # out of the except block, so that the traceback's frames (and their tensors) are gone
        self._free_memory()
        best = largest_fitting_batch(self.cfg.batch, lambda b: self._fits(make_bench, b))
        fit = (f"the largest batch that fit was {best}; profile with --batch {best}" if best
               else "not even batch 1 fits")
        raise ProfileError(f"{self.cfg.name}: batch {self.cfg.batch} of {what} does not fit in "
                           f"the GPU's {self.gpu.memory_gib:.0f} GiB at {self.cfg.precision}; "
                           f"{fit}")

    def _measure_at(self, make_bench, batch: int, overhead_ms: float = 0.0,
                    network: bool = False) -> Measurement:
        cfg, bench = self.cfg, make_bench(batch)
        ratio = reference_ms = None
        try:
            warm = warm_up(bench.time_calls, min_calls=cfg.warmup, max_calls=cfg.warmup_max,
                           tolerance=cfg.warmup_tolerance)
            if self.plan is None:
                stats = Stats.from_samples(bench.time_calls(cfg.runs) - overhead_ms)
            else:
                plan = (self.plan.for_networks(cfg.runs, cfg.reference_batches) if network
                        else self.plan)
                timing = interleave(bench, self._reference(batch), cfg.runs, 0, plan)
                stats, ratio = timing.stats(overhead_ms), timing.ratio(overhead_ms)
                reference_ms = timing.reference_ms
            energy, note = self._energy(bench, stats.median_ms + overhead_ms)
        finally:
            bench.close()
        notes = [] if warm.stable else [
            f"warm-up did not settle within {warm.calls} calls (the last window's median moved "
            f"{warm.last_change:.1%})"]
        return Measurement(stats, energy, "; ".join(notes + ([note] if note else [])),
                           ratio=ratio, reference_ms=reference_ms)

    def _reference(self, batch: int):
        """The reference network's bench at this batch, made and warmed up once."""
        if batch not in self._references:
            from hwnas.profilers.reference import reference_error, reference_model

            module, shape = reference_model()
            try:
                bench = self._model_bench(module, shape, batch)
                warm_up(bench.time_calls, min_calls=self.cfg.warmup,
                        max_calls=self.cfg.warmup_max, tolerance=self.cfg.warmup_tolerance)
            except Exception as e:
                if is_oom_error(e):
                    raise  # the caller finds the largest batch that fits
                raise reference_error(self.cfg.name, e) from None
            self._references[batch] = bench
        return self._references[batch]

    def _fits(self, make_bench, batch: int) -> bool:
        ok = True
        try:
            bench = make_bench(batch)
            bench.time_calls(2)
            bench.close()
        except Exception as e:
            if not is_oom_error(e):
                raise
            ok = False
        self._free_memory()
        return ok

    def _free_memory(self) -> None:
        gc.collect()
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()

    def _energy(self, bench, median_ms: float) -> tuple[Energy | None, str]:
        if self._read_energy is None:
            return None, ""  # the meta says why, once for the whole table
        calls = calls_for_duration(median_ms, self.cfg.energy_min_s)
        before, t0 = self._read_energy(), time.perf_counter()
        bench.run_calls(calls)
        elapsed, after = time.perf_counter() - t0, self._read_energy()
        energy = energy_from_counter(before, after, elapsed, calls)
        if energy is None:
            return None, (f"energy counter did not advance over {calls} calls ({elapsed:.2f} s); "
                          f"no energy stored")
        return energy, ""

    # --- benches -----------------------------------------------------------------------------
    def _op_bench(self, op: OpSpec, batch: int):
        shape = with_batch(op.input_shape(), batch)
        if self.ort is None:
            from hwnas.profilers.cuda.torch_bench import TorchBench

            return TorchBench(op.build()[0], shape, precision=self.cfg.precision,
                              include_copies=self.cfg.include_copies, device=self.device)
        return self._ort_bench(self._onnx_for(op, batch), shape)

    def _model_bench(self, module, input_shape, batch: int):
        shape = with_batch(tuple(input_shape), batch)
        if self.ort is None:
            from hwnas.profilers.cuda.torch_bench import TorchBench

            return TorchBench(copy.deepcopy(module), shape, precision=self.cfg.precision,
                              include_copies=self.cfg.include_copies, device=self.device)
        from hwnas.profilers.cuda.ort_bench import onnx_dtype
        from hwnas.profilers.export import export_onnx

        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(copy.deepcopy(module), shape, Path(tmp) / "model.onnx",
                               onnx_dtype(self.cfg.precision, self.cfg.backend))
            return self._ort_bench(path.read_bytes(), shape)

    def _onnx_for(self, op: OpSpec, batch: int) -> Path:
        """The op's ONNX at this batch and dtype, exported once and cached by key."""
        from hwnas.profilers.cuda.ort_bench import onnx_dtype
        from hwnas.profilers.export import export_onnx

        dtype = onnx_dtype(self.cfg.precision, self.cfg.backend)
        path = self.cache_dir / "onnx-cuda" / f"{op.key}_b{batch}_{dtype}.onnx"
        if not path.exists():
            export_onnx(op.build()[0], with_batch(op.input_shape(), batch), path, dtype)
        return path

    def _providers(self) -> list[tuple[str, dict]]:
        from hwnas.profilers.cuda.ort_bench import provider_options

        if self.device != "cuda":
            return [("CPUExecutionProvider", {})]
        return provider_options(self.cfg.backend, self.cfg.precision,
                                cudnn_benchmark=self.cfg.cudnn_benchmark,
                                device_id=self._device_index(),
                                trt_cache=self.cache_dir / "trt")

    def _device_index(self) -> int:
        if self.device != "cuda":
            return 0
        import torch

        return torch.cuda.current_device()

    def _ort_bench(self, model, shape, require_first: bool = True):
        from hwnas.profilers.cuda.ort_bench import OrtBench, onnx_dtype

        return OrtBench(self.ort, model, shape,
                        np_dtype=onnx_dtype(self.cfg.precision, self.cfg.backend),
                        providers=self._providers(), include_copies=self.cfg.include_copies,
                        device=self.device, device_id=self._device_index(),
                        require_first=require_first)

    def _ort_overhead(self) -> float:
        """Median cost of one call of a model that does nothing, with the same binding.

        Subtracted from every block and added back once per network by the LUT, as on the CPU.
        TensorRT may hand a lone Identity to the CUDA provider; that is still the call's cost.
        """
        import numpy as np

        from hwnas.profilers.cuda.ort_bench import identity_model, onnx_dtype

        dtype = onnx_dtype(self.cfg.precision, self.cfg.backend)
        bench = self._ort_bench(identity_model(dtype), (1,), require_first=False)
        try:
            bench.time_calls(self.cfg.warmup)
            return float(np.median(bench.time_calls(max(self.cfg.runs, 50))))
        finally:
            bench.close()

