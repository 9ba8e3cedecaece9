"""ViT-ResNAS's multi-stage ViT architectures, with a codec for its ``network_def`` tuples."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from hwnas.arch import ARCH_TYPES
from hwnas.arch_base import FlatArch, int_value
from hwnas.errors import ArchError

# ViT-ResNAS network_def block types (nets/vit_sr_supernet.py)
ND_EMBED, ND_TRANS, ND_HEAD, ND_SR, ND_CONV_EMBED, ND_FLEX_CONV_EMBED = 0, 1, 2, 3, 4, 5


CONV_EMBED_MID = 24  # PatchConvEmbed's default mid channels (type 4)


@dataclass(frozen=True)
class ViTResArch(FlatArch):
    """One ViT-ResNAS network: a patch embedding (``embed_type`` 0 = linear patches, 4 = conv
    stem with 24 mid channels, 5 = conv stem with ``embed_mid`` channels), stages of
    transformer blocks joined by residual spatial reductions, and a class-token head.
    Per-block lists run over all stages in order."""

    space = "vit-res"
    resolution: int
    patch: int
    embed_type: int
    embed_mid: int
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    head_dim: tuple[int, ...]
    mlp: tuple[int, ...]
    classes: int = 1000

    def __post_init__(self) -> None:
        self._normalise()
        if self.embed_type not in (ND_EMBED, ND_CONV_EMBED, ND_FLEX_CONV_EMBED):
            raise ArchError(f"embed_type={self.embed_type} not allowed; allowed: {{0, 4, 5}}")
        fixed_mid = {ND_EMBED: 0, ND_CONV_EMBED: CONV_EMBED_MID}.get(self.embed_type)
        if fixed_mid is not None and self.embed_mid != fixed_mid:
            raise ArchError(f"embed_mid={self.embed_mid} not allowed with embed_type="
                            f"{self.embed_type}; allowed: {{{fixed_mid}}}")
        self._check_lengths(len(self.widths), ("depths",), "the widths")
        self._check_lengths(sum(self.depths), ("heads", "head_dim", "mlp"), "the depths")

    def stage_blocks(self, stage: int) -> list[tuple[int, int, int]]:
        """(heads, head_dim, mlp) of each block of one stage."""
        start = sum(self.depths[:stage])
        end = start + self.depths[stage]
        return list(zip(self.heads[start:end], self.head_dim[start:end], self.mlp[start:end]))

    # --- ViT-ResNAS's network_def -------------------------------------------------------
    @classmethod
    def from_network_def(cls, nd, resolution: int = 224, patch: int = 14) -> "ViTResArch":
        """Parse a network_def (tuples, JSON lists, or its Python text). Blocks whose
        ``exists`` flag is 0 were removed by the search and are dropped, as its README says."""
        nd = _literal(nd)
        if not isinstance(nd, (list, tuple)) or len(nd) < 2:
            raise ArchError("a network_def is a sequence of block tuples, from the patch "
                            "embedding (type 0, 4 or 5) to the head (type 2)")
        embed_type, width, mid = _nd_embed(nd[0])
        widths, depths, blocks, classes = [width], [0], [], None
        for i, block in enumerate(nd[1:], 1):
            kind = _nd_type(block, i)
            if classes is not None:
                raise ArchError(f"network_def[{i}] follows the head (type 2 must be last)")
            if kind == ND_TRANS:
                layer = _nd_trans(block, i, widths[-1])
                if layer is not None:
                    blocks.append(layer)
                    depths[-1] += 1
            elif kind == ND_SR:
                widths.append(_nd_pair(block, i, widths[-1], "spatial reduction"))
                depths.append(0)
            elif kind == ND_HEAD:
                classes = _nd_pair(block, i, widths[-1], "head")
            else:
                raise ArchError(f"network_def[{i}] has type {kind}; after the embedding only "
                                f"1 (transformer), 3 (spatial reduction) and 2 (head) may follow")
        if classes is None:
            raise ArchError("network_def has no head (a final (2, width, classes) tuple)")
        h, d, m = zip(*blocks) if blocks else ((), (), ())
        return cls(resolution, patch, embed_type, mid, tuple(widths), tuple(depths), h, d, m,
                   classes)

    def to_network_def(self) -> tuple:
        first = (self.embed_type, self.widths[0])
        if self.embed_type == ND_FLEX_CONV_EMBED:
            first += (self.embed_mid,)
        out: list[tuple] = [first]
        for s, w in enumerate(self.widths):
            if s:
                out.append((ND_SR, self.widths[s - 1], w))
            out += [(ND_TRANS, (w, h, d), (w, m), 1) for h, d, m in self.stage_blocks(s)]
        out.append((ND_HEAD, self.widths[-1], self.classes))
        return tuple(out)


def _literal(nd: Any):
    if isinstance(nd, str):
        try:
            return ast.literal_eval(nd)  # literals only: no code runs
        except (ValueError, SyntaxError) as e:
            raise ArchError(f"network_def text is not a Python tuple literal: {e}") from None
    return nd


def _nd_type(block, i: int) -> int:
    if not isinstance(block, (list, tuple)) or not block:
        raise ArchError(f"network_def[{i}] must be a tuple whose first element is its type")
    return int_value(f"network_def[{i}] type", block[0])


def _nd_embed(block) -> tuple[int, int, int]:
    kind = _nd_type(block, 0)
    if kind in (ND_EMBED, ND_CONV_EMBED) and len(block) == 2:
        return kind, int_value("embed width", block[1]), CONV_EMBED_MID * (kind == ND_CONV_EMBED)
    if kind == ND_FLEX_CONV_EMBED and len(block) == 3:
        return kind, int_value("embed width", block[1]), int_value("embed mid", block[2])
    raise ArchError(f"network_def[0] must be (0, width), (4, width) or (5, width, mid); "
                    f"got {block!r}")


def _nd_trans(block, i: int, width: int):
    """(heads, head_dim, mlp) of a kept transformer block, or None for a removed one."""
    try:
        _, (w_attn, heads, head_dim), (w_ffn, mlp), exists = block
    except (TypeError, ValueError):
        raise ArchError(f"network_def[{i}] must be (1, (width, heads, head_dim), "
                        f"(width, mlp), exists); got {block!r}") from None
    if not (w_attn == w_ffn == width):
        raise ArchError(f"network_def[{i}]: block width {w_attn}/{w_ffn} differs from the "
                        f"stage width {width}")
    if exists not in (0, 1):
        raise ArchError(f"network_def[{i}]: exists must be 0 or 1, got {exists!r}")
    if not exists:
        return None
    return (int_value(f"network_def[{i}] heads", heads),
            int_value(f"network_def[{i}] head_dim", head_dim),
            int_value(f"network_def[{i}] mlp", mlp))


def _nd_pair(block, i: int, width: int, what: str) -> int:
    if len(block) != 3 or block[1] != width:
        raise ArchError(f"network_def[{i}] ({what}) must be ({block[0]}, {width}, out) after "
                        f"a stage of width {width}; got {block!r}")
    return int_value(f"network_def[{i}] out", block[2])


ARCH_TYPES[ViTResArch.space] = ViTResArch
