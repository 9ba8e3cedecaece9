"""Kernels as onnxruntime runs them: its optimized graph, and each kernel as a model of its own.

onnxruntime rewrites a model before it runs it: it folds BatchNorm into convolutions, fuses
activations and residual adds into them, moves convolutions into its blocked NCHWc layout
(with ``ReorderInput`` / ``ReorderOutput`` at the boundaries), turns MatMul+Add into Gemm and
the pieces of GELU, LayerNorm and scaled attention scores into single contrib ops. The nodes
of that optimized graph are the kernels the CPU really executes; hwnas takes them from the
session itself (``SessionOptions.optimized_model_filepath``), never from hand-written fusion
rules, with the same session options the profiler uses.

Shapes: the optimized graph holds contrib-domain ops that ONNX's shape inference does not
know, so the shapes come from onnxruntime's own profiler over one run of the model on the
host (zeros in, not timed, not on the device): every kernel's input and output shapes as it
ran them.

:func:`extract` turns one kernel of the optimized graph into a standalone model (its node,
its weights, its activations as inputs): what the kernel profiler times, and what the
additivity check sums.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwnas.anymodel.kernels import Kernel, TensorSpec, make_attrs
from hwnas.errors import ModelError

log = logging.getLogger(__name__)
RUNTIME = "onnxruntime"
NCHWC_DOMAIN = "com.microsoft.nchwc"
# onnxruntime's profiler spells element types its own way
_PROFILE_DTYPES = {"float": "float32", "double": "float64", "float16": "float16",
                   "int64": "int64", "int32": "int32", "int8": "int8", "uint8": "uint8",
                   "bool": "bool", "int16": "int16", "uint16": "uint16"}


@dataclass(frozen=True)
class OrtGraph:
    """A model as onnxruntime runs it: the optimized graph and its kernels in order."""

    optimized: object  # onnx.ModelProto of the optimized graph
    kernels: tuple[Kernel, ...]

    def extract(self, kernel: Kernel) -> bytes:
        return extract(self.optimized, kernel)


def session_options(threads: int = 1):
    """The options the onnxruntime profiler opens its sessions with (profilers/onnxrt.py):
    what changes the graph (the optimization level) must be the same here."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 4  # fatal only: its errors come back as exceptions
    return so


def op_name(node) -> str:
    return ("nchwc." if node.domain == NCHWC_DOMAIN else "") + node.op_type


def _attr_value(attr):
    from onnx import AttributeProto, helper

    if attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
        raise ModelError("control flow (If, Loop, Scan) is not supported: hwnas predicts "
                         "graphs whose kernels all run once per call")
    if attr.type == AttributeProto.TENSOR:
        t = attr.t
        return ["tensor", int(t.data_type), list(t.dims)]
    value = helper.get_attribute_value(attr)
    if isinstance(value, list) and value and not isinstance(value[0], (int, float, bytes, str)):
        return str(value)
    return value


def _dtype_of(elem_type: int) -> str:
    from onnx import helper

    return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))


def _profile_shapes(events) -> dict[str, tuple[list, list]]:
    """node name -> (input [(dtype, shape)], output [(dtype, shape)]) from a profile's events."""
    out = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        args = e.get("args", {})

        def spec(items):
            return [(_PROFILE_DTYPES.get(next(iter(d)), next(iter(d))), tuple(next(iter(
                d.values())))) for d in items]

        out[e["name"][:-len("_kernel_time")]] = (spec(args.get("input_type_shape", [])),
                                                 spec(args.get("output_type_shape", [])))
    return out


def optimize(model: bytes, input_shape, threads: int = 1, name: str = "the model") -> OrtGraph:
    """Open ``model`` the way the profiler does and keep the optimized graph; then read every
    kernel's shapes from one profiled run of that graph as it is (optimizations off, nodes
    named: onnxruntime leaves the nodes it inlines unnamed)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = session_options(threads)
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        try:
            ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
            optimized = onnx.load(so.optimized_model_filepath)
            named = _named(optimized)
            so = session_options(threads)
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(tmp) / "profile")
            sess = ort.InferenceSession(named.SerializeToString(), so,
                                        providers=["CPUExecutionProvider"])
            x = np.zeros(tuple(input_shape), dtype=np.float32)
            sess.run(None, {sess.get_inputs()[0].name: x})
            events = json.loads(Path(sess.end_profiling()).read_text())
        except ModelError:
            raise
        except Exception as e:  # onnxruntime's own errors (an op it cannot run, bad shapes)
            raise ModelError(f"onnxruntime cannot run {name}: "
                             f"{str(e).strip().splitlines()[0][:300]}") from None
    shapes = _profile_shapes(events)
    return OrtGraph(named, tuple(_kernels(named, shapes, input_shape)))


def _named(model):
    """The model (a ModelProto, changed in place) with every node named uniquely: the profile
    reports nodes by name, and exporters and onnxruntime's inliner leave some unnamed."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.name or node.op_type}_hwnas{i}"
        seen.add(node.name)
    return model


def _kernels(optimized, shapes, input_shape) -> list[Kernel]:
    init = {i.name: i for i in optimized.graph.initializer}
    # every activation is a graph input or some kernel's output, and the profile reports every
    # kernel's outputs (its input lists omit weights onnxruntime pre-packed)
    known = {i.name: ("float32", tuple(input_shape)) for i in optimized.graph.input
             if i.name not in init}
    for node in optimized.graph.node:
        if node.name in shapes:
            for name, spec in zip([o for o in node.output if o], shapes[node.name][1]):
                known[name] = spec
    consts = {n.output[0] for n in optimized.graph.node if n.op_type == "Constant"}
    kernels = []
    for node in optimized.graph.node:
        if node.op_type == "Constant":
            continue  # folded into its consumers as a weight
        if node.name not in shapes:
            raise ModelError(f"onnxruntime did not report node {node.name!r} ({node.op_type}) "
                             f"in its profile; cannot read its shapes")
        inputs = []
        for name in node.input:
            if not name:
                continue
            if name in init:
                t = init[name]
                inputs.append(TensorSpec(name, _dtype_of(t.data_type), tuple(t.dims), True))
            elif name in known:
                dtype, shape = known[name]
                inputs.append(TensorSpec(name, dtype, tuple(shape), name in consts))
            else:
                raise ModelError(f"node {node.name!r} ({node.op_type}): no shape for its "
                                 f"input {name!r}")
        outputs = [TensorSpec(n, d, tuple(s), False)
                   for n, (d, s) in zip([o for o in node.output if o], shapes[node.name][1])]
        attrs = make_attrs((a.name, _attr_value(a)) for a in node.attribute)
        kernels.append(Kernel(RUNTIME, node.name, op_name(node), attrs, tuple(inputs),
                              tuple(outputs)))
    return kernels


def extract(optimized, kernel: Kernel) -> bytes:
    """The kernel as a model of its own: its node and weights, its activations as inputs."""
    from onnx import TensorProto, helper

    node = next((n for n in optimized.graph.node if n.name == kernel.name), None)
    if node is None:
        raise ModelError(f"kernel {kernel.name!r} is not in the optimized graph")
    wanted = {t.name for t in kernel.weights}
    inits = [i for i in optimized.graph.initializer if i.name in wanted]
    consts = [n for n in optimized.graph.node
              if n.op_type == "Constant" and n.output and n.output[0] in wanted]
    seen, inputs = set(), []
    for t in kernel.dynamic_inputs:
        if t.name not in seen:
            seen.add(t.name)
            inputs.append(helper.make_tensor_value_info(
                t.name, helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype)), list(t.shape)))
    outputs = [helper.make_tensor_value_info(
        t.name, helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype)) if t.dtype else
        TensorProto.FLOAT, list(t.shape)) for t in kernel.outputs]
    graph = helper.make_graph(consts + [node], "kernel", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=list(optimized.opset_import),
                              ir_version=optimized.ir_version)
    return model.SerializeToString()


def random_feeds(kernel: Kernel, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for a kernel's standalone model: standard normal floats, zeros otherwise (valid
    indices for a Gather)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for t in kernel.dynamic_inputs:
        if t.name in feeds:
            continue
        if np.issubdtype(np.dtype(t.dtype), np.floating):
            feeds[t.name] = rng.standard_normal(t.shape).astype(t.dtype)
        else:
            feeds[t.name] = np.zeros(t.shape, dtype=t.dtype)
    return feeds
