"""Architectures of single-stage ViTs (AutoFormer, ViTAS, DeiT) and ViT-ResNAS's multi-stage
ViTs, with codecs for ViTAS's block-level tables and ViT-ResNAS's ``network_def`` tuples."""

from __future__ import annotations

from dataclasses import dataclass

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


ARCH_TYPES[ViTArch.space] = ViTArch
