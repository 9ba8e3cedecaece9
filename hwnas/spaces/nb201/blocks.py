"""Torch modules behind hwnas.spaces.nb201.ops, after NAS-Bench-201's cell_operations and
TinyNetwork as HW-NAS-Bench uses them (written afresh), and the DAG cell holding only live edges.
"""

from __future__ import annotations

import torch.nn as nn


class ReLUConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__(nn.ReLU(), nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout))


def stem(c: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))


def avg_pool() -> nn.Module:
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


class SelfSum(nn.Module):
    """A node's add of n inputs, timed alone: n copies of its one input (n - 1 Adds)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x):
        y = x
        for _ in range(self.n - 1):
            y = y + x
        return y


class Zero(nn.Module):
    """A cell whose output node no path reaches: zeros of the input's shape (NAS-Bench-201's own
    'none' is x * 0 too), so the rest of the network still runs on a real tensor."""

    def forward(self, x):
        return x.mul(0.0)


class ResBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, 2)
        self.conv_b = ReLUConvBN(cout, cout, 3, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2),
                                        nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class Head(nn.Module):
    def __init__(self, c: int, classes: int):
        super().__init__()
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, classes)

    def forward(self, x):
        return self.classifier(self.pool(self.lastact(x)).flatten(1))


class Cell(nn.Module):
    """The cell's DAG with only its live edges. ``edges`` are (to, src, module); a skip edge's
    module is nn.Identity. Node i is the sum of its edges' outputs; the cell returns node 3."""

    def __init__(self, edges: list[tuple[int, int, nn.Module]], nodes: int = 4):
        super().__init__()
        self.links = [(to, src) for to, src, _ in edges]
        self.layers = nn.ModuleList(m for _, _, m in edges)
        self.nodes = nodes

    def forward(self, x):
        states = {0: x}
        for i in range(1, self.nodes):
            ins = [layer(states[src]) for (to, src), layer in zip(self.links, self.layers)
                   if to == i]
            if ins:
                y = ins[0]
                for t in ins[1:]:
                    y = y + t
                states[i] = y
        return states[self.nodes - 1]
