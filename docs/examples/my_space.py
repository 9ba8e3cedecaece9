"""A small MobileNetV3-like search space, in one file outside hwnas (see docs/extending.md).

    hwnas profile --device local-cpu --space my_space:MySpace -r 64
    hwnas predict --device local-cpu --space my_space:MySpace --arch arch.json
    hwnas search  --device local-cpu --space my_space:MySpace -r 64 --target-latency 2

A space is four things: an architecture type (what one network is), op specs (the blocks a
runtime executes, each with a key, its MACs and parameters, and a torch module), the torch
modules themselves, and the SearchSpace (the choices, and the one walk ``ops(arch)`` from an
architecture to its ops). Everything else (profiling, latency tables, predictors, search)
comes from hwnas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch.nn as nn

from hwnas.arch import register_arch
from hwnas.arch_base import FlatArch
from hwnas.errors import ArchError
from hwnas.ops import DEFAULT_CLASSES, OpSpec, register_op
from hwnas.spaces import SearchSpace, register_space
from hwnas.spaces._util import check, check_resolutions, pad, pick

RESOLUTIONS = (64, 96)
STEM = 16                                  # stem conv output channels
WIDTHS = ((16,), (24, 32), (40, 48))       # width choices per stage
STRIDES = (1, 2, 2)                        # the first block of each stage
DEPTHS = (1, 2)                            # blocks per stage
KERNELS = (3, 5)                           # depthwise kernel, per block
EXPANDS = (3, 6)                           # expansion ratio, per block
HEAD_FEATURES = 256
MAX_LAYERS = len(WIDTHS) * max(DEPTHS)


# --- 1. the architecture ------------------------------------------------------------------------
@register_arch  # hwnas.arch.arch_from_obj reads {"space": "my_space", ...} as a MyArch
@dataclass(frozen=True)
class MyArch(FlatArch):
    """One network: per stage a width and a depth; per block a kernel and an expansion."""

    space: ClassVar[str] = "my_space"
    resolution: int
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]

    def __post_init__(self) -> None:
        self._normalise()  # lists -> tuples, and only integers
        self._check_lengths(len(WIDTHS), ("widths", "depths"), "the stages")
        self._check_lengths(sum(self.depths), ("kernels", "expands"), "the depths")


# --- 2. the ops (and 3. their torch modules) -----------------------------------------------------
def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.Hardswish()) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.body = nn.Sequential(conv_bn(cin, mid, 1), conv_bn(mid, mid, kernel, stride, mid),
                                  conv_bn(mid, cout, 1, act=False))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


@register_op  # hwnas.ops.parse_key rebuilds "mystem_..." keys as MyStem
@dataclass(frozen=True)
class MyStem(OpSpec):
    """3x3 stride-2 conv, 3 -> STEM channels, BN, hard-swish."""

    res: int
    kind: ClassVar[str] = "mystem"
    _pattern: ClassVar[re.Pattern] = re.compile(r"mystem_(?P<res>\d+)")

    @property
    def key(self) -> str:
        return f"mystem_{self.res}"

    @property
    def out_hw(self) -> int:
        return self.res // 2

    def input_shape(self):
        return (1, 3, self.res, self.res)

    def macs(self):
        return self.out_hw**2 * 27 * STEM

    def params(self):
        return 27 * STEM + 2 * STEM

    def module(self):
        return conv_bn(3, STEM, 3, 2)


@register_op
@dataclass(frozen=True)
class MyBlock(OpSpec):
    """Inverted residual: 1x1 expand, k x k depthwise (stride), 1x1 project; residual when the
    shape allows."""

    hw: int
    cin: int
    cout: int
    expand: int
    kernel: int
    stride: int
    kind: ClassVar[str] = "myblock"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"myblock_(?P<hw>\d+)_(?P<cin>\d+)_(?P<cout>\d+)_(?P<expand>\d+)_(?P<kernel>\d+)"
        r"_(?P<stride>\d+)")

    @property
    def key(self) -> str:
        return (f"myblock_{self.hw}_{self.cin}_{self.cout}_{self.expand}_{self.kernel}_"
                f"{self.stride}")

    @property
    def out_hw(self) -> int:
        return self.hw // self.stride

    def input_shape(self):
        return (1, self.cin, self.hw, self.hw)

    def macs(self):
        mid = self.cin * self.expand
        return (self.hw**2 * self.cin * mid + self.out_hw**2 * mid * self.kernel**2
                + self.out_hw**2 * mid * self.cout)

    def params(self):
        mid = self.cin * self.expand
        return self.cin * mid + mid * self.kernel**2 + mid * self.cout + 4 * mid + 2 * self.cout

    def module(self):
        return InvertedResidual(self.cin, self.cout, self.expand, self.kernel, self.stride)


@register_op
@dataclass(frozen=True)
class MyHead(OpSpec):
    """1x1 conv to HEAD_FEATURES, BN, hard-swish, global average pool, linear classifier."""

    hw: int
    c: int
    classes: int = DEFAULT_CLASSES
    kind: ClassVar[str] = "myhead"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"myhead_(?P<hw>\d+)_(?P<c>\d+)_(?P<classes>\d+)")

    @property
    def key(self) -> str:
        return f"myhead_{self.hw}_{self.c}_{self.classes}"

    @property
    def out_hw(self) -> int:
        return 1

    def input_shape(self):
        return (1, self.c, self.hw, self.hw)

    def macs(self):
        return self.hw**2 * self.c * HEAD_FEATURES + HEAD_FEATURES * self.classes

    def params(self):
        return (self.c * HEAD_FEATURES + 2 * HEAD_FEATURES + HEAD_FEATURES * self.classes
                + self.classes)

    def module(self):
        return nn.Sequential(conv_bn(self.c, HEAD_FEATURES, 1), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(HEAD_FEATURES, self.classes))


# --- 4. the space -------------------------------------------------------------------------------
@register_space("my_space")  # also reachable as --space my_space:MySpace
class MySpace(SearchSpace):
    name = "my_space"

    def __init__(self, resolutions=RESOLUTIONS):
        self.resolutions = tuple(resolutions)

    def with_resolutions(self, resolutions) -> "MySpace":
        return MySpace(check_resolutions(resolutions, RESOLUTIONS))

    # --- architectures ------------------------------------------------------------------------
    def validate(self, arch: MyArch) -> MyArch:
        if not isinstance(arch, MyArch):
            raise ArchError(f"not a my_space architecture: {type(arch).__name__}")
        check("resolution", arch.resolution, self.resolutions)
        for i, (w, d) in enumerate(zip(arch.widths, arch.depths)):
            check(f"widths[{i}]", w, WIDTHS[i])
            check(f"depths[{i}]", d, DEPTHS)
        for i, (k, e) in enumerate(zip(arch.kernels, arch.expands)):
            check(f"kernels[{i}]", k, KERNELS)
            check(f"expands[{i}]", e, EXPANDS)
        return arch

    def arch_from_obj(self, obj) -> MyArch:
        return self.validate(MyArch.from_dict(obj))

    def _arch(self, resolution, widths, depths, kernels, expands) -> MyArch:
        return MyArch(resolution, tuple(widths), tuple(depths), tuple(kernels), tuple(expands))

    def sample(self, rng: np.random.Generator) -> MyArch:
        depths = [pick(rng, DEPTHS) for _ in WIDTHS]
        n = sum(depths)
        return self._arch(pick(rng, self.resolutions), [pick(rng, w) for w in WIDTHS], depths,
                          [pick(rng, KERNELS) for _ in range(n)],
                          [pick(rng, EXPANDS) for _ in range(n)])

    def mutate(self, arch: MyArch, rng: np.random.Generator, prob: float = 0.2) -> MyArch:
        def maybe(value, choices):
            return pick(rng, choices) if rng.random() < prob else value

        widths = [maybe(w, WIDTHS[i]) for i, w in enumerate(arch.widths)]
        depths = [maybe(d, DEPTHS) for d in arch.depths]
        kernels, expands = [], []
        for old_layers, depth in zip(self._stages(arch), depths):
            for j in range(depth):  # a new layer starts from a sample, a kept one may mutate
                k, e = old_layers[j] if j < len(old_layers) else (pick(rng, KERNELS),
                                                                   pick(rng, EXPANDS))
                kernels.append(maybe(k, KERNELS))
                expands.append(maybe(e, EXPANDS))
        return self._arch(maybe(arch.resolution, self.resolutions), widths, depths, kernels,
                          expands)

    def crossover(self, a: MyArch, b: MyArch, rng: np.random.Generator) -> MyArch:
        """Whole stages (width, depth and their blocks) from one parent or the other."""
        widths, depths, kernels, expands = [], [], [], []
        for i, (sa, sb) in enumerate(zip(self._stages(a), self._stages(b))):
            src, layers = (a, sa) if rng.random() < 0.5 else (b, sb)
            widths.append(src.widths[i])
            depths.append(src.depths[i])
            kernels += [k for k, _ in layers]
            expands += [e for _, e in layers]
        return self._arch(pick(rng, [a.resolution, b.resolution]), widths, depths, kernels,
                          expands)

    def _stages(self, arch: MyArch) -> list[list[tuple[int, int]]]:
        """Per stage, its blocks' (kernel, expand)."""
        out, i = [], 0
        for d in arch.depths:
            out.append(list(zip(arch.kernels[i:i + d], arch.expands[i:i + d])))
            i += d
        return out

    def _extreme(self, resolution: int, f) -> MyArch:
        check("resolution", resolution, self.resolutions)
        depths = [f(DEPTHS)] * len(WIDTHS)
        n = sum(depths)
        return self._arch(resolution, [f(w) for w in WIDTHS], depths, [f(KERNELS)] * n,
                          [f(EXPANDS)] * n)

    def smallest(self, resolution: int) -> MyArch:
        return self._extreme(resolution, min)

    def largest(self, resolution: int) -> MyArch:
        return self._extreme(resolution, max)

    def encode(self, arch: MyArch) -> np.ndarray:
        return np.array([arch.resolution, *arch.widths, *arch.depths,
                         *pad(arch.kernels, MAX_LAYERS), *pad(arch.expands, MAX_LAYERS)],
                        dtype=float)

    # --- the one walk -------------------------------------------------------------------------
    def ops(self, arch: MyArch) -> list[OpSpec]:
        self.validate(arch)
        ops: list[OpSpec] = [MyStem(arch.resolution)]
        hw, cin = arch.resolution // 2, STEM
        for stage, layers in enumerate(self._stages(arch)):
            cout = arch.widths[stage]
            for j, (k, e) in enumerate(layers):
                op = MyBlock(hw, cin, cout, e, k, STRIDES[stage] if j == 0 else 1)
                ops.append(op)
                hw, cin = op.out_hw, cout
        ops.append(MyHead(hw, cin))
        return ops

    def enumerate_ops(self, resolution: int) -> list[OpSpec]:
        check("resolution", resolution, self.resolutions)
        ops: dict[str, OpSpec] = {}

        def add(op: OpSpec) -> None:
            ops.setdefault(op.key, op)

        add(MyStem(resolution))
        hw, cins = resolution // 2, (STEM,)
        for stage, widths in enumerate(WIDTHS):
            out_hw = hw // STRIDES[stage]
            for k in KERNELS:
                for e in EXPANDS:
                    for cout in widths:
                        for cin in cins:  # the first block: from any width before it
                            add(MyBlock(hw, cin, cout, e, k, STRIDES[stage]))
                        add(MyBlock(out_hw, cout, cout, e, k, 1))  # the blocks after it
            hw, cins = out_hw, widths
        for c in cins:
            add(MyHead(hw, c))
        return list(ops.values())
