"""hwnas's own device kinds: onnxruntime, tflite, adb, cuda, ssh and imported.

Each kind's profiler is named by ``module:function`` so that reading a yaml imports no runtime.
"""

from __future__ import annotations

import dataclasses
import re

from hwnas.devices.kinds import MEASURING_KEYS, Capabilities, DeviceKind, register_kind
from hwnas.errors import DeviceError

# The cuda profiler's runtimes and precisions. "tf32" is fp32 storage with TensorFloat-32 math in
# matmuls and convolutions: on Ampere and later cuDNN uses it for "fp32" convolutions unless told
# not to, so hwnas names it and keeps plain "fp32" strict.
CUDA_BACKENDS = ("torch", "ort-cuda", "ort-trt")
CUDA_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
SSH_RUNTIMES = ("onnxruntime", "tflite", "benchmark_model")

TFLITE_KEYS = frozenset({"use_xnnpack"})
THERMAL_KEYS = frozenset({"thermal_zones", "thermal_limit_c", "cool_poll_s", "cool_max_s"})
ADB_KEYS = TFLITE_KEYS | THERMAL_KEYS | {"serial", "benchmark_bin", "remote_dir", "freq_drop"}
CUDA_KEYS = frozenset({"backend", "include_copies", "cudnn_benchmark", "warmup_max",
                       "warmup_tolerance", "energy", "energy_min_s"})
SSH_KEYS = TFLITE_KEYS | THERMAL_KEYS | {"host", "port", "user", "identity_file", "known_hosts",
                                         "python", "runtime", "workdir", "benchmark_bin"}


def _local_cpu_model(cfg) -> str:
    """This machine's CPU model, as the local profilers write it into their tables' meta."""
    from hwnas.profilers.onnxrt import _cpu_model

    return _cpu_model()


def _this_cpu(cfg, serials=()) -> list[str]:
    return ["cpu"]  # local-cpu and local-tflite share the CPU: they pin the same core


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _phones(cfg, serials=()) -> list[str]:
    return ["adb-" + _safe(s) for s in sorted(set(serials) or {cfg.serial or "default"})]


def _board(cfg, serials=()) -> list[str]:
    return ["ssh-" + _safe(f"{cfg.host}_{cfg.port}")]


def _gpu(cfg, serials=()) -> list[str]:
    return ["gpu"]


def _check_cuda(cfg) -> None:
    if cfg.backend not in CUDA_BACKENDS:
        raise DeviceError(f"device {cfg.name}: backend {cfg.backend!r} unknown; "
                          f"one of {', '.join(CUDA_BACKENDS)}")
    if cfg.precision not in CUDA_PRECISIONS:
        raise DeviceError(f"device {cfg.name}: precision {cfg.precision!r} unknown; "
                          f"one of {', '.join(CUDA_PRECISIONS)}")
    for name in ("include_copies", "cudnn_benchmark", "energy"):
        if not isinstance(getattr(cfg, name), bool):
            raise DeviceError(f"device {cfg.name}: {name} must be true or false")
    if not isinstance(cfg.warmup_max, int) or cfg.warmup_max < cfg.warmup:
        raise DeviceError(f"device {cfg.name}: warmup_max must be an integer >= warmup "
                          f"({cfg.warmup})")
    if not 0 < cfg.warmup_tolerance < 1:
        raise DeviceError(f"device {cfg.name}: warmup_tolerance must be in (0, 1)")
    if not cfg.energy_min_s > 0:
        raise DeviceError(f"device {cfg.name}: energy_min_s must be > 0 seconds")


def _check_ssh(cfg) -> None:
    if not isinstance(cfg.host, str) or not cfg.host.strip():
        raise DeviceError(f"device {cfg.name}: an ssh device needs host (the board's name or "
                          f"address)")
    if isinstance(cfg.port, bool) or not isinstance(cfg.port, int) or not 0 < cfg.port < 65536:
        raise DeviceError(f"device {cfg.name}: port must be an integer in 1..65535")
    if cfg.runtime not in SSH_RUNTIMES:
        raise DeviceError(f"device {cfg.name}: runtime {cfg.runtime!r} unknown; "
                          f"one of {', '.join(SSH_RUNTIMES)}")
    if cfg.runtime == "benchmark_model" and not cfg.benchmark_bin:
        raise DeviceError(f"device {cfg.name}: runtime benchmark_model needs benchmark_bin (the "
                          f"binary's path on the board)")
    for name in ("user", "identity_file", "known_hosts", "python", "workdir"):
        if not isinstance(getattr(cfg, name), str):
            raise DeviceError(f"device {cfg.name}: {name} must be a string")


def _ssh_reachable(cfg) -> str | None:
    from hwnas.profilers.ssh import reachable

    return reachable(cfg)


def _adb_reachable(cfg) -> str | None:
    try:
        from hwnas.profilers.adb_conn import connect

        connect(cfg.serial or "")
    except Exception as e:  # noqa: BLE001 - whatever stops a connection is the answer
        return str(e) or type(e).__name__
    return None


def _cuda_reachable(cfg) -> str | None:
    import shutil

    return None if shutil.which("nvidia-smi") else "no NVIDIA driver (nvidia-smi) on this machine"


ONNXRUNTIME = register_kind(DeviceKind(
    "onnxruntime", "onnxruntime on this machine's CPU", MEASURING_KEYS,
    "hwnas.profilers.factories:onnxruntime",
    Capabilities(ops=True, models=True, kernels=True, formats=("onnx",),
                 kernel_runtime="onnxruntime"),
    resources=_this_cpu, host_cpu=_local_cpu_model))

TFLITE = register_kind(DeviceKind(
    "tflite", "LiteRT (TFLite) on this machine's CPU", MEASURING_KEYS | TFLITE_KEYS,
    "hwnas.profilers.factories:tflite",
    Capabilities(ops=True, models=True, kernels=True, formats=("tflite",),
                 kernel_runtime="tflite"),
    resources=_this_cpu, host_cpu=_local_cpu_model))

ADB = register_kind(DeviceKind(
    "adb", "an Android phone over adb (TFLite benchmark_model)", MEASURING_KEYS | ADB_KEYS,
    "hwnas.profilers.factories:adb",
    Capabilities(ops=True, models=True, kernels=True, formats=("tflite",),
                 kernel_runtime="tflite", serials=True, table_formats=("nn-meter",)),
    resources=_phones, reachable=_adb_reachable))

CUDA_CAPS = Capabilities(ops=True, models=True, formats=("onnx",), torch_modules=True)


def _cuda_caps(cfg) -> Capabilities:
    """Eager torch times modules only; the onnxruntime backends also run ONNX files."""
    return CUDA_CAPS if cfg.backend != "torch" else dataclasses.replace(CUDA_CAPS, formats=())


CUDA = register_kind(DeviceKind(
    "cuda", "an NVIDIA GPU (torch, onnxruntime CUDA or TensorRT)", MEASURING_KEYS | CUDA_KEYS,
    "hwnas.profilers.factories:cuda", CUDA_CAPS,
    resources=_gpu, reachable=_cuda_reachable, validate=_check_cuda, caps_fn=_cuda_caps))


def _ssh_caps(cfg) -> Capabilities:
    """A board runs the model format of its runtime (set in its yaml)."""
    onnx = cfg.runtime == "onnxruntime"
    return Capabilities(ops=True, models=True, kernels=True,
                        formats=("onnx",) if onnx else ("tflite",),
                        kernel_runtime="onnxruntime" if onnx else "tflite")


SSH = register_kind(DeviceKind(
    "ssh", "a Linux board over SSH (onnxruntime, LiteRT or benchmark_model there)",
    MEASURING_KEYS | SSH_KEYS, "hwnas.profilers.factories:ssh",
    Capabilities(ops=True, models=True, kernels=True, formats=("onnx", "tflite")),
    resources=_board, reachable=_ssh_reachable, validate=_check_ssh, caps_fn=_ssh_caps))

IMPORTED = register_kind(DeviceKind(
    "imported", "a device measured elsewhere (its table or records were imported)",
    MEASURING_KEYS, ""))
