"""The onnxruntime-gpu backends: the CUDA execution provider, or TensorRT in front of it.

IO binding keeps the input and the output on the GPU, so the timed call is the model alone;
with ``include_copies`` the input is bound on the host and the output is copied back, and both
copies are inside the timed call. Each call ends with ``synchronize_outputs()``, so the host
clock read after it has seen the GPU finish: the wall time of a real, synchronous call.

``device="cpu"`` binds to the host and runs the CPU provider: a debug backend that lets this
code run on a machine without a GPU. No config selects it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hwnas.errors import ProfileError


def provider_options(backend: str, precision: str, *, cudnn_benchmark: bool, device_id: int,
                     trt_cache: Path) -> list[tuple[str, dict]]:
    """The providers, in priority order, with the options that carry the config's meaning."""
    cuda = {
        "device_id": str(device_id),
        # ORT's counterpart of torch.backends.cudnn.benchmark
        "cudnn_conv_algo_search": "EXHAUSTIVE" if cudnn_benchmark else "HEURISTIC",
        "use_tf32": "1" if precision == "tf32" else "0",
    }
    if backend == "ort-cuda":
        return [("CUDAExecutionProvider", cuda)]
    trt = {
        "device_id": str(device_id),
        "trt_fp16_enable": "True" if precision == "fp16" else "False",
        # building an engine takes seconds per block; the cache makes re-runs cheap
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(trt_cache),
    }
    return [("TensorrtExecutionProvider", trt), ("CUDAExecutionProvider", cuda)]


def onnx_dtype(precision: str, backend: str) -> str:
    """The torch dtype to export the ONNX graph in: fp16 only for the CUDA provider.

    TensorRT takes an fp32 graph and lowers layers to fp16 itself (``trt_fp16_enable``).
    """
    return "float16" if precision == "fp16" and backend == "ort-cuda" else "float32"


class OrtBench:
    """One ONNX model with bound input and output, ready to be called."""

    def __init__(self, ort, model: Path | bytes, shape: tuple[int, ...], *, np_dtype: str,
                 providers: list[tuple[str, dict]], include_copies: bool, device: str = "cuda",
                 device_id: int = 0, require_first: bool = True):
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 4  # fatal only: its errors come back as exceptions
        src = str(model) if isinstance(model, Path) else model
        self.sess = ort.InferenceSession(src, so, providers=providers)
        used = self.sess.get_providers()
        # onnxruntime quietly falls back to the next provider (or the CPU) when one fails to
        # load; a number timed on the fallback must not be stored under the GPU's name
        if require_first and used[0] != providers[0][0]:
            raise ProfileError(f"onnxruntime fell back from {providers[0][0]} to {used[0]} "
                               f"(its libraries did not load; see onnxruntime's log)")
        inp, out = self.sess.get_inputs()[0].name, self.sess.get_outputs()[0].name
        self.binding = self.sess.io_binding()
        if include_copies or device == "cpu":
            x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
            self.binding.bind_cpu_input(inp, x.astype(np_dtype))
            self.binding.bind_output(out, "cpu")
        else:
            self._x = _device_input(shape, np_dtype, device_id)  # kept alive: ORT reads it
            self.binding.bind_input(inp, "cuda", device_id, np.dtype(np_dtype), list(shape),
                                    self._x.data_ptr())
            self.binding.bind_output(out, "cuda", device_id)
            self._call()
            # keep the first output buffer: later calls write into it instead of allocating
            self.binding.bind_ortvalue_output(out, self.binding.get_outputs()[0])

    def _call(self) -> None:
        self.sess.run_with_iobinding(self.binding)
        self.binding.synchronize_outputs()

    def time_calls(self, n: int) -> np.ndarray:
        """ms per call, each call synchronous."""
        out = np.empty(n)
        clock = time.perf_counter_ns
        for i in range(n):
            t0 = clock()
            self._call()
            out[i] = (clock() - t0) / 1e6
        return out

    def run_calls(self, n: int) -> None:
        for _ in range(n):
            self._call()

    def close(self) -> None:
        self.binding = self.sess = None


def _device_input(shape, np_dtype: str, device_id: int):
    """A random input made on the GPU by torch (a batch that does not fit fails as a GPU OOM,
    and no host array of the batch's size is ever allocated)."""
    import torch

    dev = f"cuda:{device_id}"
    x = torch.randn(shape, device=dev, dtype=getattr(torch, np_dtype),
                    generator=torch.Generator(device=dev).manual_seed(0))
    torch.cuda.synchronize(dev)  # torch's stream is not ORT's: finish writing before ORT reads
    return x


def identity_model(np_dtype: str) -> bytes:
    """An ONNX model that does nothing, to measure the cost of one call."""
    from onnx import TensorProto, helper

    elem = TensorProto.FLOAT16 if np_dtype == "float16" else TensorProto.FLOAT
    g = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "noop",
                          [helper.make_tensor_value_info("input", elem, [1])],
                          [helper.make_tensor_value_info("output", elem, [1])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
