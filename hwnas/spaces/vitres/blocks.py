"""Torch modules behind ViT-ResNAS's own OpSpecs (hwnas.spaces.vitres.ops)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwnas.spaces.vit.blocks import _tokens, _WithClassToken
from hwnas.spaces.vit.ops import CLS_TOKENS

class _ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


class ConvPatchEmbed(_WithClassToken):
    def __init__(self, res: int, patch: int, mid: int, c: int):
        half = (res - 1) // 2 + 1
        super().__init__(half // (patch // 2), c)
        self.conv1 = _ConvBNReLU(3, mid, 2)
        self.conv2 = _ConvBNReLU(mid, mid, 1)
        self.conv3 = _ConvBNReLU(mid, mid, 1)
        self.proj = nn.Conv2d(mid, c, patch // 2, patch // 2)

    def forward(self, x):
        x = self.conv1(x)
        x = x + self.conv3(self.conv2(x))
        return self.add_tokens(_tokens(self.proj(x)))


class SpatialReduction(nn.Module):
    def __init__(self, hw: int, cin: int, cout: int):
        super().__init__()
        if cout < cin:
            raise ValueError(f"spatial reduction cannot narrow the width ({cin} -> {cout})")
        self.hw, self.pad = hw, cout - cin
        self.norm = nn.LayerNorm(cin)
        self.reduce = nn.Conv2d(cin, cout, 3, 2, 1)
        out = (hw - 1) // 2 + 1
        self.pos_embed = nn.Parameter(torch.zeros(1, out * out, cout))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.token_proj = nn.Linear(cin, cout)

    def _grid(self, t: torch.Tensor) -> torch.Tensor:
        return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], self.hw, self.hw)

    def forward(self, t):
        normed = self.norm(t)
        patches = _tokens(self.reduce(self._grid(normed[:, CLS_TOKENS:]))) + self.pos_embed
        main = torch.cat((self.token_proj(normed[:, :CLS_TOKENS]), patches), dim=1)
        pooled = _tokens(F.avg_pool2d(self._grid(t[:, CLS_TOKENS:]), 2))
        residual = torch.cat((t[:, :CLS_TOKENS], pooled), dim=1)
        return main + F.pad(residual, (0, self.pad))
