"""Named reference networks: every one walks, builds and counts like its static model, and the
sizes match what their authors published."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwnas.errors import HwnasError
from hwnas.models import MODELS, list_models, named_model, spaces_containing
from hwnas.ops import parse_key

# Published multiply-accumulates ("FLOPs" in these papers) and parameters
PUBLISHED = {
    "deit-tiny": (1.3e9, 5.7e6), "deit-small": (4.6e9, 22e6), "vitas-c": (1.3e9, None),
    "vit-resnas-tiny": (1.8e9, None), "vit-resnas-small": (2.9e9, None),
    "vit-resnas-medium": (4.5e9, None), "mobilenetv2": (300e6, 3.5e6),
    "edgevit-xxs": (0.6e9, 4.1e6), "edgevit-xs": (1.1e9, 6.7e6), "edgevit-s": (1.9e9, None),
    "elastic_T1": (60e6, None), "elastic_L3": (800e6, None),
}


@pytest.mark.parametrize("name", list_models())
def test_named_model_walks_and_counts_like_its_static_model(name):
    m = named_model(name)
    assert m.name == name and m.source
    for op in m.ops():
        assert parse_key(op.key) == op
    with torch.device("meta"):
        model, shape = m.build()
        with FlopCounterMode(display=False) as fc:
            y = model(torch.randn(*shape))
    assert fc.get_total_flops() // 2 == m.macs()
    assert sum(p.numel() for p in model.parameters()) == m.space.params(m.arch)
    assert tuple(y.shape) == (1, 1000)
    assert m.space.arch_from_obj(m.arch.to_dict()) == m.arch


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_sizes_match_the_published_ones(name):
    m = named_model(name)
    macs, params = PUBLISHED[name]
    assert m.macs() == pytest.approx(macs, rel=0.1)
    if params:
        assert m.space.params(m.arch) == pytest.approx(params, rel=0.03)


def test_which_models_lie_inside_a_registered_space():
    inside = {n: spaces_containing(named_model(n).arch) for n in list_models()}
    assert inside["elastic_M"] == ["elasticvit"]
    assert "vit-autoformer-t" in inside["deit-tiny"]
    assert inside["vit-resnas-tiny"] == ["vit-res"]
    assert inside["edgevit-s"] == ["edgevit"] and inside["edgevit-xs"] == ["edgevit"]
    for outside in ("edgevit-xxs", "vitas-c", "vit-resnas-small", "mobilenetv2"):
        assert inside[outside] == [], outside
        assert named_model(outside).space.name == outside  # its own one-point space


def test_edgevit_xxs_is_outside_the_edgevit_space_for_a_reason():
    from hwnas.errors import ArchError
    from hwnas.spaces import get_space

    with pytest.raises(ArchError, match=r"widths\[0\]=36 not allowed"):
        get_space("edgevit").validate(named_model("edgevit-xxs").arch)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(HwnasError, match="unknown model 'resnet50'; known: .*deit-tiny"):
        named_model("resnet50")
    assert len(MODELS) == len(list_models()) >= 15


def test_a_small_named_model_really_runs():
    model, shape = named_model("edgevit-xxs").build()
    with torch.no_grad():
        y = model(torch.randn(*shape))
    assert torch.isfinite(y).all()
