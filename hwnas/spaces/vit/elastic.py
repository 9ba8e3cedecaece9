"""Elastic versions of the single-stage ViT token blocks in ``hwnas.spaces.vit.blocks``.

Each block is configured per call by the OpSpec that ``ViTSpace.ops(arch)`` produced for its
position, and ``state_for(op)`` returns the sliced weights under the static block's own
parameter names. Widths shrink by dropping trailing channels (embed, MLP hidden) and trailing
heads (the static q/k/v projection is head-major), as AutoFormer's weight entanglement does. A
smaller head dim keeps each head's leading q, k and v rows, which is not a leading slice of the
head-major rows, so attention gathers them by index (as ``ElasticMHSA`` does for its values).

The patch embedding keeps one projection per patch size (the static block is a plain p x p
stride-p conv, and kernels of 14, 16 and 32 do not nest as centre crops of one another) and one
position table per (resolution, patch size), because the token grid differs for each.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwnas.spaces.vit.blocks import head_major_attention, with_class_token
from hwnas.spaces.vit.ops import CLS_TOKENS, ViTAttention, ViTHead, ViTMLP, ViTPatchEmbed
from hwnas.supernet.elastic import ElasticConv2d, ElasticLayerNorm, ElasticLinear, prefixed


def _pos_key(res: int, patch: int) -> str:
    return f"r{res}_p{patch}"


class ElasticPatchEmbed(nn.Module):
    """Patch embedding with elastic width: one conv per patch size, one position table per
    (resolution, patch size), one class token; all share the leading ``c`` channels."""

    def __init__(self, resolutions, patches, c_max: int):
        super().__init__()
        self.proj = nn.ModuleDict({str(p): ElasticConv2d(3, c_max, p, stride=p, bias=True,
                                                         padding=0) for p in patches})
        self.cls_token = nn.Parameter(torch.zeros(1, CLS_TOKENS, c_max))
        self.pos_embed = nn.ParameterDict()
        for res in resolutions:
            for p in patches:
                pos = torch.zeros(1, (res // p) ** 2 + CLS_TOKENS, c_max)
                self.pos_embed[_pos_key(res, p)] = nn.Parameter(
                    nn.init.trunc_normal_(pos, std=0.02))  # the static block's own init

    def _parts(self, op: ViTPatchEmbed):
        key = _pos_key(op.res, op.patch)
        if str(op.patch) not in self.proj or key not in self.pos_embed:
            raise ValueError(f"{op.key} does not fit this supernet's patch embedding")
        return self.proj[str(op.patch)], self.pos_embed[key][..., :op.c]

    def forward(self, x: torch.Tensor, op: ViTPatchEmbed) -> torch.Tensor:
        conv, pos = self._parts(op)
        t = conv(x, op.c, op.patch).flatten(2).transpose(1, 2)
        return with_class_token(t, self.cls_token[..., :op.c], pos)

    def state_for(self, op: ViTPatchEmbed) -> dict[str, torch.Tensor]:
        conv, pos = self._parts(op)
        return {**prefixed("proj", conv.state_for(3, op.c, op.patch)),
                "cls_token": self.cls_token[..., :op.c], "pos_embed": pos}


class ElasticTokenAttention(nn.Module):
    """Pre-LN attention with elastic width c, heads and head dim (q/k/v width heads x dim)."""

    def __init__(self, c_max: int, heads_max: int, head_dim_max: int):
        super().__init__()
        self.heads_max, self.dim_max = heads_max, head_dim_max
        self.norm = ElasticLayerNorm(c_max)
        self.qkv = ElasticLinear(c_max, 3 * heads_max * head_dim_max)
        self.proj = ElasticLinear(heads_max * head_dim_max, c_max)
        self._index_cache: dict = {}

    def _check(self, op: ViTAttention) -> None:
        if op.heads > self.heads_max or op.head_dim > self.dim_max:
            raise ValueError(f"{op.key} does not fit this supernet's attention")

    def _index(self, heads: int, dim: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of qkv (head-major: head, q|k|v, dim) and columns of proj a subnet uses."""
        key = (heads, dim, str(device))
        if key not in self._index_cache:
            d_max, first = self.dim_max, torch.arange(dim)
            rows = torch.cat([(3 * h + part) * d_max + first
                              for h in range(heads) for part in range(3)])
            cols = torch.cat([h * d_max + first for h in range(heads)])
            self._index_cache[key] = (rows.to(device), cols.to(device))
        return self._index_cache[key]

    def _weights(self, op: ViTAttention):
        self._check(op)
        rows, cols = self._index(op.heads, op.head_dim, self.qkv.weight.device)
        return (self.qkv.weight[:, :op.c].index_select(0, rows),
                self.qkv.bias.index_select(0, rows), self.proj.weight[:op.c].index_select(1, cols), self.proj.bias[:op.c])

    def forward(self, t: torch.Tensor, op: ViTAttention) -> torch.Tensor:
        w_qkv, b_qkv, w_proj, b_proj = self._weights(op)
        out = head_major_attention(F.linear(self.norm(t), w_qkv, b_qkv), op.heads, op.head_dim)
        return t + F.linear(out, w_proj, b_proj)

    def state_for(self, op: ViTAttention) -> dict[str, torch.Tensor]:
        w_qkv, b_qkv, w_proj, b_proj = self._weights(op)
        return {**prefixed("norm", self.norm.state_for(op.c)),
                "qkv.weight": w_qkv, "qkv.bias": b_qkv, "proj.weight": w_proj, "proj.bias": b_proj}


class ElasticTokenMLP(nn.Module):
    """Pre-LN MLP c -> hidden -> GELU -> c with elastic c and hidden width."""

    def __init__(self, c_max: int, hidden_max: int):
        super().__init__()
        self.norm = ElasticLayerNorm(c_max)
        self.fc1 = ElasticLinear(c_max, hidden_max)
        self.fc2 = ElasticLinear(hidden_max, c_max)

    def forward(self, t: torch.Tensor, op: ViTMLP) -> torch.Tensor:
        if op.hidden > self.fc1.out_features:
            raise ValueError(f"{op.key} does not fit this supernet's MLP")
        return t + self.fc2(F.gelu(self.fc1(self.norm(t), op.hidden)), op.c)

    def state_for(self, op: ViTMLP) -> dict[str, torch.Tensor]:
        return {**prefixed("norm", self.norm.state_for(op.c)),
                **prefixed("fc1", self.fc1.state_for(op.c, op.hidden)),
                **prefixed("fc2", self.fc2.state_for(op.hidden, op.c))}


class ElasticTokenHead(nn.Module):
    """LayerNorm on the class token, then the classifier (elastic input width only)."""

    def __init__(self, c_max: int, classes: int):
        super().__init__()
        self.norm = ElasticLayerNorm(c_max)
        self.fc = ElasticLinear(c_max, classes)

    def _check(self, op: ViTHead) -> None:
        if op.classes != self.fc.out_features:
            raise ValueError(f"head {op.key} does not fit this supernet's "
                             f"{self.fc.out_features} classes")

    def forward(self, t: torch.Tensor, op: ViTHead) -> torch.Tensor:
        self._check(op)
        return self.fc(self.norm(t[:, 0]))

    def state_for(self, op: ViTHead) -> dict[str, torch.Tensor]:
        self._check(op)
        return {**prefixed("norm", self.norm.state_for(op.c)),
                **prefixed("fc", self.fc.state_for(op.c, op.classes))}
