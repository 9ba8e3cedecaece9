"""Templates cover the shapes the zoo's LiteRT graphs have: a 3-channel strided stem (a PAD of
3-float rows), joins of many thin slices (EdgeViT's 144-input CONCATENATION), a class token
joined to the patch tokens, attention scores that are not square or come in windows."""

import numpy as np
import pytest
import torch

from hwnas.anymodel import templates as tpl


@pytest.mark.parametrize("name", ["stem", "softmax", "concat", "pool"])
def test_every_draw_builds_and_runs_within_the_limits(name):
    rng = np.random.default_rng(1)
    t = tpl.TEMPLATES[name]
    for _ in range(25):
        cfg = t.draw(rng)
        flops, elems = t.cost(cfg)
        assert flops <= tpl.MAX_FLOPS and elems <= tpl.MAX_ELEMS
        module, shape = tpl.build(name, cfg)
        with torch.no_grad():
            y = module(torch.randn(shape))
        assert torch.isfinite(y).all()
        assert len(t.encode(cfg)) == len(t.params)


def test_the_new_shapes():
    m, shape = tpl.build("softmax", dict(n=49, heads=8, scores="keys", m=196, windows=4))
    assert shape == (1, 8, 49, 196)
    m, shape = tpl.build("softmax", dict(n=64, heads=4, scores="windows", m=16, windows=4))
    assert shape == (4, 4, 64, 64)
    m, shape = tpl.build("concat", dict(hw=14, c=144, n=196, layout="map", how="many",
                                        parts=144))
    x = torch.randn(shape)
    assert torch.equal(m(x), torch.relu(x).permute(0, 2, 3, 1))  # channels-last, joined
    m, shape = tpl.build("concat", dict(hw=14, c=192, n=196, layout="tokens", how="token",
                                        parts=4))
    assert m(torch.randn(shape)).shape == (1, 197, 192)
    m, shape = tpl.build("stem", dict(hw=224, cin=3, cout=32, k=3, s=2, act="relu",
                                      residual=0, pool=0))
    assert shape == (1, 3, 224, 224) and m(torch.randn(shape)).shape == (1, 32, 112, 112)
    m, shape = tpl.build("stem", dict(hw=224, cin=3, cout=64, k=7, s=2, act="relu",
                                      residual=0, pool=1))  # ResNet's stem and max pool
    assert m(torch.randn(shape)).shape == (1, 64, 56, 56)
    cfg = tpl._fix("pool", dict(hw=6, c=16, pool="avg8s8", classes=10))
    m, shape = tpl.build("pool", cfg)  # EdgeViT's pooling by its sub-sampling ratio
    assert shape == (1, 16, 8, 8) and m(torch.randn(shape)).shape == (1, 16, 1, 1)


@pytest.mark.slow
def test_on_litert_they_are_the_zoos_kernels():
    from hwnas.anymodel.graph import Pack, detect, export_tflite_bytes
    from hwnas.profilers.export import tflite_export_available

    if not tflite_export_available():
        pytest.skip("needs litert-torch")
    cfgs = [("stem", dict(hw=224, cin=3, cout=32, k=3, s=2, act="relu6", residual=0, pool=0)),
            ("stem", dict(hw=224, cin=3, cout=64, k=7, s=2, act="relu", residual=0, pool=1)),
            ("concat", dict(hw=14, c=144, n=196, layout="map", how="many", parts=144)),
            ("concat", dict(hw=14, c=192, n=196, layout="tokens", how="token", parts=4)),
            ("softmax", dict(n=49, heads=8, scores="keys", m=196, windows=4))]
    mods = [tpl.build(n, c) for n, c in cfgs]
    pack = Pack([m for m, _ in mods], [s for _, s in mods])
    g = detect("tflite", export_tflite_bytes(pack.module, pack.shapes), None)
    seen = {(k.op, tuple(t.shape for t in k.dynamic_inputs[:1]), len(k.dynamic_inputs),
             k.outputs[0].shape) for k in g.kernels}
    assert ("PAD", ((1, 224, 224, 3),), 1, (1, 226, 226, 3)) in seen  # a 3x3 stem, C=3
    assert ("PAD", ((1, 224, 224, 3),), 1, (1, 230, 230, 3)) in seen  # ResNet's 7x7 stem
    assert ("MAX_POOL_2D", ((1, 114, 114, 64),), 1, (1, 56, 56, 64)) in seen  # and its pool
    assert ("CONCATENATION", ((1, 14, 14, 1),), 144, (1, 14, 14, 144)) in seen  # EdgeViT
    assert ("CONCATENATION", ((1, 196, 192),), 1, (1, 197, 192)) in seen  # ViT's class token
    assert ("SOFTMAX", ((1, 8, 49, 196),), 1, (1, 8, 49, 196)) in seen  # LeViT
