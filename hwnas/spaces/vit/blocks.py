"""Torch modules behind the ViT OpSpecs (hwnas.spaces.vit.ops). Token blocks map (B, N, C) -> (B, N, C').

Weights are laid out so that a smaller subnet's weights are the *leading slices* of a larger
one's (AutoFormer-style weight entanglement): the q/k/v projection is head-major, i.e. its output
features are ordered (head, q|k|v, head_dim), so dropping trailing heads drops trailing rows; widths
(embed, MLP hidden) shrink by dropping trailing channels. A supernet can slice these tensors
directly and hand back the static modules here.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwnas.spaces.vit.ops import CLS_TOKENS


def _tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


def with_class_token(t: torch.Tensor, cls_token: torch.Tensor,
                     pos_embed: torch.Tensor) -> torch.Tensor:
    """Prepend the class token and add the positions (shared with the elastic supernet)."""
    return torch.cat((cls_token.expand(t.shape[0], -1, -1), t), dim=1) + pos_embed


def head_major_attention(qkv: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """(B, N, heads * 3 * head_dim) q/k/v in head-major order -> (B, N, heads * head_dim).

    The one attention computation of TokenAttention, shared with the elastic supernet so that
    the supernet and the extracted model run exactly the same ops."""
    b, n, _ = qkv.shape
    q, k, v = qkv.reshape(b, n, heads, 3, head_dim).permute(3, 0, 2, 1, 4).unbind(0)
    attn = torch.softmax((q * head_dim**-0.5) @ k.transpose(-2, -1), dim=-1)
    return (attn @ v).transpose(1, 2).reshape(b, n, heads * head_dim)


class _WithClassToken(nn.Module):
    """Shared by the patch embeddings: class token plus learned positions."""

    def __init__(self, grid: int, c: int):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, CLS_TOKENS, c))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + CLS_TOKENS, c))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def add_tokens(self, t: torch.Tensor) -> torch.Tensor:
        return with_class_token(t, self.cls_token, self.pos_embed)


class PatchEmbed(_WithClassToken):
    def __init__(self, res: int, patch: int, c: int):
        super().__init__(res // patch, c)
        self.proj = nn.Conv2d(3, c, patch, patch)

    def forward(self, x):
        return self.add_tokens(_tokens(self.proj(x)))


class TokenAttention(nn.Module):
    """Explicit matmuls (no scaled_dot_product_attention), as in hwnas.spaces.elasticvit.blocks.MHSA, so that the
    ONNX exporter, FLOP counters and every runtime see the same ops."""

    def __init__(self, c: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.norm = nn.LayerNorm(c)
        self.qkv = nn.Linear(c, 3 * heads * head_dim)  # head-major: (heads, 3, head_dim)
        self.proj = nn.Linear(heads * head_dim, c)

    def forward(self, t):
        qkv = self.qkv(self.norm(t))
        return t + self.proj(head_major_attention(qkv, self.heads, self.head_dim))


class TokenMLP(nn.Module):
    def __init__(self, c: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.fc1 = nn.Linear(c, hidden)
        self.fc2 = nn.Linear(hidden, c)

    def forward(self, t):
        return t + self.fc2(F.gelu(self.fc1(self.norm(t))))


class TokenHead(nn.Module):
    def __init__(self, c: int, classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.fc = nn.Linear(c, classes)

    def forward(self, t):
        # LayerNorm is per token, so normalising only the class token gives the same logits
        return self.fc(self.norm(t[:, 0]))


class TokenNet(nn.Module):
    """A whole single-stage ViT: embedding, blocks[i] = (attention, MLP), head."""

    def __init__(self, embed: nn.Module, blocks, head: nn.Module):
        super().__init__()
        self.embed = embed
        self.blocks = nn.ModuleList(nn.Sequential(attn, mlp) for attn, mlp in blocks)
        self.head = head

    def forward(self, x):
        t = self.embed(x)
        for block in self.blocks:
            t = block(t)
        return self.head(t)
