"""Torch modules behind hwnas.spaces.tfnas.ops: TF-NAS's MBInvertedResBlock, stem, head and 'base'.

They follow TF-NAS's ``models/layers.py`` structurally (same convs, padding k//2, BN placement,
SE with the block's activation and a sigmoid gate), written afresh for NCHW chaining.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


def make_act(name: str) -> nn.Module:
    acts = {"relu": nn.ReLU, "relu6": nn.ReLU6, "swish": Swish, "h-swish": nn.Hardswish}
    return acts[name]()


def conv_bn_act(cin: int, cout: int, kernel: int, stride: int, act: str | None,
                groups: int = 1) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act:
        layers.append(make_act(act))
    return nn.Sequential(*layers)


class InvertedResBlock(nn.Module):
    def __init__(self, cin: int, mid: int, se: int, cout: int, kernel: int, stride: int,
                 act: str):
        super().__init__()
        # TF-NAS skips the expansion when mid <= cin and runs the depthwise conv on cin channels
        width = mid if mid > cin else cin
        self.expand = conv_bn_act(cin, width, 1, 1, act) if mid > cin else nn.Identity()
        self.depthwise = conv_bn_act(width, width, kernel, stride, act, groups=width)
        self.se = nn.Sequential(nn.Conv2d(width, se, 1), make_act(act),
                                nn.Conv2d(se, width, 1)) if se else None
        self.project = conv_bn_act(width, cout, 1, 1, None)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.depthwise(self.expand(x))
        if self.se is not None:
            y = y * torch.sigmoid(self.se(F.adaptive_avg_pool2d(y, 1)))
        y = self.project(y)
        return x + y if self.residual else y


class PoolHead(nn.Module):
    def __init__(self, cin: int, features: int, classes: int, act: str):
        super().__init__()
        self.conv = conv_bn_act(cin, features, 1, 1, act)
        self.classifier = nn.Linear(features, classes)

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.conv(x), 1).flatten(1))


class BaseParts(nn.Module):
    """TF-NAS's 'base' timed as one op: stem and second stem on the image, and the head on a
    slice of the image's own values, reshaped to the head's input (cheap, and not foldable).
    Returns (B, classes)."""

    def __init__(self, stem: nn.Module, second: nn.Module, head: nn.Module, head_shape):
        super().__init__()
        self.stem, self.second, self.head = stem, second, head
        self.head_shape = tuple(head_shape[1:])

    def forward(self, x):
        n = 1
        for d in self.head_shape:
            n *= d
        head_in = x.reshape(x.shape[0], -1)[:, :n].reshape(x.shape[0], *self.head_shape)
        stem = self.second(self.stem(x))
        # one output, as every op has: the logits plus one stem value keeps the stem computed
        return self.head(head_in) + stem.reshape(x.shape[0], -1)[:, :1]
