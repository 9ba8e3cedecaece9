"""The SearchSpace contract shared by every space family.

A space owns the only walk from an architecture to its ops (``ops``). The static model, the
profiler, the analytic FLOPs and the predictors all go through it, so they cannot disagree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from hwnas.ops import OpSpec

if TYPE_CHECKING:
    import torch.nn as nn


class SearchSpace(ABC):
    name: str = ""
    resolutions: tuple[int, ...] = ()

    # --- architectures --------------------------------------------------------------------
    @abstractmethod
    def validate(self, arch) -> Any:
        """Return arch unchanged, or raise ArchError naming the field and its allowed values."""

    @abstractmethod
    def arch_from_obj(self, obj) -> Any:
        """Parse and validate an architecture from a JSON object (any supported codec)."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Any: ...

    @abstractmethod
    def mutate(self, arch, rng: np.random.Generator, prob: float = 0.2) -> Any: ...

    @abstractmethod
    def crossover(self, a, b, rng: np.random.Generator) -> Any: ...

    @abstractmethod
    def smallest(self, resolution: int) -> Any:
        """The architecture with every choice at its minimum, at one resolution."""

    @abstractmethod
    def largest(self, resolution: int) -> Any: ...

    @abstractmethod
    def encode(self, arch) -> np.ndarray:
        """A fixed-length numeric vector for model-level regressors."""

    @abstractmethod
    def with_resolutions(self, resolutions) -> "SearchSpace":
        """The same space narrowed to some resolutions (which must belong to it)."""

    # --- the one walk ---------------------------------------------------------------------
    @abstractmethod
    def ops(self, arch) -> list[OpSpec]:
        """The blocks the network runs, in order."""

    @abstractmethod
    def enumerate_ops(self, resolution: int) -> list[OpSpec]:
        """Every distinct op any architecture at this resolution can use (what to profile)."""

    # --- derived from the walk ------------------------------------------------------------
    def macs(self, arch) -> int:
        return sum(op.macs() for op in self.ops(arch))

    def params(self, arch) -> int:
        return sum(op.params() for op in self.ops(arch))

    def op_keys(self, arch) -> list[str]:
        return [op.key for op in self.ops(arch)]

    def build_model(self, arch) -> "nn.Module":
        """The static torch model of a subnet (random weights), made of the ops' own modules."""
        import torch.nn as nn

        return nn.Sequential(*(op.module() for op in self.ops(self.validate(arch)))).eval()

    def input_shape(self, arch) -> tuple[int, ...]:
        return self.ops(arch)[0].input_shape()

    # --- optional -------------------------------------------------------------------------
    def make_supernet(self) -> "nn.Module":
        """The weight-sharing supernet over this space, for a family that has one.

        A family overrides this (importing its torch modules inside the method, so that
        importing the space stays cheap); ``hwnas.supernet.model.make_supernet`` calls it."""
        from hwnas.errors import HwnasError

        raise HwnasError(f"no supernet for space {getattr(self, 'name', self)!r}; "
                         f"supernets exist for elasticvit and vit spaces")
