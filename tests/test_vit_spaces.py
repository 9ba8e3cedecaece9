"""ViT spaces: ViTAS's block-level codec, AutoFormer presets, weight slicing, and ViT-ResNAS's
network_def codec (its README's own example)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hwnas.spaces.vit.arch import ViTArch
from hwnas.spaces.vitres.arch import ViTResArch
from hwnas.errors import ArchError
from hwnas.models import VIT_RESNAS_DEFS, named_model
from hwnas.spaces.vit.ops import ViTAttention, ViTMLP
from hwnas.spaces import get_space

VITAS_C = [[1, "Embedding", 16, 230], [12, "MHSA", 3, 432], ["--", "MLP", "-", 720]]

# ViT-ResNAS README: the searched network_def, then the same with removed blocks deleted
README_ND = "((4, 220), (1, (220, 5, 32), (220, 880), 1), (1, (220, 5, 32), (220, 880), 1), (1, (220, 7, 32), (220, 800), 1), (1, (220, 7, 32), (220, 800), 0), (1, (220, 5, 32), (220, 720), 1), (1, (220, 5, 32), (220, 720), 1), (1, (220, 5, 32), (220, 720), 1), (3, 220, 440), (1, (440, 10, 48), (440, 1760), 1), (1, (440, 10, 48), (440, 1440), 1), (1, (440, 10, 48), (440, 1920), 1), (1, (440, 10, 48), (440, 1600), 1), (1, (440, 12, 48), (440, 1600), 1), (1, (440, 12, 48), (440, 1120), 0), (1, (440, 12, 48), (440, 1440), 1), (3, 440, 880), (1, (880, 16, 64), (880, 3200), 1), (1, (880, 12, 64), (880, 3200), 1), (1, (880, 16, 64), (880, 2880), 1), (1, (880, 12, 64), (880, 3200), 0), (1, (880, 12, 64), (880, 2240), 1), (1, (880, 12, 64), (880, 3520), 0), (1, (880, 14, 64), (880, 2560), 1), (2, 880, 1000))"  # noqa: E501
README_ND_CLEAN = "((4, 220), (1, (220, 5, 32), (220, 880), 1), (1, (220, 5, 32), (220, 880), 1), (1, (220, 7, 32), (220, 800), 1), (1, (220, 5, 32), (220, 720), 1), (1, (220, 5, 32), (220, 720), 1), (1, (220, 5, 32), (220, 720), 1), (3, 220, 440), (1, (440, 10, 48), (440, 1760), 1), (1, (440, 10, 48), (440, 1440), 1), (1, (440, 10, 48), (440, 1920), 1), (1, (440, 10, 48), (440, 1600), 1), (1, (440, 12, 48), (440, 1600), 1), (1, (440, 12, 48), (440, 1440), 1), (3, 440, 880), (1, (880, 16, 64), (880, 3200), 1), (1, (880, 12, 64), (880, 3200), 1), (1, (880, 16, 64), (880, 2880), 1), (1, (880, 12, 64), (880, 2240), 1), (1, (880, 14, 64), (880, 2560), 1), (2, 880, 1000))"  # noqa: E501


# --- ViTAS ----------------------------------------------------------------------------------
def test_vitas_block_level_table_decodes_to_the_published_model():
    arch = ViTArch.from_vitas_table(VITAS_C)
    assert (arch.patch, arch.embed, arch.depth) == (16, 230, 12)
    assert set(arch.heads) == {3} and set(arch.mlp) == {720}
    assert arch.heads[0] * arch.head_dim[0] * 3 == 432  # q, k and v together
    assert arch.heads[0] * arch.head_dim[0] != arch.embed  # attention width is free in ViTAS
    assert arch.to_vitas_table() == VITAS_C
    # published: 1.3G FLOPs (multiply-accumulates, as the field counts them)
    assert named_model("vitas-c").macs() == pytest.approx(1.3e9, rel=0.05)


@pytest.mark.parametrize("rows,message", [
    ([[12, "MHSA", 3, 432], ["--", "MLP", "-", 720], [1, "Embedding", 16, 230]], "first"),
    ([[1, "Embedding", 16, 230], [12, "MHSA", 3, 430], ["--", "MLP", "-", 720]], "3 x 3 heads"),
    ([[1, "Embedding", 16, 230], [12, "MHSA", 3, 432], [12, "MHSA", 3, 432]], "alternate"),
    ([[1, "Embedding", 16, 230], [12, "MHSA", 3, 432], ["--", "MLP", "-", 7.5]], "output dim"),
    ([[1, "Embedding", 16, 230], [12, "MHSA", 3]], "rows"),
])
def test_bad_vitas_tables_are_rejected_clearly(rows, message):
    with pytest.raises(ArchError, match=message):
        ViTArch.from_vitas_table(rows)


def test_vit_space_reads_a_vitas_table_and_names_what_is_outside_it():
    space = get_space("vit")
    with pytest.raises(ArchError, match=r"embed=230 not allowed; allowed: \{192, 216"):
        space.arch_from_obj(VITAS_C)
    fixed = named_model("vitas-c").space
    assert fixed.arch_from_obj(VITAS_C) == named_model("vitas-c").arch


# --- AutoFormer presets -----------------------------------------------------------------
@pytest.mark.parametrize("name,embeds,heads,depths,ratios", [
    ("vit-autoformer-t", (192, 216, 240), (3, 4), (12, 13, 14), (3.5, 4.0)),
    ("vit-autoformer-s", (320, 384, 448), (5, 6, 7), (12, 13, 14), (3.0, 3.5, 4.0)),
    ("vit-autoformer-b", (528, 576, 624), (9, 10), (14, 15, 16), (3.0, 3.5, 4.0)),
])
def test_autoformer_presets_match_its_supernet_configs(name, embeds, heads, depths, ratios):
    ch = get_space(name).choices
    assert (ch.embeds, ch.heads, ch.depths, ch.mlp_ratios) == (embeds, heads, depths, ratios)
    assert (ch.patches, ch.head_dims, ch.resolutions) == ((16,), (64,), (224,))


def test_deit_tiny_is_a_point_of_autoformer_t_and_macs_match_deit():
    deit = named_model("deit-tiny")
    get_space("vit-autoformer-t").validate(deit.arch)
    assert deit.macs() == pytest.approx(1.3e9, rel=0.05)
    assert named_model("deit-small").macs() == pytest.approx(4.6e9, rel=0.02)


def test_mlp_width_follows_embed_when_mutated():
    space = get_space("vit-autoformer-s")
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = space.mutate(space.sample(rng), rng, 0.6)
        ratios = {m / a.embed for m in a.mlp}
        assert ratios <= {3.0, 3.5, 4.0}


def test_patch_sizes_change_the_token_count():
    space = get_space("vit")
    base = space.smallest(224)
    tokens = {p: space.ops(ViTArch(224, p, base.embed, base.heads, base.head_dim, base.mlp))[1]
              .tokens for p in (14, 16, 32)}
    assert tokens == {14: 257, 16: 197, 32: 50}


# --- weight slicing (for the supernet) ---------------------------------------------------
def test_smaller_subnet_weights_are_leading_slices_of_a_larger_ones():
    space = get_space("vit-autoformer-t")
    big = space.build_model(space.largest(224)).state_dict()
    small = space.build_model(space.smallest(224)).state_dict()
    assert set(small) <= set(big)  # names do not depend on depth
    for name, w in small.items():
        assert all(s <= b for s, b in zip(w.shape, big[name].shape)), name
        assert w.dim() == big[name].dim()


def test_dropping_trailing_heads_and_hidden_units_is_a_leading_slice():
    """With the dropped heads / hidden units switched off, the big block equals the small one
    built from its leading slices: the head-major q/k/v layout makes that true."""
    torch.manual_seed(0)
    c, n = 48, 17
    cases = [(ViTAttention(n, c, 4, 16), ViTAttention(n, c, 2, 16), "proj.weight", 32),
             (ViTMLP(n, c, 96), ViTMLP(n, c, 40), "fc2.weight", 40)]
    for big_op, small_op, out_proj, keep in cases:
        big, small = big_op.module(), small_op.module()
        with torch.no_grad():
            getattr(big, out_proj.split(".")[0]).weight[:, keep:] = 0
        sd = big.state_dict()
        small.load_state_dict({k: sd[k][tuple(slice(0, s) for s in v.shape)]
                               for k, v in small.state_dict().items()})
        x = torch.randn(1, n, c)
        with torch.no_grad():
            torch.testing.assert_close(small(x), big(x), rtol=1e-5, atol=1e-5)


# --- ViT-ResNAS ------------------------------------------------------------------------
def test_readme_network_def_drops_removed_blocks():
    arch = ViTResArch.from_network_def(README_ND)
    assert arch.depths == (6, 6, 5)
    assert arch == ViTResArch.from_network_def(README_ND_CLEAN)
    assert str(arch.to_network_def()) == README_ND_CLEAN
    as_json = json.loads(json.dumps(arch.to_network_def()))  # lists, as a JSON file has them
    assert ViTResArch.from_network_def(as_json) == arch


@pytest.mark.parametrize("name,macs", [("vit-resnas-tiny", 1.8e9), ("vit-resnas-small", 2.9e9),
                                       ("vit-resnas-medium", 4.5e9)])
def test_vit_resnas_searched_networks_have_their_published_macs(name, macs):
    model = named_model(name)
    assert model.macs() == pytest.approx(macs, rel=0.03)
    assert str(model.arch.to_network_def()) == VIT_RESNAS_DEFS[name]


def test_vit_res_space_holds_the_tiny_network_and_reads_network_def_text():
    space = get_space("vit-res")
    assert space.arch_from_obj(VIT_RESNAS_DEFS["vit-resnas-tiny"]) == \
        named_model("vit-resnas-tiny").arch
    with pytest.raises(ArchError, match=r"widths\[0\]=220 not allowed; allowed: \{160, 176"):
        space.arch_from_obj(README_ND)


@pytest.mark.parametrize("nd,message", [
    ("((4, 220), (1, (220, 5, 32), (220, 880), 1))", "no head"),
    ("((4, 220), (2, 220, 1000), (1, (220, 5, 32), (220, 880), 1))", "follows the head"),
    ("((4, 220), (1, (200, 5, 32), (220, 880), 1), (2, 220, 1000))", "differs from the stage"),
    ("((4, 220), (1, (220, 5, 32), (220, 880), 2), (2, 220, 1000))", "exists must be 0 or 1"),
    ("((7, 220), (2, 220, 1000))", r"\(0, width\), \(4, width\) or \(5, width, mid\)"),
    ("((4, 220), (3, 200, 440), (2, 440, 1000))", "spatial reduction"),
    ("((4, 220), (6, 220), (2, 220, 1000))", "has type 6"),
    ("__import__('os')", "not a Python tuple literal"),
])
def test_bad_network_defs_are_rejected_clearly(nd, message):
    with pytest.raises(ArchError, match=message):
        ViTResArch.from_network_def(nd)


def test_network_def_embedding_types():
    flex = ViTResArch.from_network_def("((5, 64, 16), (1, (64, 2, 32), (64, 128), 1), "
                                       "(2, 64, 10))")
    plain = ViTResArch.from_network_def("((0, 64), (1, (64, 2, 32), (64, 128), 1), (2, 64, 10))")
    assert (flex.embed_type, flex.embed_mid, plain.embed_mid) == (5, 16, 0)
    assert flex.to_network_def()[0] == (5, 64, 16) and plain.to_network_def()[0] == (0, 64)
