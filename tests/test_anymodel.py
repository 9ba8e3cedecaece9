"""Any model (hwnas.anymodel): kernels as the runtime runs them, features, bad input, the
predictor's arithmetic. Fast tests; profiling and measuring are in test_anymodel_profile.py."""

import math

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from hwnas.anymodel import model as mfile
from hwnas.anymodel import ort as aort
from hwnas.anymodel.graph import export_onnx_bytes, runtime_of
from hwnas.anymodel.kernels import Kernel, TensorSpec
from hwnas.anymodel.predictor import AnyModelPredictor, KindRegressors, Overhead
from hwnas.device_configs import load_device
from hwnas.errors import HwnasError, ModelError, PredictorError


def onnx_of(module, shape) -> bytes:
    torch.manual_seed(0)
    return export_onnx_bytes(module.eval(), [shape])


class ConvBnAct(torch.nn.Module):
    def __init__(self, cin=16, cout=32, k=3, s=1, act=torch.nn.ReLU, groups=1):
        super().__init__()
        self.conv = torch.nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False)
        self.bn = torch.nn.BatchNorm2d(cout)
        self.act = act()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Attn(torch.nn.Module):
    def __init__(self, d=64, h=2):
        super().__init__()
        self.h, self.qkv, self.proj = h, torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.norm = torch.nn.LayerNorm(d)

    def forward(self, x):
        n, d = x.shape[1], x.shape[2]
        q, k, v = self.qkv(self.norm(x)).reshape(1, n, 3, self.h, d // self.h) \
            .permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * (d // self.h) ** -0.5).softmax(-1)
        y = (a @ v).transpose(1, 2).reshape(1, n, d)
        return x + torch.nn.functional.gelu(self.proj(y))


# --- kernels as onnxruntime runs them ------------------------------------------------------
def test_conv_bn_relu_is_one_kernel_with_the_activation_fused():
    g = aort.optimize(onnx_of(ConvBnAct(), (1, 16, 28, 28)), (1, 16, 28, 28))
    convs = [k for k in g.kernels if "Conv" in k.op]
    assert len(convs) == 1
    conv = convs[0]
    # BatchNorm folded and ReLU fused: no separate kernels for them
    assert not [k for k in g.kernels if k.op in ("BatchNormalization", "Relu")]
    assert conv.attr("activation") == "Relu" or conv.op == "FusedConv"
    assert conv.flops == 2 * 28 * 28 * 32 * 16 * 9
    f = conv.features()
    assert (f["kh"], f["stride"], f["hout"]) == (3, 1, 28)
    assert f["cin"] >= 16 and f["cout"] >= 32  # NCHWc pads channels to its block


def test_depthwise_and_grouped_convolutions_are_their_own_kinds():
    dw = aort.optimize(onnx_of(ConvBnAct(32, 32, groups=32), (1, 32, 14, 14)), (1, 32, 14, 14))
    gr = aort.optimize(onnx_of(ConvBnAct(32, 32, groups=4), (1, 32, 14, 14)), (1, 32, 14, 14))
    assert [k.kind for k in dw.kernels if "Conv" in k.op][0].endswith("/dw")
    assert [k.kind for k in gr.kernels if "Conv" in k.op][0].endswith("/group")


def test_attention_is_matmul_softmax_matmul_with_fused_norm_and_gelu():
    g = aort.optimize(onnx_of(Attn(), (1, 50, 64)), (1, 50, 64))
    kinds = [k.kind for k in g.kernels]
    assert "Softmax" in kinds and "LayerNormalization" in kinds
    assert {"Gelu", "BiasGelu", "FastGelu"} & set(kinds)  # the erf pattern became one kernel
    mm = [k for k in g.kernels if k.op in ("MatMul", "FusedMatMul")]
    assert len(mm) == 2  # scores (scale fused) and the weighted sum
    b, m, kk, n = mm[0].mkn()
    assert (b, m) == (2, 50) and {kk, n} == {32, 50}
    assert "Erf" not in kinds and "Div" not in kinds
    views = [k for k in g.kernels if k.view]
    assert views and all(k.op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze") for k in views)


def test_a_matmul_with_a_constant_operand_is_its_own_kind_and_templates_sample_it():
    """LeViT's bias-free linear layers stay MatMuls with a constant weight (prepacked GEMM);
    attention's MatMuls of two activations are another kind. The linear template samples
    the first (bias 0) and classifier heads (one token, a 2-D input, a GEMV)."""
    from hwnas.anymodel import templates as tpl

    module, shape = tpl.build("linear", {"n": 49, "din": 256, "dout": 384, "act": "none",
                                         "bias": 0, "head": 0})
    g = aort.optimize(onnx_of(module, shape), shape)
    mm = [k for k in g.kernels if k.op in ("MatMul", "FusedMatMul")]
    assert len(mm) == 1 and mm[0].kind == f"{mm[0].op}/w" and mm[0].weights
    attn = aort.optimize(onnx_of(Attn(), (1, 50, 64)), (1, 50, 64))
    assert all(not k.kind.endswith("/w") for k in attn.kernels
               if k.op in ("MatMul", "FusedMatMul"))
    module, shape = tpl.build("linear", {"n": 1, "din": 512, "dout": 1000, "act": "none",
                                         "bias": 1, "head": 1})
    assert shape == (1, 512)
    head = aort.optimize(onnx_of(module, shape), shape)
    gemm = [k for k in head.kernels if k.op == "Gemm"]
    assert len(gemm) == 1 and gemm[0].mkn() == (1, 1, 512, 1000)
    rng = np.random.default_rng(0)
    drawn = [tpl.TEMPLATES["linear"].draw(rng) for _ in range(300)]
    assert any(c["n"] == 1 for c in drawn) and any(c["bias"] == 0 and c["n"] > 1
                                                      for c in drawn)
    assert all(c["n"] == 1 for c in drawn if c["head"])
    # a full-size constant operand (position embedding, attention bias) is sampled too
    module, shape = tpl.build("eltwise", {"hw": 14, "c": 64, "n": 49, "layout": "tokens",
                                          "op": "add", "bcast": "const"})
    add = [k for k in aort.optimize(onnx_of(module, shape), shape).kernels if k.op == "Add"]
    assert len(add) == 1 and [t.shape for t in add[0].weights] == [(49, 64)]


def test_calibration_networks_are_real_subnets_carrying_the_weights_real_models_do():
    """The overhead model's memory term is fitted on them: one cycle of the schedule spans the
    zoo's weights (5-163 MB), not a tenth of it, mixes families, and is deterministic without
    touching torch's global generator."""
    from hwnas.anymodel.calibration import SCHEDULE, calibration_net

    before = torch.random.get_rng_state()
    nets = [calibration_net(seed) for seed in range(len(SCHEDULE))]
    assert torch.equal(torch.random.get_rng_state(), before)
    mb = [4 * sum(p.numel() for p in net.parameters()) / 1e6 for net, _, _ in nets]
    assert min(mb) < 20 and max(mb) > 100, mb
    assert {what.split()[0] for _, _, what in nets} == set(SCHEDULE)
    assert all(shape[:2] == (1, 3) for _, shape, _ in nets)
    again, shape, what = calibration_net(1)
    assert (shape, what) == nets[1][1:]
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(),
                                                 nets[1][0].state_dict().values()))
    assert calibration_net(len(SCHEDULE))[2] != nets[0][2] or \
        calibration_net(len(SCHEDULE))[1] != nets[0][1]  # the next cycle draws anew


def test_the_overhead_fit_uses_the_calibration_networks_once_measured():
    """A table profiled before the calibration networks keeps its synthetic ones for the fit
    until four calibration networks are measured beside them; then those alone."""
    from hwnas.anymodel.predictor import MIN_NETWORKS
    from hwnas.anymodel.profile import CALIBRATION_PREFIX, NET_PREFIX, fit_net_keys

    old = [f"{NET_PREFIX}{i}" for i in range(24)]
    cal = [f"{CALIBRATION_PREFIX}{i}" for i in range(MIN_NETWORKS)]
    assert fit_net_keys(old) == old
    assert fit_net_keys(old + cal[:-1]) == old + cal[:-1]  # too few to fit on their own
    assert fit_net_keys(old + cal) == cal
    assert fit_net_keys(cal) == cal and fit_net_keys([]) == []


def test_every_kernel_extracts_and_computes_what_it_computed_in_the_network():
    import onnxruntime as ort

    data = onnx_of(Attn(32, 2), (1, 20, 32))
    g = aort.optimize(data, (1, 20, 32))
    x = np.random.default_rng(0).standard_normal((1, 20, 32)).astype(np.float32)
    full = onnx.ModelProto()
    full.CopyFrom(g.optimized)
    names = [t.name for k in g.kernels for t in k.dynamic_inputs + k.outputs]
    have = {o.name for o in full.graph.output} | {i.name for i in full.graph.input}
    for k in g.kernels:
        for t in k.dynamic_inputs + k.outputs:
            if t.name not in have:
                full.graph.output.append(helper.make_tensor_value_info(
                    t.name, helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype)), list(t.shape)))
                have.add(t.name)
    so = aort.session_options()
    sess = ort.InferenceSession(full.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    values = dict(zip([o.name for o in sess.get_outputs()],
                      sess.run(None, {sess.get_inputs()[0].name: x})))
    values[sess.get_inputs()[0].name] = x
    assert names
    for k in g.kernels:
        one = ort.InferenceSession(g.extract(k), aort.session_options(),
                                   providers=["CPUExecutionProvider"])
        got = one.run(None, {t.name: values[t.name] for t in k.dynamic_inputs})
        for t, y in zip(k.outputs, got):
            assert y.shape == tuple(t.shape)
            np.testing.assert_allclose(y, values[t.name], rtol=1e-4, atol=1e-5)


def test_kernel_signatures_ignore_names_and_round_trip():
    g1 = aort.optimize(onnx_of(ConvBnAct(), (1, 16, 28, 28)), (1, 16, 28, 28))
    g2 = aort.optimize(onnx_of(torch.nn.Sequential(ConvBnAct()), (1, 16, 28, 28)),
                       (1, 16, 28, 28))
    s1 = {k.signature for k in g1.kernels if "Conv" in k.op}
    s2 = {k.signature for k in g2.kernels if "Conv" in k.op}
    assert s1 == s2
    for k in g1.kernels:
        back = Kernel.from_obj(k.to_obj())
        assert back.signature == k.signature and back.features() == k.features()


# --- reading model files: every bad input is one ModelError ---------------------------------
def test_a_good_model_file_and_its_hash(tmp_path):
    data = onnx_of(ConvBnAct(), (1, 16, 28, 28))
    p = tmp_path / "m.onnx"
    p.write_bytes(data)
    m = mfile.load_model(p, "onnx")
    assert m.input_shape == (1, 16, 28, 28) and m.data == data
    assert m.record_arch() == {"space": "model-file", "format": "onnx", "sha256": m.sha256,
                               "input_shape": [1, 16, 28, 28]}
    assert m.weight_bytes == 32 * 16 * 9 * 4 + 32 * 4  # conv weights and the folded bias


@pytest.mark.parametrize("content,pattern", [
    (b"", "is empty"),
    (b"\x08\x07garbage that is not a protobuf \xff\xfe", "not a valid ONNX model"),
    (b"TFL3", "not a valid ONNX model"),
])
def test_malformed_onnx(tmp_path, content, pattern):
    p = tmp_path / "bad.onnx"
    p.write_bytes(content)
    with pytest.raises(ModelError, match=pattern):
        mfile.load_model(p, "onnx")


def test_truncated_onnx(tmp_path):
    data = onnx_of(ConvBnAct(), (1, 16, 28, 28))
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        mfile.load_model(p, "onnx")


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(ModelError, match="is a directory"):
        mfile.load_model(tmp_path, "onnx")
    with pytest.raises(ModelError, match="cannot read"):
        mfile.load_model(tmp_path / "nope.onnx", "onnx")


def _graph_model(inputs, nodes, outputs, opset=17, domains=()):
    g = helper.make_graph(nodes, "g", inputs, outputs)
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(g, opset_imports=imports).SerializeToString()


def test_inputs_that_are_not_one_float_image(tmp_path):
    two = _graph_model([helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4]),
                        helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])],
                       [helper.make_node("Add", ["a", "b"], ["y"])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    with pytest.raises(ModelError, match="2 inputs"):
        mfile.load_onnx_bytes(two, "two.onnx")
    ints = _graph_model([helper.make_tensor_value_info("a", TensorProto.INT64, [1, 4])],
                        [helper.make_node("Identity", ["a"], ["y"])],
                        [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 4])])
    with pytest.raises(ModelError, match="not a float32"):
        mfile.load_onnx_bytes(ints, "ints.onnx")


def test_dynamic_input_needs_an_input_shape_and_then_works():
    dyn = _graph_model([helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                      ["batch", 3, "h", "w"])],
                       [helper.make_node("Relu", ["x"], ["y"])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                      ["batch", 3, "h", "w"])])
    with pytest.raises(ModelError, match=r"\[\?, 3, \?, \?\] is not fixed; give --input-shape"):
        mfile.load_onnx_bytes(dyn, "dyn.onnx")
    m = mfile.load_onnx_bytes(dyn, "dyn.onnx", (1, 3, 32, 32))
    assert m.input_shape == (1, 3, 32, 32)
    fixed = onnx.load_from_string(m.data).graph.input[0].type.tensor_type.shape
    assert [d.dim_value for d in fixed.dim] == [1, 3, 32, 32]
    assert m.sha256 == mfile.load_onnx_bytes(dyn, "other-name.onnx", (1, 3, 8, 8)).sha256
    with pytest.raises(ModelError, match="dimension 1 to 4, but the model fixes it at 3"):
        mfile.load_onnx_bytes(dyn, "dyn.onnx", (1, 4, 32, 32))
    with pytest.raises(ModelError, match="has 3 dimensions"):
        mfile.load_onnx_bytes(dyn, "dyn.onnx", (1, 3, 32))


@pytest.mark.parametrize("text,ok", [("1,3,224,224", (1, 3, 224, 224)),
                                     ("1x3x64x64", (1, 3, 64, 64)), ("(1, 3, 8, 8)", (1, 3, 8, 8)),
                                     ("1,0,3", None), ("a,b", None), ("-1,3", None)])
def test_input_shape_option(text, ok):
    if ok:
        assert mfile.parse_input_shape(text) == ok
    else:
        with pytest.raises(ModelError, match="--input-shape"):
            mfile.parse_input_shape(text)


def test_an_op_the_runtime_cannot_run():
    custom = _graph_model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                          domains=("com.example",))
    m = mfile.load_onnx_bytes(custom, "custom.onnx")
    with pytest.raises(ModelError, match="onnxruntime cannot run the model"):
        aort.optimize(m.data, m.input_shape)


def test_too_large_for_the_device():
    m = mfile.load_onnx_bytes(onnx_of(ConvBnAct(), (1, 16, 28, 28)), "m.onnx")
    mfile.check_fits(m, "phone", 1 << 30)
    mfile.check_fits(m, "phone", None)  # unknown: allowed
    with pytest.raises(ModelError, match="too large for phone: it needs at least"):
        mfile.check_fits(m, "phone", 32 << 20)


def test_onnx_and_tflite_swapped(tmp_path):
    data = onnx_of(ConvBnAct(), (1, 16, 28, 28))
    with pytest.raises(ModelError, match="is an ONNX model; pass it with --onnx"):
        mfile.load_tflite_bytes(data, "m.tflite")
    with pytest.raises(ModelError, match="is a TFLite model"):
        mfile.load_onnx_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 40, "m.onnx")


def test_cuda_devices_measure_but_do_not_predict_from_kernels():
    assert runtime_of(load_device("local-cpu")) == "onnxruntime"
    assert runtime_of(load_device("local-tflite")) == "tflite"
    assert runtime_of(load_device("pixel6")) == "tflite"
    with pytest.raises(ModelError, match="measure models there"):
        runtime_of(load_device("cuda"))


# --- the predictor's arithmetic -------------------------------------------------------------
def _kernel(op, cin, cout, hw, k=3):
    w = TensorSpec("w", "float32", (cout, cin, k, k), True)
    return Kernel("onnxruntime", f"{op}{cin}-{cout}-{hw}-{k}", op,
                  (("group", 1), ("strides", (1, 1))),
                  (TensorSpec("x", "float32", (1, cin, hw, hw), False), w),
                  (TensorSpec("y", "float32", (1, cout, hw, hw), False),))


def _true_units(k: Kernel) -> float:
    return 1e-6 * k.flops ** 0.9 + 1e-4


def test_kind_regressors_learn_a_power_law_and_say_which_kinds_they_lack():
    rng = np.random.default_rng(0)
    train = [_kernel("Conv", int(rng.integers(8, 256)), int(rng.integers(8, 256)),
                     int(rng.choice([7, 14, 28, 56])), int(rng.choice([1, 3])))
             for _ in range(200)]
    regs = KindRegressors("rf").fit(train, [_true_units(k) for k in train])
    test = [_kernel("Conv", 100, 120, 28, 3), _kernel("Conv", 40, 200, 14, 1)]
    pred, unc = regs.predict(test)
    truth = np.array([_true_units(k) for k in test])
    assert np.all(np.abs(pred / truth - 1) < 0.15), pred / truth
    assert np.all(unc >= 0)
    with pytest.raises(PredictorError, match="FusedConv"):
        regs.predict([_kernel("FusedConv", 8, 8, 8)])


def test_overhead_fit_recovers_its_terms():
    rng = np.random.default_rng(1)
    sums = rng.uniform(0.5, 20, 30)
    n = rng.integers(20, 600, 30)
    measured = 0.97 * sums + 0.002 * n + 0.05
    over = Overhead.fit(sums, n, measured)
    assert over.scale == pytest.approx(0.97, rel=1e-3)
    assert over.per_kernel == pytest.approx(0.002, rel=1e-2)
    assert over.per_call == pytest.approx(0.05, rel=0.05)
    assert Overhead.fit(sums[:2], n[:2], measured[:2], 0.01).n_networks == 0  # too few


def test_predictions_are_positive_cover_what_they_can_and_never_zero():
    train = [_kernel("Conv", c, c, 14) for c in range(8, 200, 8)]
    regs = KindRegressors("rf").fit(train, [_true_units(k) for k in train])
    pred = AnyModelPredictor(regs, {}, Overhead(1.0, 1e-4, 1e-3, 5), "onnxruntime")
    view = Kernel("onnxruntime", "r", "Reshape", (), (TensorSpec("y", "float32", (1, 8, 14, 14),
                                                                 False),),
                  (TensorSpec("z", "float32", (1, 8, 196), False),))
    other = _kernel("Gemm", 8, 8, 1)
    ks = [train[3], view, other]
    with pytest.raises(PredictorError, match="1 of the model's 3 kernels are of 1 kind"):
        pred.predict(ks, 5.0)
    p = pred.predict(ks, 5.0, allow_missing=True)
    assert p.latency_ms > 0 and math.isfinite(p.latency_ms)
    assert p.missing_kinds == ("Gemm",) and p.covered_kernels == 2
    assert 0 < p.covered_flops < 1
    assert [r.source for r in p.rows] == ["predicted", "view", "missing"]
    assert p.rows[1].latency_ms > 0  # a view costs its dispatch, not 0
    assert "covers 2 of 3 kernels" in p.coverage_line()
    with pytest.raises(PredictorError, match="no kernel of the model is covered"):
        pred.predict([other], 5.0, allow_missing=True)
    with pytest.raises(PredictorError, match="reference scale"):
        pred.predict(ks[:1], 0.0)
    exact = AnyModelPredictor(regs, {train[3].signature: 0.5}, Overhead(), "onnxruntime")
    q = exact.predict([train[3]], 2.0)
    assert q.latency_ms == pytest.approx(1.0) and q.rows[0].source == "measured"
    state = AnyModelPredictor.from_state(pred.state())
    assert state.predict(ks[:2], 5.0).latency_ms == pytest.approx(pred.predict(ks[:2],
                                                                                5.0).latency_ms)


def test_hwnas_errors_are_the_cli_contract():
    assert issubclass(ModelError, HwnasError)
