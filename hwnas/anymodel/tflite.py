"""Kernels as TFLite runs them: the converted model's operator list, each op a model of its own.

A ``.tflite`` file *is* the runtime's graph: every operator in its (first) subgraph is one
kernel, with its builtin options (strides, padding, the fused activation) and its tensors.
The file is read as a flatbuffer with LiteRT's own schema (``ai_edge_litert``); shapes come
from LiteRT's interpreter after ``allocate_tensors()``, which propagates a fixed input shape
through the graph without running it. :func:`extract` writes one operator, its constant
buffers and its tensors as a model of its own, the unit the kernel profiler times (on
LiteRT here, or with ``benchmark_model`` on a phone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from hwnas.anymodel.kernels import Kernel, TensorSpec, make_attrs
from hwnas.errors import ModelError

RUNTIME = "tflite"
_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool",
           7: "int16", 9: "int8", 10: "float64"}


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError:
        from hwnas.profilers.litert import INTERPRETER_HINT

        raise ModelError(f"reading TFLite files needs LiteRT's schema: {INTERPRETER_HINT}") \
            from None
    return schema, flatbuffer_utils


def read_flatbuffer(data: bytes, name: str = "model"):
    """The model as LiteRT's object API (ModelT); ModelError when it is not one."""
    _, fb = _schema()
    if data[4:8] != b"TFL3":
        raise ModelError(f"{name} is not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = fb.read_model_from_bytearray(bytearray(data))
    except Exception as e:  # a truncated flatbuffer fails in many ways inside the reader
        raise ModelError(f"{name} is not a valid TFLite model (truncated or malformed: "
                         f"{type(e).__name__})") from None
    if not model.subgraphs or model.subgraphs[0].operators is None \
            or not model.subgraphs[0].operators:
        raise ModelError(f"{name} is not a valid TFLite model (no operators)")
    if len(model.subgraphs) > 1:
        raise ModelError(f"{name} has {len(model.subgraphs)} subgraphs (control flow); hwnas "
                         f"predicts graphs whose kernels all run once per call")
    return model


def _op_names() -> dict[int, str]:
    schema, _ = _schema()
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def op_name(model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    if builtin == 32:  # CUSTOM
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else \
            str(code.customCode)
        return f"CUSTOM:{custom}"
    return _op_names().get(builtin, f"BUILTIN_{builtin}")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _options(op) -> list[tuple[str, object]]:
    opts = op.builtinOptions
    if opts is None:
        return []
    out = []
    for k, v in vars(opts).items():
        if isinstance(v, (bool, int, float, str)):
            out.append((_snake(k), v))
        elif isinstance(v, (list, np.ndarray)):
            out.append((_snake(k), [int(x) for x in v]))
    return out


def _is_const(model, tensor) -> bool:
    if tensor.buffer <= 0 or tensor.buffer >= len(model.buffers):
        return False
    b = model.buffers[tensor.buffer]
    return b.data is not None and len(b.data) > 0


def _interpreter_shapes(data: bytes) -> dict[int, tuple]:
    """tensor index -> shape after LiteRT propagated the input shape (no invoke)."""
    from hwnas.profilers.export import _native_stderr_to_log
    from hwnas.profilers.litert import load_interpreter

    Interpreter, resolvers, _ = load_interpreter()
    try:
        with _native_stderr_to_log("LiteRT"):  # its C++ logging, never onto stderr
            it = Interpreter(model_content=bytes(data), num_threads=1,
                             experimental_op_resolver_type=(
                                 resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
            it.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"LiteRT cannot run the model: {str(e).strip().splitlines()[0][:300]}") \
            from None
    return {d["index"]: tuple(int(x) for x in d["shape"]) for d in it.get_tensor_details()}


@dataclass(frozen=True)
class TfliteGraph:
    model: object  # ModelT
    kernels: tuple[Kernel, ...]

    def extract(self, kernel: Kernel) -> bytes:
        return extract(self.model, kernel)


def detect(data: bytes, name: str = "model") -> TfliteGraph:
    """Every operator of the model as a Kernel, with LiteRT's shapes."""
    model = read_flatbuffer(data, name)
    shapes = _interpreter_shapes(data)
    sub = model.subgraphs[0]
    kernels = []
    for i, op in enumerate(sub.operators):
        def spec(idx):
            t = sub.tensors[idx]
            shape = shapes.get(idx, tuple(int(d) for d in (t.shape if t.shape is not None
                                                            else [])))
            return TensorSpec(str(idx), _DTYPES.get(int(t.type), f"type{t.type}"),
                              tuple(shape), _is_const(model, t))

        inputs = tuple(spec(j) for j in (op.inputs if op.inputs is not None else []) if j >= 0)
        outputs = tuple(spec(j) for j in (op.outputs if op.outputs is not None else []) if j >= 0)
        kernels.append(Kernel(RUNTIME, str(i), op_name(model, op), make_attrs(_options(op)),
                              inputs, outputs))
    return TfliteGraph(model, tuple(kernels))


def extract(model, kernel: Kernel) -> bytes:
    """One operator as a model of its own: its opcode, tensors and constant buffers."""
    import copy

    schema, fb = _schema()
    sub = model.subgraphs[0]
    op = sub.operators[int(kernel.name)]
    out = schema.ModelT()
    out.version = model.version or 3
    out.description = "hwnas kernel"
    out.operatorCodes = [copy.deepcopy(model.operatorCodes[op.opcodeIndex])]
    out.buffers = [schema.BufferT()]  # buffer 0: the empty buffer of activations
    tensors, remap = [], {}
    specs = {t.name: t for t in kernel.inputs + kernel.outputs}
    for j in list(op.inputs) + list(op.outputs):
        if j < 0 or j in remap:
            continue
        t = copy.deepcopy(sub.tensors[j])
        if _is_const(model, sub.tensors[j]):
            buf = schema.BufferT()
            buf.data = model.buffers[t.buffer].data
            out.buffers.append(buf)
            t.buffer = len(out.buffers) - 1
        else:
            t.buffer = 0
            shape = specs[str(j)].shape
            t.shape = list(shape)
            t.shapeSignature = list(shape)
        remap[j] = len(tensors)
        tensors.append(t)
    new = copy.deepcopy(op)
    new.opcodeIndex = 0
    new.inputs = [remap[j] if j >= 0 else -1 for j in op.inputs]
    new.outputs = [remap[j] for j in op.outputs if j >= 0]
    new.intermediates = None
    g = schema.SubGraphT()
    g.tensors = tensors
    g.operators = [new]
    g.inputs = [remap[j] for j in dict.fromkeys(op.inputs) if j >= 0
                and not _is_const(model, sub.tensors[j])]
    g.outputs = list(new.outputs)
    g.name = "kernel"
    out.subgraphs = [g]
    return bytes(fb.convert_object_to_bytearray(out))


def with_input_shape(model, dims) -> bytes:
    """The model with its input tensor's shape fixed to ``dims`` (LiteRT propagates it)."""
    import copy

    _, fb = _schema()
    m = copy.deepcopy(model)
    sub = m.subgraphs[0]
    t = sub.tensors[sub.inputs[0]]
    t.shape = list(dims)
    t.shapeSignature = list(dims)
    return bytes(fb.convert_object_to_bytearray(m))
