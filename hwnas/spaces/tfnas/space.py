"""TF-NAS's MobileNet space (``tfnas``): six stages of MBInvertedResBlocks after a fixed stem.

Its three freedoms (Hu et al., ECCV 2020), as hwnas searches them:

* operation: per block, kernel {3, 5} x expansion {3, 6} x squeeze-excite on/off (TF-NAS's eight
  ``MBI_k*_e*[_se]`` ops; SE width = cin for e3, 2 * cin for e6);
* depth: per stage 1..2, 1..3, 1..4, 1..4, 1..4 and exactly 1 blocks (its sink-connecting space);
* width: each block's mid channels, between half its maximum and its maximum (4 * cin for e3,
  8 * cin for e6). Sampling, mutation and crossover keep TF-NAS's nominal width (e * cin); the
  width is then fitted to a latency target by elasticity scaling (``hwnas.spaces.elasticity``).

Op keys are TF-NAS's table keys plus ``_mid{M}``, and ``base``, so TF-NAS's own latency tables
(imported as ``titan-rtx`` and ``xeon-gold-6130``) price every architecture here directly.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from hwnas.arch import arch_from_obj
from hwnas.spaces.tfnas.arch import TFNAS_STAGES, TFNASArch, se_width
from hwnas.errors import ArchError
from hwnas.ops import OpSpec
from hwnas.spaces.tfnas.ops import TFNASBase, TFNASBlock
from hwnas.spaces._util import check, check_resolutions, pad, pick
from hwnas.spaces.base import SearchSpace
from hwnas.spaces.registry import register_space

KERNELS, EXPANDS, SE = (3, 5), (3, 6), (0, 1)
TFNAS_RESOLUTIONS = (224,)  # TF-NAS's tables exist at 224 only
MAX_MID_PER_CIN = {3: 4, 6: 8}  # TF-NAS's mc_mask_dddict: e3 up to 4 * cin, e6 up to 8 * cin

Op = tuple[int, int, int]  # (kernel, expand, se)


def mid_bounds(cin: int, expand: int) -> tuple[int, int]:
    """TF-NAS's bound_clip: a mid width lies in [max // 2, max]."""
    hi = MAX_MID_PER_CIN[expand] * cin
    return hi // 2, hi


class TFNASSpace(SearchSpace):
    name = "tfnas"

    def __init__(self, resolutions: Iterable[int] = TFNAS_RESOLUTIONS, classes: int = 1000):
        if classes != 1000:
            raise ArchError("TF-NAS's 'base' is priced with a 1000-class classifier; "
                            "allowed classes: {1000}")
        self.resolutions = tuple(resolutions)
        self.stages = TFNAS_STAGES

    def with_resolutions(self, resolutions) -> "TFNASSpace":
        return TFNASSpace(check_resolutions(resolutions, TFNAS_RESOLUTIONS))

    # --- validation ----------------------------------------------------------------------
    def validate(self, arch: TFNASArch) -> TFNASArch:
        if not isinstance(arch, TFNASArch):
            raise ArchError(f"not a tfnas architecture: {type(arch).__name__}")
        check("resolution", arch.resolution, self.resolutions)
        for s, st in enumerate(self.stages):
            check(f"depths[{s}]", arch.depths[s], range(1, st.max_depth + 1))
        for i, (s, j, k, e, se, mid) in enumerate(arch.blocks()):
            check(f"kernels[{i}]", k, KERNELS)
            check(f"expands[{i}]", e, EXPANDS)
            check(f"se[{i}]", se, SE)
            lo, hi = mid_bounds(self.stages[s].block_io(j)[0], e)
            if not lo <= mid <= hi:
                raise ArchError(f"mids[{i}]={mid} not allowed for expansion {e} in stage "
                                f"{s + 1}; allowed: {lo}..{hi}")
        return arch

    def arch_from_obj(self, obj) -> TFNASArch:
        """hwnas JSON, or TF-NAS's own model.config (a dict with 'stage1' .. 'stage6')."""
        if isinstance(obj, dict) and "stage1" in obj:
            return self.validate(TFNASArch.from_tfnas_config(obj, self.resolutions[-1]))
        return self.validate(arch_from_obj(obj))

    # --- architectures from choices --------------------------------------------------------
    def _assemble(self, res: int, stages: list[list[tuple[Op, int]]]) -> TFNASArch:
        """stages: per stage, per block ((kernel, expand, se), mid)."""
        blocks = [b for st in stages for b in st]
        return TFNASArch(res, tuple(len(st) for st in stages),
                         tuple(op[0] for op, _ in blocks), tuple(op[1] for op, _ in blocks),
                         tuple(op[2] for op, _ in blocks), tuple(mid for _, mid in blocks))

    def _split(self, arch: TFNASArch) -> list[list[tuple[Op, int]]]:
        stages: list[list[tuple[Op, int]]] = [[] for _ in self.stages]
        for s, _, k, e, se, mid in arch.blocks():
            stages[s].append(((k, e, se), mid))
        return stages

    def _block(self, s: int, j: int, op: Op) -> tuple[Op, int]:
        """A block with TF-NAS's nominal width, expand x cin."""
        return op, op[1] * self.stages[s].block_io(j)[0]

    def _sample_block(self, s: int, j: int, rng) -> tuple[Op, int]:
        return self._block(s, j, (pick(rng, KERNELS), pick(rng, EXPANDS), pick(rng, SE)))

    def _sample_stage(self, s: int, rng) -> list[tuple[Op, int]]:
        depth = pick(rng, range(1, self.stages[s].max_depth + 1))
        return [self._sample_block(s, j, rng) for j in range(depth)]

    def sample(self, rng: np.random.Generator) -> TFNASArch:
        res = pick(rng, self.resolutions)
        return self._assemble(res, [self._sample_stage(s, rng) for s in range(len(self.stages))])

    def mutate(self, arch: TFNASArch, rng: np.random.Generator, prob: float = 0.2) -> TFNASArch:
        """Resample each stage's depth and each block's op with ``prob`` (a new op gets the
        nominal width; untouched blocks keep theirs)."""
        res = pick(rng, self.resolutions) if rng.random() < prob else arch.resolution
        out = []
        for s, blocks in enumerate(self._split(arch)):
            if rng.random() < prob:
                depth = pick(rng, range(1, self.stages[s].max_depth + 1))
                blocks = blocks[:depth] + [self._sample_block(s, j, rng)
                                           for j in range(len(blocks), depth)]
            out.append([self._sample_block(s, j, rng) if rng.random() < prob else b
                        for j, b in enumerate(blocks)])
        return self._assemble(res, out)

    def crossover(self, a: TFNASArch, b: TFNASArch, rng: np.random.Generator) -> TFNASArch:
        res = a.resolution if rng.random() < 0.5 else b.resolution
        return self._assemble(res, [x if rng.random() < 0.5 else y
                                    for x, y in zip(self._split(a), self._split(b))])

    def _extreme(self, resolution: int, op: Op, fn) -> TFNASArch:
        check("resolution", resolution, self.resolutions)
        return self._assemble(resolution, [[self._block(s, j, op) for j in range(
            fn(range(1, st.max_depth + 1)))] for s, st in enumerate(self.stages)])

    def smallest(self, resolution: int) -> TFNASArch:
        """Fewest blocks, k3 e3 without SE, nominal widths (what search can reach; elasticity
        scaling can shrink mid widths further, to half their maximum)."""
        return self._extreme(resolution, (3, 3, 0), min)

    def largest(self, resolution: int) -> TFNASArch:
        return self._extreme(resolution, (5, 6, 1), max)

    def encode(self, arch: TFNASArch) -> np.ndarray:
        """Depths, then per stage each block's kernel, expansion, SE and mid width (0-padded)."""
        vec: list[float] = list(arch.depths)
        for s, blocks in enumerate(self._split(arch)):
            flat = [v for (k, e, se), mid in blocks for v in (k, e, se, mid)]
            vec += pad(flat, 4 * self.stages[s].max_depth)
        return np.asarray(vec, dtype=np.float64)

    # --- the one walk ----------------------------------------------------------------------
    def _stage_hw(self, resolution: int) -> list[int]:
        """Input side of each stage (the stem halves the image; 'base' covers it)."""
        hw, out = TFNASBase(resolution).parts[1].out_hw, []
        for st in self.stages:
            out.append(hw)
            hw = (hw - 1) // st.stride + 1
        return out

    def _op(self, hw: int, s: int, j: int, k: int, e: int, se: int, mid: int) -> TFNASBlock:
        st = self.stages[s]
        cin, stride = st.block_io(j)
        hw_in = hw if j == 0 else (hw - 1) // st.stride + 1
        return TFNASBlock(hw_in, cin, se_width(cin, e, se), st.cout, k, stride, st.act, mid)

    def ops(self, arch: TFNASArch) -> list[OpSpec]:
        self.validate(arch)
        hws = self._stage_hw(arch.resolution)
        ops: list[OpSpec] = [TFNASBase(arch.resolution)]
        ops += [self._op(hws[s], s, j, k, e, se, mid) for s, j, k, e, se, mid in arch.blocks()]
        return ops

    def enumerate_ops(self, resolution: int) -> list[OpSpec]:
        """'base' and every block at its nominal width (what sample/mutate/crossover produce)."""
        check("resolution", resolution, self.resolutions)
        ops: dict[str, OpSpec] = {"base": TFNASBase(resolution)}
        for s, (st, hw) in enumerate(zip(self.stages, self._stage_hw(resolution))):
            for j in range(min(st.max_depth, 2)):  # blocks 2.. of a stage share one shape
                for k in KERNELS:
                    for e in EXPANDS:
                        for se in SE:
                            op = self._op(hw, s, j, k, e, se, e * st.block_io(j)[0])
                            ops[op.key] = op
        return list(ops.values())

    def build_model(self, arch: TFNASArch):
        """Stem and second stem, the blocks, then the head: 'base' split into its places."""
        import torch.nn as nn

        base, *blocks = self.ops(arch)
        stem, second, head = (p.module() for p in base.parts)
        return nn.Sequential(stem, second, *(op.module() for op in blocks), head).eval()

    # --- widths, for elasticity scaling ------------------------------------------------
    def widths(self, arch: TFNASArch) -> list[int]:
        return list(arch.mids)

    def width_bounds(self, arch: TFNASArch) -> list[tuple[int, int]]:
        """(min, max) mid width of each block."""
        return [mid_bounds(self.stages[s].block_io(j)[0], e) for s, j, _, e, _, _ in arch.blocks()]

    def width_groups(self, arch: TFNASArch) -> list[int]:
        """The stage of each block: elasticity re-grows later stages first-to-last."""
        return [s for s, *_ in arch.blocks()]

    def with_widths(self, arch: TFNASArch, widths) -> TFNASArch:
        return self.validate(TFNASArch(arch.resolution, arch.depths, arch.kernels, arch.expands,
                                       arch.se, tuple(int(w) for w in widths)))


@register_space("tfnas")
def tfnas_space() -> TFNASSpace:
    return TFNASSpace()

