"""The ElasticViT search space (``configs/final_3min_space.yaml``), as nn-Meter walks it.

Stage 0 is the conv stem stage (after the 3x3 stride-2 stem conv), stages 1-2 are MBConv stages
(stage 2 with squeeze-excite), stages 3-6 are transformer stages that open with a ``transds``
inverted residual. Stage strides are (1, 2, 2, 2, 1, 2, 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwnas.arch import arch_from_obj
from hwnas.spaces.elasticvit.arch import ElasticViTArch, N_CONV_STAGES
from hwnas.errors import ArchError
from hwnas.ops import OpSpec
from hwnas.spaces.elasticvit.ops import Attention, FFN, Head, MBConv, StemConv, TransDS
from hwnas.spaces.base import SearchSpace
from hwnas.spaces.registry import register_space


@dataclass(frozen=True)
class StageDef:
    kind: str  # "conv" or "trans"
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    stride: int
    se: bool = False
    # conv stages: (expand, kernel) choices; transformer stages: (mlp_ratio, v_scale) choices
    choice_a: tuple[int, ...] = ()
    choice_b: tuple[int, ...] = ()


def _range(lo: int, hi: int, step: int) -> tuple[int, ...]:
    return tuple(range(lo, hi + 1, step))


CONV_EXPAND, KERNELS, MLP_RATIOS, V_SCALES = (3, 4, 5, 6), (3, 5), (2, 3, 4, 5), (2, 3, 4)
ELASTICVIT_STAGES: tuple[StageDef, ...] = (
    StageDef("conv", (16, 24), (1, 2), 1, False, (1,), KERNELS),
    StageDef("conv", _range(16, 32, 8), _range(2, 5, 1), 2, False, CONV_EXPAND, KERNELS),
    StageDef("conv", _range(16, 48, 8), _range(2, 6, 1), 2, True, CONV_EXPAND, KERNELS),
    StageDef("trans", _range(48, 96, 16), _range(1, 5, 1), 2, False, MLP_RATIOS, V_SCALES),
    StageDef("trans", _range(80, 160, 16), _range(1, 6, 1), 1, False, MLP_RATIOS, V_SCALES),
    StageDef("trans", _range(144, 288, 16), _range(1, 6, 1), 2, False, MLP_RATIOS, V_SCALES),
    StageDef("trans", _range(160, 320, 16), _range(1, 6, 1), 2, False, MLP_RATIOS, V_SCALES),
)
ELASTICVIT_RESOLUTIONS = (128, 160, 176, 192, 224, 256)
_LAYER_FIELDS = {"conv": ("conv_expand", "conv_kernel"), "trans": ("mlp_ratio", "v_scale")}


def _allowed(values: tuple[int, ...]) -> str:
    steps = {b - a for a, b in zip(values, values[1:])}
    if len(values) > 3 and len(steps) == 1:
        return f"{values[0]}..{values[-1]} step {steps.pop()}"
    return "{" + ", ".join(map(str, values)) + "}"


@register_space("elasticvit")
class ElasticViTSpace(SearchSpace):
    name = "elasticvit"

    def __init__(self, resolutions=ELASTICVIT_RESOLUTIONS, stages=ELASTICVIT_STAGES,
                 classes: int = 1000):
        self.resolutions = tuple(resolutions)
        self.stages = stages
        self.classes = classes

    def with_resolutions(self, resolutions) -> "ElasticViTSpace":
        bad = [r for r in resolutions if r not in ELASTICVIT_RESOLUTIONS]
        if bad:
            raise ArchError(f"resolution {bad[0]} not allowed; allowed: "
                            f"{_allowed(ELASTICVIT_RESOLUTIONS)}")
        return ElasticViTSpace(tuple(sorted(set(resolutions))), self.stages, self.classes)

    def with_classes(self, classes: int) -> "ElasticViTSpace":
        return ElasticViTSpace(self.resolutions, self.stages, classes)

    def make_supernet(self):
        """The weight-sharing supernet over this space (torch, imported on use)."""
        from hwnas.spaces.elasticvit.supernet import ElasticViTSupernet

        return ElasticViTSupernet(self)

    # --- validation ----------------------------------------------------------------------
    def validate(self, arch: ElasticViTArch) -> ElasticViTArch:
        if not isinstance(arch, ElasticViTArch):
            raise ArchError(f"not an elasticvit architecture: {type(arch).__name__}")
        if arch.resolution not in self.resolutions:
            raise ArchError(f"resolution={arch.resolution} not allowed; allowed: "
                            f"{_allowed(self.resolutions)}")
        for i, st in enumerate(self.stages):
            self._check(f"channels[{i}]", arch.channels[i], st.widths)
            self._check(f"depths[{i}]", arch.depths[i], st.depths)
            fa, fb = _LAYER_FIELDS[st.kind]
            offset = self._layer_offset(arch, i)
            for j, (a, b) in enumerate(arch.stage_layers(i)):
                self._check(f"{fa}[{offset + j}] (stage {i})", a, st.choice_a)
                self._check(f"{fb}[{offset + j}] (stage {i})", b, st.choice_b)
        return arch

    @staticmethod
    def _check(field: str, value: int, allowed: tuple[int, ...]) -> None:
        if value not in allowed:
            raise ArchError(f"{field}={value} not allowed; allowed: {_allowed(allowed)}")

    def _layer_offset(self, arch: ElasticViTArch, stage: int) -> int:
        first = 0 if stage < N_CONV_STAGES else N_CONV_STAGES
        return sum(arch.depths[first:stage])

    def arch_from_obj(self, obj) -> ElasticViTArch:
        return self.validate(arch_from_obj(obj))

    # --- building architectures from per-stage choices -----------------------------------
    @staticmethod
    def _assemble(res: int, stages: list[tuple[int, list[tuple[int, int]]]]) -> ElasticViTArch:
        """stages: per stage (width, [(a, b) per layer])."""
        conv = [ab for _, layers in stages[:N_CONV_STAGES] for ab in layers]
        trans = [ab for _, layers in stages[N_CONV_STAGES:] for ab in layers]
        return ElasticViTArch(
            res, tuple(w for w, _ in stages), tuple(len(l) for _, l in stages),
            tuple(a for a, _ in conv), tuple(b for _, b in conv),
            tuple(a for a, _ in trans), tuple(b for _, b in trans),
        )

    @staticmethod
    def _split(arch: ElasticViTArch) -> list[tuple[int, list[tuple[int, int]]]]:
        return [(arch.channels[i], arch.stage_layers(i)) for i in range(len(arch.channels))]

    def _sample_layer(self, st: StageDef, rng) -> tuple[int, int]:
        return int(rng.choice(st.choice_a)), int(rng.choice(st.choice_b))

    def _sample_stage(self, st: StageDef, rng) -> tuple[int, list[tuple[int, int]]]:
        depth = int(rng.choice(st.depths))
        return int(rng.choice(st.widths)), [self._sample_layer(st, rng) for _ in range(depth)]

    def sample(self, rng: np.random.Generator) -> ElasticViTArch:
        res = int(rng.choice(self.resolutions))
        return self._assemble(res, [self._sample_stage(st, rng) for st in self.stages])

    def mutate(self, arch: ElasticViTArch, rng: np.random.Generator,
               prob: float = 0.2) -> ElasticViTArch:
        """Resample each choice (resolution, width, depth, per-layer choice) with ``prob``."""
        res = int(rng.choice(self.resolutions)) if rng.random() < prob else arch.resolution
        out = []
        for st, (width, layers) in zip(self.stages, self._split(arch)):
            if rng.random() < prob:
                width = int(rng.choice(st.widths))
            if rng.random() < prob:
                depth = int(rng.choice(st.depths))
                layers = layers[:depth] + [self._sample_layer(st, rng)
                                           for _ in range(depth - len(layers))]
            layers = [self._sample_layer(st, rng) if rng.random() < prob else ab for ab in layers]
            out.append((width, layers))
        return self._assemble(res, out)

    def crossover(self, a: ElasticViTArch, b: ElasticViTArch,
                  rng: np.random.Generator) -> ElasticViTArch:
        """Uniform crossover over whole stages (a stage's width, depth and layers travel together)."""
        res = a.resolution if rng.random() < 0.5 else b.resolution
        sa, sb = self._split(a), self._split(b)
        return self._assemble(res, [x if rng.random() < 0.5 else y for x, y in zip(sa, sb)])

    def _extreme(self, resolution: int, pick) -> ElasticViTArch:
        if resolution not in self.resolutions:
            raise ArchError(f"resolution={resolution} not allowed; allowed: "
                            f"{_allowed(self.resolutions)}")
        stages = [(pick(st.widths), [(pick(st.choice_a), pick(st.choice_b))] * pick(st.depths))
                  for st in self.stages]
        return self._assemble(resolution, stages)

    def smallest(self, resolution: int) -> ElasticViTArch:
        # kernel 3 and v-scale 2 are the cheap ends, which are also the minima
        return self._extreme(resolution, min)

    def largest(self, resolution: int) -> ElasticViTArch:
        return self._extreme(resolution, max)

    # --- the one walk ----------------------------------------------------------------------
    def ops(self, arch: ElasticViTArch) -> list[OpSpec]:
        self.validate(arch)
        stem = StemConv(arch.resolution, arch.channels[0])
        ops: list[OpSpec] = [stem]
        hw, cin = stem.out_hw, arch.channels[0]
        for i, st in enumerate(self.stages):
            cout = arch.channels[i]
            for j, (a, b) in enumerate(arch.stage_layers(i)):
                s = st.stride if j == 0 else 1
                if st.kind == "conv":
                    ops.append(MBConv(hw, cin, cout, a, s, b, int(st.se)))
                    hw = ops[-1].out_hw
                else:
                    if j == 0:
                        ops.append(TransDS(hw, cin, cout, s))
                        hw = ops[-1].out_hw
                    ops.append(Attention(hw, cout, b))
                    ops.append(FFN(hw, cout, a))
                cin = cout
        ops.append(Head(hw, cin, classes=self.classes))
        return ops

    def stage_hw(self, resolution: int) -> list[tuple[int, int]]:
        """(input hw, output hw) of each stage at a resolution."""
        hw, out = resolution // 2, []
        for st in self.stages:
            out.append((hw, hw // st.stride))
            hw //= st.stride
        return out

    def enumerate_ops(self, resolution: int) -> list[OpSpec]:
        ops: dict[str, OpSpec] = {}

        def add(op: OpSpec) -> None:
            ops.setdefault(op.key, op)

        for c in self.stages[0].widths:
            add(StemConv(resolution, c))
        prev_widths = self.stages[0].widths
        for st, (hw_in, hw_out) in zip(self.stages, self.stage_hw(resolution)):
            for cout in st.widths:
                cins = prev_widths
                for cin in cins:
                    self._enumerate_first(st, hw_in, cin, cout, add)
                if st.kind == "conv" and max(st.depths) > 1:
                    for a in st.choice_a:
                        for b in st.choice_b:
                            add(MBConv(hw_out, cout, cout, a, 1, b, int(st.se)))
                elif st.kind == "trans":
                    for a in st.choice_a:
                        add(FFN(hw_out, cout, a))
                    for b in st.choice_b:
                        add(Attention(hw_out, cout, b))
            prev_widths = st.widths
        for c in prev_widths:
            add(Head(self.stage_hw(resolution)[-1][1], c, classes=self.classes))
        return list(ops.values())

    @staticmethod
    def _enumerate_first(st: StageDef, hw: int, cin: int, cout: int, add) -> None:
        if st.kind == "trans":
            add(TransDS(hw, cin, cout, st.stride))
            return
        for a in st.choice_a:
            for b in st.choice_b:
                add(MBConv(hw, cin, cout, a, st.stride, b, int(st.se)))

    # --- features --------------------------------------------------------------------------
    def encode(self, arch: ElasticViTArch) -> np.ndarray:
        """Resolution, widths, depths, then per-layer choices padded with 0 to the max depth."""
        vec = [arch.resolution, *arch.channels, *arch.depths]
        for i, st in enumerate(self.stages):
            layers = arch.stage_layers(i)
            pad = [(0, 0)] * (max(st.depths) - len(layers))
            for a, b in layers + pad:
                vec += [a, b]
        return np.asarray(vec, dtype=np.float64)


def elasticvit_named() -> dict[str, ElasticViTArch]:
    """ElasticViT's published models (configs/final_3min_space_eval.yaml)."""
    lists = {
        "elastic_T1": [128, [16, 24, 32, 64, 96, 176, 272], [1, 2, 3, 1, 1, 1, 1], [1, 3, 3, 3, 3, 3], [3, 3, 3, 3, 3, 3], [2, 2, 3, 4], [4, 6, 11, 17], [1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 2, 2]],  # noqa: E501
        "elastic_T2": [160, [16, 24, 40, 48, 96, 176, 256], [1, 2, 3, 1, 1, 2, 2], [1, 3, 3, 3, 3, 3], [3, 3, 3, 3, 3, 3], [3, 4, 3, 3, 2, 2], [3, 6, 11, 11, 16, 16], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2]],  # noqa: E501
        "elastic_S1": [192, [16, 24, 40, 64, 96, 192, 272], [1, 3, 3, 2, 2, 2, 2], [1, 3, 3, 3, 3, 3, 3], [3, 3, 3, 3, 3, 3, 3], [2, 2, 2, 2, 3, 3, 4, 4], [4, 4, 6, 6, 12, 12, 17, 17], [1] * 8, [1] * 8, [2] * 8],  # noqa: E501
        "elastic_M": [224, [16, 32, 48, 64, 96, 192, 288], [1, 3, 5, 2, 2, 2, 2], [1, 3, 3, 3, 3, 3, 3, 3, 3], [5, 3, 3, 3, 3, 3, 3, 3, 3], [2, 2, 4, 4, 4, 4, 5, 5], [4, 4, 6, 6, 12, 12, 18, 18], [1] * 8, [1] * 8, [2] * 8],  # noqa: E501
        "elastic_L3": [256, [16, 32, 48, 80, 128, 256, 320], [1, 3, 4, 2, 2, 2, 2], [1, 5, 5, 5, 5, 5, 5, 5], [5, 3, 3, 3, 5, 5, 5, 5], [4, 4, 4, 4, 3, 3, 5, 5], [5, 5, 8, 8, 16, 16, 20, 20], [1] * 8, [1] * 8, [2] * 8],  # noqa: E501
    }
    return {k: ElasticViTArch.from_elasticvit_list(v) for k, v in lists.items()}
