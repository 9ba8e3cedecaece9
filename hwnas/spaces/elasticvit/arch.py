"""ElasticViT's architecture type and its codec for ElasticViT's own 10-element list."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from hwnas.arch import ARCH_TYPES
from hwnas.errors import ArchError

N_STAGES = 7  # ElasticViT: stem stage, 2 conv stages, 4 transformer stages


N_CONV_STAGES = 3


HEAD_DIM = 16  # heads = width / 16 in transformer stages


def _int_tuple(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ArchError(f"{name} must be a list of integers, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class ElasticViTArch:
    """One ElasticViT subnet. Per-layer lists run over conv layers (stages 0-2) or transformer
    layers (stages 3-6) in network order, as in ElasticViT's own 10-element format."""

    space: ClassVar[str] = "elasticvit"
    resolution: int
    channels: tuple[int, ...]
    depths: tuple[int, ...]
    conv_expand: tuple[int, ...]
    conv_kernel: tuple[int, ...]
    mlp_ratio: tuple[int, ...]
    v_scale: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.resolution, int) or isinstance(self.resolution, bool):
            raise ArchError(f"resolution must be an integer, got {self.resolution!r}")
        for f in fields(self)[1:]:
            object.__setattr__(self, f.name, _int_tuple(f.name, getattr(self, f.name)))
        if len(self.channels) != N_STAGES or len(self.depths) != N_STAGES:
            raise ArchError(f"channels and depths need {N_STAGES} entries (one per stage)")
        # say what is wrong with a depth before counting layers with it
        for i, d in enumerate(self.depths):
            if d < 0:
                raise ArchError(f"depths[{i}]={d} is negative; depths are layer counts >= 0")
        n_conv, n_trans = self.n_conv_layers, self.n_trans_layers
        for name, n in (("conv_expand", n_conv), ("conv_kernel", n_conv),
                        ("mlp_ratio", n_trans), ("v_scale", n_trans)):
            if len(getattr(self, name)) != n:
                raise ArchError(
                    f"{name} has {len(getattr(self, name))} entries but the depths give {n} layers"
                )

    @property
    def n_conv_layers(self) -> int:
        return sum(self.depths[:N_CONV_STAGES])

    @property
    def n_trans_layers(self) -> int:
        return sum(self.depths[N_CONV_STAGES:])

    @property
    def heads(self) -> tuple[int, ...]:
        """Heads per transformer layer (derived: width / 16)."""
        out = []
        for stage in range(N_CONV_STAGES, N_STAGES):
            out += [self.channels[stage] // HEAD_DIM] * self.depths[stage]
        return tuple(out)

    def stage_layers(self, stage: int) -> list[tuple[int, int]]:
        """(expand, kernel) per conv layer or (mlp_ratio, v_scale) per transformer layer."""
        if stage < N_CONV_STAGES:
            start = sum(self.depths[:stage])
            a, b = self.conv_expand, self.conv_kernel
        else:
            start = sum(self.depths[N_CONV_STAGES:stage])
            a, b = self.mlp_ratio, self.v_scale
        return list(zip(a[start:start + self.depths[stage]], b[start:start + self.depths[stage]]))

    # --- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {"space": self.space}
        d.update({f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                  for f in fields(self)})
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ElasticViTArch":
        d = dict(d)
        if d.pop("space", cls.space) != cls.space:
            raise ArchError(f"architecture is not of space {cls.space!r}")
        names = {f.name for f in fields(cls)}
        unknown, missing = set(d) - names, names - set(d)
        if unknown or missing:
            raise ArchError(
                f"bad elasticvit architecture fields: unknown {sorted(unknown)}, missing {sorted(missing)}"
            )
        return cls(**d)

    # --- ElasticViT's 10-element list ---------------------------------------------------
    def to_elasticvit_list(self) -> list:
        n = self.n_trans_layers
        return [self.resolution, list(self.channels), list(self.depths), list(self.conv_expand),
                list(self.conv_kernel), list(self.mlp_ratio), list(self.heads),
                [1] * n, [1] * n, list(self.v_scale)]

    @classmethod
    def from_elasticvit_list(cls, lst: list) -> "ElasticViTArch":
        if not isinstance(lst, (list, tuple)) or len(lst) != 10:
            raise ArchError("an ElasticViT architecture is a list of 10 elements "
                            "(res, channels, depths, conv_expand, conv_kernel, mlp_ratio, heads, "
                            "window, qk_scale, v_scale)")
        res, ch, dep, exp, ks, mlp, heads, win, qk, v = lst
        arch = cls(res, ch, dep, exp, ks, mlp, v)
        if tuple(_int_tuple("heads", heads)) != arch.heads:
            raise ArchError(f"heads must equal width/16 per transformer layer: expected "
                            f"{list(arch.heads)}, got {list(heads)}")
        for name, val in (("window", win), ("qk_scale", qk)):
            if set(_int_tuple(name, val)) - {1} or len(val) != arch.n_trans_layers:
                raise ArchError(f"{name} must be 1 for each of the {arch.n_trans_layers} "
                                f"transformer layers, got {list(val)}")
        return arch


ARCH_TYPES[ElasticViTArch.space] = ElasticViTArch
