"""NAS-Bench-201's cell space (``nb201``), on HW-NAS-Bench's CIFAR skeleton.

The network: stem (3x3 conv to 16 channels, BN), three stages of 5 cells at 16, 32, 64 channels
with a ResNet basic block (stride 2) between stages, then BN, ReLU, global pool and a classifier
(100 classes: CIFAR-100, which HELP's latencies were measured on). Every cell is the same
architecture: 6 edges, each one of 5 ops (15,625 networks).

The walk prices only what runs: per cell, each live conv or pool edge and each node's add of two
or more live inputs; ``none`` edges, edges off every path from input to output, and identity
skips have no op (see NB201Arch.live_edges). A cell with no path from input to output outputs
zeros: it is one ``nb201zero`` op (x * 0), so the stem and reductions still run on a real tensor.
"""

from __future__ import annotations

import itertools
from typing import Iterable

import numpy as np

from hwnas.arch import arch_from_obj
from hwnas.errors import ArchError
from hwnas.ops import OpSpec
from hwnas.spaces._util import check, check_resolutions, pick
from hwnas.spaces.base import SearchSpace
from hwnas.spaces.nb201.arch import EDGES, NB201_OPS, NB201_RESOLUTION, NODES, NB201Arch
from hwnas.spaces.nb201.ops import (NB201Conv, NB201Head, NB201Pool, NB201ResBlock, NB201Stem,
                                    NB201Sum, NB201Zero)
from hwnas.spaces.registry import register_space

CHANNELS = (16, 32, 64)  # per stage (TinyNetwork's C, 2C, 4C with C = 16)
CELLS_PER_STAGE = 5      # N
NB201_CLASSES = 100      # CIFAR-100 (HELP); CIFAR-10 would be 10
_EDGE_OPS = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}  # op name -> conv kernel


class NB201Space(SearchSpace):
    name = "nb201"

    def __init__(self, resolutions: Iterable[int] = (NB201_RESOLUTION,),
                 classes: int = NB201_CLASSES):
        self.resolutions = tuple(resolutions)
        self.classes = classes

    def with_resolutions(self, resolutions) -> "NB201Space":
        return NB201Space(check_resolutions(resolutions, self.resolutions), self.classes)

    # --- validation ----------------------------------------------------------------------
    def validate(self, arch: NB201Arch) -> NB201Arch:
        if not isinstance(arch, NB201Arch):
            raise ArchError(f"not an nb201 architecture: {type(arch).__name__}")
        check("resolution", arch.resolution, self.resolutions)
        for i, op in enumerate(arch.edges):
            if op not in NB201_OPS:
                raise ArchError(f"edges[{i}]={op} not allowed; allowed: "
                                f"{{{', '.join(NB201_OPS)}}}")
        return arch

    def arch_from_obj(self, obj) -> NB201Arch:
        """hwnas JSON, or NAS-Bench-201's cell string ``|op~0|+|op~0|op~1|+|...|``."""
        if isinstance(obj, str):
            return self.validate(NB201Arch.from_native(obj, self.resolutions[-1]))
        if isinstance(obj, dict) and obj.get("space", NB201Arch.space) == NB201Arch.space:
            return self.validate(NB201Arch.from_dict(obj))
        return self.validate(arch_from_obj(obj))

    def enumerate_archs(self, resolution: int | None = None) -> list[NB201Arch]:
        """All 15,625 cells, the 6 edges varying as digits in NB201_OPS's order (the first edge
        slowest). NAS-Bench-201's own index (HELP's ``str_arch2idx``) is another order, its
        benchmark file's: look it up by ``arch.native()``."""
        res = self.resolutions[-1] if resolution is None else resolution
        check("resolution", res, self.resolutions)
        return [NB201Arch(res, edges) for edges in itertools.product(NB201_OPS, repeat=len(EDGES))]

    # --- architectures from choices --------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> NB201Arch:
        return NB201Arch(pick(rng, self.resolutions),
                         tuple(pick(rng, NB201_OPS) for _ in EDGES))

    def mutate(self, arch: NB201Arch, rng: np.random.Generator, prob: float = 0.2) -> NB201Arch:
        """Each edge's op resampled with ``prob`` (to another op: a mutation that picks the same
        op would be a wasted draw)."""
        self.validate(arch)
        res = pick(rng, self.resolutions) if rng.random() < prob else arch.resolution
        edges = [pick(rng, [o for o in NB201_OPS if o != op]) if rng.random() < prob else op
                 for op in arch.edges]
        return NB201Arch(res, tuple(edges))

    def crossover(self, a: NB201Arch, b: NB201Arch, rng: np.random.Generator) -> NB201Arch:
        res = a.resolution if rng.random() < 0.5 else b.resolution
        return NB201Arch(res, tuple(x if rng.random() < 0.5 else y
                                    for x, y in zip(a.edges, b.edges)))

    def smallest(self, resolution: int) -> NB201Arch:
        """Every edge ``none``: only the skeleton runs."""
        check("resolution", resolution, self.resolutions)
        return NB201Arch(resolution, ("none",) * len(EDGES))

    def largest(self, resolution: int) -> NB201Arch:
        check("resolution", resolution, self.resolutions)
        return NB201Arch(resolution, ("nor_conv_3x3",) * len(EDGES))

    def encode(self, arch: NB201Arch) -> np.ndarray:
        """One-hot of each edge's op (6 edges x 5 ops, in NB201_OPS's order): 30 numbers."""
        self.validate(arch)
        vec = np.zeros((len(EDGES), len(NB201_OPS)))
        for k, op in enumerate(arch.edges):
            vec[k, NB201_OPS.index(op)] = 1.0
        return vec.ravel()

    # --- the one walk ----------------------------------------------------------------------
    def stage_hw(self, resolution: int) -> list[int]:
        """The side of each stage's feature maps (the stem keeps the input's)."""
        return [resolution // 2**s for s in range(len(CHANNELS))]

    def cell_plan(self, arch: NB201Arch, hw: int, c: int) -> list[tuple[int, int, str, OpSpec | None]]:
        """The live edges of one cell at (hw, c): (to, src, op name, its OpSpec; None for the
        identity skip), in the cell string's order."""
        plan = []
        for (to, src), op, live in zip(EDGES, arch.edges, arch.live_edges()):
            if live:
                plan.append((to, src, op, self._edge_op(op, hw, c)))
        return plan

    @staticmethod
    def _edge_op(op: str, hw: int, c: int) -> OpSpec | None:
        if op in _EDGE_OPS:
            return NB201Conv(hw, c, _EDGE_OPS[op])
        if op == "avg_pool_3x3":
            return NB201Pool(hw, c)
        return None  # skip_connect: the identity

    def _cell_ops(self, arch: NB201Arch, hw: int, c: int) -> list[OpSpec]:
        plan = self.cell_plan(arch, hw, c)
        if not plan:
            return [NB201Zero(hw, c)]
        ops: list[OpSpec] = []
        for node in range(1, NODES):
            into = [spec for to, _, _, spec in plan if to == node]
            ops += [spec for spec in into if spec is not None]
            if len(into) >= 2:
                ops.append(NB201Sum(hw, c, len(into)))
        return ops

    def ops(self, arch: NB201Arch) -> list[OpSpec]:
        self.validate(arch)
        hws = self.stage_hw(arch.resolution)
        ops: list[OpSpec] = [NB201Stem(arch.resolution, CHANNELS[0])]
        for s, (hw, c) in enumerate(zip(hws, CHANNELS)):
            if s:
                ops.append(NB201ResBlock(hws[s - 1], CHANNELS[s - 1], c))
            cell = self._cell_ops(arch, hw, c)
            ops += cell * CELLS_PER_STAGE
        ops.append(NB201Head(hws[-1], CHANNELS[-1], self.classes))
        return ops

    def enumerate_ops(self, resolution: int) -> list[OpSpec]:
        check("resolution", resolution, self.resolutions)
        hws = self.stage_hw(resolution)
        ops: list[OpSpec] = [NB201Stem(resolution, CHANNELS[0])]
        for s, (hw, c) in enumerate(zip(hws, CHANNELS)):
            if s:
                ops.append(NB201ResBlock(hws[s - 1], CHANNELS[s - 1], c))
            ops += [NB201Conv(hw, c, 1), NB201Conv(hw, c, 3), NB201Pool(hw, c),
                    NB201Sum(hw, c, 2), NB201Sum(hw, c, 3), NB201Zero(hw, c)]
        ops.append(NB201Head(hws[-1], CHANNELS[-1], self.classes))
        return ops

    def build_model(self, arch: NB201Arch):
        """The real network: stem, cells (the DAG of their live edges, each edge the module of
        its op), reductions, head. Its ONNX holds exactly the walk's ops."""
        import torch.nn as nn

        from hwnas.spaces.nb201.blocks import Cell

        self.validate(arch)
        hws = self.stage_hw(arch.resolution)
        layers = [NB201Stem(arch.resolution, CHANNELS[0]).module()]
        for s, (hw, c) in enumerate(zip(hws, CHANNELS)):
            if s:
                layers.append(NB201ResBlock(hws[s - 1], CHANNELS[s - 1], c).module())
            for _ in range(CELLS_PER_STAGE):
                plan = self.cell_plan(arch, hw, c)
                if not plan:
                    layers.append(NB201Zero(hw, c).module())
                    continue
                layers.append(Cell([(to, src, nn.Identity() if spec is None else spec.module())
                                    for to, src, _, spec in plan], NODES))
        layers.append(NB201Head(hws[-1], CHANNELS[-1], self.classes).module())
        return nn.Sequential(*layers).eval()


@register_space("nb201")
def nb201_space() -> NB201Space:
    return NB201Space()
