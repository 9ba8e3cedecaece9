"""FBNet architectures: one block choice per layer, 22 layers (HW-NAS-Bench's FBNet space).

The native form is the list of 22 block names (HW-NAS-Bench's ``arch_str``, HELP's metainfo),
e.g. ``["k5_e6", "skip", ...]``; HW-NAS-Bench's ``op_idx_list`` (22 indices into FBNET_OPS) is
read by the space when the space is named. The JSON form::

    {"space": "fbnet", "resolution": 32, "blocks": ["k5_e6", "skip", ...]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hwnas.arch import register_arch, register_native_form
from hwnas.arch_base import int_value
from hwnas.errors import ArchError

# HW-NAS-Bench's PRIMITIVES, in its order (op_idx_list indexes it)
FBNET_OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6",
             "skip")
# FBNetV1's stages (layers, channels) and HW-NAS-Bench's unofficial CIFAR strides
STAGE_LAYERS = (1, 4, 4, 4, 4, 4, 1)
STAGE_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
CIFAR_STRIDES = (1, 1, 2, 2, 1, 2, 1)
LAYERS = sum(STAGE_LAYERS)  # 22
FBNET_RESOLUTION = 32


def looks_native(obj: Any) -> bool:
    """True for a list of 22 FBNet block names (nothing else is such a list)."""
    return isinstance(obj, (list, tuple)) and len(obj) == LAYERS \
        and all(isinstance(b, str) and b in FBNET_OPS for b in obj)


@register_arch
@dataclass(frozen=True)
class FBNetArch:
    space: ClassVar[str] = "fbnet"
    resolution: int
    blocks: tuple[str, ...]

    def __post_init__(self) -> None:
        int_value("resolution", self.resolution)
        if not isinstance(self.blocks, (list, tuple)):
            raise ArchError(f"blocks must be a list of {LAYERS} block names, got {self.blocks!r}")
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if len(self.blocks) != LAYERS:
            raise ArchError(f"blocks has {len(self.blocks)} entries; FBNet has {LAYERS} layers")
        for i, b in enumerate(self.blocks):  # values: the space names blocks[i] if not allowed
            if not isinstance(b, (str, int)) or isinstance(b, bool):
                raise ArchError(f"blocks[{i}]={b!r} not allowed; allowed: "
                                f"{{{', '.join(FBNET_OPS)}}}")

    def native(self) -> list[str]:
        """HW-NAS-Bench's ``arch_str``: the 22 block names."""
        return list(self.blocks)

    def op_idx_list(self) -> list[int]:
        """HW-NAS-Bench's ``op_idx_list`` (indices into FBNET_OPS)."""
        return [FBNET_OPS.index(b) for b in self.blocks]

    @classmethod
    def from_native(cls, names, resolution: int = FBNET_RESOLUTION) -> "FBNetArch":
        return cls(resolution, tuple(names))

    @classmethod
    def from_op_idx_list(cls, idx, resolution: int = FBNET_RESOLUTION) -> "FBNetArch":
        if not isinstance(idx, (list, tuple)) or len(idx) != LAYERS:
            raise ArchError(f"op_idx_list must list {LAYERS} integers")
        names = []
        for i, v in enumerate(idx):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < len(FBNET_OPS):
                raise ArchError(f"op_idx_list[{i}]={v!r} not allowed; allowed: "
                                f"0..{len(FBNET_OPS) - 1}")
            names.append(FBNET_OPS[v])
        return cls(resolution, tuple(names))

    def to_dict(self) -> dict:
        return {"space": self.space, "resolution": self.resolution, "blocks": list(self.blocks)}

    @classmethod
    def from_dict(cls, d: dict) -> "FBNetArch":
        if not isinstance(d, dict):
            raise ArchError(f"an fbnet architecture is a JSON object, got {type(d).__name__}")
        d = dict(d)
        if d.pop("space", cls.space) != cls.space:
            raise ArchError(f"architecture is not of space {cls.space!r}")
        if set(d) - {"resolution"} != {"blocks"}:
            raise ArchError(f"bad fbnet architecture fields {sorted(d)}; expected 'blocks' "
                            f"({LAYERS} block names) and optionally 'resolution'")
        return cls(d.get("resolution", FBNET_RESOLUTION), d["blocks"])

    def layers(self):
        """(stage, layer index, block name, cin, cout, stride) for the 22 layers, in order."""
        i, cin = 0, STAGE_CHANNELS[0]  # the stem's width is the first stage's
        for s, (n, cout, stride) in enumerate(zip(STAGE_LAYERS, STAGE_CHANNELS, CIFAR_STRIDES)):
            for j in range(n):
                yield s, i, self.blocks[i], cin, cout, stride if j == 0 else 1
                cin = cout
                i += 1


register_native_form(FBNetArch.space, looks_native)
