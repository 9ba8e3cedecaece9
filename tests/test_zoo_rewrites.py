"""The zoo's model rewrites keep what a model computes (anymodel/zoo.py, REWRITES)."""

import pytest

from hwnas.anymodel import zoo

pytestmark = pytest.mark.skipif(not zoo.zoo_available(), reason="the zoo needs transformers")


def test_efficientnet_pools_globally_and_computes_the_same_logits(monkeypatch):
    torch = pytest.importorskip("torch")
    model, shape = zoo.build("efficientnet-b0")
    inner = model.model.efficientnet
    assert isinstance(inner.pooler, torch.nn.AdaptiveAvgPool2d)
    x = torch.randn(shape)
    with torch.no_grad():
        ours = model(x)
        inner.pooler = torch.nn.AvgPool2d(1280, ceil_mode=True)  # transformers' own
        theirs = model(x)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-12 + 1e-5 * theirs.abs().max())
    # the rewrite is in the export cache key of that entry only
    keys = {n: zoo.cache_key(n, "tflite") for n in ("efficientnet-b0", "resnet-18")}
    monkeypatch.setattr(zoo, "REWRITES", {})
    assert zoo.cache_key("efficientnet-b0", "tflite") != keys["efficientnet-b0"]
    assert zoo.cache_key("resnet-18", "tflite") == keys["resnet-18"]
