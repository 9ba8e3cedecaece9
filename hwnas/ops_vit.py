"""OpSpecs of plain and multi-stage ViTs (AutoFormer / ViTAS / DeiT / ViT-ResNAS).

These blocks work on token sequences: a ``(B, N, C)`` tensor whose first token is the class token
and whose other ``N - 1`` tokens are a square grid of patches. Only the patch embeddings take an
image. Keys carry the token count ``N`` (class token included), because attention cost depends on
it, and the first word of each key is its kind, so :func:`hwnas.ops.parse_key` finds the class.

MACs count what torch's FlopCounterMode counts (convolutions, linears and attention matmuls; it
reports 2 FLOPs per MAC), so the analytic numbers and torch's can be compared exactly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

from hwnas.ops import DEFAULT_CLASSES, OP_KINDS, OpSpec

CLS_TOKENS = 1  # DeiT's distillation token is not modelled: no searched net here uses it


def grid_side(tokens: int) -> int:
    """Side of the square patch grid behind ``tokens`` (class token excluded)."""
    return math.isqrt(tokens - CLS_TOKENS)


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class ViTPatchEmbed(OpSpec):
    """p x p stride-p conv to c channels, flatten, prepend the class token, add positions."""

    res: int
    patch: int
    c: int
    kind: ClassVar[str] = "vitpatch"
    _pattern: ClassVar[re.Pattern] = re.compile(r"vitpatch_(?P<res>\d+)_(?P<patch>\d+)_(?P<c>\d+)")

    @property
    def key(self) -> str:
        return f"vitpatch_{self.res}_{self.patch}_{self.c}"

    @property
    def grid(self) -> int:
        return self.res // self.patch

    @property
    def tokens(self) -> int:
        return self.grid**2 + CLS_TOKENS

    @property
    def out_hw(self) -> int:
        return self.grid

    def input_shape(self):
        return (1, 3, self.res, self.res)

    def macs(self):
        return self.grid**2 * 3 * self.patch**2 * self.c

    def params(self):
        return 3 * self.patch**2 * self.c + self.c + CLS_TOKENS * self.c + self.tokens * self.c

    def module(self):
        from hwnas.blocks_vit import PatchEmbed

        return PatchEmbed(self.res, self.patch, self.c)


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
        from hwnas.blocks_vit import ConvPatchEmbed

        return ConvPatchEmbed(self.res, self.patch, self.mid, self.c)


@dataclass(frozen=True)
class ViTAttention(OpSpec):
    """Pre-LN multi-head self-attention with a residual over ``tokens`` tokens of width c.

    The q/k/v width is ``heads * head_dim`` and need not equal c (ViTAS, ViT-ResNAS)."""

    tokens: int
    c: int
    heads: int
    head_dim: int
    kind: ClassVar[str] = "vitattn"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"vitattn_(?P<tokens>\d+)_(?P<c>\d+)_(?P<heads>\d+)_(?P<head_dim>\d+)"
    )

    @property
    def key(self) -> str:
        return f"vitattn_{self.tokens}_{self.c}_{self.heads}_{self.head_dim}"

    @property
    def width(self) -> int:
        return self.heads * self.head_dim

    @property
    def out_hw(self) -> int:
        return grid_side(self.tokens)

    def input_shape(self):
        return (1, self.tokens, self.c)

    def macs(self):
        n, c, w = self.tokens, self.c, self.width
        # q/k/v projection, q @ k^T, attn @ v, output projection
        return n * c * 3 * w + 2 * n * n * w + n * w * c

    def params(self):
        c, w = self.c, self.width
        return 2 * c + c * 3 * w + 3 * w + w * c + c

    def module(self):
        from hwnas.blocks_vit import TokenAttention

        return TokenAttention(self.c, self.heads, self.head_dim)


@dataclass(frozen=True)
class ViTMLP(OpSpec):
    """Pre-LN MLP with a residual: c -> hidden -> GELU -> c."""

    tokens: int
    c: int
    hidden: int
    kind: ClassVar[str] = "vitmlp"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"vitmlp_(?P<tokens>\d+)_(?P<c>\d+)_(?P<hidden>\d+)_gelu"
    )

    @property
    def key(self) -> str:
        return f"vitmlp_{self.tokens}_{self.c}_{self.hidden}_gelu"

    @property
    def out_hw(self) -> int:
        return grid_side(self.tokens)

    def input_shape(self):
        return (1, self.tokens, self.c)

    def macs(self):
        return 2 * self.tokens * self.c * self.hidden

    def params(self):
        c, h = self.c, self.hidden
        return 2 * c + c * h + h + h * c + c

    def module(self):
        from hwnas.blocks_vit import TokenMLP

        return TokenMLP(self.c, self.hidden)


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
        from hwnas.blocks_vit import SpatialReduction

        return SpatialReduction(self.hw, self.cin, self.cout)


@dataclass(frozen=True)
class ViTHead(OpSpec):
    """Final LayerNorm on the class token, then the linear classifier."""

    tokens: int
    c: int
    classes: int = DEFAULT_CLASSES
    kind: ClassVar[str] = "vithead"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"vithead_(?P<tokens>\d+)_(?P<c>\d+)_(?P<classes>\d+)"
    )

    @property
    def key(self) -> str:
        return f"vithead_{self.tokens}_{self.c}_{self.classes}"

    @property
    def out_hw(self) -> int:
        return 1

    def input_shape(self):
        return (1, self.tokens, self.c)

    def macs(self):
        return self.c * self.classes

    def params(self):
        return 2 * self.c + self.c * self.classes + self.classes

    def module(self):
        from hwnas.blocks_vit import TokenHead

        return TokenHead(self.c, self.classes)


OP_CLASSES: tuple[type[OpSpec], ...] = (
    ViTPatchEmbed, ViTConvPatchEmbed, ViTAttention, ViTMLP, ViTSpatialReduction, ViTHead,
)
OP_KINDS.update({cls.kind: cls for cls in OP_CLASSES})
