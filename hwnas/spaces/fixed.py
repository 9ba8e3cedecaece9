"""A "space" of exactly one network given by its op list, for named models no family covers
(MobileNetV2). It implements the SearchSpace contract, so the profilers and predictors treat it
like any other space; search over it is pointless, and its sample/mutate/crossover say so by
returning the one architecture. Not registered in ``hwnas.spaces.SPACES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hwnas.errors import ArchError
from hwnas.ops import OpSpec
from hwnas.spaces.base import SearchSpace


@dataclass(frozen=True)
class FixedArch:
    space: ClassVar[str] = "fixed"
    name: str
    resolution: int

    def to_dict(self) -> dict:
        return {"space": self.space, "name": self.name, "resolution": self.resolution}


class FixedSpace(SearchSpace):
    def __init__(self, name: str, resolution: int, ops: list[OpSpec]):
        self.name, self.resolutions = name, (resolution,)
        self.arch = FixedArch(name, resolution)
        self._ops = tuple(ops)

    def validate(self, arch) -> FixedArch:
        if arch != self.arch:
            raise ArchError(f"arch={arch!r} not allowed; allowed: {{{self.arch!r}}}")
        return arch

    def arch_from_obj(self, obj) -> FixedArch:
        if not isinstance(obj, dict) or obj.get("space") != FixedArch.space:
            raise ArchError(f"a fixed architecture is {self.arch.to_dict()}")
        return self.validate(FixedArch(obj.get("name"), obj.get("resolution")))

    def sample(self, rng: np.random.Generator) -> FixedArch:
        return self.arch

    def mutate(self, arch, rng: np.random.Generator, prob: float = 0.2) -> FixedArch:
        return self.validate(arch)

    def crossover(self, a, b, rng: np.random.Generator) -> FixedArch:
        return self.validate(a)

    def smallest(self, resolution: int) -> FixedArch:
        return self._at(resolution)

    def largest(self, resolution: int) -> FixedArch:
        return self._at(resolution)

    def _at(self, resolution: int) -> FixedArch:
        if resolution not in self.resolutions:
            raise ArchError(f"resolution={resolution} not allowed; "
                            f"allowed: {{{self.resolutions[0]}}}")
        return self.arch

    def encode(self, arch) -> np.ndarray:
        return np.asarray([self.arch.resolution, self.macs(arch)], dtype=np.float64)

    def with_resolutions(self, resolutions) -> "FixedSpace":
        for r in resolutions:
            self._at(r)
        return self

    def ops(self, arch) -> list[OpSpec]:
        self.validate(arch)
        return list(self._ops)

    def enumerate_ops(self, resolution: int) -> list[OpSpec]:
        self._at(resolution)
        return list({op.key: op for op in self._ops}.values())
