"""OpSpec: one block that a runtime executes as a unit, with a stable key.

A spec knows its shape, its analytic MACs and parameter count, its key, and how to build a
standalone torch module plus the input shape to time it with. The keys follow nn-Meter's
hybrid-ViT key format for the same blocks, so an imported nn-Meter table and a table profiled by
hwnas are looked up the same way.

Spatial sizes follow nn-Meter's convention: a stride-2 block maps ``hw`` to ``hw // 2`` (floor).
The torch blocks pad so that they produce exactly that size, so a key always describes the block
that was really run, and blocks chain into a whole network without surprises.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, ClassVar

from hwnas.errors import HwnasError

if TYPE_CHECKING:  # torch is imported lazily: `import hwnas` must stay cheap
    import torch.nn as nn

DEFAULT_CLASSES = 1000


def same_floor_padding(hw: int, kernel: int, stride: int) -> int:
    """Padding that makes a kxk conv produce exactly ``hw // stride`` (nn-Meter's sizes).

    Symmetric padding of (k-1)//2 gives ceil(hw/2) for odd hw; one pixel less gives the floor.
    """
    if stride == 2 and hw % 2 == 1:
        return (kernel - 3) // 2
    return (kernel - 1) // 2


@dataclass(frozen=True)
class OpSpec:
    """Base class. Subclasses are frozen dataclasses with integer shape fields."""

    kind: ClassVar[str] = ""
    _pattern: ClassVar[re.Pattern]

    @property
    def key(self) -> str:
        raise NotImplementedError

    @property
    def out_hw(self) -> int:
        raise NotImplementedError

    def input_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def macs(self) -> int:
        """Multiply-accumulates of convolutions, linears and attention matmuls."""
        raise NotImplementedError

    def params(self) -> int:
        raise NotImplementedError

    def module(self) -> "nn.Module":
        raise NotImplementedError

    def build(self) -> tuple["nn.Module", tuple[int, ...]]:
        """A standalone module in eval mode with random weights, and its batch-1 input shape."""
        return self.module().eval(), self.input_shape()

    def features(self) -> dict[str, float]:
        """Numeric shape features for kernel-level regressors (nn-Meter style)."""
        feats = {k: float(v) for k, v in asdict(self).items()}
        feats["macs"] = float(self.macs())
        feats["params"] = float(self.params())
        return feats

    @classmethod
    def from_key(cls, key: str) -> "OpSpec":
        m = cls._pattern.fullmatch(key)
        if not m:
            raise HwnasError(f"{key!r} is not a {cls.kind} key")
        return cls._from_match(m)

    @classmethod
    def _from_match(cls, m: re.Match) -> "OpSpec":
        return cls(**{k: int(v) for k, v in m.groupdict().items()})


# Every family's op kinds, by the first word of their keys. Families add theirs when imported
# (``register_op``).
OP_KINDS: dict[str, type[OpSpec]] = {}


def register_op(cls: type[OpSpec]) -> type[OpSpec]:
    """Class decorator: ``parse_key`` rebuilds keys whose first word is ``cls.kind`` as ``cls``."""
    OP_KINDS[cls.kind] = cls
    return cls


def kind_of(key: str) -> str:
    """The op kind of a key (its first underscore-separated word)."""
    return key.split("_", 1)[0]


def parse_key(key: str) -> OpSpec:
    """Rebuild the OpSpec a key names; raises HwnasError for a key of no known kind."""
    # Families add their kinds to OP_KINDS when imported. They are loaded here, on first use
    # and by name, because each family imports this module: a module-level import of them
    # here would be an import cycle.
    from hwnas.spaces.registry import load_families

    load_families()
    cls = OP_KINDS.get(kind_of(key))
    if cls is None:
        raise HwnasError(f"unknown op key {key!r}: known kinds are {sorted(OP_KINDS)}")
    return cls.from_key(key)

