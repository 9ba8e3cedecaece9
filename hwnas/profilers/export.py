"""Export torch modules to ONNX, cached by op key (keys are stable across versions)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

from hwnas.latency.safeio import atomic_write_bytes
from hwnas.ops import OpSpec

log = logging.getLogger(__name__)
OPSET = 17


def export_onnx(module, input_shape, path: str | Path, dtype: str = "float32") -> Path:
    """Export an eval-mode module with a fixed input shape to ONNX (written atomically).

    ``dtype`` ("float32", "float16") is the torch dtype of the weights and the input: a float16
    graph is what onnxruntime's CUDA provider runs in fp16.

    The TorchScript-based exporter is used on purpose: it is ~100x faster than the dynamo one
    (0.03 s vs 3.7 s per block here), which is what makes profiling 670 blocks take minutes.
    """
    import io

    import torch

    path = Path(path)
    module = module.eval().to(getattr(torch, dtype))
    x = torch.randn(*input_shape).to(getattr(torch, dtype))
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=OPSET,
                          input_names=["input"], output_names=["output"])
    atomic_write_bytes(path, buf.getvalue())
    return path


def onnx_for_op(op: OpSpec, cache_dir: Path) -> Path:
    path = Path(cache_dir) / "onnx" / f"{op.key}.onnx"
    if not path.exists():
        with cache_lock(path.parent):  # processes sharing the cache export each op once
            if not path.exists():
                module, shape = op.build()
                export_onnx(module, shape, path)
    return path


def cache_lock(folder: Path):
    """The export cache's lock: a cache that is a file, or read-only, says so in one line."""
    from hwnas.home import check_folder
    from hwnas.locks import folder_lock

    check_folder(folder, write=True)
    return folder_lock(folder)


# --- TFLite ----------------------------------------------------------------------------------
# Conv-like blocks take NHWC tensors inside a TFLite network (TFLite convolutions are NHWC), so
# they are exported with channel-last input and output: with NCHW I/O every block would carry two
# TRANSPOSE ops that the network does not run (they doubled a 3x3 stem's time here). Attention
# and FFN blocks work on tokens; with NCHW I/O they carry the fewest transposes.
CHANNEL_LAST_KINDS = frozenset({"firstconv", "conv", "transds", "mbpool"})
TFLITE_EXPORT_HINT = ("TFLite export needs litert-torch (PyTorch to TFLite, no TensorFlow): "
                      "pip install 'hwnas[tflite-export]'")


def channels_last_io(op: OpSpec) -> bool:
    return op.kind in CHANNEL_LAST_KINDS


@contextlib.contextmanager
def _quiet(*names: str, level: int = logging.WARNING):
    """Raise some loggers' levels for a while: litert-torch logs every lowering at INFO on the
    root logger, and torchao warns at import that its CUDA kernels are missing (a CPU build)."""
    loggers = [logging.getLogger(n) for n in names]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(level, lg.getEffectiveLevel()))
    try:
        yield
    finally:
        for lg, lv in zip(loggers, saved):
            lg.setLevel(lv)


@contextlib.contextmanager
def _native_stderr_to_log(what: str = "converter"):
    """Send what native code writes to fd 2 (the converter's C++ logging: a line per model;
    LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate", which no setting silences)
    to the debug log, as ``what``. Other threads' stderr in this window goes there too, not
    lost."""
    import os
    import sys
    import tempfile

    fd = 2  # where native code writes, whatever sys.stderr is now
    sys.stderr.flush()
    try:
        saved = os.dup(fd)
    except OSError:  # no fd 2 at all
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace").strip()
            if text:
                log.debug("%s: %s", what, text)


def _litert_torch():
    try:
        # importing it loads TensorFlow's C++ runtime, whose absl and oneDNN lines go to fd 2
        with _quiet("torchao", "torch.utils._pytree", level=logging.ERROR), \
                _native_stderr_to_log("litert-torch"):
            import litert_torch
    except ImportError as e:
        from hwnas.errors import ProfileError

        raise ProfileError(f"{TFLITE_EXPORT_HINT} ({e})") from None
    return litert_torch


def tflite_export_available() -> bool:
    """Whether litert-torch can be imported (tests and benchmarks skip TFLite export without it)."""
    import importlib.util

    return importlib.util.find_spec("litert_torch") is not None


def tflite_input_shape(input_shape, channels_last: bool) -> tuple[int, ...]:
    n, c, *spatial = input_shape
    return (n, *spatial, c) if channels_last and spatial else tuple(input_shape)


def export_tflite(module, input_shape, path: str | Path, channels_last: bool = False) -> Path:
    """Convert an eval-mode module with a fixed batch-1 NCHW input to a float32 .tflite.

    With ``channels_last`` the model takes (and, for 4-d outputs, returns) NHWC tensors.
    litert-torch's progress report is captured and sent to the debug log, not the terminal.
    """
    import io

    import torch

    lt = _litert_torch()
    path = Path(path)
    module = module.eval()
    x = torch.randn(*input_shape)
    if channels_last and x.dim() == 4:
        with torch.no_grad():
            four_d_out = module(x).dim() == 4
        module = lt.to_channel_last_io(module, args=[0], outputs=[0] if four_d_out else [])
        x = x.permute(0, 2, 3, 1).contiguous()
    chatter = io.StringIO()
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(chatter), \
            _quiet("", "jax", "jax._src.xla_bridge"), _native_stderr_to_log():
        warnings.simplefilter("ignore")
        flat = lt.convert(module.eval(), (x,)).model_content()
    log.debug("litert-torch: %s", chatter.getvalue())
    atomic_write_bytes(path, bytes(flat))
    return path


def tflite_for_op(op: OpSpec, cache_dir: Path) -> Path:
    """The op's .tflite, exported once and cached by key (cache_dir/tflite/{key}.tflite)."""
    path = Path(cache_dir) / "tflite" / f"{op.key}.tflite"
    if not path.exists():
        with cache_lock(path.parent):
            if not path.exists():
                module, shape = op.build()
                export_tflite(module, shape, path, channels_last=channels_last_io(op))
    return path


def tflite_overhead_model(cache_dir: Path) -> Path:
    """A one-op model (x + 1 on one float): what a call costs when the block costs nothing.
    Profilers subtract its time from every block; the LUT adds it back once per network."""
    import torch

    path = Path(cache_dir) / "tflite" / "_call_overhead.tflite"
    if not path.exists():
        class AddOne(torch.nn.Module):
            def forward(self, x):
                return x + 1.0

        with cache_lock(path.parent):
            if not path.exists():
                export_tflite(AddOne(), (1,), path)
    return path
