"""A user's model file, read as data and checked before anything runs it.

ONNX and TFLite files are parsed as protobuf / flatbuffer data (never unpickled). Before a
model reaches a runtime it must be: a well-formed file of its format, with one float input
tensor of fixed shape (``--input-shape`` fixes dynamic dimensions, by rewriting the input's
dimensions in a copy), and small enough for the device's memory. Each failure is one
:class:`~hwnas.errors.ModelError` line.

The memory guard (:func:`check_fits`) counts every tensor whose shape is known before anything
runs: for ONNX, what shape inference (with data propagation) finds for every value of the
graph; for TFLite, the shapes the flatbuffer stores. It takes the peak of the tensors live at
once over the graph's own (topological) order, adds the weights, and refuses a model that
cannot fit before a runtime is asked to open it: onnxruntime plans and LiteRT allocates
buffers when they open a model, and a 200 GB tensor there is an out-of-memory kill, not an
error.

A model is known by the SHA-256 of the file as given: records of its measurements are keyed
by that hash and the input shape, so renaming a file does not lose them and a changed file
is a new model.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hwnas.errors import ModelError

FORMATS = ("onnx", "tflite")
RECORD_SPACE = "model-file"  # the "space" of a model file's record (records.py, archfile.py)
TFLITE_MAGIC = b"TFL3"
MAX_PROTOBUF_BYTES = 2 * 1024 ** 3  # protobuf's limit for one ONNX message


def written_path(folder: Path, sha256: str, input_shape, fmt: str) -> Path:
    """Where ``ModelFile.write`` keeps a model in ``folder`` (named by its hash and shape)."""
    shape = "x".join(str(int(d)) for d in input_shape)
    return Path(folder) / f"{sha256[:16]}-{shape}.{fmt}"


@dataclass(frozen=True)
class ModelFile:
    """A validated model, ready for a runtime: ``data`` has every input dimension fixed."""

    format: str  # "onnx" or "tflite"
    name: str  # the file's name (or the zoo name), for messages and records' meta
    sha256: str  # of the file as given
    data: bytes  # the model with a fixed input shape (the file itself when it had one)
    input_name: str
    input_shape: tuple[int, ...]
    weight_bytes: int
    footprint: "Footprint | None" = None  # its tensors' sizes, for check_fits

    def record_arch(self) -> dict:
        """The record key of this model's measurements (records.py)."""
        return {"space": RECORD_SPACE, "format": self.format, "sha256": self.sha256,
                "input_shape": list(self.input_shape)}

    def write(self, folder: Path) -> Path:
        """The fixed-shape model as a file (runtimes that take paths), named by its hash."""
        path = written_path(folder, self.sha256, self.input_shape, self.format)
        if not path.exists():
            from hwnas.latency.safeio import atomic_write_bytes

            atomic_write_bytes(path, self.data)
        return path


def parse_input_shape(text: str | None) -> tuple[int, ...] | None:
    """``"1,3,224,224"`` (or ``1x3x224x224``) -> (1, 3, 224, 224); None stays None."""
    if text is None or text == "":
        return None
    parts = text.replace("x", ",").replace(" ", "").strip("()[]").split(",")
    try:
        dims = tuple(int(p) for p in parts if p != "")
    except ValueError:
        raise ModelError(f"--input-shape {text!r}: give positive integers, e.g. 1,3,224,224") \
            from None
    if not dims or any(d <= 0 for d in dims):
        raise ModelError(f"--input-shape {text!r}: give positive integers, e.g. 1,3,224,224")
    return dims


def sniff_format(path: Path, data: bytes) -> str:
    if data[4:8] == TFLITE_MAGIC or path.suffix.lower() == ".tflite":
        return "tflite"
    return "onnx"


MAX_MODEL_BYTES = 2 * 2**30  # protobuf's own limit on one ONNX file; far above any TFLite one


def read_bytes(path: str | Path) -> bytes:
    """A model file's bytes: a regular file under the cap (a FIFO or /dev/zero is one line at
    once, never a hang or an out-of-memory)."""
    from hwnas.errors import TableError
    from hwnas.latency.safeio import read_capped

    path = Path(path)
    try:
        data = read_capped(path, MAX_MODEL_BYTES, "model file")
    except TableError as e:
        raise ModelError(f"cannot read model file: {e}") from None
    if not data:
        raise ModelError(f"{path} is empty")
    return data


def load_model(path: str | Path, fmt: str, input_shape: Sequence[int] | None = None,
               name: str | None = None) -> ModelFile:
    """Read and validate a model file of format ``fmt``."""
    path = Path(path)
    data = read_bytes(path)
    if fmt == "onnx":
        return load_onnx_bytes(data, name or path.name, input_shape)
    if fmt == "tflite":
        return load_tflite_bytes(data, name or path.name, input_shape)
    raise ModelError(f"unknown model format {fmt!r}; one of {', '.join(FORMATS)}")


# --- ONNX ------------------------------------------------------------------------------------
def load_onnx_bytes(data: bytes, name: str, input_shape=None) -> ModelFile:
    import onnx
    from google.protobuf.message import DecodeError

    if data[4:8] == TFLITE_MAGIC:
        raise ModelError(f"{name} is a TFLite model, not ONNX; pass it with --tflite")
    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise ModelError(f"{name} is not a valid ONNX model (truncated or malformed: "
                         f"{str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") \
            from None
    if not model.graph.node:
        raise ModelError(f"{name} is not a valid ONNX model (no graph: truncated or not ONNX)")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise ModelError(f"{name} keeps its weights in external data files; save it as one "
                         f"file (onnx.save_model(m, path, save_as_external_data=False))")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise ModelError(f"{name} is not a valid ONNX model: "
                         f"{str(e).strip().splitlines()[0][:200]}") from None
    init = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    inp = _single_input(name, [(i.name, i.type.tensor_type.elem_type,
                                _onnx_dims(i)) for i in inputs], onnx.TensorProto.FLOAT)
    dims = _fixed_shape(name, inp[2], input_shape)
    if tuple(inp[2]) != dims:  # write the fixed dimensions into a copy
        shape = model.graph.input[[i.name for i in model.graph.input].index(inp[0])] \
            .type.tensor_type.shape
        for d, v in zip(shape.dim, dims):
            d.Clear()
            d.dim_value = v
        del model.graph.value_info[:]  # stale symbolic shapes; the runtime infers them again
        fixed = model.SerializeToString()
    else:
        fixed = data
    weights = sum(_onnx_tensor_bytes(t) for t in model.graph.initializer)
    return ModelFile("onnx", name, hashlib.sha256(data).hexdigest(), fixed, inp[0], dims,
                     weights, onnx_footprint(model))


def _onnx_dims(value_info) -> list:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in t.shape.dim]


def _onnx_tensor_bytes(t) -> int:
    import numpy as np
    from onnx import helper

    try:
        item = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
    except (KeyError, TypeError):
        item = 4
    return int(math.prod(t.dims)) * item


# --- TFLite ----------------------------------------------------------------------------------
def load_tflite_bytes(data: bytes, name: str, input_shape=None) -> ModelFile:
    if data[4:8] != TFLITE_MAGIC:
        kind = "an ONNX model; pass it with --onnx" if _looks_onnx(data) else \
            "not a TFLite flatbuffer (no TFL3 identifier)"
        raise ModelError(f"{name} is {kind}")
    from hwnas.anymodel.tflite import read_flatbuffer

    model = read_flatbuffer(data, name)
    sub = model.subgraphs[0]
    inputs = []
    for i in sub.inputs:
        t = sub.tensors[i]
        sig = list(t.shapeSignature) if t.shapeSignature is not None else list(t.shape)
        dims = [int(d) if d > 0 else None for d in sig]
        inputs.append((_tflite_name(t), int(t.type), dims))
    inp = _single_input(name, inputs, 0)  # TensorType.FLOAT32 == 0
    dims = _fixed_shape(name, inp[2], input_shape)
    if tuple(inp[2]) != dims:
        from hwnas.anymodel.tflite import with_input_shape

        fixed = with_input_shape(model, dims)
    else:
        fixed = data
    weights = sum(len(b.data) for b in model.buffers if b.data is not None)
    return ModelFile("tflite", name, hashlib.sha256(data).hexdigest(), fixed, inp[0], dims,
                     weights, tflite_footprint(model, dims))


def _tflite_name(t) -> str:
    n = t.name
    return n.decode(errors="replace") if isinstance(n, bytes) else str(n)


def _looks_onnx(data: bytes) -> bool:
    try:
        import onnx

        return bool(onnx.load_from_string(data).graph.node)
    except Exception:
        return False


# --- shared checks ---------------------------------------------------------------------------
def _single_input(name: str, inputs: list, float_type: int) -> tuple:
    """The one image tensor: (name, elem type, dims); ModelError otherwise."""
    if len(inputs) != 1:
        names = ", ".join(i[0] for i in inputs) or "none"
        raise ModelError(f"{name} has {len(inputs)} inputs ({names}); hwnas measures models "
                         f"with one image tensor input")
    if inputs[0][1] != float_type:
        raise ModelError(f"{name}: input {inputs[0][0]!r} is not a float32 tensor; hwnas "
                         f"measures models with one float32 image tensor input")
    return inputs[0]


def _fixed_shape(name: str, dims: list, given) -> tuple[int, ...]:
    if given is not None:
        given = tuple(int(d) for d in given)
        if dims and len(dims) != len(given):
            raise ModelError(f"{name}: --input-shape {','.join(map(str, given))} has "
                             f"{len(given)} dimensions, the model's input has {len(dims)}")
        clash = [(i, d, g) for i, (d, g) in enumerate(zip(dims, given)) if d is not None
                 and d != g]
        if clash:
            i, d, g = clash[0]
            raise ModelError(f"{name}: --input-shape sets dimension {i} to {g}, but the model "
                             f"fixes it at {d}")
        return given
    if not dims or any(d is None for d in dims):
        shown = "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
        raise ModelError(f"{name}: the input shape {shown} is not fixed; give --input-shape, "
                         f"e.g. --input-shape 1,3,224,224")
    return tuple(dims)


def available_memory_bytes() -> int | None:
    """What this machine can give a model now (MemAvailable), None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# --- what the tensors take ------------------------------------------------------------------
@dataclass(frozen=True)
class TensorSize:
    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int

    def describe(self) -> str:
        return (f"tensor {self.name!r} {list(self.shape)} {self.dtype} is "
                f"{_gib(self.nbytes)} GiB")


@dataclass(frozen=True)
class Footprint:
    """The sizes of a model's activations (every non-weight tensor of known shape)."""

    largest: TensorSize | None  # the largest single activation
    peak_bytes: int  # the most bytes of activations live at once, over the graph's order
    known: int  # tensors whose shape is known (counted)
    unknown: int  # tensors whose shape is not (not counted: the guard is a lower bound)


def _gib(n: int) -> str:
    return f"{n / 2 ** 30:.2f}"


def peak_live_bytes(sizes: dict[str, int], steps: list[tuple[list, list]], inputs, outputs
                    ) -> int:
    """The most bytes live at once when ``steps`` (each (input names, output names), in
    execution order) run: a tensor lives from the step that makes it (a graph input: from
    the start) to the last step that reads it (a graph output: to the end). A step's inputs
    and outputs are live together, as a runtime holds them."""
    n = len(steps)
    first = {name: -1 for name in inputs}
    last: dict[str, int] = {}
    for i, (ins, outs) in enumerate(steps):
        for name in ins:
            last[name] = i
        for name in outs:
            first.setdefault(name, i)
            last[name] = max(last.get(name, i), i)
    for name in outputs:
        last[name] = n
    delta = [0] * (n + 3)
    for name, nbytes in sizes.items():
        if name not in first:
            continue  # never made by a step: a stale annotation
        start = first[name] + 1
        end = max(last.get(name, first[name]), first[name]) + 1
        delta[start] += nbytes
        delta[end + 1] -= nbytes
    peak = live = 0
    for d in delta:
        live += d
        peak = max(peak, live)
    return peak


def _footprint(tensors: dict[str, TensorSize], unknown: int, steps, inputs, outputs
               ) -> Footprint:
    """``tensors`` by the key ``steps``, ``inputs`` and ``outputs`` name them with."""
    sizes = {k: t.nbytes for k, t in tensors.items()}
    largest = max(tensors.values(), key=lambda t: t.nbytes, default=None)
    return Footprint(largest, peak_live_bytes(sizes, steps, inputs, outputs), len(tensors),
                     unknown)


def onnx_footprint(model) -> Footprint:
    """Every value of the (fixed-shape) graph whose shape ONNX's shape inference knows, data
    propagation on (a Reshape to a computed shape, ConstantOfShape, Expand). Inference that
    fails part way leaves the shapes it found and those the file declares: fewer tensors
    counted, never a refusal of its own."""
    import numpy as np
    import onnx
    from onnx import helper

    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False,
                                                     strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - an op inference cannot type: count what is declared
        inferred = model
    g = inferred.graph
    weights = {i.name for i in g.initializer}
    tensors: dict[str, TensorSize] = {}
    unknown = 0
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        if vi.name in weights or vi.name in tensors:
            continue
        t = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None
                for d in t.shape.dim] if t.HasField("shape") else None
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type))
        except (KeyError, TypeError, ValueError):
            dtype = None
        if dims is None or None in dims or dtype is None:
            unknown += 1
            continue
        tensors[vi.name] = TensorSize(vi.name, tuple(dims), str(dtype),
                                      math.prod(dims) * dtype.itemsize)
    steps = [([x for x in node.input if x], [y for y in node.output if y]) for node in g.node]
    return _footprint(tensors, unknown, steps,
                      [i.name for i in g.input if i.name not in weights],
                      [o.name for o in g.output])


# TFLite's TensorType -> (name, bytes per element); INT4 is counted as a byte
_TFLITE_TYPES = {0: ("float32", 4), 1: ("float16", 2), 2: ("int32", 4), 3: ("uint8", 1),
                 4: ("int64", 8), 6: ("bool", 1), 7: ("int16", 2), 8: ("complex64", 8),
                 9: ("int8", 1), 10: ("float64", 8), 11: ("complex128", 16),
                 12: ("uint64", 8), 15: ("uint32", 4), 16: ("uint16", 2), 17: ("int4", 1)}


def tflite_footprint(model, input_dims) -> Footprint:
    """Every non-constant tensor of the first subgraph, with the shape the flatbuffer stores
    (the input's as fixed). A converter stores 1 for a dynamic dimension: a dynamic batch
    (the input's and a tensor's first dimension both -1 in their signatures) is counted at
    the input's fixed batch; any other dynamic dimension stays 1, so such a model is counted
    low: a lower bound, as the guard is."""
    sub = model.subgraphs[0]
    buffers = model.buffers or []
    tensors: dict[str, TensorSize] = {}  # by index: TFLite tensor names need not be unique
    unknown = 0
    first_input = sub.inputs[0] if sub.inputs is not None and len(sub.inputs) else None

    def signature(t) -> list[int]:
        return [int(d) for d in (t.shapeSignature if t.shapeSignature is not None else [])]

    batch = None
    if first_input is not None and signature(sub.tensors[first_input])[:1] == [-1]:
        batch = int(input_dims[0])
    for j, t in enumerate(sub.tensors or []):
        if 0 < t.buffer < len(buffers) and buffers[t.buffer].data is not None \
                and len(buffers[t.buffer].data):
            continue  # a constant: counted in the weights
        dims = list(input_dims) if j == first_input else \
            [int(d) for d in (t.shape if t.shape is not None else [])]
        if batch is not None and j != first_input and dims and signature(t)[:1] == [-1]:
            dims[0] = batch
        kind = _TFLITE_TYPES.get(int(t.type))
        if kind is None or any(d < 0 for d in dims):
            unknown += 1
            continue
        tensors[str(j)] = TensorSize(_tflite_name(t) or f"#{j}", tuple(dims), kind[0],
                                     math.prod(dims) * kind[1])

    def keys(idx):
        return [str(j) for j in (idx if idx is not None else []) if j >= 0]

    steps = [(keys(op.inputs), keys(op.outputs)) for op in sub.operators or []]
    return _footprint(tensors, unknown, steps, keys(sub.inputs), keys(sub.outputs))


def needed_bytes(model: ModelFile) -> int:
    """A lower bound on what running the model takes: its weights twice (the runtime keeps a
    packed copy), the peak of its live tensors (at least four times its input, the old
    floor for a model whose shapes are not known), plus a working margin."""
    peak = model.footprint.peak_bytes if model.footprint is not None else 0
    return 2 * model.weight_bytes + max(peak, 4 * math.prod(model.input_shape) * 4) \
        + 64 * 2 ** 20


def check_fits(model: ModelFile, device: str, memory_bytes: int | None) -> None:
    """ModelError when the model cannot fit in ``memory_bytes`` (None: unknown, allowed), in
    one line naming the largest tensor, its shape and size, and the memory available."""
    if model.format == "onnx" and len(model.data) >= MAX_PROTOBUF_BYTES:
        raise ModelError(f"{model.name} is {len(model.data) / 2 ** 30:.1f} GiB: too large for "
                         f"one ONNX protobuf (2 GiB)")
    need = needed_bytes(model)
    if memory_bytes is not None and need > memory_bytes:
        fp = model.footprint
        what = f"{fp.largest.describe()}; " if fp is not None and fp.largest is not None \
            else ""
        raise ModelError(f"{model.name} is too large for {device}: it needs at least "
                         f"{_gib(need)} GiB ({what}{model.weight_bytes / 2 ** 20:.0f} MiB of "
                         f"weights), {memory_bytes / 2 ** 30:.2f} GiB is available")
