"""SpaceSpec: the few numbers that rebuild the (narrowed) space a supernet was trained on.

Pools, checkpoints and search results store it, so a later command rebuilds exactly the same
space instead of trusting the user to repeat the same flags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from hwnas.errors import HwnasError
from hwnas.spaces.base import SearchSpace
from hwnas.spaces.elasticvit.space import ElasticViTSpace, KERNELS, StageDef
from hwnas.spaces.vit.space import VIT, ViTChoices, ViTSpace

# A CPU-sized version of ElasticViT's stages for tests and quick demos: the same stage kinds,
# strides, SE placement and choice structure (kernel 3/5, V-scale, MLP ratio), narrower and
# shallower. Transformer widths stay multiples of the head dim (16). It runs at 64 and 96 px,
# the smallest sizes at which the seven stride-2/1 stages still leave a 1x1 map.
TINY_STAGES: tuple[StageDef, ...] = (
    StageDef("conv", (8, 16), (1, 2), 1, False, (1,), KERNELS),
    StageDef("conv", (8, 16), (1, 2), 2, False, (3, 4), KERNELS),
    StageDef("conv", (16, 24), (1, 2), 2, True, (3, 4), KERNELS),
    StageDef("trans", (16, 32), (1, 2), 2, False, (2, 3), (2, 3)),
    StageDef("trans", (32, 48), (1, 2), 1, False, (2, 3), (2, 3)),
    StageDef("trans", (32, 48), (1, 2), 2, False, (2, 3), (2, 3)),
    StageDef("trans", (48, 64), (1, 2), 2, False, (2, 3), (2, 3)),
)
TINY_RESOLUTIONS = (64, 96)
# A CPU-sized version of the ``vit`` space (AutoFormer / ViTAS style) with the same structure:
# two patch sizes (``vit`` has three), per-block heads, head dim and MLP ratio, identity blocks
# for depth, and two resolutions so that each (resolution, patch) gets its own positions.
VIT_TINY = ViTChoices("vit-tiny", (24, 32), (4, 8), (24, 32, 48), (1, 2, 3), (1, 2, 3),
                      (8, 16), (2.0, 3.0, 4.0))
PRESETS = ("full", "tiny", "vit", "vit-tiny")


@dataclass(frozen=True)
class SpaceSpec:
    """``preset``: "full" (ElasticViT's stages), "tiny" (TINY_STAGES, for tests and demos),
    "vit" (the single-stage AutoFormer/ViTAS-style ``vit`` space) or "vit-tiny" (VIT_TINY).

    ``resolutions``: empty for the preset's own; ``max_depth``: cap on every stage's depth
    choices (a stage keeps at least its smallest depth), to fit a supernet to a CPU.
    """

    preset: str = "full"
    resolutions: tuple[int, ...] = ()
    classes: int = 1000
    max_depth: int | None = None

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise HwnasError(f"unknown space preset {self.preset!r}; one of {', '.join(PRESETS)}")
        object.__setattr__(self, "resolutions", tuple(int(r) for r in self.resolutions))
        if self.max_depth is not None and self.max_depth < 1:
            raise HwnasError("max_depth must be at least 1")
        if self.classes < 2:
            raise HwnasError("a classifier needs at least 2 classes")

    def build(self) -> SearchSpace:
        if self.preset in ("vit", "vit-tiny"):
            return self._build_vit()
        if self.preset == "tiny":
            res = self.resolutions or TINY_RESOLUTIONS
            space = ElasticViTSpace(res, TINY_STAGES, self.classes)
        else:
            space = ElasticViTSpace().with_classes(self.classes)
            if self.resolutions:
                space = space.with_resolutions(self.resolutions)
        if self.max_depth is None:
            return space
        stages = tuple(replace(st, depths=self._capped(st.depths)) for st in space.stages)
        return ElasticViTSpace(space.resolutions, stages, space.classes)

    def _capped(self, depths: tuple[int, ...]) -> tuple[int, ...]:
        """Depth choices up to max_depth, keeping at least the smallest one."""
        if self.max_depth is None:
            return depths
        return tuple(d for d in depths if d <= self.max_depth) or (min(depths),)

    def _build_vit(self) -> ViTSpace:
        tiny = self.preset == "vit-tiny"
        choices = replace(VIT_TINY if tiny else VIT, classes=self.classes)
        choices = replace(choices, depths=self._capped(choices.depths))
        if tiny and self.resolutions:  # like "tiny", any resolution (the full one has 224 only)
            if min(self.resolutions) < max(choices.patches):
                raise HwnasError(f"vit-tiny resolutions must be at least the largest patch "
                                 f"size ({max(choices.patches)})")
            choices = replace(choices, resolutions=self.resolutions)
        space = ViTSpace(choices)
        return space.with_resolutions(self.resolutions) if self.resolutions and not tiny \
            else space

    def to_dict(self) -> dict:
        d = asdict(self)
        d["resolutions"] = list(self.resolutions)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SpaceSpec":
        try:
            return cls(**d)
        except TypeError as e:
            raise HwnasError(f"bad space description {d!r}: {e}") from None
