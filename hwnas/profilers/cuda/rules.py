"""The cuda profiler's decisions, as pure functions: testable on a machine without a GPU.

Nothing here imports torch, onnxruntime or NVML. The profiler feeds these functions what it read
from the GPU and the runtime, and acts on their answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from hwnas.errors import DeviceError, ProfileError

WARMUP_WINDOW = 20  # calls per warm-up window: a median of 20 is steady enough to compare

AMPERE = (8, 0)  # TF32 and bf16 tensor cores start here


def check_precision(device: str, precision: str, backend: str, capability: tuple[int, int],
                    bf16_supported: bool) -> None:
    """Raise DeviceError when this GPU and backend cannot run ``precision`` as named.

    ``bf16_supported`` must come from ``torch.cuda.is_bf16_supported(including_emulation=False)``:
    with emulation torch says yes on pre-Ampere GPUs, which would time a slow emulation.
    """
    sm = f"sm_{capability[0]}{capability[1]}"
    if precision == "bf16":
        if backend != "torch":
            raise DeviceError(f"{device}: precision bf16 is not supported by backend {backend} "
                              f"(onnxruntime's CUDA and TensorRT providers lack bf16 kernels "
                              f"for these blocks); use backend torch")
        if not bf16_supported or capability < AMPERE:
            raise DeviceError(f"{device}: this GPU ({sm}) has no native bf16 "
                              f"(torch.cuda.is_bf16_supported() is False without emulation; it "
                              f"needs Ampere, sm_80, or later); use fp16 or fp32")
    if precision == "tf32" and capability < AMPERE:
        raise DeviceError(f"{device}: precision tf32 needs Ampere (sm_80) or later; this GPU is "
                          f"{sm}: use fp32")
    if precision == "fp16" and capability < (5, 3):
        raise DeviceError(f"{device}: this GPU ({sm}) has no fp16 arithmetic; use fp32")
    if backend == "ort-trt" and precision == "fp32" and capability >= AMPERE:
        raise DeviceError(f"{device}: TensorRT runs fp32 layers in TF32 on {sm} by default and "
                          f"onnxruntime has no switch to stop it, so strict fp32 cannot be "
                          f"promised; ask for precision tf32 (what it runs) or use backend "
                          f"ort-cuda or torch for fp32")


def precision_detail(precision: str, backend: str) -> str:
    """What the precision means for this backend, in words stored in the table's meta."""
    if backend == "torch":
        return {
            "fp32": "fp32 weights and activations; TF32 off (torch.backends.cuda.matmul."
                    "allow_tf32 = torch.backends.cudnn.allow_tf32 = False)",
            "tf32": "fp32 storage, TF32 math in matmuls and convolutions",
        }.get(precision, f"module and input cast to {precision} with .to(dtype); no autocast "
                         f"(autocast would re-cast the fp32 weights on every call, which a "
                         f"deployed model does not)")
    if backend == "ort-cuda":
        return {"fp32": "fp32 ONNX, CUDA provider use_tf32=0",
                "tf32": "fp32 ONNX, CUDA provider use_tf32=1",
                "fp16": "fp16 ONNX exported from the module cast to float16"}[precision]
    return {"fp32": "fp32 ONNX built by TensorRT in fp32 (no TF32 before sm_80)",
            "tf32": "fp32 ONNX built by TensorRT with its default TF32",
            "fp16": "fp32 ONNX built by TensorRT with trt_fp16_enable (fp16 where TensorRT "
                    "finds it faster, fp32 elsewhere)"}[precision]


def check_ort_providers(device: str, backend: str, available: list[str], version: str) -> None:
    """Raise when onnxruntime lacks the execution provider that ``backend`` needs."""
    if "CUDAExecutionProvider" not in available:
        raise DeviceError(f"{device}: no CUDA GPU visible to onnxruntime {version} "
                          f"(CUDAExecutionProvider not in get_available_providers(): "
                          f"{', '.join(available)}); install onnxruntime-gpu on a machine with an "
                          f"NVIDIA GPU")
    if backend == "ort-trt" and "TensorrtExecutionProvider" not in available:
        raise ProfileError(f"{device}: backend ort-trt needs TensorRT, but onnxruntime {version} "
                           f"has no TensorrtExecutionProvider (available: {', '.join(available)}); "
                           f"install TensorRT for onnxruntime-gpu or use backend ort-cuda")


def is_oom_error(exc: BaseException) -> bool:
    """True for a GPU out-of-memory error from torch, cuDNN or onnxruntime."""
    if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
        return True
    text = str(exc).lower()
    return any(s in text for s in ("out of memory", "cuda_error_out_of_memory",
                                   "failed to allocate memory", "cudnn_status_alloc_failed"))


def largest_fitting_batch(batch: int, fits: Callable[[int], bool]) -> int:
    """The largest batch below ``batch`` for which ``fits`` is True; 0 when not even 1 fits.

    ``batch`` itself is known not to fit. Halve until something fits, then bisect between that
    and the last failure, so the answer is exact (for memory, which grows with the batch) in at
    most 2*log2(batch) tries.
    """
    hi, lo = batch, batch // 2
    while lo >= 1 and not fits(lo):
        hi, lo = lo, lo // 2
    if lo == 0:
        return 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


@dataclass(frozen=True)
class Warmup:
    calls: int
    stable: bool
    last_change: float  # relative change of the last window's median from the one before


def warm_up(time_calls: Callable[[int], np.ndarray], *, min_calls: int, max_calls: int,
            tolerance: float, window: int = WARMUP_WINDOW) -> Warmup:
    """Run windows of calls until the median stops moving, bounded by ``max_calls``.

    A fixed number of warm-up calls is either wasted or too few: cuDNN's autotuner, lazy
    module loading and clock ramp-up each take their own time. Stable means: at least
    ``min_calls`` run, and the median of the last window is within ``tolerance`` of the one
    before it.
    """
    calls, medians, change = 0, [], math.inf
    while calls < max_calls:
        n = min(window, max_calls - calls)
        medians.append(float(np.median(time_calls(n))))
        calls += n
        if len(medians) >= 2 and medians[-2] > 0:
            change = abs(medians[-1] - medians[-2]) / medians[-2]
            if calls >= min_calls and change < tolerance:
                return Warmup(calls, True, change)
    return Warmup(calls, max_calls == 0, change)


def with_batch(shape: tuple[int, ...], batch: int) -> tuple[int, ...]:
    """An op's batch-1 input shape at the config's batch."""
    return (batch, *shape[1:])
