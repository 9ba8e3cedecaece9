"""Elastic layers, the supernet, extraction and BN recalibration."""

import numpy as np
import pytest
import torch

from hwnas.ops import same_floor_padding
from hwnas.spaces.elasticvit.blocks import MHSA
from hwnas.errors import HwnasError
from hwnas.spaces.elasticvit.ops import Attention
from hwnas.spaces.elasticvit.elastic import ElasticMHSA
from hwnas.supernet.elastic import (ElasticBatchNorm2d, ElasticConv2d, ElasticLayerNorm,
                                    ElasticLinear, centre_crop)
from hwnas.spaces.elasticvit.supernet import ElasticViTSupernet
from hwnas.supernet.model import recalibrate_bn
from hwnas.supernet.spec import SpaceSpec

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    space = SpaceSpec("tiny", classes=10).build()
    return space, ElasticViTSupernet(space)


def _archs(space, n=3, seed=0):
    rng = np.random.default_rng(seed)
    lo, hi = min(space.resolutions), max(space.resolutions)
    return [space.smallest(lo), space.largest(hi)] + [space.sample(rng) for _ in range(n)]


def test_centre_crop_takes_the_middle():
    w = torch.arange(25.0).reshape(1, 1, 5, 5)
    assert centre_crop(w, 3).flatten().tolist() == [6, 7, 8, 11, 12, 13, 16, 17, 18]
    with pytest.raises(ValueError):
        centre_crop(w, 4)


@pytest.mark.parametrize("hw", [7, 8])
@pytest.mark.parametrize("kernel", [3, 5])
def test_depthwise_uses_the_crop_and_floor_padding(hw, kernel):
    conv = ElasticConv2d(16, 16, 5, stride=2, depthwise=True)
    x = torch.randn(2, 8, hw, hw)
    y = conv(x, kernel=kernel)
    assert y.shape == (2, 8, hw // 2, hw // 2)  # nn-Meter's floor convention, odd or even
    state = conv.state_for(8, 8, kernel)
    assert state["weight"].shape == (8, 1, kernel, kernel)
    ref = torch.nn.functional.conv2d(x, centre_crop(conv.weight[:8], kernel), None, 2,
                                     same_floor_padding(hw, kernel, 2), groups=8)
    assert torch.equal(y, ref)


def test_linear_layernorm_bn_slice_leading_entries():
    lin = ElasticLinear(8, 6)
    x = torch.randn(3, 5)
    assert torch.allclose(lin(x, 4), x @ lin.weight[:4, :5].T + lin.bias[:4])
    ln = ElasticLayerNorm(8)
    assert ln(torch.randn(2, 3, 5)).shape == (2, 3, 5)
    bn = ElasticBatchNorm2d(8)
    bn.train()
    bn(torch.randn(4, 5, 3, 3) + 3.0)
    assert (bn.running_mean[:5] > 0.1).all() and (bn.running_mean[5:] == 0).all()


def test_attention_value_rows_follow_their_head_across_v_scales():
    """Head 0 keeps the same value weights for V-scale 2 and 3 (a plain slice would not)."""
    attn = ElasticMHSA(32, 3)
    v2, v3 = attn.state_for(Attention(4, 32, 2)), attn.state_for(Attention(4, 32, 3))
    c = 32
    head0_v2 = v2["qkv.weight"][2 * c:2 * c + 32]
    head0_v3 = v3["qkv.weight"][2 * c:2 * c + 48]
    assert torch.equal(head0_v2, head0_v3[:32])
    static = MHSA(32, 2)
    static.load_state_dict(v2)  # strict: exactly the static attention's parameters


def test_extract_is_the_static_model_with_equal_outputs(tiny):
    space, net = tiny
    for arch in _archs(space):
        net.set_active(arch)
        recalibrate_bn(net, [torch.randn(4, 3, arch.resolution, arch.resolution)])
        static = net.extract(arch)
        reference = space.build_model(arch)
        assert list(static.state_dict()) == list(reference.state_dict())
        assert [type(m) for m in static.modules()] == [type(m) for m in reference.modules()]
        x = torch.randn(3, 3, arch.resolution, arch.resolution)
        with torch.no_grad():
            assert torch.allclose(net.eval()(x), static(x), atol=1e-5, rtol=1e-5)


def test_extract_full_space_named_model():
    from hwnas.spaces.elasticvit.space import elasticvit_named

    torch.manual_seed(0)
    space = SpaceSpec("full", (128,), 1000, max_depth=3).build()
    net = ElasticViTSupernet(space).eval()
    arch = elasticvit_named()["elastic_T1"]
    static = net.extract(arch)
    assert list(static.state_dict()) == list(space.build_model(arch).state_dict())
    net.set_active(arch)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(net(x), static(x), atol=1e-5, rtol=1e-5)


def test_extracted_subnet_exports_to_onnx_and_runs(tiny, tmp_path):
    import onnxruntime as ort

    from hwnas.profilers.export import export_onnx

    space, net = tiny
    arch = _archs(space, seed=3)[-1]
    static = net.extract(arch)
    shape = space.input_shape(arch)
    path = export_onnx(static, shape, tmp_path / "subnet.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    (y,) = sess.run(None, {"input": x})
    with torch.no_grad():
        ref = static(torch.from_numpy(x)).numpy()
    assert np.allclose(y, ref, atol=1e-4)


def test_recalibration_sets_stats_of_the_active_subnet(tiny):
    space, net = tiny
    arch = space.smallest(64)
    net.set_active(arch)
    x = torch.randn(8, 3, 64, 64) * 2 + 1
    assert recalibrate_bn(net, [x, x]) == 2
    assert not net.training
    bn = net.stem.conv.bn
    c = arch.channels[0]
    assert bn.momentum == 0.1  # restored after the cumulative average
    assert (bn.running_var[:c] != 1).all() and (bn.running_var[c:] == 1).all()
    with pytest.raises(HwnasError):
        recalibrate_bn(net, [])


def test_supernet_refuses_wrong_input(tiny):
    space, _ = tiny
    fresh = ElasticViTSupernet(space)
    with pytest.raises(HwnasError, match="set_active"):
        fresh(torch.randn(1, 3, 64, 64))
    fresh.set_active(space.smallest(64))
    with pytest.raises(HwnasError, match="64x64"):
        fresh(torch.randn(1, 3, 96, 96))


def test_extracted_subnet_exports_to_tflite(tiny, tmp_path):
    """Through the TFLite exporter of the adb/LiteRT work, where it is merged and installed."""
    from hwnas.profilers import export

    if not hasattr(export, "export_tflite"):
        pytest.skip("hwnas.profilers.export has no TFLite exporter in this build")
    if not export.tflite_export_available():
        pytest.skip("litert-torch is not installed (extra 'tflite-export')")
    space, net = tiny
    arch = space.smallest(64)
    path = export.export_tflite(net.extract(arch), space.input_shape(arch),
                                tmp_path / "subnet.tflite")
    assert path.stat().st_size > 0
