"""Issue 25, item 5: the memory guard sees every tensor, and the runtimes keep their logs off
stderr.

* A 1x3x224x224 input into a Conv to 1,000,000 channels (a 187 GiB output, 11 MiB of weights)
  is refused in one line naming the user's file, the tensor, its shape and size, and the
  memory available, by ``measure`` and ``predict`` with ``--onnx`` and ``--tflite``, before
  onnxruntime or LiteRT is asked to open anything.
* The guard's count: every value ONNX shape inference knows (data propagation on), every
  non-constant tensor of a TFLite graph, with the peak of the tensors live at once over the
  graph's order, not their sum.
* onnxruntime's and LiteRT's own lines never reach stderr: an ONNX model that fails as it runs
  is one line, and LiteRT's "Created TensorFlow Lite XNNPACK delegate" goes to the debug log.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from cli_harness import assert_one_line, invoke
from hwnas.anymodel import model as mfile
from hwnas.errors import ModelError

MILLION = 1_000_000
BIG = rf"tensor 'y' \[1, ({MILLION}, 224, 224|224, 224, {MILLION})\] float32 is 186\.92 GiB"


def _onnx(nodes, inputs, outputs, inits=()) -> bytes:
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def conv_onnx(path: Path, cout: int, hw: int = 224) -> Path:
    w = numpy_helper.from_array(np.zeros((cout, 3, 1, 1), np.float32), "W")
    path.write_bytes(_onnx([helper.make_node("Conv", ["x", "W"], ["y"])],
                           [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                          [1, 3, hw, hw])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                          [1, cout, hw, hw])], [w]))
    return path


def conv_tflite(path: Path, cout: int, hw: int = 224, dynamic: bool = False) -> Path:
    """A one-CONV_2D .tflite written with LiteRT's own schema (no converter needed); with
    ``dynamic``, its batch is -1 in the signatures (stored as 1, as converters do)."""
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    from ai_edge_litert.tools import flatbuffer_utils

    m = schema.ModelT()
    m.version, m.description = 3, "conv"
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CONV_2D
    code.version = 1
    m.operatorCodes = [code]
    weights, bias = schema.BufferT(), schema.BufferT()
    # numpy buffers: the object API packs a bytes object one byte per Python call
    weights.data = np.zeros(cout * 3 * 4, np.uint8)
    bias.data = np.zeros(cout * 4, np.uint8)
    m.buffers = [schema.BufferT(), weights, bias]

    def tensor(name, shape, buffer):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), schema.TensorType.FLOAT32, buffer
        if dynamic and buffer == 0:
            t.shapeSignature = [-1, *shape[1:]]
        return t

    g = schema.SubGraphT()
    g.tensors = [tensor("x", [1, hw, hw, 3], 0), tensor("w", [cout, 1, 1, 3], 1),
                 tensor("b", [cout], 2), tensor("y", [1, hw, hw, cout], 0)]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    opts = schema.Conv2DOptionsT()
    opts.padding, opts.strideW, opts.strideH = schema.Padding.VALID, 1, 1
    op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.Conv2DOptions, opts
    g.operators, g.inputs, g.outputs, g.name = [op], [0], [3], "main"
    m.subgraphs = [g]
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(m)))
    return path


@pytest.fixture
def no_runtime(monkeypatch):
    """onnxruntime sessions and LiteRT interpreters that fail the test if anything opens one."""
    import onnxruntime

    def opened(*a, **k):
        raise AssertionError("a runtime was asked to open a model")

    monkeypatch.setattr(onnxruntime, "InferenceSession", opened)
    try:
        import ai_edge_litert.interpreter as lite

        monkeypatch.setattr(lite, "Interpreter", opened)
    except ImportError:
        pass


CASES = [("measure", "local-cpu", "--onnx"), ("predict", "local-cpu", "--onnx"),
         ("measure", "local-tflite", "--tflite"), ("predict", "local-tflite", "--tflite")]


@pytest.mark.parametrize("cmd, device, flag", CASES, ids=[" ".join(c) for c in CASES])
def test_a_conv_to_a_million_channels_is_refused_before_any_runtime(
        hwnas_home, tmp_path, no_runtime, cmd, device, flag):
    make = conv_onnx if flag == "--onnx" else conv_tflite
    f = make(tmp_path / f"conv1e6{'.onnx' if flag == '--onnx' else '.tflite'}", MILLION)
    r = invoke([cmd, "--device", device, flag, f], hwnas_home)
    line = assert_one_line(r, rf"conv1e6\.(onnx|tflite) is too large for .*{BIG}.*"
                              rf"[\d.]+ GiB is available$")
    assert "11 MiB of weights" in line or "15 MiB of weights" in line, line
    assert not (hwnas_home / "devices" / device / "records.json").exists()


@pytest.mark.parametrize("flag", ["--onnx", "--tflite"])
def test_the_refusal_is_all_a_shell_sees(tmp_path, flag):
    """Through a real process: stderr is that one line, at once (no profiler opened)."""
    make = conv_onnx if flag == "--onnx" else conv_tflite
    f = make(tmp_path / f"conv1e6.{flag[2:]}", MILLION)
    device = "local-cpu" if flag == "--onnx" else "local-tflite"
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "hwnas.cli", "measure", "--device", device, flag,
                        str(f)], capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - t0
    assert p.returncode == 1 and p.stdout == "", (p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwnas: error: conv1e6"), p.stderr
    assert "is available" in lines[0] and "\x1b[" not in p.stderr, p.stderr
    assert took < 60, took  # no reference bench, no session: reading the file, then out


def test_a_tensor_only_data_propagation_knows_is_counted(tmp_path):
    """Shape -> Mul -> ConstantOfShape: the output's size is a value computed from the input's
    shape, which inference finds only with data propagation on."""
    scale = numpy_helper.from_array(np.array([1, 333_334, 1, 1], np.int64), "scale")
    data = _onnx([helper.make_node("Shape", ["x"], ["s"]),
                  helper.make_node("Mul", ["s", "scale"], ["s2"]),
                  helper.make_node("ConstantOfShape", ["s2"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b", "c", "d"])],
                 [scale])
    m = mfile.load_onnx_bytes(data, "grow.onnx")
    assert m.footprint.largest.name == "y"
    assert m.footprint.largest.shape == (1, 1_000_002, 224, 224)
    with pytest.raises(ModelError, match=r"grow\.onnx is too large for phone: .*tensor 'y' "
                                         r"\[1, 1000002, 224, 224\] float32 is 186\.92 GiB"):
        mfile.check_fits(m, "phone", 16 * 2 ** 30)


def test_an_input_shape_given_on_the_command_line_is_propagated(tmp_path):
    """A dynamic batch fixed by --input-shape: the intermediate tensors grow with it."""
    w = numpy_helper.from_array(np.zeros((64, 3, 1, 1), np.float32), "W")
    data = _onnx([helper.make_node("Conv", ["x", "W"], ["h"]),
                  helper.make_node("Relu", ["h"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 224, 224])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 64, 224, 224])],
                 [w])
    m = mfile.load_onnx_bytes(data, "dyn.onnx", (4096, 3, 224, 224))
    assert m.footprint.largest.shape == (4096, 64, 224, 224)
    assert m.footprint.peak_bytes == 2 * 4096 * 64 * 224 * 224 * 4  # h and y live together
    with pytest.raises(ModelError, match=r"tensor '(h|y)' \[4096, 64, 224, 224\] float32 is "
                                         r"49\.00 GiB"):
        mfile.check_fits(m, "this machine", 32 * 2 ** 30)


def test_the_peak_is_of_tensors_live_at_once_not_their_sum():
    sizes = {"x": 1, "a": 10, "b": 100, "c": 1000}
    chain = [(["x"], ["a"]), (["a"], ["b"]), (["b"], ["c"])]
    assert mfile.peak_live_bytes(sizes, chain, ["x"], ["c"]) == 1100  # b and c
    branch = [(["x"], ["a"]), (["a"], ["b"]), (["a", "b"], ["c"])]  # a kept for the last step
    assert mfile.peak_live_bytes(sizes, branch, ["x"], ["c"]) == 1110
    kept = [(["x"], ["a"]), (["a"], ["b"]), (["b"], ["c"])]
    assert mfile.peak_live_bytes(sizes, kept, ["x"], ["c", "x"]) == 1101  # x is an output too


def test_a_long_chain_that_fits_at_its_peak_is_allowed(tmp_path):
    """Twenty 1x64x512x512 convolutions in a row: 1.3 GiB summed, 128 MiB live at once."""
    nodes, inits = [], []
    prev = "x"
    for i in range(20):
        inits.append(numpy_helper.from_array(np.zeros((64, 64 if i else 3, 1, 1), np.float32),
                                             f"W{i}"))
        nodes.append(helper.make_node("Conv", [prev, f"W{i}"], [f"t{i}"]))
        prev = f"t{i}"
    data = _onnx(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 512, 512])],
                 [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 64, 512, 512])],
                 inits)
    m = mfile.load_onnx_bytes(data, "chain.onnx")
    one = 64 * 512 * 512 * 4
    assert m.footprint.known == 21 and m.footprint.peak_bytes == 2 * one
    mfile.check_fits(m, "a 512 MiB board", 512 * 2 ** 20)  # the sum (1.25 GiB) would refuse
    with pytest.raises(ModelError, match="too large for a 128 MiB board"):
        mfile.check_fits(m, "a 128 MiB board", 128 * 2 ** 20)


def test_tflite_tensors_are_counted_from_the_flatbuffer(tmp_path):
    m = mfile.load_model(conv_tflite(tmp_path / "c.tflite", 16, 32), "tflite")
    assert m.footprint.largest.shape == (1, 32, 32, 16) and m.footprint.known == 2
    assert m.footprint.peak_bytes == (32 * 32 * 3 + 32 * 32 * 16) * 4
    assert m.weight_bytes == 16 * 3 * 4 + 16 * 4


def test_a_dynamic_tflite_batch_is_counted_at_the_given_batch(tmp_path):
    f = conv_tflite(tmp_path / "dyn.tflite", 16, 32, dynamic=True)
    with pytest.raises(ModelError, match="not fixed; give --input-shape"):
        mfile.load_model(f, "tflite")
    m = mfile.load_model(f, "tflite", (4096, 32, 32, 3))
    assert m.footprint.largest.shape == (4096, 32, 32, 16)
    assert m.footprint.peak_bytes == 4096 * 32 * 32 * (3 + 16) * 4


# --- the runtimes' own lines ------------------------------------------------------------------
def _reshape_that_fails_at_run(path: Path) -> Path:
    """Reshape to a shape computed from the input's (its first dim, then 5): wrong element
    count, found only when onnxruntime runs it."""
    ints = [numpy_helper.from_array(np.array([v], np.int64), n)
            for n, v in (("five", 5), ("st", 0), ("en", 1))]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])
    path.write_bytes(_onnx([helper.make_node("Shape", ["x"], ["s"]),
                            helper.make_node("Slice", ["s", "st", "en"], ["s2"]),
                            helper.make_node("Concat", ["s2", "five"], ["shp"], axis=0),
                            helper.make_node("Reshape", ["x", "shp"], ["y"])],
                           [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                           [out], ints))
    return path


def test_onnxruntime_failing_as_it_runs_is_one_line_and_none_of_its_own(hwnas_home, tmp_path):
    f = _reshape_that_fails_at_run(tmp_path / "bad.onnx")
    p = subprocess.run([sys.executable, "-m", "hwnas.cli", "measure", "--device", "local-cpu",
                        "--onnx", str(f), "--runs", "3", "--warmup", "1"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "onnxruntime:" not in p.stderr and "\x1b[" not in p.stderr, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"hwnas: error: onnxruntime cannot run {f}: its Reshape node: ")
    assert "cannot be reshaped" in lines[0] and "a bug in hwnas" not in lines[0], lines[0]


LITERT_SCRIPT = """
import sys
from pathlib import Path
from hwnas.device_configs import load_device
from hwnas.profilers.litert import LiteRTProfiler, load_interpreter
path = sys.argv[1]
if sys.argv[2] == "raw":
    Interpreter, resolvers, _ = load_interpreter()
    Interpreter(model_path=path, experimental_op_resolver_type=resolvers.AUTO).allocate_tensors()
else:
    prof = LiteRTProfiler(load_device("local-tflite"), Path(path).parent)
    prof._interpreter(Path(path)).invoke()
"""


def test_litert_s_xnnpack_line_goes_to_the_log_not_stderr(tmp_path):
    pytest.importorskip("ai_edge_litert")
    f = conv_tflite(tmp_path / "c.tflite", 8, 16)
    runs = {how: subprocess.run([sys.executable, "-c", LITERT_SCRIPT, str(f), how],
                                capture_output=True, text=True, timeout=120)
            for how in ("raw", "hwnas")}
    assert runs["hwnas"].returncode == 0 and runs["hwnas"].stderr == "", runs["hwnas"].stderr
    if "XNNPACK" not in runs["raw"].stderr:
        pytest.skip("this LiteRT build prints no XNNPACK line: nothing to route")
    assert runs["raw"].returncode == 0

