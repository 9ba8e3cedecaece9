"""ViT-ResNAS's multi-stage ViT space (``vit-res``): ViT-Res with residual spatial reduction.

The choices are those of its ViT-ResNAS-Tiny super-network (``supernet_config/sr_tiny_mh.py``
with ``scripts/vit-sr-nas/super_net/tiny.sh``): a conv patch stem (type 4, patch 14), three
stages of up to six blocks joined by spatial reductions (16x16 -> 8x8 -> 4x4 tokens at 224),
per-stage embed widths, per-block heads (fixed head dim per stage) and MLP widths. Every second
block of a stage can be removed (``exists`` = 0), so a stage keeps 3 to 6 blocks; a removed block
is simply absent from the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from hwnas.arch import arch_from_obj
from hwnas.spaces.vitres.arch import ND_EMBED, ViTResArch
from hwnas.errors import ArchError
from hwnas.ops import OpSpec
from hwnas.spaces.vit.ops import ViTAttention, ViTHead, ViTMLP, ViTPatchEmbed
from hwnas.spaces.vitres.ops import ViTConvPatchEmbed, ViTSpatialReduction
from hwnas.spaces._util import check, check_resolutions, pad, pick
from hwnas.spaces.base import SearchSpace
from hwnas.spaces.registry import register_space


def _steps(hi: int, lo: int, step: int) -> tuple[int, ...]:
    return tuple(range(lo, hi + 1, step))


@dataclass(frozen=True)
class ResStage:
    widths: tuple[int, ...]
    heads: tuple[int, ...]
    head_dim: int
    mlps: tuple[int, ...]
    depths: tuple[int, ...]


@dataclass(frozen=True)
class ViTResChoices:
    name: str
    resolutions: tuple[int, ...]
    patch: int
    embed_type: int
    embed_mid: int
    stages: tuple[ResStage, ...]
    classes: int = 1000

    @classmethod
    def of(cls, name: str, arch: ViTResArch) -> "ViTResChoices":
        """The one-point choice set of an architecture (a named model outside every space)."""
        stages = []
        for s, w in enumerate(arch.widths):
            blocks = arch.stage_blocks(s)
            dims = {d for _, d, _ in blocks}
            if len(dims) > 1:
                raise ArchError(f"stage {s} mixes head dims {sorted(dims)}")
            stages.append(ResStage((w,), tuple(sorted({h for h, _, _ in blocks})),
                                   dims.pop() if dims else 64,
                                   tuple(sorted({m for _, _, m in blocks})), (arch.depths[s],)))
        return cls(name, (arch.resolution,), arch.patch, arch.embed_type, arch.embed_mid,
                   tuple(stages), arch.classes)


VIT_RES_TINY = ViTResChoices("vit-res", (224,), 14, 4, 24, (
    ResStage((160, 176, 192, 224, 256), (3, 4, 5, 6), 32, _steps(768, 384, 64), (3, 4, 5, 6)),
    ResStage((320, 352, 384, 448, 512), (6, 8, 10, 12), 48, _steps(1536, 768, 128),
             (3, 4, 5, 6)),
    ResStage((640, 704, 768, 896, 1024), (6, 8, 10, 12), 64, _steps(3072, 1536, 256),
             (3, 4, 5, 6)),
))

Stage = tuple[int, list[tuple[int, int]]]  # (width, [(heads, mlp) per block])


class ViTResSpace(SearchSpace):
    def __init__(self, choices: ViTResChoices = VIT_RES_TINY,
                 resolutions: Iterable[int] | None = None):
        self.choices = choices
        self.name = choices.name
        self.resolutions = tuple(resolutions) if resolutions else choices.resolutions

    def with_resolutions(self, resolutions) -> "ViTResSpace":
        return ViTResSpace(self.choices, check_resolutions(resolutions, self.choices.resolutions))

    # --- validation ----------------------------------------------------------------------
    def validate(self, arch: ViTResArch) -> ViTResArch:
        if not isinstance(arch, ViTResArch):
            raise ArchError(f"not a vit-res architecture: {type(arch).__name__}")
        ch = self.choices
        check("resolution", arch.resolution, self.resolutions)
        check("patch", arch.patch, (ch.patch,))
        check("embed_type", arch.embed_type, (ch.embed_type,))
        check("embed_mid", arch.embed_mid, (ch.embed_mid,))
        check("classes", arch.classes, (ch.classes,))
        check("number of stages", len(arch.widths), (len(ch.stages),))
        offset = 0
        for s, st in enumerate(ch.stages):
            check(f"widths[{s}]", arch.widths[s], st.widths)
            check(f"depths[{s}]", arch.depths[s], st.depths)
            for j, (h, d, m) in enumerate(arch.stage_blocks(s)):
                check(f"heads[{offset + j}] (stage {s})", h, st.heads)
                check(f"head_dim[{offset + j}] (stage {s})", d, (st.head_dim,))
                check(f"mlp[{offset + j}] (stage {s})", m, st.mlps)
            offset += arch.depths[s]
        self._check_grid(arch.resolution)
        return arch

    def _check_grid(self, resolution: int) -> None:
        hw = self._embed(resolution, self.choices.stages[0].widths[0]).grid
        for _ in self.choices.stages[1:]:
            if hw % 2:
                raise ArchError(f"resolution={resolution} gives an odd {hw}x{hw} token grid "
                                f"before a spatial reduction")
            hw //= 2

    def arch_from_obj(self, obj) -> ViTResArch:
        """hwnas JSON (a dict), or ViT-ResNAS's network_def (tuples, lists, or its text)."""
        if isinstance(obj, (list, tuple, str)):
            arch = ViTResArch.from_network_def(obj, self.resolutions[-1], self.choices.patch)
            return self.validate(arch)
        return self.validate(arch_from_obj(obj))

    # --- architectures from choices --------------------------------------------------------
    def _assemble(self, res: int, stages: list[Stage]) -> ViTResArch:
        ch = self.choices
        blocks = [(h, st.head_dim, m) for st, (_, layers) in zip(ch.stages, stages)
                  for h, m in layers]
        h, d, m = (tuple(x) for x in zip(*blocks)) if blocks else ((), (), ())
        return ViTResArch(res, ch.patch, ch.embed_type, ch.embed_mid,
                          tuple(w for w, _ in stages), tuple(len(la) for _, la in stages),
                          h, d, m, ch.classes)

    def _split(self, arch: ViTResArch) -> list[Stage]:
        return [(w, [(h, m) for h, _, m in arch.stage_blocks(s)])
                for s, w in enumerate(arch.widths)]

    @staticmethod
    def _sample_block(st: ResStage, rng) -> tuple[int, int]:
        return pick(rng, st.heads), pick(rng, st.mlps)

    def sample(self, rng: np.random.Generator) -> ViTResArch:
        res = pick(rng, self.resolutions)
        stages = [(pick(rng, st.widths), [self._sample_block(st, rng)
                                          for _ in range(pick(rng, st.depths))])
                  for st in self.choices.stages]
        return self._assemble(res, stages)

    def mutate(self, arch: ViTResArch, rng: np.random.Generator,
               prob: float = 0.2) -> ViTResArch:
        res = pick(rng, self.resolutions) if rng.random() < prob else arch.resolution
        out = []
        for st, (w, layers) in zip(self.choices.stages, self._split(arch)):
            w = pick(rng, st.widths) if rng.random() < prob else w
            if rng.random() < prob:
                depth = pick(rng, st.depths)
                layers = layers[:depth] + [self._sample_block(st, rng)
                                           for _ in range(depth - len(layers))]
            out.append((w, [self._sample_block(st, rng) if rng.random() < prob else b
                            for b in layers]))
        return self._assemble(res, out)

    def crossover(self, a: ViTResArch, b: ViTResArch, rng: np.random.Generator) -> ViTResArch:
        """Whole stages (width, depth and blocks together) from either parent."""
        res = a.resolution if rng.random() < 0.5 else b.resolution
        return self._assemble(res, [x if rng.random() < 0.5 else y
                                    for x, y in zip(self._split(a), self._split(b))])

    def _extreme(self, resolution: int, fn) -> ViTResArch:
        check("resolution", resolution, self.resolutions)
        return self._assemble(resolution, [(fn(st.widths), [(fn(st.heads), fn(st.mlps))]
                                            * fn(st.depths)) for st in self.choices.stages])

    def smallest(self, resolution: int) -> ViTResArch:
        return self._extreme(resolution, min)

    def largest(self, resolution: int) -> ViTResArch:
        return self._extreme(resolution, max)

    def encode(self, arch: ViTResArch) -> np.ndarray:
        """Resolution, widths, depths, then per stage each block's q/k/v and MLP width."""
        vec = [arch.resolution, *arch.widths, *arch.depths]
        for s, st in enumerate(self.choices.stages):
            blocks = arch.stage_blocks(s)
            vec += pad([h * d for h, d, _ in blocks], max(st.depths))
            vec += pad([m for _, _, m in blocks], max(st.depths))
        return np.asarray(vec, dtype=np.float64)

    # --- the one walk ----------------------------------------------------------------------
    def _embed(self, res: int, width: int):
        ch = self.choices
        if ch.embed_type == ND_EMBED:
            return ViTPatchEmbed(res, ch.patch, width)
        return ViTConvPatchEmbed(res, ch.patch, ch.embed_mid, width)

    def ops(self, arch: ViTResArch) -> list[OpSpec]:
        self.validate(arch)
        embed = self._embed(arch.resolution, arch.widths[0])
        ops: list[OpSpec] = [embed]
        hw = embed.grid
        for s, w in enumerate(arch.widths):
            if s:
                ops.append(ViTSpatialReduction(hw, arch.widths[s - 1], w))
                hw = ops[-1].out_hw
            n = hw * hw + 1
            for h, d, m in arch.stage_blocks(s):
                ops += [ViTAttention(n, w, h, d), ViTMLP(n, w, m)]
        ops.append(ViTHead(hw * hw + 1, arch.widths[-1], arch.classes))
        return ops

    def enumerate_ops(self, resolution: int) -> list[OpSpec]:
        check("resolution", resolution, self.resolutions)
        ch, ops = self.choices, {}
        hw = self._embed(resolution, ch.stages[0].widths[0]).grid
        prev: tuple[int, ...] = ()
        for s, st in enumerate(ch.stages):
            found: list[OpSpec] = []
            if s:
                found += [ViTSpatialReduction(hw, a, b) for a in prev for b in st.widths]
                hw = found[-1].out_hw
            else:
                found += [self._embed(resolution, w) for w in st.widths]
            n = hw * hw + 1
            for w in st.widths:
                found += [ViTAttention(n, w, h, st.head_dim) for h in st.heads]
                found += [ViTMLP(n, w, m) for m in st.mlps]
            ops.update((op.key, op) for op in found)
            prev = st.widths
        ops.update((op.key, op) for op in (ViTHead(hw * hw + 1, w, ch.classes) for w in prev))
        return list(ops.values())


@register_space("vit-res")
def vit_res_space() -> ViTResSpace:
    return ViTResSpace(VIT_RES_TINY)
