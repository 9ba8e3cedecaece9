"""The single-stage ViT family's answers to the two structural questions pools and the sampler
ask of a space: draw an architecture leaning small or large, and ElasticViT's depth-vs-width
comparison. ElasticViT's own answers (over its stages) live in pools.py and sampling.py."""

from __future__ import annotations

from typing import Callable, Sequence

from hwnas.spaces.vit.arch import ViTArch
from hwnas.spaces.vit.space import ViTSpace

Pick = Callable[[Sequence], object]  # options (cheapest first) -> one of them


def sample_sized_vit(space: ViTSpace, pick: Pick) -> ViTArch:
    """An arch whose every choice comes from ``pick``; options are ordered cheapest first, so
    a larger patch (fewer tokens) comes before a smaller one."""
    ch = space.choices
    res, patch = pick(sorted(space.resolutions)), pick(sorted(ch.patches, reverse=True))
    embed, depth = pick(sorted(ch.embeds)), pick(sorted(ch.depths))
    layers = [(pick(sorted(ch.heads)), pick(sorted(ch.head_dims)), pick(sorted(ch.mlp_ratios)))
              for _ in range(depth)]
    return space._assemble(res, patch, embed, layers)


def depth_over_width_vit(space: ViTSpace, arch: ViTArch, anchor: ViTArch) -> float:
    """MACs left at the anchor's embed width minus MACs left at the anchor's depth (lower is
    preferred: wide rather than deep), as ``sampling.depth_over_width`` for ElasticViT."""
    layers = space._layers(arch)
    narrow = space._assemble(arch.resolution, arch.patch, anchor.embed, layers)
    d = anchor.depth
    shallow = space._assemble(arch.resolution, arch.patch, arch.embed,
                              (layers + [layers[-1]] * d)[:d])
    return float(space.macs(narrow) - space.macs(shallow))
