"""EdgeViT's architecture type: per-stage widths, depths, heads, sparse ratios and MLP ratios."""

from __future__ import annotations

from dataclasses import dataclass

from hwnas.arch import ARCH_TYPES
from hwnas.arch_base import FlatArch

@dataclass(frozen=True)
class EdgeViTArch(FlatArch):
    """One EdgeViT: per stage (4 in the paper) its width, depth (LGL blocks), attention heads,
    sparse-attention ratio ``sr`` (attend at one position in sr x sr) and MLP ratio."""

    space = "edgevit"
    resolution: int
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    sr: tuple[int, ...]
    mlp: tuple[int, ...]

    def __post_init__(self) -> None:
        self._normalise()
        self._check_lengths(len(self.widths), ("depths", "heads", "sr", "mlp"), "the widths")


ARCH_TYPES[EdgeViTArch.space] = EdgeViTArch
