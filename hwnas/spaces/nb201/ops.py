"""OpSpecs of NAS-Bench-201 networks (HW-NAS-Bench's CIFAR skeleton).

Every key starts with ``nb201`` and names the op and its shape (``hw`` is the input side):

* ``nb201stem_{res}_{c}``: 3x3 conv 3 -> c (pad 1) and BN;
* ``nb201conv_{hw}_{c}_k{k}``: a ``nor_conv_kxk`` edge, ReLU-Conv-BN, c -> c, stride 1;
* ``nb201pool_{hw}_{c}``: an ``avg_pool_3x3`` edge (stride 1, pad 1, padding not counted);
* ``nb201sum_{hw}_{c}_n{n}``: a node adding the outputs of its n >= 2 live edges;
* ``nb201zero_{hw}_{c}``: a cell with no live path (its output is zeros: x * 0);
* ``nb201resblock_{hw}_{cin}_{cout}``: the ResNet basic block between stages (stride 2);
* ``nb201head_{hw}_{c}_{classes}``: BN, ReLU, global average pool, linear classifier.

``skip_connect`` inside a cell is the identity: it costs nothing by itself, only the add of the
node it feeds (counted in ``nb201sum``), so it has no op of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from hwnas.ops import OpSpec, register_op


@register_op
@dataclass(frozen=True)
class NB201Stem(OpSpec):
    res: int
    c: int
    kind: ClassVar[str] = "nb201stem"
    _pattern: ClassVar[re.Pattern] = re.compile(r"nb201stem_(?P<res>\d+)_(?P<c>\d+)")

    @property
    def key(self) -> str:
        return f"nb201stem_{self.res}_{self.c}"

    @property
    def out_hw(self) -> int:
        return self.res

    def input_shape(self):
        return (1, 3, self.res, self.res)

    def macs(self):
        return self.res**2 * 27 * self.c

    def params(self):
        return 27 * self.c + 2 * self.c

    def module(self):
        from hwnas.spaces.nb201.blocks import stem

        return stem(self.c)


class _Cell(OpSpec):
    """Ops inside a cell: c -> c at hw x hw."""

    @property
    def out_hw(self) -> int:
        return self.hw

    def input_shape(self):
        return (1, self.c, self.hw, self.hw)

    def macs(self):
        return 0

    def params(self):
        return 0


@register_op
@dataclass(frozen=True)
class NB201Conv(_Cell):
    hw: int
    c: int
    kernel: int
    kind: ClassVar[str] = "nb201conv"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"nb201conv_(?P<hw>\d+)_(?P<c>\d+)_k(?P<kernel>\d+)")

    @property
    def key(self) -> str:
        return f"nb201conv_{self.hw}_{self.c}_k{self.kernel}"

    def macs(self):
        return self.hw**2 * self.c**2 * self.kernel**2

    def params(self):
        return self.c**2 * self.kernel**2 + 2 * self.c

    def module(self):
        from hwnas.spaces.nb201.blocks import ReLUConvBN

        return ReLUConvBN(self.c, self.c, self.kernel, 1)


@register_op
@dataclass(frozen=True)
class NB201Pool(_Cell):
    hw: int
    c: int
    kind: ClassVar[str] = "nb201pool"
    _pattern: ClassVar[re.Pattern] = re.compile(r"nb201pool_(?P<hw>\d+)_(?P<c>\d+)")

    @property
    def key(self) -> str:
        return f"nb201pool_{self.hw}_{self.c}"

    def module(self):
        from hwnas.spaces.nb201.blocks import avg_pool

        return avg_pool()


@register_op
@dataclass(frozen=True)
class NB201Sum(_Cell):
    hw: int
    c: int
    n: int
    kind: ClassVar[str] = "nb201sum"
    _pattern: ClassVar[re.Pattern] = re.compile(r"nb201sum_(?P<hw>\d+)_(?P<c>\d+)_n(?P<n>\d+)")

    @property
    def key(self) -> str:
        return f"nb201sum_{self.hw}_{self.c}_n{self.n}"

    def module(self):
        from hwnas.spaces.nb201.blocks import SelfSum

        return SelfSum(self.n)


@register_op
@dataclass(frozen=True)
class NB201Zero(_Cell):
    hw: int
    c: int
    kind: ClassVar[str] = "nb201zero"
    _pattern: ClassVar[re.Pattern] = re.compile(r"nb201zero_(?P<hw>\d+)_(?P<c>\d+)")

    @property
    def key(self) -> str:
        return f"nb201zero_{self.hw}_{self.c}"

    def module(self):
        from hwnas.spaces.nb201.blocks import Zero

        return Zero()


@register_op
@dataclass(frozen=True)
class NB201ResBlock(OpSpec):
    """NAS-Bench-201's ResNetBasicblock at stride 2: ReLU-Conv3x3(s2)-BN, ReLU-Conv3x3-BN, plus
    a shortcut of 2x2 average pooling and a 1x1 conv (no BN)."""

    hw: int
    cin: int
    cout: int
    kind: ClassVar[str] = "nb201resblock"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"nb201resblock_(?P<hw>\d+)_(?P<cin>\d+)_(?P<cout>\d+)")

    @property
    def key(self) -> str:
        return f"nb201resblock_{self.hw}_{self.cin}_{self.cout}"

    @property
    def out_hw(self) -> int:
        return self.hw // 2  # hw is even (32, 16): conv s2 p1 and the 2x2 pool agree

    def input_shape(self):
        return (1, self.cin, self.hw, self.hw)

    def macs(self):
        o2 = self.out_hw**2
        return o2 * (9 * self.cin * self.cout + 9 * self.cout**2 + self.cin * self.cout)

    def params(self):
        return 9 * self.cin * self.cout + 9 * self.cout**2 + 4 * self.cout \
            + self.cin * self.cout

    def module(self):
        from hwnas.spaces.nb201.blocks import ResBasicBlock

        return ResBasicBlock(self.cin, self.cout)


@register_op
@dataclass(frozen=True)
class NB201Head(OpSpec):
    hw: int
    c: int
    classes: int
    kind: ClassVar[str] = "nb201head"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"nb201head_(?P<hw>\d+)_(?P<c>\d+)_(?P<classes>\d+)")

    @property
    def key(self) -> str:
        return f"nb201head_{self.hw}_{self.c}_{self.classes}"

    @property
    def out_hw(self) -> int:
        return 1

    def input_shape(self):
        return (1, self.c, self.hw, self.hw)

    def macs(self):
        return self.c * self.classes

    def params(self):
        return 2 * self.c + self.c * self.classes + self.classes

    def module(self):
        from hwnas.spaces.nb201.blocks import Head

        return Head(self.c, self.classes)


OP_CLASSES = (NB201Stem, NB201Conv, NB201Pool, NB201Sum, NB201Zero, NB201ResBlock, NB201Head)
