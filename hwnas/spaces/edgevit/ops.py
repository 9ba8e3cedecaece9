"""OpSpecs of EdgeViT (Pan et al., ECCV 2022): patch embeddings and local-global-local blocks.

An EdgeViT stage is a patch embedding followed by LGL blocks. An LGL block is a *local*
aggregation (only when the sparse-attention ratio ``sr`` > 1) and a *global* sparse attention
whose output is propagated back to every position by a depthwise transposed conv (the second
"local"). Each part is one op here, so a LUT prices them separately. Blocks map NCHW to NCHW.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from hwnas.ops import DEFAULT_CLASSES, OP_KINDS, OpSpec


@dataclass(frozen=True)
class EVPatchEmbed(OpSpec):
    """p x p stride-p conv cin -> cout, then LayerNorm over channels."""

    hw: int
    cin: int
    cout: int
    patch: int
    kind: ClassVar[str] = "evpatch"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"evpatch_(?P<hw>\d+)_(?P<cin>\d+)_(?P<cout>\d+)_(?P<patch>\d+)"
    )

    @property
    def key(self) -> str:
        return f"evpatch_{self.hw}_{self.cin}_{self.cout}_{self.patch}"

    @property
    def out_hw(self) -> int:
        return self.hw // self.patch

    def input_shape(self):
        return (1, self.cin, self.hw, self.hw)

    def macs(self):
        return self.out_hw**2 * self.cin * self.patch**2 * self.cout

    def params(self):
        return self.cin * self.patch**2 * self.cout + self.cout + 2 * self.cout

    def module(self):
        from hwnas.spaces.edgevit.blocks import PatchEmbed

        return PatchEmbed(self.cin, self.cout, self.patch)


@dataclass(frozen=True)
class EVLocalAgg(OpSpec):
    """Local aggregation: 3x3 depthwise position conv; BN, 1x1, 5x5 depthwise, 1x1; BN and a
    1x1-conv MLP of ratio ``mlp`` (GELU); each with a residual."""

    hw: int
    c: int
    mlp: int
    kind: ClassVar[str] = "evlocal"
    _pattern: ClassVar[re.Pattern] = re.compile(r"evlocal_(?P<hw>\d+)_(?P<c>\d+)_(?P<mlp>\d+)")

    @property
    def key(self) -> str:
        return f"evlocal_{self.hw}_{self.c}_{self.mlp}"

    @property
    def out_hw(self) -> int:
        return self.hw

    def input_shape(self):
        return (1, self.c, self.hw, self.hw)

    def macs(self):
        c = self.c
        return self.hw**2 * (9 * c + 2 * c * c + 25 * c + 2 * c * self.mlp * c)

    def params(self):
        c, m = self.c, self.mlp * self.c
        convs = (9 * c + c) + (c * c + c) + (25 * c + c) + (c * c + c)
        return convs + 2 * 2 * c + (c * m + m) + (m * c + c)

    def module(self):
        from hwnas.spaces.edgevit.blocks import LocalAgg

        return LocalAgg(self.c, self.mlp)


@dataclass(frozen=True)
class EVGlobalSparse(OpSpec):
    """3x3 depthwise position conv, then pre-LN attention over every ``sr``-th position (one in
    sr x sr), propagated back by a depthwise sr x sr transposed conv and a LayerNorm, then the
    output projection; then a pre-LN MLP of ratio ``mlp`` (GELU). Residuals around each."""

    hw: int
    c: int
    heads: int
    sr: int
    mlp: int
    kind: ClassVar[str] = "evglobal"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"evglobal_(?P<hw>\d+)_(?P<c>\d+)_(?P<heads>\d+)_(?P<sr>\d+)_(?P<mlp>\d+)"
    )

    @property
    def key(self) -> str:
        return f"evglobal_{self.hw}_{self.c}_{self.heads}_{self.sr}_{self.mlp}"

    @property
    def sampled(self) -> int:
        """Positions that attend: a stride-sr subsample of the hw x hw grid."""
        return ((self.hw - 1) // self.sr + 1) ** 2

    @property
    def out_hw(self) -> int:
        return self.hw

    def input_shape(self):
        return (1, self.c, self.hw, self.hw)

    def macs(self):
        n, s, c = self.hw**2, self.sampled, self.c
        total = n * 9 * c + s * c * 3 * c + 2 * s * s * c + n * c * c + 2 * n * c * self.mlp * c
        if self.sr > 1:
            total += s * c * self.sr**2  # the transposed conv (depthwise)
        return total

    def params(self):
        c, m = self.c, self.mlp * self.c
        total = (9 * c + c) + 2 * c + (3 * c * c + 3 * c) + (c * c + c) + 2 * c + (c * m + m
                                                                                 + m * c + c)
        if self.sr > 1:
            total += self.sr**2 * c + c + 2 * c  # transposed conv and its LayerNorm
        return total

    def module(self):
        from hwnas.spaces.edgevit.blocks import GlobalSparse

        return GlobalSparse(self.hw, self.c, self.heads, self.sr, self.mlp)


@dataclass(frozen=True)
class EVHead(OpSpec):
    """BatchNorm, global average pool, linear classifier."""

    hw: int
    c: int
    classes: int = DEFAULT_CLASSES
    kind: ClassVar[str] = "evhead"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"evhead_(?P<hw>\d+)_(?P<c>\d+)_(?P<classes>\d+)"
    )

    @property
    def key(self) -> str:
        return f"evhead_{self.hw}_{self.c}_{self.classes}"

    @property
    def out_hw(self) -> int:
        return 1

    def input_shape(self):
        return (1, self.c, self.hw, self.hw)

    def macs(self):
        return self.c * self.classes

    def params(self):
        return 2 * self.c + self.c * self.classes + self.classes

    def module(self):
        from hwnas.spaces.edgevit.blocks import Head

        return Head(self.c, self.classes)


OP_CLASSES: tuple[type[OpSpec], ...] = (EVPatchEmbed, EVLocalAgg, EVGlobalSparse, EVHead)
OP_KINDS.update({cls.kind: cls for cls in OP_CLASSES})
