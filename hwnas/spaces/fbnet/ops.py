"""OpSpecs of FBNet networks as HW-NAS-Bench's ``fbnet_models/model_infer.py`` builds them.

* ``fbnetstem_{res}_{c}``: 3x3 conv 3 -> c (stride 1 on CIFAR, pad 1), BN, ReLU;
* ``fbnetblock_{hw}_{cin}_{cout}_k{k}_e{e}_g{g}_s{s}``: 1x1 conv (groups g) to cin * e, BN, ReLU,
  channel shuffle when g > 1, kxk depthwise (stride s), BN, ReLU, 1x1 conv (groups g) to cout,
  BN; a residual add when s == 1 and cin == cout;
* ``fbnetskip_{hw}_{cin}_{cout}_s{s}``: ``skip`` where it cannot be the identity (s == 2 or
  cin != cout): 1x1 conv (stride s), BN, ReLU. An identity skip runs nothing and has no op;
* ``fbnethead_{hw}_{cin}_{features_out}_{classes}``: 1x1 conv to features, BN, ReLU, global
  average pool, linear classifier.

``hw`` is the input side. Padding is HW-NAS-Bench's ceil((k - s) / 2): on even sides a stride-s
block maps hw to hw // s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from hwnas.ops import OpSpec, register_op


@register_op
@dataclass(frozen=True)
class FBNetStem(OpSpec):
    res: int
    c: int
    kind: ClassVar[str] = "fbnetstem"
    _pattern: ClassVar[re.Pattern] = re.compile(r"fbnetstem_(?P<res>\d+)_(?P<c>\d+)")

    @property
    def key(self) -> str:
        return f"fbnetstem_{self.res}_{self.c}"

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
        from hwnas.spaces.fbnet.blocks import conv_bn_relu

        return conv_bn_relu(3, self.c, 3, 1)


@register_op
@dataclass(frozen=True)
class FBNetBlock(OpSpec):
    hw: int
    cin: int
    cout: int
    kernel: int
    expand: int
    groups: int
    stride: int
    kind: ClassVar[str] = "fbnetblock"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"fbnetblock_(?P<hw>\d+)_(?P<cin>\d+)_(?P<cout>\d+)_k(?P<kernel>\d+)_e(?P<expand>\d+)"
        r"_g(?P<groups>\d+)_s(?P<stride>\d+)")

    @property
    def key(self) -> str:
        return (f"fbnetblock_{self.hw}_{self.cin}_{self.cout}_k{self.kernel}_e{self.expand}"
                f"_g{self.groups}_s{self.stride}")

    @property
    def mid(self) -> int:
        return self.cin * self.expand

    @property
    def out_hw(self) -> int:
        return self.hw // self.stride

    def input_shape(self):
        return (1, self.cin, self.hw, self.hw)

    def macs(self):
        m, g = self.mid, self.groups
        return (self.hw**2 * self.cin * m // g + self.out_hw**2 * m * self.kernel**2
                + self.out_hw**2 * m * self.cout // g)

    def params(self):
        m, g = self.mid, self.groups
        return self.cin * m // g + m * self.kernel**2 + m * self.cout // g + 4 * m \
            + 2 * self.cout

    def module(self):
        from hwnas.spaces.fbnet.blocks import ConvBlock

        return ConvBlock(self.cin, self.cout, self.kernel, self.expand, self.groups,
                         self.stride)


@register_op
@dataclass(frozen=True)
class FBNetSkip(OpSpec):
    hw: int
    cin: int
    cout: int
    stride: int
    kind: ClassVar[str] = "fbnetskip"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"fbnetskip_(?P<hw>\d+)_(?P<cin>\d+)_(?P<cout>\d+)_s(?P<stride>\d+)")

    @property
    def key(self) -> str:
        return f"fbnetskip_{self.hw}_{self.cin}_{self.cout}_s{self.stride}"

    @property
    def out_hw(self) -> int:
        return self.hw // self.stride

    def input_shape(self):
        return (1, self.cin, self.hw, self.hw)

    def macs(self):
        return self.out_hw**2 * self.cin * self.cout

    def params(self):
        return self.cin * self.cout + 2 * self.cout

    def module(self):
        from hwnas.spaces.fbnet.blocks import conv_bn_relu

        return conv_bn_relu(self.cin, self.cout, 1, self.stride)


@register_op
@dataclass(frozen=True)
class FBNetHead(OpSpec):
    hw: int
    cin: int
    features_out: int
    classes: int
    kind: ClassVar[str] = "fbnethead"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"fbnethead_(?P<hw>\d+)_(?P<cin>\d+)_(?P<features_out>\d+)_(?P<classes>\d+)")

    @property
    def key(self) -> str:
        return f"fbnethead_{self.hw}_{self.cin}_{self.features_out}_{self.classes}"

    @property
    def out_hw(self) -> int:
        return 1

    def input_shape(self):
        return (1, self.cin, self.hw, self.hw)

    def macs(self):
        return self.hw**2 * self.cin * self.features_out + self.features_out * self.classes

    def params(self):
        f = self.features_out
        return self.cin * f + 2 * f + f * self.classes + self.classes

    def module(self):
        from hwnas.spaces.fbnet.blocks import Head

        return Head(self.cin, self.features_out, self.classes)


OP_CLASSES = (FBNetStem, FBNetBlock, FBNetSkip, FBNetHead)
