"""HW-NAS-Bench's FBNet space (``fbnet``): 22 layers, each one of 9 blocks (9^22 networks).

The CIFAR skeleton of HW-NAS-Bench's ``fbnet_models/model_infer.py``: a stride-1 3x3 stem to 16
channels, FBNetV1's seven stages (1, 4, 4, 4, 4, 4, 1 layers at 16, 24, 32, 64, 112, 184, 352
channels, strides 1, 1, 2, 2, 1, 2, 1), a 1x1 conv to 1504 features, global pool and a
classifier (100 classes: CIFAR-100, as HELP's FBNet latencies). The input is 32x32.

A ``skip`` layer is the identity (no op) where it keeps shape; where the stride is 2 or the
width changes it is a 1x1 conv, BN and ReLU, as HW-NAS-Bench builds it.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from hwnas.arch import arch_from_obj
from hwnas.errors import ArchError
from hwnas.ops import OpSpec
from hwnas.spaces._util import check, check_resolutions, pick
from hwnas.spaces.base import SearchSpace
from hwnas.spaces.fbnet.arch import (FBNET_OPS, FBNET_RESOLUTION, LAYERS, STAGE_CHANNELS,
                                     FBNetArch)
from hwnas.spaces.fbnet.ops import FBNetBlock, FBNetHead, FBNetSkip, FBNetStem
from hwnas.spaces.registry import register_space

HEAD_FEATURES = 1504  # HW-NAS-Bench's CIFAR header channels (1984 on ImageNet)
FBNET_CLASSES = 100   # CIFAR-100 (HELP's metainfo: num_classes 100)


def block_shape(name: str) -> tuple[int, int, int]:
    """(kernel, expansion, groups) of a block name such as ``k5_e1_g2``."""
    parts = name.split("_")
    return int(parts[0][1:]), int(parts[1][1:]), int(parts[2][1:]) if len(parts) > 2 else 1


class FBNetSpace(SearchSpace):
    name = "fbnet"

    def __init__(self, resolutions: Iterable[int] = (FBNET_RESOLUTION,),
                 classes: int = FBNET_CLASSES):
        self.resolutions = tuple(resolutions)
        self.classes = classes

    def with_resolutions(self, resolutions) -> "FBNetSpace":
        return FBNetSpace(check_resolutions(resolutions, self.resolutions), self.classes)

    # --- validation ----------------------------------------------------------------------
    def validate(self, arch: FBNetArch) -> FBNetArch:
        if not isinstance(arch, FBNetArch):
            raise ArchError(f"not an fbnet architecture: {type(arch).__name__}")
        check("resolution", arch.resolution, self.resolutions)
        for i, b in enumerate(arch.blocks):
            if b not in FBNET_OPS:
                raise ArchError(f"blocks[{i}]={b} not allowed; allowed: "
                                f"{{{', '.join(FBNET_OPS)}}}")
        return arch

    def arch_from_obj(self, obj) -> FBNetArch:
        """hwnas JSON; the 22 block names; HW-NAS-Bench's op_idx_list (22 ints); or a HELP
        metainfo entry (a dict with 'arch_str' or 'op_idx_list')."""
        res = self.resolutions[-1]
        if isinstance(obj, dict) and "space" not in obj and \
                ("arch_str" in obj or "op_idx_list" in obj):
            a = FBNetArch.from_native(obj["arch_str"], res) if "arch_str" in obj else None
            b = FBNetArch.from_op_idx_list(obj["op_idx_list"], res) \
                if "op_idx_list" in obj else None
            if a is not None and b is not None and a != b:
                raise ArchError("arch_str and op_idx_list name different blocks")
            return self.validate(a or b)
        if isinstance(obj, (list, tuple)):
            if obj and all(isinstance(v, int) and not isinstance(v, bool) for v in obj):
                return self.validate(FBNetArch.from_op_idx_list(obj, res))
            return self.validate(FBNetArch.from_native(obj, res))
        if isinstance(obj, dict) and obj.get("space", FBNetArch.space) == FBNetArch.space:
            return self.validate(FBNetArch.from_dict(obj))
        return self.validate(arch_from_obj(obj))

    # --- architectures from choices --------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> FBNetArch:
        return FBNetArch(pick(rng, self.resolutions),
                         tuple(pick(rng, FBNET_OPS) for _ in range(LAYERS)))

    def mutate(self, arch: FBNetArch, rng: np.random.Generator, prob: float = 0.2) -> FBNetArch:
        """Each layer's block resampled with ``prob`` (to another block)."""
        self.validate(arch)
        res = pick(rng, self.resolutions) if rng.random() < prob else arch.resolution
        return FBNetArch(res, tuple(pick(rng, [o for o in FBNET_OPS if o != b])
                                    if rng.random() < prob else b for b in arch.blocks))

    def crossover(self, a: FBNetArch, b: FBNetArch, rng: np.random.Generator) -> FBNetArch:
        res = a.resolution if rng.random() < 0.5 else b.resolution
        return FBNetArch(res, tuple(x if rng.random() < 0.5 else y
                                    for x, y in zip(a.blocks, b.blocks)))

    def smallest(self, resolution: int) -> FBNetArch:
        """Every layer ``skip``: only the projecting skips, stem and head run."""
        check("resolution", resolution, self.resolutions)
        return FBNetArch(resolution, ("skip",) * LAYERS)

    def largest(self, resolution: int) -> FBNetArch:
        check("resolution", resolution, self.resolutions)
        return FBNetArch(resolution, ("k5_e6",) * LAYERS)

    def encode(self, arch: FBNetArch) -> np.ndarray:
        """One-hot of each layer's block (22 layers x 9 blocks, in FBNET_OPS's order)."""
        self.validate(arch)
        vec = np.zeros((LAYERS, len(FBNET_OPS)))
        for i, b in enumerate(arch.blocks):
            vec[i, FBNET_OPS.index(b)] = 1.0
        return vec.ravel()

    # --- the one walk ----------------------------------------------------------------------
    @staticmethod
    def _layer_op(name: str, hw: int, cin: int, cout: int, stride: int) -> OpSpec | None:
        if name == "skip":
            return FBNetSkip(hw, cin, cout, stride) if stride != 1 or cin != cout else None
        k, e, g = block_shape(name)
        return FBNetBlock(hw, cin, cout, k, e, g, stride)

    def ops(self, arch: FBNetArch) -> list[OpSpec]:
        self.validate(arch)
        hw = arch.resolution
        ops: list[OpSpec] = [FBNetStem(hw, STAGE_CHANNELS[0])]
        for _, _, name, cin, cout, stride in arch.layers():
            op = self._layer_op(name, hw, cin, cout, stride)
            if op is not None:
                ops.append(op)
            hw //= stride
        ops.append(FBNetHead(hw, STAGE_CHANNELS[-1], HEAD_FEATURES, self.classes))
        return ops

    def enumerate_ops(self, resolution: int) -> list[OpSpec]:
        check("resolution", resolution, self.resolutions)
        probe = FBNetArch(resolution, ("skip",) * LAYERS)  # only for the layers' shapes
        hw, ops = resolution, {}
        stem = FBNetStem(resolution, STAGE_CHANNELS[0])
        ops[stem.key] = stem
        for _, _, _, cin, cout, stride in probe.layers():
            for name in FBNET_OPS:
                op = self._layer_op(name, hw, cin, cout, stride)
                if op is not None:
                    ops[op.key] = op
            hw //= stride
        head = FBNetHead(hw, STAGE_CHANNELS[-1], HEAD_FEATURES, self.classes)
        ops[head.key] = head
        return list(ops.values())


@register_space("fbnet")
def fbnet_space() -> FBNetSpace:
    return FBNetSpace()
