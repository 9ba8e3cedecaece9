"""Supernets: elastic blocks for the largest architecture of a space.

``set_active(arch)`` selects a subnet. The blocks it runs, in order, are paired with the OpSpecs
of ``space.ops(arch)``, the same walk that builds the static model and keys the latency tables,
so ``extract(arch)`` is nothing more than loading the paired blocks' sliced weights into
``space.build_model(arch)``. The extracted module is therefore exactly the model the profilers
measure, and its outputs equal the supernet's (tested).
"""

from __future__ import annotations

from typing import ClassVar, Iterable, Iterator

import torch
import torch.nn as nn

from hwnas.errors import HwnasError
from hwnas.ops import OpSpec


class Supernet(nn.Module):
    """What every supernet shares: pair its blocks with ``space.ops(arch)``, run the pairs,
    and load their sliced weights into ``space.build_model(arch)``.

    A family supplies ``block_for`` ({op class: elastic block class}), ``_slots(arch)`` (the
    blocks an arch runs, in the order of ``space.ops``) and ``_static_blocks(static)`` (the
    matching modules of the static model, in the same order).
    """

    block_for: ClassVar[dict[type, type]] = {}

    def __init__(self, space):
        super().__init__()
        self.space = space
        self._arch = None
        self._plan: list[tuple[nn.Module, OpSpec]] = []

    def _slots(self, arch) -> Iterator[nn.Module]:
        raise NotImplementedError

    def _static_blocks(self, static: nn.Module) -> Iterable[nn.Module]:
        raise NotImplementedError

    def plan(self, arch) -> list[tuple[nn.Module, OpSpec]]:
        """(elastic block, op) pairs for an architecture; validates it against the space."""
        ops = self.space.ops(arch)
        slots = list(self._slots(arch))
        if len(slots) != len(ops) or any(
                not isinstance(m, self.block_for[type(op)]) for m, op in zip(slots, ops)):
            raise HwnasError("the supernet's blocks do not line up with space.ops(arch); "
                             "the space and the supernet disagree")
        return list(zip(slots, ops))

    def set_active(self, arch) -> None:
        self._plan = self.plan(arch)
        self._arch = arch

    @property
    def active(self):
        return self._arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._arch is None:
            raise HwnasError("no subnet selected: call set_active(arch) first")
        if x.shape[-1] != self._arch.resolution or x.shape[-2] != self._arch.resolution:
            raise HwnasError(f"input is {tuple(x.shape[-2:])} but the active subnet runs at "
                             f"{self._arch.resolution}x{self._arch.resolution}")
        for block, op in self._plan:
            x = block(x, op)
        return x

    def extract(self, arch=None) -> nn.Module:
        """A plain static copy of a subnet: ``space.build_model(arch)`` with these weights."""
        arch = self._arch if arch is None else arch
        if arch is None:
            raise HwnasError("extract needs an architecture (or an active subnet)")
        plan = self.plan(arch)
        # Build on the meta device: the random initialisation would be thrown away anyway.
        with torch.device("meta"):
            static = self.space.build_model(arch)
        blocks = list(self._static_blocks(static))
        if len(blocks) != len(plan):
            raise HwnasError("the static model's blocks do not line up with space.ops(arch)")
        with torch.no_grad():
            for static_block, (block, op) in zip(blocks, plan):
                state = {k: v.detach().clone() for k, v in block.state_for(op).items()}
                static_block.load_state_dict(state, strict=True, assign=True)
        return static.eval()


def make_supernet(space) -> Supernet:
    """The supernet of a space's family (ElasticViT's stages, or a single-stage ViT).

    A family that has one says so with ``SearchSpace.make_supernet``; asking the space (rather
    than importing its family here) lets a family's supernet build on ``Supernet`` without an
    import cycle."""
    make = getattr(space, "make_supernet", None)
    if make is not None:
        return make()
    raise HwnasError(f"no supernet for space {getattr(space, 'name', space)!r}; "
                     f"supernets exist for elasticvit and vit spaces")


def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Reset every BatchNorm's running stats and re-estimate them on ``batches`` (no grad).

    Shared BN statistics belong to no single subnet, so each subnet is re-calibrated before it
    is evaluated. ``momentum=None`` makes the estimate a plain average over the batches.
    Returns the number of batches used; the model is left in eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:  # LayerNorm-only nets (the ViT spaces): nothing to re-estimate, skip the passes
        model.eval()
        return 0
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    n = 0
    model.train()
    try:
        with torch.no_grad():
            for x in batches:
                model(x)
                n += 1
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        model.eval()
    if n == 0:
        raise HwnasError("BatchNorm recalibration got no batches")
    return n
