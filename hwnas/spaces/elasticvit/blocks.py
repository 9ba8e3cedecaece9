"""The torch modules behind ElasticViT's OpSpecs (static, plain weights).

Every block maps an NCHW tensor to an NCHW tensor, so that blocks chain into a whole network and
each can also be timed on its own with the same input it sees inside the network.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwnas.ops import same_floor_padding
from hwnas.spaces.elasticvit.ops import se_channels


class ConvBNAct(nn.Sequential):
    def __init__(self, cin, cout, kernel=1, stride=1, padding=0, groups=1, act=True):
        layers = [
            nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.Hardswish())
        super().__init__(*layers)


class Stem(nn.Module):
    def __init__(self, res: int, cout: int):
        super().__init__()
        self.conv = ConvBNAct(3, cout, 3, 2, same_floor_padding(res, 3, 2))

    def forward(self, x):
        return self.conv(x)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        mid = se_channels(channels)
        self.reduce = nn.Conv2d(channels, mid, 1)
        self.expand = nn.Conv2d(mid, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.relu(self.reduce(s))
        return x * F.hardsigmoid(self.expand(s))


class InvertedResidual(nn.Module):
    def __init__(self, hw, cin, cout, expand, stride, kernel, se):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBNAct(cin, mid) if expand != 1 else nn.Identity()
        pad = same_floor_padding(hw, kernel, stride)
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, pad, groups=mid)
        self.se = SqueezeExcite(mid) if se else nn.Identity()
        self.project = ConvBNAct(mid, cout, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


def to_map(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.transpose(1, 2).reshape(like.shape)


class MHSA(nn.Module):
    """Pre-LN self-attention, heads = c/16 of dim 16, values of width 16*v per head.

    The attention matmuls are explicit (not scaled_dot_product_attention) so that the legacy ONNX
    exporter, FLOP counters and every runtime see the same ops.
    """

    head_dim = 16

    def __init__(self, c: int, v: int):
        super().__init__()
        self.heads, self.c, self.vc = c // self.head_dim, c, c * v
        self.norm = nn.LayerNorm(c)
        self.qkv = nn.Linear(c, 2 * c + self.vc)
        self.act = nn.Hardswish()
        self.proj = nn.Linear(self.vc, c)

    def forward(self, x):
        t = to_tokens(x)
        b, n, _ = t.shape
        q, k, v = self.qkv(self.norm(t)).split([self.c, self.c, self.vc], dim=-1)
        q = q.reshape(b, n, self.heads, -1).transpose(1, 2)
        k = k.reshape(b, n, self.heads, -1).transpose(1, 2)
        v = v.reshape(b, n, self.heads, -1).transpose(1, 2)
        attn = torch.softmax((q * self.head_dim**-0.5) @ k.transpose(-2, -1), dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, self.vc)
        return to_map(t + self.proj(self.act(out)), x)


class MLP(nn.Module):
    def __init__(self, c: int, mlp: int):
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.fc1 = nn.Linear(c, mlp * c)
        self.act = nn.Hardswish()
        self.fc2 = nn.Linear(mlp * c, c)

    def forward(self, x):
        t = to_tokens(x)
        return to_map(t + self.fc2(self.act(self.fc1(self.norm(t)))), x)


class MBPoolHead(nn.Module):
    def __init__(self, c: int, expand: int, features: int, classes: int):
        super().__init__()
        self.conv = ConvBNAct(c, c * expand)
        self.fc = nn.Linear(c * expand, features)
        self.act = nn.Hardswish()
        self.classifier = nn.Linear(features, classes)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.conv(x), 1).flatten(1)
        return self.classifier(self.act(self.fc(x)))
