"""Named reference networks (``hwnas predict --model deit-tiny``), for testing predictors on
models inside and outside the spaces they were fitted on.

``named_model(name)`` gives a :class:`NamedModel`: a space and an architecture, so everything
that takes ``(space, arch)`` (profilers, LUT and model-level predictors, ``space.build_model``)
works on it unchanged. A model that lies in a registered search space comes with that space;
any other comes with a one-point space of its own family (or a :class:`FixedSpace`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from hwnas.spaces.edgevit.arch import EdgeViTArch
from hwnas.spaces.vit.arch import ViTArch
from hwnas.spaces.vitres.arch import ViTResArch
from hwnas.errors import ArchError, HwnasError, SpaceError
from hwnas.ops import OpSpec
from hwnas.spaces.tfnas.ops import MBHead, MBStem, TFNASBlock
from hwnas.spaces import SPACES
from hwnas.spaces.base import SearchSpace


@dataclass(frozen=True)
class NamedModel:
    name: str
    space: SearchSpace
    arch: Any
    source: str  # where the architecture comes from

    def ops(self) -> list[OpSpec]:
        return self.space.ops(self.arch)

    def op_keys(self) -> list[str]:
        return self.space.op_keys(self.arch)

    def macs(self) -> int:
        return self.space.macs(self.arch)

    def build(self):
        """(eval-mode torch model with random weights, batch-1 input shape)."""
        return self.space.build_model(self.arch), self.space.input_shape(self.arch)


def spaces_containing(arch) -> list[str]:
    """Registered search spaces whose validation accepts ``arch``."""
    from hwnas.spaces import get_space

    found = []
    for name in list(SPACES):
        try:
            get_space(name).validate(arch)
        except (ArchError, TypeError, SpaceError):  # SpaceError: a user's space that fails
            continue
        found.append(name)
    return found


def _in_space_or(name: str, arch, fallback: Callable[[], SearchSpace], source: str) -> NamedModel:
    inside = spaces_containing(arch)
    from hwnas.spaces import get_space

    space = get_space(inside[0]) if inside else fallback()
    return NamedModel(name, space, space.validate(arch), source)


def _vit(name: str, arch: ViTArch, source: str) -> NamedModel:
    from hwnas.spaces.vit.space import ViTChoices, ViTSpace

    return _in_space_or(name, arch, lambda: ViTSpace(ViTChoices.of(name, arch)), source)


def _deit(name: str, embed: int, heads: int) -> NamedModel:
    arch = ViTArch(224, 16, embed, (heads,) * 12, (64,) * 12, (4 * embed,) * 12)
    return _vit(name, arch, "DeiT (Touvron et al. 2021), patch 16, 12 blocks, MLP ratio 4")


def _vitas_c() -> NamedModel:
    rows = [[1, "Embedding", 16, 230], [12, "MHSA", 3, 432], ["--", "MLP", "-", 720]]
    return _vit("vitas-c", ViTArch.from_vitas_table(rows),
                "ViTAS README: 1.3G block-level architecture (74.7% top-1)")


# ViT-ResNAS's searched networks: scripts/vit-sr-nas/searched_net/*.sh (network_def as given)
VIT_RESNAS_DEFS = {
    "vit-resnas-tiny": "((4, 176), (1, (176, 3, 32), (176, 704), 1), (1, (176, 3, 32), (176, 576), 1), (1, (176, 3, 32), (176, 640), 1), (1, (176, 4, 32), (176, 576), 1), (1, (176, 4, 32), (176, 704), 1), (3, 176, 352), (1, (352, 10, 48), (352, 1408), 1), (1, (352, 8, 48), (352, 1408), 1), (1, (352, 8, 48), (352, 1280), 1), (1, (352, 8, 48), (352, 1408), 1), (1, (352, 10, 48), (352, 1280), 1), (1, (352, 10, 48), (352, 1024), 1), (3, 352, 704), (1, (704, 10, 64), (704, 2560), 1), (1, (704, 10, 64), (704, 1792), 1), (1, (704, 10, 64), (704, 2816), 1), (1, (704, 8, 64), (704, 2816), 1), (1, (704, 8, 64), (704, 2560), 1), (2, 704, 1000))",  # noqa: E501
    "vit-resnas-small": "((4, 220), (1, (220, 5, 32), (220, 880), 1), (1, (220, 5, 32), (220, 880), 1), (1, (220, 7, 32), (220, 800), 1), (1, (220, 5, 32), (220, 720), 1), (1, (220, 5, 32), (220, 720), 1), (1, (220, 5, 32), (220, 720), 1), (3, 220, 440), (1, (440, 10, 48), (440, 1760), 1), (1, (440, 10, 48), (440, 1440), 1), (1, (440, 10, 48), (440, 1920), 1), (1, (440, 10, 48), (440, 1600), 1), (1, (440, 12, 48), (440, 1600), 1), (1, (440, 12, 48), (440, 1440), 1), (3, 440, 880), (1, (880, 16, 64), (880, 3200), 1), (1, (880, 12, 64), (880, 3200), 1), (1, (880, 16, 64), (880, 2880), 1), (1, (880, 12, 64), (880, 2240), 1), (1, (880, 14, 64), (880, 2560), 1), (2, 880, 1000))",  # noqa: E501
    "vit-resnas-medium": "((4, 240), (1, (240, 7, 32), (240, 960), 1), (1, (240, 6, 32), (240, 960), 1), (1, (240, 7, 32), (240, 800), 1), (1, (240, 8, 32), (240, 960), 1), (1, (240, 7, 32), (240, 880), 1), (1, (240, 8, 32), (240, 880), 1), (1, (240, 6, 32), (240, 800), 1), (3, 240, 640), (1, (640, 10, 48), (640, 1120), 1), (1, (640, 14, 48), (640, 1760), 1), (1, (640, 14, 48), (640, 1920), 1), (1, (640, 16, 48), (640, 1760), 1), (1, (640, 14, 48), (640, 1440), 1), (1, (640, 16, 48), (640, 1760), 1), (1, (640, 16, 48), (640, 1920), 1), (3, 640, 880), (1, (880, 16, 64), (880, 3200), 1), (1, (880, 10, 64), (880, 3840), 1), (1, (880, 16, 64), (880, 3840), 1), (1, (880, 12, 64), (880, 3200), 1), (1, (880, 16, 64), (880, 3520), 1), (1, (880, 14, 64), (880, 3520), 1), (2, 880, 1000))",  # noqa: E501
}


def _vit_resnas(name: str) -> NamedModel:
    from hwnas.spaces.vitres.space import ViTResChoices, ViTResSpace

    arch = ViTResArch.from_network_def(VIT_RESNAS_DEFS[name])
    return _in_space_or(name, arch, lambda: ViTResSpace(ViTResChoices.of(name, arch)),
                        "ViT-ResNAS scripts/vit-sr-nas/searched_net (network_def)")


def _edgevit(name: str, widths, depths, head_dim: int) -> NamedModel:
    from hwnas.spaces.edgevit.space import EdgeViTChoices, EdgeViTSpace

    arch = EdgeViTArch(224, widths, depths, tuple(w // head_dim for w in widths), (4, 2, 2, 1),
                       (4,) * 4)
    return _in_space_or(name, arch, lambda: EdgeViTSpace(EdgeViTChoices.of(name, arch)),
                        "EdgeViT src/edgevit.py (Pan et al. 2022)")


# MobileNetV2 (Sandler et al. 2018): (expansion t, channels c, repeats n, stride s)
MOBILENETV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenetv2_ops(res: int = 224) -> list[OpSpec]:
    stem = MBStem(res, 32, "relu6")
    ops: list[OpSpec] = [stem]
    hw, cin = stem.out_hw, 32
    for t, c, n, s in MOBILENETV2_SETTINGS:
        for i in range(n):
            # t = 1 gives mid = cin: the block skips its expansion, as MobileNetV2's first does
            ops.append(TFNASBlock(hw, cin, 0, c, 3, s if i == 0 else 1, "relu6", t * cin))
            hw, cin = ops[-1].out_hw, c
    ops.append(MBHead(hw, cin, 1280, 1000, "relu6"))
    return ops


def _mobilenetv2() -> NamedModel:
    from hwnas.spaces.fixed import FixedSpace

    space = FixedSpace("mobilenetv2", 224, mobilenetv2_ops(224))
    return NamedModel("mobilenetv2", space, space.arch, "MobileNetV2 1.0 (Sandler et al. 2018)")


def _elasticvit(name: str) -> NamedModel:
    from hwnas.spaces.elasticvit.space import elasticvit_named

    return _in_space_or(name, elasticvit_named()[name], lambda: None,
                        "ElasticViT configs/final_3min_space_eval.yaml")


MODELS: dict[str, Callable[[], NamedModel]] = {
    "deit-tiny": lambda: _deit("deit-tiny", 192, 3),
    "deit-small": lambda: _deit("deit-small", 384, 6),
    "vitas-c": _vitas_c,
    **{name: (lambda n=name: _vit_resnas(n)) for name in VIT_RESNAS_DEFS},
    "mobilenetv2": _mobilenetv2,
    "edgevit-xxs": lambda: _edgevit("edgevit-xxs", (36, 72, 144, 288), (1, 1, 3, 2), 36),
    "edgevit-xs": lambda: _edgevit("edgevit-xs", (48, 96, 240, 384), (1, 1, 3, 1), 48),
    "edgevit-s": lambda: _edgevit("edgevit-s", (48, 96, 240, 384), (1, 2, 5, 3), 48),
    **{name: (lambda n=name: _elasticvit(n))
       for name in ("elastic_T1", "elastic_T2", "elastic_S1", "elastic_M", "elastic_L3")},
}


def list_models() -> list[str]:
    return sorted(MODELS)


def named_model(name: str) -> NamedModel:
    """A named reference network; raises HwnasError listing the known names."""
    if name not in MODELS:
        raise HwnasError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return MODELS[name]()
