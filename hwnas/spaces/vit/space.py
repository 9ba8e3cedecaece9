"""Single-stage ViT spaces in the style of AutoFormer and ViTAS.

One space class, several registered choice sets: ``vit`` (patch size {14, 16, 32} and a wide
width range) and AutoFormer's supernet ranges ``vit-autoformer-t/-s/-b`` (its
``experiments/supernet/supernet-{T,S,B}.yaml``: patch 16, q/k/v width = heads x 64, MLP hidden
= int(embed x ratio), per-layer heads and MLP ratio, one embed width and depth per network).
Depth is elastic the AutoFormer way: a shallower subnet skips the supernet's last blocks, so
the static model simply has fewer blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from hwnas.arch import arch_from_obj
from hwnas.spaces.vit.arch import ViTArch
from hwnas.errors import ArchError
from hwnas.ops import OpSpec
from hwnas.spaces.vit.ops import ViTAttention, ViTHead, ViTMLP, ViTPatchEmbed
from hwnas.spaces._util import allowed_text, check, check_resolutions, pad, pick
from hwnas.spaces.base import SearchSpace
from hwnas.spaces.registry import register_space


def mlp_width(embed: int, ratio: float) -> int:
    """AutoFormer's int(embed * ratio); the epsilon keeps exact ratios like 720/230 exact."""
    return int(embed * ratio + 1e-6)


@dataclass(frozen=True)
class ViTChoices:
    name: str
    resolutions: tuple[int, ...]
    patches: tuple[int, ...]
    embeds: tuple[int, ...]
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    head_dims: tuple[int, ...]
    mlp_ratios: tuple[float, ...]
    classes: int = 1000

    @classmethod
    def of(cls, name: str, arch: ViTArch, classes: int = 1000) -> "ViTChoices":
        """The one-point choice set of an architecture (a named model outside every space)."""
        return cls(name, (arch.resolution,), (arch.patch,), (arch.embed,), (arch.depth,),
                   tuple(sorted(set(arch.heads))), tuple(sorted(set(arch.head_dim))),
                   tuple(sorted({m / arch.embed for m in arch.mlp})), classes)


VIT = ViTChoices("vit", (224,), (14, 16, 32), (192, 216, 240, 288, 320, 384),
                 (10, 11, 12, 13, 14), (3, 4, 5, 6), (64,), (3.0, 3.5, 4.0))
AUTOFORMER_T = ViTChoices("vit-autoformer-t", (224,), (16,), (192, 216, 240), (12, 13, 14),
                          (3, 4), (64,), (3.5, 4.0))
AUTOFORMER_S = ViTChoices("vit-autoformer-s", (224,), (16,), (320, 384, 448), (12, 13, 14),
                          (5, 6, 7), (64,), (3.0, 3.5, 4.0))
AUTOFORMER_B = ViTChoices("vit-autoformer-b", (224,), (16,), (528, 576, 624), (14, 15, 16),
                          (9, 10), (64,), (3.0, 3.5, 4.0))

Layer = tuple[int, int, float]  # (heads, head_dim, mlp ratio)


class ViTSpace(SearchSpace):
    def __init__(self, choices: ViTChoices = VIT, resolutions: Iterable[int] | None = None):
        self.choices = choices
        self.name = choices.name
        self.resolutions = tuple(resolutions) if resolutions else choices.resolutions

    def with_resolutions(self, resolutions) -> "ViTSpace":
        return ViTSpace(self.choices, check_resolutions(resolutions, self.choices.resolutions))

    def make_supernet(self):
        """The weight-sharing supernet over this space (torch, imported on use)."""
        from hwnas.spaces.vit.supernet import ViTSupernet

        return ViTSupernet(self)

    # --- validation ----------------------------------------------------------------------
    def validate(self, arch: ViTArch) -> ViTArch:
        if not isinstance(arch, ViTArch):
            raise ArchError(f"not a vit architecture: {type(arch).__name__}")
        ch = self.choices
        check("resolution", arch.resolution, self.resolutions)
        check("patch", arch.patch, ch.patches)
        check("embed", arch.embed, ch.embeds)
        check("depth (number of blocks)", arch.depth, ch.depths)
        widths = [mlp_width(arch.embed, r) for r in ch.mlp_ratios]
        for i, (h, d, m) in enumerate(zip(arch.heads, arch.head_dim, arch.mlp)):
            check(f"heads[{i}]", h, ch.heads)
            check(f"head_dim[{i}]", d, ch.head_dims)
            if m not in widths:
                raise ArchError(f"mlp[{i}]={m} not allowed with embed {arch.embed}; allowed: "
                                f"{allowed_text(widths)} (MLP ratios "
                                f"{allowed_text(ch.mlp_ratios)})")
        return arch

    def arch_from_obj(self, obj) -> ViTArch:
        """hwnas JSON (a dict), or ViTAS's block-level table (a list of rows)."""
        if isinstance(obj, (list, tuple)):
            return self.validate(ViTArch.from_vitas_table(obj))
        return self.validate(arch_from_obj(obj))

    # --- architectures from choices --------------------------------------------------------
    def _ratio(self, embed: int, mlp: int) -> float:
        return next(r for r in self.choices.mlp_ratios if mlp_width(embed, r) == mlp)

    def _layers(self, arch: ViTArch) -> list[Layer]:
        return [(h, d, self._ratio(arch.embed, m))
                for h, d, m in zip(arch.heads, arch.head_dim, arch.mlp)]

    def _assemble(self, res: int, patch: int, embed: int, layers: list[Layer]) -> ViTArch:
        return ViTArch(res, patch, embed, tuple(h for h, _, _ in layers),
                       tuple(d for _, d, _ in layers),
                       tuple(mlp_width(embed, r) for _, _, r in layers))

    def _sample_layer(self, rng) -> Layer:
        ch = self.choices
        return pick(rng, ch.heads), pick(rng, ch.head_dims), pick(rng, ch.mlp_ratios)

    def sample(self, rng: np.random.Generator) -> ViTArch:
        ch = self.choices
        res, patch, embed = pick(rng, self.resolutions), pick(rng, ch.patches), pick(rng, ch.embeds)
        depth = pick(rng, ch.depths)
        return self._assemble(res, patch, embed, [self._sample_layer(rng) for _ in range(depth)])

    def mutate(self, arch: ViTArch, rng: np.random.Generator, prob: float = 0.2) -> ViTArch:
        """Resample each choice with ``prob``; a new embed width keeps each layer's MLP ratio."""
        ch, layers = self.choices, self._layers(arch)
        res = pick(rng, self.resolutions) if rng.random() < prob else arch.resolution
        patch = pick(rng, ch.patches) if rng.random() < prob else arch.patch
        embed = pick(rng, ch.embeds) if rng.random() < prob else arch.embed
        if rng.random() < prob:
            depth = pick(rng, ch.depths)
            layers = layers[:depth] + [self._sample_layer(rng) for _ in range(depth - len(layers))]
        layers = [self._sample_layer(rng) if rng.random() < prob else la for la in layers]
        return self._assemble(res, patch, embed, layers)

    def crossover(self, a: ViTArch, b: ViTArch, rng: np.random.Generator) -> ViTArch:
        """Global choices from either parent; layer i from either parent that has one."""
        res, patch, embed = [x if rng.random() < 0.5 else y for x, y in
                             ((a.resolution, b.resolution), (a.patch, b.patch),
                              (a.embed, b.embed))]
        la, lb = self._layers(a), self._layers(b)
        depth = len(la) if rng.random() < 0.5 else len(lb)
        layers = []
        for i in range(depth):
            options = [x[i] for x in (la, lb) if i < len(x)]
            layers.append(options[int(rng.integers(len(options)))])
        return self._assemble(res, patch, embed, layers)

    def _extreme(self, resolution: int, pick_fn, patch_fn) -> ViTArch:
        check("resolution", resolution, self.resolutions)
        ch = self.choices
        layer = (pick_fn(ch.heads), pick_fn(ch.head_dims), pick_fn(ch.mlp_ratios))
        return self._assemble(resolution, patch_fn(ch.patches), pick_fn(ch.embeds),
                              [layer] * pick_fn(ch.depths))

    def smallest(self, resolution: int) -> ViTArch:
        # the cheapest patch size is the largest one (fewest tokens)
        return self._extreme(resolution, min, max)

    def largest(self, resolution: int) -> ViTArch:
        return self._extreme(resolution, max, min)

    def encode(self, arch: ViTArch) -> np.ndarray:
        """Resolution, patch, embed, depth, then per block q/k/v width and MLP width (0-padded)."""
        n = max(self.choices.depths)
        widths = [h * d for h, d in zip(arch.heads, arch.head_dim)]
        vec = [arch.resolution, arch.patch, arch.embed, arch.depth, *pad(widths, n),
               *pad(arch.mlp, n)]
        return np.asarray(vec, dtype=np.float64)

    # --- the one walk ----------------------------------------------------------------------
    def ops(self, arch: ViTArch) -> list[OpSpec]:
        self.validate(arch)
        embed = ViTPatchEmbed(arch.resolution, arch.patch, arch.embed)
        n, c = embed.tokens, arch.embed
        ops: list[OpSpec] = [embed]
        for h, d, m in zip(arch.heads, arch.head_dim, arch.mlp):
            ops += [ViTAttention(n, c, h, d), ViTMLP(n, c, m)]
        ops.append(ViTHead(n, c, self.choices.classes))
        return ops

    def enumerate_ops(self, resolution: int) -> list[OpSpec]:
        check("resolution", resolution, self.resolutions)
        ch, ops = self.choices, {}
        for patch in ch.patches:
            for c in ch.embeds:
                embed = ViTPatchEmbed(resolution, patch, c)
                n = embed.tokens
                found = [embed, ViTHead(n, c, ch.classes)]
                found += [ViTAttention(n, c, h, d) for h in ch.heads for d in ch.head_dims]
                found += [ViTMLP(n, c, mlp_width(c, r)) for r in ch.mlp_ratios]
                ops.update((op.key, op) for op in found)
        return list(ops.values())

    def build_model(self, arch: ViTArch):
        """Patch embedding, ``blocks[i] = (attention, MLP)``, head: parameter names do not
        depend on the depth, so a shallower subnet's weights are a subset by name and leading
        slices by shape of a deeper, wider one's."""
        from hwnas.spaces.vit.blocks import TokenNet

        ops = self.ops(arch)
        blocks = [(ops[i].module(), ops[i + 1].module()) for i in range(1, len(ops) - 1, 2)]
        return TokenNet(ops[0].module(), blocks, ops[-1].module()).eval()


@register_space("vit")
def vit_space() -> ViTSpace:
    return ViTSpace(VIT)


@register_space("vit-autoformer-t")
def autoformer_t() -> ViTSpace:
    return ViTSpace(AUTOFORMER_T)


@register_space("vit-autoformer-s")
def autoformer_s() -> ViTSpace:
    return ViTSpace(AUTOFORMER_S)


@register_space("vit-autoformer-b")
def autoformer_b() -> ViTSpace:
    return ViTSpace(AUTOFORMER_B)
