"""The single-stage ViT supernet (AutoFormer / ViTAS style) over a ``ViTSpace``.

Depth is elastic the AutoFormer way: the supernet holds the deepest stack of blocks and a
shallower subnet runs only the leading ones, its later blocks being identities that are simply
absent from the static model (``TokenNet.blocks`` has ``arch.depth`` entries). Everything else
(pairing blocks with ``space.ops``, forward, extraction) is ``Supernet``'s.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import torch.nn as nn

from hwnas.spaces.vit.ops import ViTAttention, ViTHead, ViTMLP, ViTPatchEmbed
from hwnas.spaces.vit.space import ViTSpace, mlp_width
from hwnas.spaces.vit.elastic import (ElasticPatchEmbed, ElasticTokenAttention, ElasticTokenHead,
                                      ElasticTokenMLP)
from hwnas.supernet.model import Supernet


class ViTSupernet(Supernet):
    """Weight-sharing supernet over a ``ViTSpace`` (any of its registered choice sets)."""

    block_for = {ViTPatchEmbed: ElasticPatchEmbed, ViTAttention: ElasticTokenAttention,
                 ViTMLP: ElasticTokenMLP, ViTHead: ElasticTokenHead}

    def __init__(self, space: ViTSpace):
        super().__init__(space)
        ch = space.choices
        c_max = max(ch.embeds)
        # mlp_width grows with both embed and ratio, so the widest MLP is at the widest embed
        hidden_max = max(mlp_width(c_max, r) for r in ch.mlp_ratios)
        self.embed = ElasticPatchEmbed(space.resolutions, ch.patches, c_max)
        # blocks[i] = [attention, MLP], the static TokenNet's own layout
        self.blocks = nn.ModuleList(
            nn.ModuleList([ElasticTokenAttention(c_max, max(ch.heads), max(ch.head_dims)),
                           ElasticTokenMLP(c_max, hidden_max)])
            for _ in range(max(ch.depths)))
        self.head = ElasticTokenHead(c_max, ch.classes)

    def _slots(self, arch) -> Iterator[nn.Module]:
        yield self.embed
        for block in self.blocks[:arch.depth]:  # blocks past the depth are skipped (identity)
            yield from block
        yield self.head

    def _static_blocks(self, static: nn.Module) -> Iterable[nn.Module]:
        yield static.embed
        for block in static.blocks:
            yield from block
        yield static.head
