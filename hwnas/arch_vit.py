"""Architectures of single-stage ViTs (AutoFormer, ViTAS, DeiT) and ViT-ResNAS's multi-stage
ViTs, with codecs for ViTAS's block-level tables and ViT-ResNAS's ``network_def`` tuples."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from hwnas.arch import ARCH_TYPES
from hwnas.arch_base import FlatArch, int_value
from hwnas.errors import ArchError


@dataclass(frozen=True)
class ViTArch(FlatArch):
    """One ViT: patch embedding, ``depth`` blocks (per-block heads, head dim, MLP hidden width),
    head. ``heads * head_dim`` (the q/k/v width) need not equal ``embed``. Blocks the supernet
    runs as identity are simply absent (depth = number of blocks)."""

    space = "vit"
    resolution: int
    patch: int
    embed: int
    heads: tuple[int, ...]
    head_dim: tuple[int, ...]
    mlp: tuple[int, ...]

    def __post_init__(self) -> None:
        self._normalise()
        if not self.heads:
            raise ArchError("a ViT needs at least one block (heads is empty)")
        self._check_lengths(len(self.heads), ("head_dim", "mlp"), "the heads")

    @property
    def depth(self) -> int:
        return len(self.heads)

    # --- ViTAS's block-level tables -----------------------------------------------------
    @classmethod
    def from_vitas_table(cls, rows, resolution: int = 224) -> "ViTArch":
        """Rows as ViTAS prints them: ``[number, type, patch size or heads, output dim]``.

        ``[[1, "Embedding", 16, 230], [12, "MHSA", 3, 432], ["--", "MLP", "-", 720]]`` is ViTAS-C
        (1.3G). An MHSA's output dim is the width of its q/k/v projection, q, k and v together
        (ViTAS's ``core/search_space/ops.py``: ``qkv = Linear(dim, at_temp)``, reshaped to
        (3, heads, at_temp / 3 / heads), ``proj = Linear(at_temp / 3, ...)``), so head_dim =
        dim / (3 * heads) = 432 / 9 = 48. This gives 1.27 GMACs, as published (1.3G); reading
        432 as heads x head_dim (144 per head) would give 2.1G.
        An MLP row applies to the blocks of the MHSA row above it.
        """
        if not isinstance(rows, (list, tuple)) or len(rows) < 3:
            raise ArchError("a ViTAS table is a list of [number, type, patch/heads, output dim] "
                            "rows: one Embedding row, then MHSA and MLP rows")
        kind0, patch, embed = _vitas_row(rows[0])[1:]
        if kind0 != "embedding":
            raise ArchError(f"the first ViTAS row must be the Embedding, got {rows[0]!r}")
        heads, head_dim, mlp = [], [], []
        pending = None
        for row in rows[1:]:
            count, kind, h, dim = _vitas_row(row)
            if kind == "mhsa" and pending is None:
                if dim % (3 * h):
                    raise ArchError(f"MHSA output dim {dim} is not 3 x {h} heads x head dim")
                pending = (count, h, dim // (3 * h))
            elif kind == "mlp" and pending is not None:
                n, h_, d_ = pending
                heads += [h_] * n
                head_dim += [d_] * n
                mlp += [dim] * n
                pending = None
            else:
                raise ArchError(f"unexpected ViTAS row {row!r}: MHSA and MLP rows alternate")
        if pending is not None:
            raise ArchError("the last MHSA row of the ViTAS table has no MLP row")
        return cls(resolution, patch, embed, tuple(heads), tuple(head_dim), tuple(mlp))

    def to_vitas_table(self) -> list[list]:
        rows: list[list] = [[1, "Embedding", self.patch, self.embed]]
        layers = list(zip(self.heads, self.head_dim, self.mlp))
        i = 0
        while i < len(layers):
            j = i
            while j < len(layers) and layers[j] == layers[i]:
                j += 1
            h, d, m = layers[i]
            rows += [[j - i, "MHSA", h, 3 * h * d], ["--", "MLP", "-", m]]
            i = j
        return rows


def _vitas_row(row) -> tuple[int, str, int, int]:
    if not isinstance(row, (list, tuple)) or len(row) != 4:
        raise ArchError(f"a ViTAS row is [number, type, patch/heads, output dim], got {row!r}")
    count, kind, a, dim = row
    kind = str(kind).lower()
    count = 0 if count in ("--", "-", None) else int_value("number", count)
    a = 0 if a in ("--", "-", None) else int_value("patch/heads", a)
    return count, kind, a, int_value("output dim", dim)


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


ARCH_TYPES.update({cls.space: cls for cls in (ViTArch, ViTResArch, EdgeViTArch)})
