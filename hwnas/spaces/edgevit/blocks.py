"""Torch modules behind hwnas.spaces.edgevit.ops (NCHW in, NCHW out), after EdgeViT's reference model."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _dw(c: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(c, c, k, padding=k // 2, groups=c)


class PatchEmbed(nn.Module):
    def __init__(self, cin: int, cout: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, patch, patch)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x):
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class LocalAgg(nn.Module):
    def __init__(self, c: int, mlp: int):
        super().__init__()
        self.pos = _dw(c, 3)
        self.norm1 = nn.BatchNorm2d(c)
        self.conv1 = nn.Conv2d(c, c, 1)
        self.agg = _dw(c, 5)
        self.conv2 = nn.Conv2d(c, c, 1)
        self.norm2 = nn.BatchNorm2d(c)
        self.fc1 = nn.Conv2d(c, mlp * c, 1)
        self.fc2 = nn.Conv2d(mlp * c, c, 1)

    def forward(self, x):
        x = x + self.pos(x)
        x = x + self.conv2(self.agg(self.conv1(self.norm1(x))))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class GlobalSparse(nn.Module):
    """Explicit attention matmuls, as in hwnas.spaces.elasticvit.blocks.MHSA, so every runtime sees the same ops."""

    def __init__(self, hw: int, c: int, heads: int, sr: int, mlp: int):
        super().__init__()
        if c % heads:
            raise ValueError(f"width {c} is not divisible by {heads} heads")
        self.heads, self.sr = heads, sr
        self.pos = _dw(c, 3)
        self.norm1 = nn.LayerNorm(c)
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)
        if sr > 1:
            self.prop = nn.ConvTranspose2d(c, c, sr, stride=sr, groups=c)
            self.prop_norm = nn.LayerNorm(c)
        self.norm2 = nn.LayerNorm(c)
        self.fc1 = nn.Linear(c, mlp * c)
        self.fc2 = nn.Linear(mlp * c, c)

    def _attend(self, a: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """a: (B, HW, C) normalised tokens -> attention output at every position."""
        b, _, c = a.shape
        if self.sr > 1:  # EdgeViT subsamples with a 1x1 average pool of stride sr
            g = F.avg_pool2d(a.transpose(1, 2).reshape(b, c, h, w), 1, self.sr)
            gh, gw = g.shape[-2:]
            a = g.flatten(2).transpose(1, 2)
        d = c // self.heads
        q, k, v = self.qkv(a).reshape(b, -1, 3, self.heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        attn = torch.softmax((q * d**-0.5) @ k.transpose(-2, -1), dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, -1, c)
        if self.sr > 1:
            out = self.prop(out.transpose(1, 2).reshape(b, c, gh, gw))
            out = self.prop_norm(out.flatten(2).transpose(1, 2))
        return self.proj(out)

    def forward(self, x):
        x = x + self.pos(x)
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        t = t + self._attend(self.norm1(t), h, w)
        t = t + self.fc2(F.gelu(self.fc1(self.norm2(t))))
        return t.transpose(1, 2).reshape(b, c, h, w)


class Head(nn.Module):
    def __init__(self, c: int, classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(self.norm(x).flatten(2).mean(-1))
