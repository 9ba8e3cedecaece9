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
        from hwnas.spaces.vit.blocks import PatchEmbed

        return PatchEmbed(self.res, self.patch, self.c)


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
        from hwnas.spaces.vit.blocks import TokenAttention

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
        from hwnas.spaces.vit.blocks import TokenMLP

        return TokenMLP(self.c, self.hidden)


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
        from hwnas.spaces.vit.blocks import TokenHead

        return TokenHead(self.c, self.classes)


OP_CLASSES: tuple[type[OpSpec], ...] = (ViTPatchEmbed, ViTAttention, ViTMLP, ViTHead)
OP_KINDS.update({cls.kind: cls for cls in OP_CLASSES})
