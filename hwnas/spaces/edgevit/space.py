"""A small EdgeViT space (``edgevit``) over each stage's depth, width and sparse-attention ratio.

EdgeViT (``src/edgevit.py``): four stages, each a patch embedding (4x4 for the first, 2x2 after)
and local-global-local blocks; heads = width / head dim; MLP ratio 4. The space is centred on
EdgeViT-XS and -S (head dim 48), which it contains; EdgeViT-XXS (head dim 36) lies outside it
and is a named reference model (``hwnas.models``). ``sr`` must divide each stage's grid side,
which holds for every allowed resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from hwnas.arch import arch_from_obj
from hwnas.spaces.edgevit.arch import EdgeViTArch
from hwnas.errors import ArchError
from hwnas.ops import OpSpec
from hwnas.spaces.edgevit.ops import EVGlobalSparse, EVHead, EVLocalAgg, EVPatchEmbed
from hwnas.spaces._util import check, check_resolutions, pick
from hwnas.spaces.base import SearchSpace
from hwnas.spaces.registry import register_space

PATCHES = (4, 2, 2, 2)


@dataclass(frozen=True)
class EVStage:
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    srs: tuple[int, ...]


@dataclass(frozen=True)
class EdgeViTChoices:
    name: str
    resolutions: tuple[int, ...]
    stages: tuple[EVStage, ...]
    head_dim: int = 48
    mlp: int = 4
    classes: int = 1000

    def heads(self, width: int) -> int:
        return max(1, width // self.head_dim)

    @classmethod
    def of(cls, name: str, arch: EdgeViTArch) -> "EdgeViTChoices":
        """The one-point choice set of an architecture (a named model outside every space)."""
        dims = {w // h for w, h in zip(arch.widths, arch.heads)}
        if len(dims) != 1 or len(set(arch.mlp)) != 1:
            raise ArchError("a fixed EdgeViT needs one head dim and one MLP ratio")
        stages = tuple(EVStage((w,), (d,), (r,)) for w, d, r in
                       zip(arch.widths, arch.depths, arch.sr))
        return cls(name, (arch.resolution,), stages, dims.pop(), arch.mlp[0])


EDGEVIT = EdgeViTChoices("edgevit", (128, 160, 192, 224), (
    EVStage((32, 48, 64), (1, 2), (2, 4)),
    EVStage((64, 96, 128), (1, 2, 3), (1, 2)),
    EVStage((144, 192, 240), (2, 3, 4, 5), (1, 2)),
    EVStage((288, 336, 384), (1, 2, 3), (1,)),
))

Stage = tuple[int, int, int]  # (width, depth, sr)


class EdgeViTSpace(SearchSpace):
    def __init__(self, choices: EdgeViTChoices = EDGEVIT,
                 resolutions: Iterable[int] | None = None):
        self.choices = choices
        self.name = choices.name
        self.resolutions = tuple(resolutions) if resolutions else choices.resolutions

    def with_resolutions(self, resolutions) -> "EdgeViTSpace":
        return EdgeViTSpace(self.choices,
                            check_resolutions(resolutions, self.choices.resolutions))

    def validate(self, arch: EdgeViTArch) -> EdgeViTArch:
        if not isinstance(arch, EdgeViTArch):
            raise ArchError(f"not an edgevit architecture: {type(arch).__name__}")
        ch = self.choices
        check("resolution", arch.resolution, self.resolutions)
        check("number of stages", len(arch.widths), (len(ch.stages),))
        hw = arch.resolution
        for s, st in enumerate(ch.stages):
            hw //= PATCHES[s]
            check(f"widths[{s}]", arch.widths[s], st.widths)
            check(f"depths[{s}]", arch.depths[s], st.depths)
            check(f"sr[{s}]", arch.sr[s], st.srs)
            check(f"heads[{s}]", arch.heads[s], (ch.heads(arch.widths[s]),))
            check(f"mlp[{s}]", arch.mlp[s], (ch.mlp,))
            if hw % arch.sr[s]:
                raise ArchError(f"sr[{s}]={arch.sr[s]} does not divide the {hw}x{hw} grid at "
                                f"resolution {arch.resolution}")
        return arch

    def arch_from_obj(self, obj) -> EdgeViTArch:
        return self.validate(arch_from_obj(obj))

    # --- architectures from choices --------------------------------------------------------
    def _assemble(self, res: int, stages: list[Stage]) -> EdgeViTArch:
        ch = self.choices
        return EdgeViTArch(res, tuple(w for w, _, _ in stages), tuple(d for _, d, _ in stages),
                           tuple(ch.heads(w) for w, _, _ in stages),
                           tuple(r for _, _, r in stages), (ch.mlp,) * len(stages))

    @staticmethod
    def _split(arch: EdgeViTArch) -> list[Stage]:
        return list(zip(arch.widths, arch.depths, arch.sr))

    def sample(self, rng: np.random.Generator) -> EdgeViTArch:
        res = pick(rng, self.resolutions)
        return self._assemble(res, [(pick(rng, st.widths), pick(rng, st.depths),
                                     pick(rng, st.srs)) for st in self.choices.stages])

    def mutate(self, arch: EdgeViTArch, rng: np.random.Generator,
               prob: float = 0.2) -> EdgeViTArch:
        res = pick(rng, self.resolutions) if rng.random() < prob else arch.resolution
        out = []
        for st, (w, d, r) in zip(self.choices.stages, self._split(arch)):
            out.append((pick(rng, st.widths) if rng.random() < prob else w,
                        pick(rng, st.depths) if rng.random() < prob else d,
                        pick(rng, st.srs) if rng.random() < prob else r))
        return self._assemble(res, out)

    def crossover(self, a: EdgeViTArch, b: EdgeViTArch, rng: np.random.Generator) -> EdgeViTArch:
        res = a.resolution if rng.random() < 0.5 else b.resolution
        return self._assemble(res, [x if rng.random() < 0.5 else y
                                    for x, y in zip(self._split(a), self._split(b))])

    def _extreme(self, resolution: int, fn, sr_fn) -> EdgeViTArch:
        check("resolution", resolution, self.resolutions)
        return self._assemble(resolution, [(fn(st.widths), fn(st.depths), sr_fn(st.srs))
                                           for st in self.choices.stages])

    def smallest(self, resolution: int) -> EdgeViTArch:
        # the cheapest attention is the sparsest one: the largest sr
        return self._extreme(resolution, min, max)

    def largest(self, resolution: int) -> EdgeViTArch:
        return self._extreme(resolution, max, min)

    def encode(self, arch: EdgeViTArch) -> np.ndarray:
        vec = [arch.resolution, *arch.widths, *arch.depths, *arch.sr]
        return np.asarray(vec, dtype=np.float64)

    # --- the one walk ----------------------------------------------------------------------
    def _stage_ops(self, hw: int, cin: int, w: int, depth: int, sr: int, s: int) -> list[OpSpec]:
        ch = self.choices
        embed = EVPatchEmbed(hw, cin, w, PATCHES[s])
        hw = embed.out_hw
        block: list[OpSpec] = [EVLocalAgg(hw, w, ch.mlp)] if sr > 1 else []
        block.append(EVGlobalSparse(hw, w, ch.heads(w), sr, ch.mlp))
        return [embed] + block * depth

    def ops(self, arch: EdgeViTArch) -> list[OpSpec]:
        self.validate(arch)
        ops: list[OpSpec] = []
        hw, cin = arch.resolution, 3
        for s, (w, d, r) in enumerate(self._split(arch)):
            ops += self._stage_ops(hw, cin, w, d, r, s)
            hw, cin = hw // PATCHES[s], w
        ops.append(EVHead(hw, cin, self.choices.classes))
        return ops

    def enumerate_ops(self, resolution: int) -> list[OpSpec]:
        check("resolution", resolution, self.resolutions)
        ops: dict[str, OpSpec] = {}
        hw, cins = resolution, (3,)
        for s, st in enumerate(self.choices.stages):
            for cin in cins:
                for w in st.widths:
                    for r in st.srs:
                        ops.update((op.key, op) for op in self._stage_ops(hw, cin, w, 1, r, s))
            hw, cins = hw // PATCHES[s], st.widths
        ops.update((op.key, op) for op in (EVHead(hw, c, self.choices.classes) for c in cins))
        return list(ops.values())


@register_space("edgevit")
def edgevit_space() -> EdgeViTSpace:
    return EdgeViTSpace(EDGEVIT)
