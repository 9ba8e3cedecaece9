"""Elastic versions of the static blocks in ``hwnas.spaces.elasticvit.blocks``.

Each block is configured per call by the OpSpec that the search space's one walk
(``space.ops(arch)``) produced for that position, so the supernet, the static model, the
profiler and the predictor all read the same shapes. ``state_for(op)`` returns the sliced
weights under the static block's own parameter names.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwnas.spaces.elasticvit.blocks import to_map, to_tokens
from hwnas.spaces.elasticvit.ops import (Attention, FFN, Head, MBConv, StemConv, TransDS,
                                         se_channels)
from hwnas.supernet.elastic import (ElasticBatchNorm2d, ElasticConv2d, ElasticLayerNorm,
                                    ElasticLinear, prefixed)

HEAD_DIM = 16


class ElasticConvBNAct(nn.Module):
    """conv -> BN -> optional hard-swish, mirroring ``blocks.ConvBNAct`` (keys 0.*, 1.*)."""

    def __init__(self, cin_max: int, cout_max: int, kernel_max: int = 1, stride: int = 1,
                 depthwise: bool = False, act: bool = True):
        super().__init__()
        self.conv = ElasticConv2d(cin_max, cout_max, kernel_max, stride, depthwise)
        self.bn = ElasticBatchNorm2d(cout_max)
        self.act = act

    def forward(self, x, cout: int | None = None, kernel: int = 1):
        x = self.bn(self.conv(x, cout, kernel))
        return F.hardswish(x) if self.act else x

    def state_for(self, cin: int, cout: int, kernel: int = 1) -> dict[str, torch.Tensor]:
        return {**prefixed("0", self.conv.state_for(cin, cout, kernel)),
                **prefixed("1", self.bn.state_for(cout))}


class ElasticStem(nn.Module):
    def __init__(self, cout_max: int):
        super().__init__()
        self.conv = ElasticConvBNAct(3, cout_max, 3, 2)

    def forward(self, x, op: StemConv):
        return self.conv(x, op.cout, 3)

    def state_for(self, op: StemConv):
        return prefixed("conv", self.conv.state_for(3, op.cout, 3))


class ElasticSqueezeExcite(nn.Module):
    def __init__(self, mid_max: int):
        super().__init__()
        s = se_channels(mid_max)  # se_channels is monotonic, so every smaller width fits
        self.reduce = ElasticConv2d(mid_max, s, bias=True)
        self.expand = ElasticConv2d(s, mid_max, bias=True)

    def forward(self, x):
        mid = x.shape[1]
        s = F.relu(self.reduce(F.adaptive_avg_pool2d(x, 1), se_channels(mid)))
        return x * F.hardsigmoid(self.expand(s, mid))

    def state_for(self, mid: int):
        s = se_channels(mid)
        return {**prefixed("reduce", self.reduce.state_for(mid, s)),
                **prefixed("expand", self.expand.state_for(s, mid))}


def as_mbconv(op: MBConv | TransDS) -> MBConv:
    """A transformer stage's opening block is an inverted residual with fixed expand/kernel."""
    return op if isinstance(op, MBConv) else op._as_mbconv()


class ElasticInvertedResidual(nn.Module):
    """Elastic input/output width, expansion, depthwise kernel (centre crop) and SE."""

    def __init__(self, cin_max: int, cout_max: int, expand_max: int, kernel_max: int,
                 stride: int, se: bool):
        super().__init__()
        mid_max = cin_max * expand_max
        self.expand = ElasticConvBNAct(cin_max, mid_max) if expand_max != 1 else None
        self.depthwise = ElasticConvBNAct(mid_max, mid_max, kernel_max, stride, depthwise=True)
        self.se = ElasticSqueezeExcite(mid_max) if se else None
        self.project = ElasticConvBNAct(mid_max, cout_max, act=False)

    def _check(self, op: MBConv) -> None:
        if (op.expand != 1 and self.expand is None) or (op.se and self.se is None):
            raise ValueError(f"{op.key} does not fit this supernet block")

    def forward(self, x, op: MBConv | TransDS):
        op = as_mbconv(op)
        self._check(op)
        mid = op.cin * op.expand
        y = self.expand(x, mid) if op.expand != 1 else x
        y = self.depthwise(y, kernel=op.kernel)
        if op.se:
            y = self.se(y)
        y = self.project(y, op.cout)
        return x + y if op.stride == 1 and op.cin == op.cout else y

    def state_for(self, op: MBConv | TransDS):
        op = as_mbconv(op)
        self._check(op)
        mid = op.cin * op.expand
        sd = prefixed("expand", self.expand.state_for(op.cin, mid)) if op.expand != 1 else {}
        sd.update(prefixed("depthwise", self.depthwise.state_for(mid, mid, op.kernel)))
        if op.se:
            sd.update(prefixed("se", self.se.state_for(mid)))
        sd.update(prefixed("project", self.project.state_for(mid, op.cout)))
        return sd


class ElasticMHSA(nn.Module):
    """Self-attention with heads = c/16 of dim 16 and value width 16*v per head.

    The value rows of the shared qkv weight are laid out per head (head h owns a block of
    16*v_max rows and uses its first 16*v), so a head keeps the same value weights whatever the
    width and the V-scale of the subnet. A plain leading slice would hand head 0's value rows to
    head 1 whenever v changes.
    """

    def __init__(self, c_max: int, v_max: int):
        super().__init__()
        self.c_max, self.v_max = c_max, v_max
        self.norm = ElasticLayerNorm(c_max)
        self.qkv = ElasticLinear(c_max, (2 + v_max) * c_max)
        self.proj = ElasticLinear(v_max * c_max, c_max)
        self._index_cache: dict = {}

    def _index(self, c: int, v: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (c, v, str(device))
        if key not in self._index_cache:
            block = HEAD_DIM * self.v_max
            vcols = torch.cat([h * block + torch.arange(HEAD_DIM * v)
                               for h in range(c // HEAD_DIM)])
            rows = torch.cat([torch.arange(c), self.c_max + torch.arange(c),
                              2 * self.c_max + vcols])
            self._index_cache[key] = (rows.to(device), vcols.to(device))
        return self._index_cache[key]

    def _weights(self, c: int, v: int):
        rows, vcols = self._index(c, v, self.qkv.weight.device)
        return (self.qkv.weight.index_select(0, rows)[:, :c], self.qkv.bias.index_select(0, rows),
                self.proj.weight[:c].index_select(1, vcols), self.proj.bias[:c])

    def forward(self, x, op: Attention):
        c, vc, heads = op.c, op.c * op.v, op.c // HEAD_DIM
        w_qkv, b_qkv, w_proj, b_proj = self._weights(op.c, op.v)
        t = to_tokens(x)
        b, n, _ = t.shape
        q, k, v = F.linear(self.norm(t), w_qkv, b_qkv).split([c, c, vc], dim=-1)
        q = q.reshape(b, n, heads, -1).transpose(1, 2)
        k = k.reshape(b, n, heads, -1).transpose(1, 2)
        v = v.reshape(b, n, heads, -1).transpose(1, 2)
        attn = torch.softmax((q * HEAD_DIM**-0.5) @ k.transpose(-2, -1), dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, vc)
        return to_map(t + F.linear(F.hardswish(out), w_proj, b_proj), x)

    def state_for(self, op: Attention):
        w_qkv, b_qkv, w_proj, b_proj = self._weights(op.c, op.v)
        return {**prefixed("norm", self.norm.state_for(op.c)),
                "qkv.weight": w_qkv, "qkv.bias": b_qkv, "proj.weight": w_proj, "proj.bias": b_proj}


class ElasticMLP(nn.Module):
    def __init__(self, c_max: int, mlp_max: int):
        super().__init__()
        self.norm = ElasticLayerNorm(c_max)
        self.fc1 = ElasticLinear(c_max, mlp_max * c_max)
        self.fc2 = ElasticLinear(mlp_max * c_max, c_max)

    def forward(self, x, op: FFN):
        t = to_tokens(x)
        h = F.hardswish(self.fc1(self.norm(t), op.mlp * op.c))
        return to_map(t + self.fc2(h, op.c), x)

    def state_for(self, op: FFN):
        hidden = op.mlp * op.c
        return {**prefixed("norm", self.norm.state_for(op.c)),
                **prefixed("fc1", self.fc1.state_for(op.c, hidden)),
                **prefixed("fc2", self.fc2.state_for(hidden, op.c))}


class ElasticHead(nn.Module):
    """MobileNetV3-style head: elastic 1x1 conv to expand*c, pool, linear, classifier."""

    def __init__(self, c_max: int, expand: int, features: int, classes: int):
        super().__init__()
        self.expand_ratio = expand
        self.conv = ElasticConvBNAct(c_max, c_max * expand)
        self.fc = ElasticLinear(c_max * expand, features)
        self.classifier = nn.Linear(features, classes)

    def _check(self, op: Head) -> None:
        if (op.expand, op.features_out, op.classes) != (
                self.expand_ratio, self.fc.out_features, self.classifier.out_features):
            raise ValueError(f"head {op} does not fit this supernet's head")

    def forward(self, x, op: Head):
        self._check(op)
        x = F.adaptive_avg_pool2d(self.conv(x, op.c * op.expand), 1).flatten(1)
        return self.classifier(F.hardswish(self.fc(x)))

    def state_for(self, op: Head):
        self._check(op)
        mid = op.c * op.expand
        return {**prefixed("conv", self.conv.state_for(op.c, mid)),
                **prefixed("fc", self.fc.state_for(mid, op.features_out)),
                "classifier.weight": self.classifier.weight,
                "classifier.bias": self.classifier.bias}
