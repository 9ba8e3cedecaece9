"""OpSpecs of MobileNet-family networks in TF-NAS's own terms (TF-NAS, MobileNetV2).

Keys follow TF-NAS's latency tables exactly as ``hwnas import tf-nas`` flattens them, so the
imported ``xeon-gold-6130`` and ``titan-rtx`` tables price these ops directly:

* ``MBInvertedResBlock_{hw}_{cin}_{se}_{cout}_k{k}_s{s}_{act}_mid{mid}``: TF-NAS's
  ``MBInvertedResBlock`` (``hw`` is the *input* side, ``se`` the squeeze-excite width, 0 = none);
* ``base``: everything TF-NAS prices as one number: the 3x3 stem conv, the fixed second-stem block,
  the final 1x1 conv, pooling and the classifier (at 224; ``base_{res}`` elsewhere).

``mbstem`` and ``mbhead`` are the same stem and head on their own (MobileNetV2 uses them).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import ClassVar

from hwnas.ops import DEFAULT_CLASSES, OP_KINDS, OpSpec

ACTS = ("relu", "relu6", "swish", "h-swish")  # TF-NAS's names
_ACT_RE = "(?P<act>relu6|relu|swish|h-swish)"
TFNAS_RES = 224  # TF-NAS's tables were measured at 224 only; its 'base' key has no size


def _same_out(hw: int, stride: int) -> int:
    """TF-NAS pads k//2, so a stride-s conv maps hw to ceil(hw / s)."""
    return (hw - 1) // stride + 1


class _ActFeatures:
    """features() must stay numeric: the activation becomes its index in ACTS."""

    def features(self) -> dict[str, float]:
        feats = {k: (float(ACTS.index(v)) if k == "act" else float(v))
                 for k, v in asdict(self).items()}
        feats["macs"] = float(self.macs())
        feats["params"] = float(self.params())
        return feats

    @classmethod
    def _from_match(cls, m):
        d = m.groupdict()
        return cls(**{k: (v if k == "act" else int(v)) for k, v in d.items()})


@dataclass(frozen=True)
class TFNASBlock(_ActFeatures, OpSpec):
    """1x1 expand to ``mid`` (skipped when mid <= cin, where TF-NAS runs the depthwise conv on
    cin channels), kxk depthwise, optional SE (reduce to ``se``, act, expand, sigmoid), 1x1
    project; BN after every conv; residual when stride 1 and cin == cout."""

    hw: int
    cin: int
    se: int
    cout: int
    kernel: int
    stride: int
    act: str
    mid: int
    kind: ClassVar[str] = "MBInvertedResBlock"
    _pattern: ClassVar[re.Pattern] = re.compile(
        r"MBInvertedResBlock_(?P<hw>\d+)_(?P<cin>\d+)_(?P<se>\d+)_(?P<cout>\d+)"
        rf"_k(?P<kernel>\d+)_s(?P<stride>\d+)_{_ACT_RE}_mid(?P<mid>\d+)"
    )

    @property
    def key(self) -> str:
        return (f"MBInvertedResBlock_{self.hw}_{self.cin}_{self.se}_{self.cout}"
                f"_k{self.kernel}_s{self.stride}_{self.act}_mid{self.mid}")

    @property
    def table_block(self) -> str:
        """TF-NAS's own key (without the width), as in its pickles."""
        return self.key.rsplit("_mid", 1)[0]

    @property
    def width(self) -> int:
        """The channels the depthwise conv really runs on."""
        return self.mid if self.mid > self.cin else self.cin

    @property
    def out_hw(self) -> int:
        return _same_out(self.hw, self.stride)

    def input_shape(self):
        return (1, self.cin, self.hw, self.hw)

    def macs(self):
        m, o2 = self.width, self.out_hw**2
        total = o2 * m * self.kernel**2 + o2 * m * self.cout + 2 * m * self.se
        if self.mid > self.cin:
            total += self.hw**2 * self.cin * m
        return total

    def params(self):
        m = self.width
        total = m * self.kernel**2 + 2 * m + m * self.cout + 2 * self.cout
        if self.mid > self.cin:
            total += self.cin * m + 2 * m
        if self.se:
            total += 2 * m * self.se + self.se + m
        return total

    def module(self):
        from hwnas.spaces.tfnas.blocks import InvertedResBlock

        return InvertedResBlock(self.cin, self.mid, self.se, self.cout, self.kernel,
                                self.stride, self.act)


@dataclass(frozen=True)
class MBStem(_ActFeatures, OpSpec):
    """3x3 stride-2 conv, 3 -> cout, BN, activation."""

    res: int
    cout: int
    act: str
    kind: ClassVar[str] = "mbstem"
    _pattern: ClassVar[re.Pattern] = re.compile(rf"mbstem_(?P<res>\d+)_(?P<cout>\d+)_{_ACT_RE}")

    @property
    def key(self) -> str:
        return f"mbstem_{self.res}_{self.cout}_{self.act}"

    @property
    def out_hw(self) -> int:
        return _same_out(self.res, 2)

    def input_shape(self):
        return (1, 3, self.res, self.res)

    def macs(self):
        return self.out_hw**2 * 27 * self.cout

    def params(self):
        return 27 * self.cout + 2 * self.cout

    def module(self):
        from hwnas.spaces.tfnas.blocks import conv_bn_act

        return conv_bn_act(3, self.cout, 3, 2, self.act)


@dataclass(frozen=True)
class MBHead(_ActFeatures, OpSpec):
    """1x1 conv cin -> features, BN, activation, global average pool, linear classifier."""

    hw: int
    cin: int
    features_out: int
    classes: int
    act: str
    kind: ClassVar[str] = "mbhead"
    _pattern: ClassVar[re.Pattern] = re.compile(
        rf"mbhead_(?P<hw>\d+)_(?P<cin>\d+)_(?P<features_out>\d+)_(?P<classes>\d+)_{_ACT_RE}"
    )

    @property
    def key(self) -> str:
        return f"mbhead_{self.hw}_{self.cin}_{self.features_out}_{self.classes}_{self.act}"

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
        from hwnas.spaces.tfnas.blocks import PoolHead

        return PoolHead(self.cin, self.features_out, self.classes, self.act)


@dataclass(frozen=True)
class TFNASBase(OpSpec):
    """TF-NAS's fixed parts, priced by its tables as one number ('base'): the stem conv (3 -> 32,
    ReLU), the second-stem block (32 -> 16, SE 8, ReLU), and the head (320 -> 1280 1x1 conv,
    swish, pool, classifier). They sit at both ends of the network, so the standalone module
    runs the head on a slice of its own input (never on a constant, which a runtime would fold
    away); the whole network (TFNASSpace.build_model) puts each part in its place."""

    res: int = TFNAS_RES
    kind: ClassVar[str] = "base"
    _pattern: ClassVar[re.Pattern] = re.compile(r"base(?:_(?P<res>\d+))?")

    @classmethod
    def _from_match(cls, m):
        res = m.group("res")
        return cls(int(res) if res else TFNAS_RES)

    @property
    def key(self) -> str:
        return "base" if self.res == TFNAS_RES else f"base_{self.res}"

    @property
    def parts(self) -> tuple[OpSpec, OpSpec, OpSpec]:
        stem = MBStem(self.res, 32, "relu")
        second = TFNASBlock(stem.out_hw, 32, 8, 16, 3, 1, "relu", 32)
        head_hw = _same_out(_same_out(_same_out(_same_out(second.out_hw, 2), 2), 2), 2)
        return stem, second, MBHead(head_hw, 320, 1280, DEFAULT_CLASSES, "swish")

    @property
    def out_hw(self) -> int:
        return 1

    def input_shape(self):
        return (1, 3, self.res, self.res)

    def macs(self):
        return sum(p.macs() for p in self.parts)

    def params(self):
        return sum(p.params() for p in self.parts)

    def module(self):
        from hwnas.spaces.tfnas.blocks import BaseParts

        stem, second, head = self.parts
        return BaseParts(stem.module(), second.module(), head.module(), head.input_shape())


OP_CLASSES: tuple[type[OpSpec], ...] = (TFNASBlock, MBStem, MBHead, TFNASBase)
OP_KINDS.update({cls.kind: cls for cls in OP_CLASSES})
