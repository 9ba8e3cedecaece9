"""ElasticViT's OpSpecs: the MobileNetV3-style stem and conv stages, the transformer stages'
opening downsample, attention and FFN, and the pooling head.

Keys follow nn-Meter's hybrid-ViT key format for the same blocks (see hwnas.ops).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from hwnas.ops import DEFAULT_CLASSES, OP_KINDS, OpSpec

ACT = "hard_swish"


HEAD_FEATURES = 1984  # ElasticViT / NASViT's MobileNetV3-style head width


def se_channels(mid: int) -> int:
    """Squeeze-excite bottleneck width: mid/4 rounded to a multiple of 8 (MobileNetV3 rule)."""
    return max(8, int(mid / 4 + 4) // 8 * 8)


@dataclass(frozen=True)
class StemConv(OpSpec):
    """3x3 stride-2 conv, 3 -> cout channels, BN, hard-swish, on a res x res image."""

    res: int
    cout: int
    kind: ClassVar[str] = "firstconv"
    _pattern: ClassVar[re.Pattern] = re.compile(r"firstconv_(?P<res>\d+)_3_(?P<cout>\d+)_2_3")

    @property
    def key(self) -> str:
        return f"firstconv_{self.res}_3_{self.cout}_2_3"

    @property
    def out_hw(self) -> int:
        return self.res // 2

    def input_shape(self):
        return (1, 3, self.res, self.res)

    def macs(self):
        return self.out_hw**2 * 3 * 9 * self.cout

    def params(self):
        return 27 * self.cout + 2 * self.cout

    def module(self):
        from hwnas.spaces.elasticvit.blocks import Stem

        return Stem(self.res, self.cout)


@dataclass(frozen=True)
class MBConv(OpSpec):
    """MobileNetV2/V3 inverted residual: 1x1 expand, kxk depthwise, optional SE, 1x1 project."""

    hw: int
    cin: int
    cout: int
    expand: int
    stride: int
    kernel: int
    se: int  # 0/1, an int so that features() stays numeric
    kind: ClassVar[str] = "conv"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"conv_(?P<hw>\d+)_(?P<cin>\d+)_(?P<cout>\d+)_(?P<expand>\d+)_(?P<stride>\d+)"
        rf"_{ACT}_(?P<kernel>\d+)_(?P<se>se|nose)"
    )

    @classmethod
    def _from_match(cls, m):
        d = m.groupdict()
        se = 1 if d.pop("se") == "se" else 0
        return cls(**{k: int(v) for k, v in d.items()}, se=se)

    @property
    def key(self) -> str:
        se = "se" if self.se else "nose"
        return (
            f"conv_{self.hw}_{self.cin}_{self.cout}_{self.expand}_{self.stride}_{ACT}"
            f"_{self.kernel}_{se}"
        )

    @property
    def mid(self) -> int:
        return self.cin * self.expand

    @property
    def out_hw(self) -> int:
        return self.hw // self.stride

    def input_shape(self):
        return (1, self.cin, self.hw, self.hw)

    def macs(self):
        mid, o2 = self.mid, self.out_hw**2
        total = o2 * mid * self.kernel**2 + o2 * mid * self.cout
        if self.expand != 1:
            total += self.hw**2 * self.cin * mid
        if self.se:
            total += 2 * mid * se_channels(mid)
        return total

    def params(self):
        mid = self.mid
        total = mid * self.kernel**2 + 2 * mid + mid * self.cout + 2 * self.cout
        if self.expand != 1:
            total += self.cin * mid + 2 * mid
        if self.se:
            s = se_channels(mid)
            total += 2 * mid * s + s + mid
        return total

    def module(self):
        from hwnas.spaces.elasticvit.blocks import InvertedResidual

        return InvertedResidual(
            hw=self.hw, cin=self.cin, cout=self.cout, expand=self.expand,
            stride=self.stride, kernel=self.kernel, se=bool(self.se),
        )


@dataclass(frozen=True)
class TransDS(OpSpec):
    """The inverted residual (3x3 depthwise) that opens a transformer stage and changes width."""

    hw: int
    cin: int
    cout: int
    stride: int
    expand: int = 6
    kind: ClassVar[str] = "transds"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"transds_(?P<hw>\d+)_(?P<cin>\d+)_(?P<cout>\d+)_(?P<stride>\d+)_(?P<expand>\d+)"
    )

    @property
    def key(self) -> str:
        return f"transds_{self.hw}_{self.cin}_{self.cout}_{self.stride}_{self.expand}"

    def _as_mbconv(self) -> MBConv:
        return MBConv(self.hw, self.cin, self.cout, self.expand, self.stride, 3, 0)

    @property
    def out_hw(self) -> int:
        return self.hw // self.stride

    def input_shape(self):
        return (1, self.cin, self.hw, self.hw)

    def macs(self):
        return self._as_mbconv().macs()

    def params(self):
        return self._as_mbconv().params()

    def module(self):
        return self._as_mbconv().module()


@dataclass(frozen=True)
class Attention(OpSpec):
    """Pre-LN multi-head self-attention over hw*hw tokens: head dim 16, value width v*c."""

    hw: int
    c: int
    v: int
    kind: ClassVar[str] = "transattn"
    _pattern: ClassVar[re.Pattern] = re.compile(
        rf"transattn_(?P<hw>\d+)_(?P<c>\d+)_{ACT}_(?P<v>\d+)_ln"
    )

    @property
    def key(self) -> str:
        return f"transattn_{self.hw}_{self.c}_{ACT}_{self.v}_ln"

    @property
    def out_hw(self) -> int:
        return self.hw

    def input_shape(self):
        return (1, self.c, self.hw, self.hw)

    def macs(self):
        n, c, vc = self.hw**2, self.c, self.v * self.c
        # qkv projection, q@k^T, attn@v, output projection
        return n * c * (2 * c + vc) + n * n * c + n * n * vc + n * vc * c

    def params(self):
        c, vc = self.c, self.v * self.c
        return 2 * c + c * (2 * c + vc) + (2 * c + vc) + vc * c + c

    def module(self):
        from hwnas.spaces.elasticvit.blocks import MHSA

        return MHSA(self.c, self.v)


@dataclass(frozen=True)
class FFN(OpSpec):
    """Pre-LN transformer MLP: c -> mlp*c -> hard-swish -> c, with a residual."""

    hw: int
    c: int
    mlp: int
    kind: ClassVar[str] = "transffn"
    _pattern: ClassVar[re.Pattern] = re.compile(
        rf"transffn_(?P<hw>\d+)_(?P<c>\d+)_(?P<mlp>\d+)_{ACT}_ln"
    )

    @property
    def key(self) -> str:
        return f"transffn_{self.hw}_{self.c}_{self.mlp}_{ACT}_ln"

    @property
    def out_hw(self) -> int:
        return self.hw

    def input_shape(self):
        return (1, self.c, self.hw, self.hw)

    def macs(self):
        return 2 * self.hw**2 * self.c * self.mlp * self.c

    def params(self):
        c, m = self.c, self.mlp * self.c
        return 2 * c + c * m + m + m * c + c

    def module(self):
        from hwnas.spaces.elasticvit.blocks import MLP

        return MLP(self.c, self.mlp)


@dataclass(frozen=True)
class Head(OpSpec):
    """MobileNetV3-style head: 1x1 conv to 6c, pool, linear to 1984, then the classifier."""

    hw: int
    c: int
    features_out: int = HEAD_FEATURES
    expand: int = 6
    classes: int = DEFAULT_CLASSES
    kind: ClassVar[str] = "mbpool"
    _pattern: ClassVar[re.Pattern] = re.compile(
        rf"mbpool_(?P<hw>\d+)_(?P<c>\d+)_(?P<features_out>\d+)_(?P<expand>\d+)_{ACT}"
    )

    @property
    def key(self) -> str:
        # The class count is not in nn-Meter's key; hwnas always measures 1000 classes.
        return f"mbpool_{self.hw}_{self.c}_{self.features_out}_{self.expand}_{ACT}"

    @property
    def out_hw(self) -> int:
        return 1

    def input_shape(self):
        return (1, self.c, self.hw, self.hw)

    def macs(self):
        mid = self.expand * self.c
        return self.hw**2 * self.c * mid + mid * self.features_out + self.features_out * self.classes

    def params(self):
        mid, f = self.expand * self.c, self.features_out
        return self.c * mid + 2 * mid + mid * f + f + f * self.classes + self.classes

    def module(self):
        from hwnas.spaces.elasticvit.blocks import MBPoolHead

        return MBPoolHead(self.c, self.expand, self.features_out, self.classes)


OP_CLASSES: tuple[type[OpSpec], ...] = (StemConv, MBConv, TransDS, Attention, FFN, Head)
OP_KINDS.update({cls.kind: cls for cls in OP_CLASSES})
