"""One entry point from a model (file bytes or torch module) to the runtime's kernels.

``runtime`` is the kernel view a device's profiler runs: ``onnxruntime`` (local-cpu) or
``tflite`` (local-tflite and phones). A torch module is exported the way a user would
export it (ONNX opset 17 with the TorchScript exporter; TFLite through litert-torch with
channels-last image I/O), so sampled blocks and zoo models go through the same door as a
user's file.
"""

from __future__ import annotations

import io
import logging
import warnings

from hwnas.errors import ModelError

log = logging.getLogger(__name__)
RUNTIMES = ("onnxruntime", "tflite")


def runtime_of(cfg) -> str:
    """The kernel view of a device, as its kind declares (hwnas.devices): ModelError for
    devices hwnas cannot predict this way."""
    from hwnas.devices import kind_of

    kind = kind_of(cfg)
    rt = kind.capabilities(cfg).kernel_runtime
    if not rt:
        what = ("its kernels depend on batch, precision and the GPU's libraries; measure "
                "models there with 'hwnas measure --onnx'" if kind.capabilities(cfg).torch_modules
                else "it has no live profiler" if not kind.live else "it does not time kernels")
        raise ModelError(f"kernel-level prediction is for onnxruntime CPU and TFLite devices; "
                         f"{cfg.name} is a {kind.name} device ({what})")
    return rt


def detect(runtime: str, data: bytes, input_shape, threads: int = 1, name: str = "model"):
    """The runtime's graph of ``data``: an object with ``kernels`` and ``extract(kernel)``."""
    if runtime == "onnxruntime":
        from hwnas.anymodel.ort import optimize

        return optimize(data, input_shape, threads, name)
    if runtime == "tflite":
        from hwnas.anymodel.tflite import detect as detect_tflite

        return detect_tflite(data, name)
    raise ModelError(f"unknown runtime {runtime!r}; one of {', '.join(RUNTIMES)}")


def export_onnx_bytes(module, input_shapes, opset: int = 17) -> bytes:
    """A module with one or more fixed-shape inputs as ONNX bytes (TorchScript exporter)."""
    import torch

    xs = tuple(torch.randn(*s) for s in input_shapes)
    buf = io.BytesIO()
    names = ["input"] if len(xs) == 1 else [f"input{i}" for i in range(len(xs))]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), xs, buf, dynamo=False, opset_version=opset,
                          input_names=names)
    return buf.getvalue()


def export_tflite_bytes(module, input_shapes) -> bytes:
    """A module with one or more NCHW/NLC inputs as a float32 .tflite; 4-d inputs and outputs
    become NHWC, as a converted vision model has them."""
    import contextlib

    import torch

    from hwnas.profilers.export import _litert_torch, _native_stderr_to_log, _quiet

    lt = _litert_torch()
    module = module.eval()
    xs = [torch.randn(*s) for s in input_shapes]
    with torch.no_grad():
        ys = module(*xs)
    ys = ys if isinstance(ys, (tuple, list)) else (ys,)
    four_in = [i for i, x in enumerate(xs) if x.dim() == 4]
    four_out = [i for i, y in enumerate(ys) if y.dim() == 4]
    if four_in or four_out:
        module = lt.to_channel_last_io(module, args=four_in, outputs=four_out)
        xs = [x.permute(0, 2, 3, 1).contiguous() if x.dim() == 4 else x for x in xs]
    chatter = io.StringIO()
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(chatter), \
            _quiet("", "jax", "jax._src.xla_bridge"), _native_stderr_to_log():
        warnings.simplefilter("ignore")
        try:
            flat = lt.convert(module.eval(), tuple(xs)).model_content()
        except Exception as e:  # the converter's failures are many and long
            raise ModelError(f"litert-torch cannot convert the model: "
                             f"{str(e).strip().splitlines()[0][:200] if str(e) else type(e).__name__}"
                             ) from None
    return bytes(flat)


class Pack:
    """Several blocks side by side in one module (one input each): one conversion, many
    kernels. TFLite conversion costs seconds per call, so sampled blocks go in packs."""

    def __init__(self, modules, shapes):
        import torch

        class _Pack(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = torch.nn.ModuleList(modules)

            def forward(self, *xs):
                return tuple(b(x) for b, x in zip(self.blocks, xs))

        self.module = _Pack().eval()
        self.shapes = list(shapes)


def components(kernels, n_inputs: int, input_names) -> list[int]:
    """For each kernel, the index of the pack input it depends on (-1: none). Blocks in a pack
    share no tensors, so each kernel descends from exactly one input."""
    owner = {name: i for i, name in enumerate(input_names)}
    out = []
    for k in kernels:
        found = -1
        for t in k.dynamic_inputs:
            if t.name in owner:
                found = owner[t.name]
                break
        for t in k.outputs:
            owner[t.name] = found
        out.append(found)
    return out
