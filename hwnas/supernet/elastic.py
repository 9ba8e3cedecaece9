"""Elastic layers: one full-size weight, of which each subnet uses a slice.

Every layer holds the weights of its largest configuration. A smaller configuration uses the
leading slice along each elastic dimension (the first ``cout`` filters, the first ``cin`` input
channels, the centre crop of the largest kernel), as Once-for-All and ElasticViT do. The input
width is always read from the input tensor, so a layer cannot disagree with its predecessor.

``state_for(...)`` returns the sliced tensors under the parameter names of the matching static
layer (``nn.Conv2d``, ``nn.BatchNorm2d``, ...), so extraction is ``load_state_dict`` into the
static model built by the search space, with ``strict=True`` catching any mismatch.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwnas.ops import same_floor_padding


def centre_crop(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The centre ``kernel x kernel`` window of a larger square kernel."""
    k_max = weight.shape[-1]
    if kernel > k_max or (k_max - kernel) % 2:
        raise ValueError(f"cannot crop a {kernel}x{kernel} kernel out of {k_max}x{k_max}")
    lo = (k_max - kernel) // 2
    return weight[..., lo:lo + kernel, lo:lo + kernel]


class ElasticConv2d(nn.Module):
    """A square conv with elastic output width, input width and (odd) kernel size.

    ``depthwise=True`` gives a depthwise conv (groups = channels, one filter per channel); its
    output width is its input width. The padding is computed from the runtime input size with
    nn-Meter's floor convention, because one supernet serves several resolutions, unless a fixed
    ``padding`` is given (a ViT's patch embedding: kernel = stride, no padding).
    """

    def __init__(self, cin_max: int, cout_max: int, kernel_max: int = 1, stride: int = 1,
                 depthwise: bool = False, bias: bool = False, padding: int | None = None):
        super().__init__()
        self.stride, self.depthwise, self.padding = stride, depthwise, padding
        shape = (cout_max, 1 if depthwise else cin_max, kernel_max, kernel_max)
        self.weight = nn.Parameter(torch.empty(shape))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's own default
        self.bias = nn.Parameter(torch.zeros(cout_max)) if bias else None

    def _slices(self, cin: int, cout: int, kernel: int):
        if self.depthwise:
            cout = cin
            w = self.weight[:cin]
        else:
            w = self.weight[:cout, :cin]
        w = centre_crop(w, kernel) if kernel != self.weight.shape[-1] else w
        b = self.bias[:cout] if self.bias is not None else None
        return w, b

    def forward(self, x: torch.Tensor, cout: int | None = None, kernel: int = 1) -> torch.Tensor:
        cin = x.shape[1]
        w, b = self._slices(cin, cout if cout is not None else cin, kernel)
        pad = self.padding if self.padding is not None else \
            same_floor_padding(x.shape[-1], kernel, self.stride)
        return F.conv2d(x, w, b, self.stride, pad, groups=cin if self.depthwise else 1)

    def state_for(self, cin: int, cout: int, kernel: int = 1) -> dict[str, torch.Tensor]:
        w, b = self._slices(cin, cout, kernel)
        out = {"weight": w}
        if b is not None:
            out["bias"] = b
        return out


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first ``c`` channels, using (and updating) slices of the running stats.

    The slices are views, so training updates the shared buffers in place; their values only
    make sense for the subnet that last wrote them, which is why every subnet is re-calibrated
    (``recalibrate_bn``) before it is evaluated.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            # momentum=None is the cumulative average that recalibration relies on
            factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                      else self.momentum)
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c],
                            self.bias[:c], self.training, factor, self.eps)

    def state_for(self, c: int) -> dict[str, torch.Tensor]:
        return {"weight": self.weight[:c], "bias": self.bias[:c],
                "running_mean": self.running_mean[:c], "running_var": self.running_var[:c],
                "num_batches_tracked": self.num_batches_tracked}


class ElasticLinear(nn.Linear):
    """A linear layer over the first ``in`` features, producing the first ``out`` features."""

    def forward(self, x: torch.Tensor, out: int | None = None) -> torch.Tensor:
        w, b = self._slices(x.shape[-1], out if out is not None else self.out_features)
        return F.linear(x, w, b)

    def _slices(self, cin: int, cout: int):
        return self.weight[:cout, :cin], (self.bias[:cout] if self.bias is not None else None)

    def state_for(self, cin: int, cout: int) -> dict[str, torch.Tensor]:
        w, b = self._slices(cin, cout)
        return {"weight": w, **({"bias": b} if b is not None else {})}


class ElasticLayerNorm(nn.LayerNorm):
    """LayerNorm over the last dimension, whatever its (smaller) width is."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-1]
        return F.layer_norm(x, (c,), self.weight[:c], self.bias[:c], self.eps)

    def state_for(self, c: int) -> dict[str, torch.Tensor]:
        return {"weight": self.weight[:c], "bias": self.bias[:c]}


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}
