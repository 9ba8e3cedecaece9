"""Kernels: the units a runtime really executes, at the shapes it runs them.

A :class:`Kernel` is one node of onnxruntime's *optimized* graph (its fused nodes: a
``nchwc.Conv`` with its activation and residual add, a ``FusedMatMul`` with its scale, a
``SkipLayerNormalization``) or one operator of a TFLite model, with the dtypes and shapes of
its inputs and outputs and which inputs are constants (weights). Its *kind* is what a
per-kind regressor is trained on: the runtime's op name, split where the runtime runs
different code for the same op (a depthwise or grouped convolution is not a dense one).

Features are shape facts (channels, spatial size, kernel size, stride, M/K/N, element counts,
FLOPs); a regressor sees their logarithms, because latency is closer to a power law of them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property

# Ops that only re-label a buffer inside a network: onnxruntime aliases their output to their
# input (no copy), so their cost is the executor's per-node dispatch, which the per-network
# overhead model carries (b per kernel). Timed alone they would copy (a graph output cannot
# alias a graph input), which is not what they cost in a network.
ORT_VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"})

CONV_OPS = frozenset({"Conv", "FusedConv", "nchwc.Conv", "CONV_2D", "DEPTHWISE_CONV_2D"})
POOL_OPS = frozenset({"MaxPool", "AveragePool", "nchwc.MaxPool", "nchwc.AveragePool",
                      "MAX_POOL_2D", "AVERAGE_POOL_2D"})
GLOBAL_POOL_OPS = frozenset({"GlobalAveragePool", "GlobalMaxPool", "nchwc.GlobalAveragePool",
                             "nchwc.GlobalMaxPool"})
MATMUL_OPS = frozenset({"MatMul", "FusedMatMul", "Gemm", "FusedGemm", "FULLY_CONNECTED",
                        "BATCH_MATMUL"})
# ops whose cost follows an axis: an outer loop over rows of ``inner`` elements
AXIS_OPS = frozenset({"LayerNormalization", "SkipLayerNormalization",
                      "SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization",
                      "Softmax", "ReduceMean", "ReduceSum", "ReduceMax", "InstanceNormalization",
                      "SOFTMAX", "MEAN", "SUM", "REDUCE_MAX", "LOG_SOFTMAX"})
DATA_MOVE_OPS = frozenset({"Concat", "Split", "Slice", "Pad", "Gather", "Tile", "Expand",
                           "CONCATENATION", "SPLIT", "SPLIT_V", "SLICE", "STRIDED_SLICE", "PAD",
                           "PADV2", "GATHER", "TILE", "BROADCAST_TO", "RESHAPE", "SQUEEZE",
                           "EXPAND_DIMS", "PACK", "UNPACK"})
TRANSPOSE_OPS = frozenset({"Transpose", "TRANSPOSE", "nchwc.ReorderInput",
                           "nchwc.ReorderOutput"})

# LiteRT's depthwise convolutions of up to 25 taps (3x3, 5x5) ran at 12-22 GMAC/s here, 7x7
# and 9x9 at 2.1-2.4 GMAC/s, at the same sizes (64x64x64 and 32x32x256; BENCHMARKS.md,
# benchmarks/litert_dw_taps.py): another code path.
# One regressor over both, a ridge in log features with trees on its residuals, drew a line
# through kernel size and overpredicted 5x5 kernels 2.4x (0.54 ms for a measured 0.22 ms);
# the synthetic CNNs, made of 3x3 and 5x5 ones, read well under their predicted kernels and
# took the overhead model's scale down for every network (0.942 on a kept run, 0.987 with
# the split; ConvNeXt-atto's 7x7 ones were predicted 13.8% under). Two kinds.
TFLITE_DW_FAST_TAPS = 25


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name ("float32", "int64")
    shape: tuple[int, ...]
    const: bool  # a weight / initializer / constant buffer, not an activation

    @property
    def size(self) -> int:
        return int(math.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        """Bytes at its dtype (4 per element for a dtype numpy does not know)."""
        import numpy as np

        try:
            return self.size * np.dtype(self.dtype).itemsize
        except TypeError:
            return self.size * 4

    def to_obj(self) -> list:
        return [self.name, self.dtype, list(self.shape), self.const]

    @classmethod
    def from_obj(cls, obj) -> "TensorSpec":
        name, dtype, shape, const = obj
        return cls(str(name), str(dtype), tuple(int(d) for d in shape), bool(const))


def _jsonable(value):
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@dataclass(frozen=True)
class Kernel:
    """One kernel of a runtime's graph, with its shapes."""

    runtime: str  # "onnxruntime" or "tflite"
    name: str  # node name (onnxruntime) or operator index (TFLite) in the runtime's graph
    op: str  # the runtime's op: "nchwc.Conv", "FusedMatMul", "CONV_2D", ...
    attrs: tuple[tuple[str, object], ...]  # sorted (name, JSON-able value) pairs
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    # --- identity ----------------------------------------------------------------------------
    def attr(self, name: str, default=None):
        for k, v in self.attrs:
            if k == name:
                return v
        return default

    @property
    def dynamic_inputs(self) -> tuple[TensorSpec, ...]:
        return tuple(t for t in self.inputs if not t.const)

    @property
    def weights(self) -> tuple[TensorSpec, ...]:
        return tuple(t for t in self.inputs if t.const)

    @cached_property
    def kind(self) -> str:
        """The regressor's kernel type: the runtime's op, split where its code differs."""
        if self.op in ("Conv", "FusedConv", "nchwc.Conv") and len(self.inputs) > 1:
            group = int(self.attr("group", 1) or 1)
            if group == 1:
                return self.op
            w = self.inputs[1].shape
            return f"{self.op}/dw" if len(w) > 1 and w[1] == 1 else f"{self.op}/group"
        if self.op in ("MatMul", "FusedMatMul") and self.weights:
            # a matrix product with a constant operand (a linear layer without bias, as
            # LeViT's are) runs MLAS's prepacked GEMM; one of two activations (attention's
            # Q.K^T, A.V) packs both at every call. Timed apart, the first ran 1.4-3x what
            # a regressor trained on the second predicted for it.
            return f"{self.op}/w"
        if self.op == "DEPTHWISE_CONV_2D" and len(self.inputs) > 1:
            w = self.inputs[1].shape  # [1, kh, kw, C * multiplier]
            if len(w) == 4 and w[1] * w[2] > TFLITE_DW_FAST_TAPS:
                return f"{self.op}/LARGE"
        return self.op

    @property
    def view(self) -> bool:
        """A pure re-labelling of a buffer (no work in a network; see ORT_VIEW_OPS)."""
        return self.runtime == "onnxruntime" and self.op in ORT_VIEW_OPS

    @cached_property
    def signature(self) -> str:
        """Stable key of what the kernel computes: the same for the same op, attributes and
        shapes in any model (names do not count). ``kind:hash``."""
        body = json.dumps([self.runtime, self.op, [list(a) for a in self.attrs],
                           [[t.dtype, list(t.shape), t.const] for t in self.inputs],
                           [[t.dtype, list(t.shape)] for t in self.outputs]],
                          sort_keys=True, default=str)
        return f"{self.kind}:{hashlib.sha1(body.encode()).hexdigest()[:16]}"

    # --- cost facts --------------------------------------------------------------------------
    @cached_property
    def weight_bytes(self) -> int:
        """Bytes of its constant inputs (weights, biases). Timed alone and hot, a kernel reads
        them from cache; in a network of more weights than the cache holds, from memory."""
        return sum(t.nbytes for t in self.weights)

    @cached_property
    def flops(self) -> float:
        """Floating-point operations (multiply-adds count 2); element count for the rest."""
        out = sum(t.size for t in self.outputs) or 1
        if self.op in CONV_OPS and len(self.inputs) > 1:
            w = self.inputs[1].shape
            if self.runtime == "tflite":  # weights [Cout, kh, kw, Cin] / [1, kh, kw, C*m]
                per_out = w[1] * w[2] * (w[3] if self.op == "CONV_2D" else 1)
            else:  # [Cout, Cin/group, kh, kw]
                per_out = math.prod(w[1:])
            return 2.0 * self.outputs[0].size * per_out
        if self.op in MATMUL_OPS:
            b, m, k, n = self.mkn()
            return 2.0 * b * m * k * n
        if self.op in POOL_OPS:
            return float(self.outputs[0].size * self._pool_window())
        if self.op in GLOBAL_POOL_OPS:
            return float(self.inputs[0].size)
        return float(max(out, sum(t.size for t in self.dynamic_inputs)))

    def mkn(self) -> tuple[int, int, int, int]:
        """(batch, M, K, N) of a matrix product."""
        a = self.inputs[0].shape
        y = self.outputs[0].shape
        if self.op in ("Gemm", "FusedGemm"):
            m, k = (a[1], a[0]) if self.attr("transA", 0) else (a[0], a[1])
            return 1, m, k, y[-1]
        if self.op == "FULLY_CONNECTED":
            k = self.inputs[1].shape[-1]
            return 1, max(1, self.inputs[0].size // k), k, self.inputs[1].shape[0]
        trans_a = self.attr("transA", 0) or self.attr("adj_x", False)
        k = (a[-2] if trans_a else a[-1]) if len(a) >= 2 else a[-1]
        m, n = (y[-2] if len(y) >= 2 else 1), y[-1]
        return max(1, self.outputs[0].size // max(1, m * n)), m, k, n

    def features(self) -> dict[str, float]:
        """Shape features for this kernel's kind (every kernel of a kind has the same names)."""
        dyn = self.dynamic_inputs
        f = {"flops": self.flops, "in": float(sum(t.size for t in dyn)),
             "out": float(sum(t.size for t in self.outputs)),
             "w": float(sum(t.size for t in self.weights)),
             "n_in": float(len(dyn))}
        f["intensity"] = f["flops"] / (f["in"] + f["out"] + f["w"] + 1.0)
        if self.op in CONV_OPS:
            f.update(self._conv_features())
        elif self.op in POOL_OPS or self.op in GLOBAL_POOL_OPS:
            f.update(self._pool_features())
        elif self.op in MATMUL_OPS:
            b, m, k, n = self.mkn()
            f.update(b=b, m=m, k=k, n=n)
        elif self.op in AXIS_OPS:
            f.update(self._axis_features())
        elif self.op in TRANSPOSE_OPS:
            f.update(self._transpose_features())
        elif self.op in DATA_MOVE_OPS:
            shape = self.outputs[0].shape or (1,)
            f.update(rank=len(shape), last=shape[-1], n_out=len(self.outputs))
        else:  # elementwise and the rest: how much is broadcast
            smallest = min((t.size for t in self.inputs), default=1) or 1
            f.update(bcast=f["out"] / smallest, last=(self.outputs[0].shape or (1,))[-1])
        return {k: float(v) for k, v in f.items()}

    def _nchw(self, shape) -> tuple[int, int, int]:
        """(C, H, W) of an activation in this runtime's layout."""
        if len(shape) != 4:
            return (shape[-1] if shape else 1), 1, 1
        if self.runtime == "tflite":
            return shape[3], shape[1], shape[2]
        return shape[1], shape[2], shape[3]

    def _conv_features(self) -> dict:
        cin, hin, win = self._nchw(self.inputs[0].shape)
        cout, hout, wout = self._nchw(self.outputs[0].shape)
        w = self.inputs[1].shape
        if self.runtime == "tflite":
            kh, kw = w[1], w[2]
            strides = (self.attr("stride_h", 1), self.attr("stride_w", 1))
            # a grouped CONV_2D (RegNet's, ResNeXt's) keeps cin / groups input channels in
            # its filter [cout, kh, kw, cin / groups]: the groups are read from it (taken as 1
            # before, its cin_per_group said cin). Its FLOPs were right, and on the LiteRT zoo
            # the fix alone moved RegNet-X by 0.1 point: its grouped kernels are few among the
            # samples (14 of 162), and overpredicted 1.3-2.3x with or without it
            groups = cin if self.op == "DEPTHWISE_CONV_2D" else \
                (cin // w[3] if len(w) == 4 and w[3] and cin % w[3] == 0 else 1)
            act = self.attr("fused_activation_function", 0)
        else:
            kh, kw = w[2], w[3]
            strides = self.attr("strides", [1, 1])
            groups = int(self.attr("group", 1) or 1)
            act = self.attr("activation", "")
        fused_sum = sum(1 for t in self.inputs[3:] if not t.const) if self.runtime != "tflite" \
            else 0
        return {"cin": cin, "cout": cout, "hin": hin, "win": win, "hout": hout, "wout": wout,
                "kh": kh, "kw": kw, "stride": max(strides) if strides else 1,
                "cin_per_group": cin / max(1, groups), "sum": fused_sum,
                "act": 0.0 if act in ("", 0, None, "NONE") else 1.0,
                # where the runtime's convolution code changes path: pointwise (a GEMM),
                # channels that fill the SIMD blocks (8 or 16 floats) or not
                "pointwise": float(kh * kw == 1), "cin_block": float(cin % 16 == 0),
                "cout_block": float(cout % 16 == 0), "pixels": hout * wout}

    def _pool_window(self) -> int:
        """Elements each output reads: the window, cut to the input (a pooling window of 1280
        over a 7 x 7 map, as EfficientNet's head has, reads 49)."""
        _, hin, win = self._nchw(self.inputs[0].shape)
        ks = self.attr("kernel_shape") or [self.attr("filter_height", hin),
                                           self.attr("filter_width", win)]
        ks = list(ks) + [1] * (2 - len(ks))
        return int(min(ks[0], hin) * min(ks[-1], win))

    def _pool_features(self) -> dict:
        c, hin, win = self._nchw(self.inputs[0].shape)
        _, hout, wout = self._nchw(self.outputs[0].shape)
        return {"c": c, "hin": hin, "hout": hout, "k": self._pool_window() ** 0.5}

    def _axis_features(self) -> dict:
        shape = self.inputs[0].shape or (1,)
        axis = self.attr("axis", -1)
        axes = self.attr("axes")
        if self.op == "InstanceNormalization":
            axis = 2
        elif axes:  # a reduction over some axes: the innermost reduced run
            axis = min(a % len(shape) for a in axes)
        elif self.op in ("MEAN", "SUM", "REDUCE_MAX") and len(self.inputs) > 1:
            axis = 1  # TFLite reductions name their axes in a constant input
        axis = int(axis) % len(shape)
        inner = math.prod(shape[axis:]) if self.op not in ("Softmax", "SOFTMAX") else shape[axis]
        return {"inner": inner, "outer": max(1, self.inputs[0].size // max(1, inner))}

    def _transpose_features(self) -> dict:
        shape = self.inputs[0].shape or (1,)
        out = self.outputs[0].shape or (1,)
        return {"rank": len(shape), "last_in": shape[-1], "last_out": out[-1],
                "moves_last": float(shape[-1] != out[-1])}

    # --- persistence -------------------------------------------------------------------------
    def to_obj(self) -> dict:
        return {"runtime": self.runtime, "name": self.name, "op": self.op,
                "attrs": [[k, _jsonable(v)] for k, v in self.attrs],
                "inputs": [t.to_obj() for t in self.inputs],
                "outputs": [t.to_obj() for t in self.outputs]}

    @classmethod
    def from_obj(cls, obj: dict) -> "Kernel":
        attrs = tuple((str(k), tuple(v) if isinstance(v, list) else v) for k, v in obj["attrs"])
        return cls(str(obj["runtime"]), str(obj["name"]), str(obj["op"]), attrs,
                   tuple(TensorSpec.from_obj(t) for t in obj["inputs"]),
                   tuple(TensorSpec.from_obj(t) for t in obj["outputs"]))


def make_attrs(pairs) -> tuple[tuple[str, object], ...]:
    """Sorted, hashable, JSON-able attribute pairs."""
    out = []
    for k, v in pairs:
        v = _jsonable(v)
        out.append((str(k), tuple(v) if isinstance(v, list) else v))
    return tuple(sorted(out, key=lambda kv: kv[0]))


def total_flops(kernels) -> float:
    return float(sum(k.flops for k in kernels))


# XNNPACK, LiteRT's CPU delegate, folds a zero PAD of the spatial dimensions into the
# convolution that reads it when that convolution pads VALID (its subgraph fusion "constant pad
# into [depthwise] convolution"): inside the network the PAD is not run. litert-torch writes
# PyTorch's symmetric padding of a strided convolution that way (TensorFlow's SAME pads
# asymmetrically). Timed alone the PAD costs what it copies: on the kept LiteRT run
# (2026-12-06) the synthetic CNNs, 7-25% of whose predicted kernel time was such PADs, ran at
# 0.74-0.94 of their kernels' sum, and at 0.95-1.23 without them.
TFLITE_PAD_FOLDS_INTO = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})
TFLITE_VALID = 1  # TFLite's Padding enum: SAME 0, VALID 1


def fused_mask(kernels) -> list[bool]:
    """Per kernel, whether the runtime folds it into the next one inside a network (it then
    costs nothing of its own there, nor a dispatch). The rule reads the operator order, not the
    tensor names: a synthetic network in the kernel table keeps its kernels' signatures only,
    and a converted graph lists a PAD right before the convolution that reads it."""
    ks = list(kernels)
    out = [False] * len(ks)
    for i in range(len(ks) - 1):
        pad, conv = ks[i], ks[i + 1]
        if pad.runtime != "tflite" or pad.op != "PAD" or conv.op not in TFLITE_PAD_FOLDS_INTO:
            continue
        if not (pad.inputs and pad.outputs and conv.inputs):
            continue
        src, dst = pad.inputs[0].shape, pad.outputs[0].shape
        spatial = len(src) == 4 and len(dst) == 4 and src[0] == dst[0] and src[3] == dst[3]
        if spatial and conv.inputs[0].shape == dst and conv.attr("padding") == TFLITE_VALID:
            out[i] = True
    return out
