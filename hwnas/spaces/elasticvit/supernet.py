"""ElasticViT's weight-sharing supernet: elastic blocks for the largest architecture of an
``ElasticViTSpace``, paired per call with the ops of ``space.ops(arch)`` (see hwnas.supernet.model).
"""

from __future__ import annotations

from typing import Iterable, Iterator

import torch.nn as nn

from hwnas.spaces.elasticvit.elastic import (ElasticHead, ElasticInvertedResidual, ElasticMHSA,
                                             ElasticMLP, ElasticStem, as_mbconv)
from hwnas.spaces.elasticvit.ops import FFN, Attention, Head, MBConv, StemConv, TransDS
from hwnas.supernet.model import Supernet

# Which elastic block serves which op kind: checked when a subnet is selected.
_BLOCK_FOR = {StemConv: ElasticStem, MBConv: ElasticInvertedResidual,
              TransDS: ElasticInvertedResidual, Attention: ElasticMHSA, FFN: ElasticMLP,
              Head: ElasticHead}


# The fixed shapes of the transformer stages' opening block and of the head come from the op
# definitions themselves, so they cannot drift apart from the static model.
_TRANSDS = as_mbconv(TransDS(hw=8, cin=16, cout=16, stride=1))


_HEAD = Head(hw=1, c=16)


class ElasticViTSupernet(Supernet):
    """Weight-sharing supernet over an ``ElasticViTSpace`` (any narrowing of it)."""

    block_for = _BLOCK_FOR

    def __init__(self, space):
        super().__init__(space)
        stages = space.stages
        cin_max = max(stages[0].widths)
        self.stem = ElasticStem(cin_max)
        self.stages = nn.ModuleList()
        for st in stages:
            cout_max = max(st.widths)
            self.stages.append(nn.ModuleList(
                self._layer(st, j, cin_max if j == 0 else cout_max, cout_max)
                for j in range(max(st.depths))))
            cin_max = cout_max
        self.head = ElasticHead(cin_max, _HEAD.expand, _HEAD.features_out, space.classes)

    @staticmethod
    def _layer(st, j: int, cin_max: int, cout_max: int) -> nn.Module:
        stride = st.stride if j == 0 else 1
        if st.kind == "conv":
            return ElasticInvertedResidual(cin_max, cout_max, max(st.choice_a), max(st.choice_b),
                                           stride, st.se)
        layer = nn.ModuleDict()
        if j == 0:
            layer["ds"] = ElasticInvertedResidual(cin_max, cout_max, _TRANSDS.expand,
                                                  _TRANSDS.kernel, stride, False)
        layer["attn"] = ElasticMHSA(cout_max, max(st.choice_b))
        layer["ffn"] = ElasticMLP(cout_max, max(st.choice_a))
        return layer

    def _slots(self, arch) -> Iterator[nn.Module]:
        """The blocks an architecture runs, in the order ``space.ops`` emits its ops."""
        yield self.stem
        for i, st in enumerate(self.space.stages):
            for j in range(arch.depths[i]):
                layer = self.stages[i][j]
                if st.kind == "conv":
                    yield layer
                    continue
                if j == 0:
                    yield layer["ds"]
                yield layer["attn"]
                yield layer["ffn"]
        yield self.head

    def _static_blocks(self, static: nn.Module) -> Iterable[nn.Module]:
        return iter(static)  # the static model is an nn.Sequential of the ops' modules
