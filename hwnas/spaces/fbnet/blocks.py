"""Torch modules behind hwnas.spaces.fbnet.ops, after HW-NAS-Bench's fbnet_models/model_infer.py
(ConvNorm, ConvBlock, Skip, ChannelShuffle; written afresh)."""

from __future__ import annotations

import torch.nn as nn


def _pad(kernel: int, stride: int) -> int:
    """HW-NAS-Bench's ceil((k - s) / 2), so that a stride-s conv maps an even hw to hw / s."""
    return -(-(kernel - stride) // 2)


def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, _pad(kernel, stride), bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        g = self.groups
        return x.reshape(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, expand: int, groups: int, stride: int):
        super().__init__()
        mid = cin * expand
        layers = [nn.Conv2d(cin, mid, 1, groups=groups, bias=False), nn.BatchNorm2d(mid),
                  nn.ReLU()]
        if groups > 1:
            layers.append(ChannelShuffle(groups))
        layers += [nn.Conv2d(mid, mid, kernel, stride, _pad(kernel, stride), groups=mid,
                             bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                   nn.Conv2d(mid, cout, 1, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class Head(nn.Module):
    def __init__(self, cin: int, features: int, classes: int):
        super().__init__()
        self.header = conv_bn_relu(cin, features, 1, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(features, classes)

    def forward(self, x):
        return self.fc(self.pool(self.header(x)).flatten(1))
