"""ViT-ResNAS's own OpSpecs: the convolutional patch embedding and the spatial reduction between
stages. Its attention, MLP, linear patch embedding and head are the vit family's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from hwnas.ops import OP_KINDS, OpSpec
from hwnas.spaces.vit.ops import CLS_TOKENS, conv_out

@dataclass(frozen=True)
class ViTConvPatchEmbed(OpSpec):
    """ViT-ResNAS's conv stem: 3x3/2 conv, two 3x3 convs with a residual (BN, ReLU), then a
    (p/2) x (p/2) stride-(p/2) projection to c; class token and positions as in ViTPatchEmbed."""

    res: int
    patch: int
    mid: int
    c: int
    kind: ClassVar[str] = "vitconvpatch"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"vitconvpatch_(?P<res>\d+)_(?P<patch>\d+)_(?P<mid>\d+)_(?P<c>\d+)"
    )

    @property
    def key(self) -> str:
        return f"vitconvpatch_{self.res}_{self.patch}_{self.mid}_{self.c}"

    @property
    def half(self) -> int:
        return conv_out(self.res, 3, 2, 1)

    @property
    def grid(self) -> int:
        return self.half // (self.patch // 2)

    @property
    def tokens(self) -> int:
        return self.grid**2 + CLS_TOKENS

    @property
    def out_hw(self) -> int:
        return self.grid

    def input_shape(self):
        return (1, 3, self.res, self.res)

    def macs(self):
        h2, m, k = self.half**2, self.mid, self.patch // 2
        return h2 * 27 * m + 2 * h2 * 9 * m * m + self.grid**2 * k * k * m * self.c

    def params(self):
        m, k, c = self.mid, self.patch // 2, self.c
        convs = 27 * m + 2 * 9 * m * m + 3 * 2 * m  # three convs + their BN affine
        return convs + k * k * m * c + c + CLS_TOKENS * c + self.tokens * c

    def module(self):
        from hwnas.spaces.vitres.blocks import ConvPatchEmbed

        return ConvPatchEmbed(self.res, self.patch, self.mid, self.c)


@dataclass(frozen=True)
class ViTSpatialReduction(OpSpec):
    """ViT-ResNAS's residual spatial reduction between stages: the hw x hw grid of cin-wide
    tokens goes to (hw/2) x (hw/2) tokens of width cout.

    Main path: LayerNorm, 3x3 stride-2 conv, new positions; class token through a linear.
    Residual path: 2x2 average pool of the patches, zero-padded from cin to cout channels."""

    hw: int
    cin: int
    cout: int
    kind: ClassVar[str] = "vitsr"
    _pattern: ClassVar[re.Pattern] = re.compile(r"vitsr_(?P<hw>\d+)_(?P<cin>\d+)_(?P<cout>\d+)")

    @property
    def key(self) -> str:
        return f"vitsr_{self.hw}_{self.cin}_{self.cout}"

    @property
    def out_hw(self) -> int:
        return conv_out(self.hw, 3, 2, 1)

    @property
    def tokens_out(self) -> int:
        return self.out_hw**2 + CLS_TOKENS

    def input_shape(self):
        return (1, self.hw**2 + CLS_TOKENS, self.cin)

    def macs(self):
        return self.out_hw**2 * 9 * self.cin * self.cout + CLS_TOKENS * self.cin * self.cout

    def params(self):
        ci, co = self.cin, self.cout
        return 2 * ci + 9 * ci * co + co + self.out_hw**2 * co + ci * co + co

    def module(self):
        from hwnas.spaces.vitres.blocks import SpatialReduction

        return SpatialReduction(self.hw, self.cin, self.cout)


OP_CLASSES: tuple[type[OpSpec], ...] = (ViTConvPatchEmbed, ViTSpatialReduction)
OP_KINDS.update({cls.kind: cls for cls in OP_CLASSES})
