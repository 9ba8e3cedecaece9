"""Where sampled kernels come from: small torch blocks with configurations drawn broadly.

The kernel profiler does not invent runtime kernels by hand. It draws a configuration of a
*template* (a convolution with its BatchNorm and activation, a depthwise one, a pooling, a
linear layer on tokens, multi-head attention, an MLP, a LayerNorm, an elementwise op with
broadcasting, a transpose, a concat, ...), exports the block as a real exporter would (ONNX
at opset 17, or TFLite through litert-torch) and lets the runtime turn it into kernels
(anymodel/ort.py, anymodel/tflite.py). Every kernel the runtime makes is a sample of its
kind, with the fusions the runtime really does.

Ranges are generic mobile sizes (feature maps 4-224 px, 3-1536 channels, 16-3136 tokens),
not taken from any model of the zoo: the zoo is what the predictor is scored on.

The whole networks the per-network overhead model is fitted on are not composed of these
blocks: they are subnets of hwnas's own spaces (anymodel/calibration.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

STANDARD_HW = (4, 7, 8, 12, 14, 16, 24, 28, 32, 48, 56, 64, 96, 112, 128, 160, 224)
STANDARD_TOKENS = (16, 49, 50, 64, 65, 196, 197, 256, 257, 576, 784, 1024, 3136)
MAX_FLOPS = 1.2e9  # bigger kernels are rare in mobile models and take long to time
MAX_ELEMS = 3_500_000  # activations per tensor (14 MB of float32)


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "hw", "channels", "tokens", "int" (log-uniform in [lo, hi]), "choice"
    lo: int = 1
    hi: int = 1
    choices: tuple = ()
    weights: tuple = ()

    def draw(self, rng: np.random.Generator):
        if self.kind == "choice":
            p = np.asarray(self.weights or [1.0] * len(self.choices), dtype=float)
            return self.choices[int(rng.choice(len(self.choices), p=p / p.sum()))]
        if self.kind == "hw" and rng.random() < 0.6:
            pool = [v for v in STANDARD_HW if self.lo <= v <= self.hi]
            return int(rng.choice(pool))
        if self.kind == "tokens" and rng.random() < 0.5:
            pool = [v for v in STANDARD_TOKENS if self.lo <= v <= self.hi]
            return int(rng.choice(pool))
        v = int(round(math.exp(rng.uniform(math.log(self.lo), math.log(self.hi + 0.999)))))
        v = min(max(v, self.lo), self.hi)
        if self.kind == "channels" and v >= 16 and rng.random() < 0.8:
            v = max(8, int(round(v / 8)) * 8)  # most networks use multiples of 8
        return v

    def encode(self, value) -> float:
        if self.kind == "choice":
            return float(self.choices.index(value))
        return math.log(float(value))


@dataclass(frozen=True)
class Template:
    name: str
    params: tuple[Param, ...]
    weight: float  # share of the broad round
    build: Callable[[dict], tuple]  # config -> (torch module, NCHW or NLC input shape)
    cost: Callable[[dict], tuple[float, int]]  # config -> (FLOPs, largest tensor elements)

    def draw(self, rng: np.random.Generator, tries: int = 200) -> dict:
        for _ in range(tries):
            cfg = {p.name: p.draw(rng) for p in self.params}
            cfg = _fix(self.name, cfg)
            flops, elems = self.cost(cfg)
            if flops <= MAX_FLOPS and elems <= MAX_ELEMS:
                return cfg
        raise RuntimeError(f"template {self.name}: no configuration within the limits")

    def encode(self, cfg: dict) -> list[float]:
        return [p.encode(cfg[p.name]) for p in self.params]


def _fix(name: str, cfg: dict) -> dict:
    """Make a drawn configuration consistent (a residual needs cin == cout, ...)."""
    cfg = dict(cfg)
    if cfg.get("residual") and "cin" in cfg:
        cfg["cout"] = cfg["cin"]
        cfg["s"] = 1
    if "heads" in cfg and "dim" in cfg:
        cfg["dim"] = cfg["heads"] * cfg["head_dim"]
    if name == "linear" and cfg.get("head"):  # a classifier head: one pooled token
        cfg["n"] = 1
    if name == "movement" and cfg["op"] in ("merge", "focus"):  # even and odd halves agree
        cfg["hw"] = max(4, cfg["hw"] // 2 * 2)
        cfg["c"] = max(8, cfg["c"] // 2 * 2)
        cfg["n"] = max(16, cfg["n"] // 2 * 2)
    if name == "concat" and cfg["how"] == "split":  # two equal halves along axis 1
        cfg["c"] = max(8, cfg["c"] // 2 * 2)
        cfg["n"] = max(16, cfg["n"] // 2 * 2)
    if name == "movement" and cfg["op"] == "reflect":  # litert-torch pads 4-d maps only
        cfg["layout"] = "map"
    if name == "movement" and cfg["op"] == "expand":  # and broadcasts 4-d maps wrongly
        cfg["layout"] = "tokens"
    if name == "gconv":
        cfg["c"] = max(cfg["gw"], (cfg["c"] // cfg["gw"]) * cfg["gw"])
    if name == "pool" and cfg["pool"] in ("avg4s4", "avg8s8"):  # the window fits the map
        cfg["hw"] = max(cfg["hw"], int(cfg["pool"][3]))
    return cfg


# --- torch building blocks -------------------------------------------------------------------
def _torch():
    import torch

    return torch


def _act(name: str):
    nn = _torch().nn
    if name == "erf":  # GELU as torch.onnx's dynamo exporter writes it: Erf, Div, Mul, Add
        return _module(lambda m, x: _torch().erf(x))
    return {"relu": nn.ReLU(), "relu6": nn.ReLU6(), "hardswish": nn.Hardswish(),
            "silu": nn.SiLU(), "gelu": nn.GELU(), "sigmoid": nn.Sigmoid(),
            "hardsigmoid": nn.Hardsigmoid(), "tanh": nn.Tanh(), "none": nn.Identity()}[name]


def _bn(c: int, seed: int = 0):
    """BatchNorm in eval mode with non-trivial statistics (folded into the conv on export)."""
    torch = _torch()
    bn = torch.nn.BatchNorm2d(c)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
        bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return bn


def _out_hw(hw: int, k: int, s: int) -> int:
    return (hw + 2 * (k // 2) - k) // s + 1


def _module(forward, **children):
    torch = _torch()

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for k, v in children.items():
                setattr(self, k, v)

        def forward(self, x):
            return forward(self, x)

    return Block().eval()


def build_conv(c: dict):
    torch = _torch()
    conv = torch.nn.Conv2d(c["cin"], c["cout"], c["k"], c["s"], c["k"] // 2, bias=False)

    def fwd(m, x):
        y = m.act(m.bn(m.conv(x)))
        return y + x if c["residual"] else y

    return _module(fwd, conv=conv, bn=_bn(c["cout"]), act=_act(c["act"])), \
        (1, c["cin"], c["hw"], c["hw"])


def build_stem(c: dict):
    """A network's first convolution (3 channels in, strided), with ResNet's 3x3/2 max pool
    after it or not."""
    torch = _torch()
    conv, shape = build_conv(c)
    if not c.get("pool"):
        return conv, shape
    return _module(lambda m, x: m.pool(m.conv(x)), conv=conv,
                   pool=torch.nn.MaxPool2d(3, 2, 1)), shape


def cost_conv(c):
    o = _out_hw(c["hw"], c["k"], c["s"])
    return 2.0 * o * o * c["cout"] * c["cin"] * c["k"] ** 2, \
        max(c["cin"] * c["hw"] ** 2, c["cout"] * o * o)


def build_dwconv(c: dict):
    torch = _torch()
    conv = torch.nn.Conv2d(c["c"], c["c"], c["k"], c["s"], c["k"] // 2, groups=c["c"],
                           bias=False)
    return _module(lambda m, x: m.act(m.bn(m.conv(x))), conv=conv, bn=_bn(c["c"]),
                   act=_act(c["act"])), (1, c["c"], c["hw"], c["hw"])


def cost_dwconv(c):
    o = _out_hw(c["hw"], c["k"], c["s"])
    return 2.0 * o * o * c["c"] * c["k"] ** 2, c["c"] * c["hw"] ** 2


def build_gconv(c: dict):
    torch = _torch()
    conv = torch.nn.Conv2d(c["c"], c["c"], 3, c["s"], 1, groups=c["c"] // c["gw"], bias=False)
    return _module(lambda m, x: m.act(m.bn(m.conv(x))), conv=conv, bn=_bn(c["c"]),
                   act=_act(c["act"])), (1, c["c"], c["hw"], c["hw"])


def cost_gconv(c):
    o = _out_hw(c["hw"], 3, c["s"])
    return 2.0 * o * o * c["c"] * c["gw"] * 9, c["c"] * c["hw"] ** 2


def build_pool(c: dict):
    torch = _torch()
    nn = torch.nn
    kind = c["pool"]
    if kind == "head":
        lin = nn.Linear(c["c"], c["classes"])
        return _module(lambda m, x: m.fc(torch.flatten(m.gap(x), 1)),
                       gap=nn.AdaptiveAvgPool2d(1), fc=lin), (1, c["c"], c["hw"], c["hw"])
    pool = {"max3s2": nn.MaxPool2d(3, 2, 1), "max2s2": nn.MaxPool2d(2, 2),
            "avg3s1": nn.AvgPool2d(3, 1, 1, count_include_pad=False),
            "avg2s2": nn.AvgPool2d(2, 2),
            # EdgeViT's local aggregation pools by its sub-sampling ratio (4 and 8)
            "avg4s4": nn.AvgPool2d(4, 4), "avg8s8": nn.AvgPool2d(8, 8)}[kind]
    return _module(lambda m, x: m.pool(x), pool=pool), (1, c["c"], c["hw"], c["hw"])


def cost_pool(c):
    return 9.0 * c["c"] * c["hw"] ** 2, c["c"] * c["hw"] ** 2


def build_se(c: dict):
    torch = _torch()
    nn = torch.nn
    mid = max(8, c["c"] // c["ratio"])

    def fwd(m, x):
        sq = m.pool(x) if c["squeeze"] == "pool" else x.mean((2, 3), keepdim=True)
        return x * m.gate(m.fc2(m.act(m.fc1(sq))))

    return _module(fwd, fc1=nn.Conv2d(c["c"], mid, 1), fc2=nn.Conv2d(mid, c["c"], 1),
                   act=_act(c["act"]), gate=_act(c["gate"]), pool=nn.AdaptiveAvgPool2d(1)), \
        (1, c["c"], c["hw"], c["hw"])


def cost_se(c):
    return 3.0 * c["c"] * c["hw"] ** 2, c["c"] * c["hw"] ** 2


def build_patch(c: dict):
    torch = _torch()
    conv = torch.nn.Conv2d(3, c["cout"], c["p"], c["p"])
    return _module(lambda m, x: m.conv(x).flatten(2).transpose(1, 2), conv=conv), \
        (1, 3, c["hw"], c["hw"])


def cost_patch(c):
    return 2.0 * c["hw"] ** 2 * 3 * c["cout"], 3 * c["hw"] ** 2


def build_linear(c: dict):
    """A linear layer over tokens; without bias it stays a MatMul with a constant operand
    (LeViT's, followed by a BatchNorm), with one a Gemm. One token is a classifier head: a
    2-D input, as a network's head after pooling has, and a matrix-vector product that
    streams its weights (a 1632 x 1984 head is 13 MB)."""
    torch = _torch()
    lin = torch.nn.Linear(c["din"], c["dout"], bias=bool(c.get("bias", 1)))
    shape = (1, c["din"]) if c["n"] == 1 else (1, c["n"], c["din"])
    return _module(lambda m, x: m.act(m.fc(x)), fc=lin, act=_act(c["act"])), shape


def cost_linear(c):
    return 2.0 * c["n"] * c["din"] * c["dout"], c["n"] * max(c["din"], c["dout"])


class _Attention:
    """timm's and Hugging Face's attention, as the exporter sees them."""

    @staticmethod
    def build(c: dict):
        torch = _torch()
        nn = torch.nn
        d, h, hd, n = c["dim"], c["heads"], c["head_dim"], c["n"]
        fused = c["qkv"] == "fused"
        kids = {"norm": nn.LayerNorm(d), "proj": nn.Linear(d, d)}
        if fused:
            kids["qkv"] = nn.Linear(d, 3 * d)
        else:
            kids.update(q=nn.Linear(d, d), k=nn.Linear(d, d), v=nn.Linear(d, d))
        scale = hd ** -0.5

        def fwd(m, x):
            y = m.norm(x) if c["prenorm"] else x
            if fused:
                qkv = m.qkv(y).reshape(1, n, 3, h, hd).permute(2, 0, 3, 1, 4)
                q, k, v = qkv[0], qkv[1], qkv[2]
            else:
                q, k, v = (t(y).reshape(1, n, h, hd).permute(0, 2, 1, 3)
                           for t in (m.q, m.k, m.v))
            a = (q @ k.transpose(-2, -1)) * scale
            a = a.softmax(-1)
            o = (a @ v).transpose(1, 2).reshape(1, n, d)
            o = m.proj(o)
            if c["residual"] == 2:  # post-norm (BERT-style): the add and the norm fuse
                return m.post(o + x)
            return o + x if c["residual"] else o

        kids["post"] = nn.LayerNorm(d)
        return _module(fwd, **kids), (1, n, d)

    @staticmethod
    def cost(c):
        d, n = c["dim"], c["n"]
        return 8.0 * n * d * d + 4.0 * n * n * d, max(c["heads"] * n * n, 3 * n * d)


def build_mlp(c: dict):
    torch = _torch()
    nn = torch.nn
    d, r = c["dim"], c["ratio"]

    post = c.get("post", 0)

    def fwd(m, x):
        if post:  # the residual add and the next norm fuse (SkipLayerNormalization)
            return m.norm(x + m.fc2(m.act(m.fc1(x))))
        return x + m.fc2(m.act(m.fc1(m.norm(x))))

    return _module(fwd, norm=nn.LayerNorm(d), fc1=nn.Linear(d, r * d), act=_act(c["act"]),
                   fc2=nn.Linear(r * d, d)), (1, c["n"], d)


def cost_mlp(c):
    return 4.0 * c["n"] * c["dim"] ** 2 * c["ratio"], c["n"] * c["dim"] * c["ratio"]


def build_norm(c: dict):
    torch = _torch()
    nn = torch.nn
    kind = c["norm"]
    if kind == "ln_tokens":
        return _module(lambda m, x: m.norm(x), norm=nn.LayerNorm(c["c"])), (1, c["n"], c["c"])
    if kind == "ln_channels_first":  # ConvNeXt-style: LayerNorm over channels of a map
        return _module(lambda m, x: m.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2),
                       norm=nn.LayerNorm(c["c"])), (1, c["c"], c["hw"], c["hw"])
    if kind == "groupnorm1":
        return _module(lambda m, x: m.norm(x), norm=nn.GroupNorm(1, c["c"])), \
            (1, c["c"], c["hw"], c["hw"])
    if kind == "bn_tokens":  # BatchNorm1d over a token sequence's channels (LeViT-style)
        bn = nn.BatchNorm1d(c["c"]).eval()
        return _module(lambda m, x: m.norm(x.flatten(0, 1)).reshape_as(x), norm=bn), \
            (1, c["n"], c["c"])
    return _module(lambda m, x: m.norm(x), norm=_bn(c["c"])), (1, c["c"], c["hw"], c["hw"])


def cost_norm(c):
    e = c["c"] * (c["n"] if c["norm"] in ("ln_tokens", "bn_tokens") else c["hw"] ** 2)
    return 8.0 * e, e


def _map_or_tokens(c: dict) -> tuple:
    return (1, c["c"], c["hw"], c["hw"]) if c["layout"] == "map" else (1, c["n"], c["c"])


def _elems(c: dict) -> int:
    return c["c"] * (c["hw"] ** 2 if c["layout"] == "map" else c["n"])


def build_eltwise(c: dict):
    torch = _torch()
    shape = _map_or_tokens(c)
    op = c["op"]
    # "const": a constant of the activation's own size, ViT's position embedding and
    # LeViT's and Swin's attention biases; timed against two activations' sum it was
    # over-predicted 4-7x (its second operand is not an activation to be produced)
    other = {"full": shape, "const": shape[1:], "channel": (1, c["c"], 1, 1)
             if c["layout"] == "map" else (c["c"],), "scalar": (1,)}[c["bcast"]]
    p = torch.nn.Parameter(torch.rand(other) + 0.5, requires_grad=False)

    def fwd(m, x):
        y = torch.relu(x) if c["bcast"] == "full" else m.p  # two activations, or a weight
        return {"add": x + y, "mul": x * y, "sub": x - y, "div": x / (y + 1.0)}[op]

    return _module(fwd, p=p), shape


def build_activation(c: dict):
    return _module(lambda m, x: m.act(x), act=_act(c["act"])), _map_or_tokens(c)


def _softmax_shape(c: dict) -> tuple:
    """Attention scores: square (self-attention), queries against fewer or more keys (LeViT's
    subsampling attention, cross-attention), or windows batched in front (MobileViT's
    unfolded patches, Swin's windows)."""
    if c.get("scores") == "keys":
        return (1, c["heads"], c["n"], c["m"])
    if c.get("scores") == "windows":
        return (c["windows"], c["heads"], c["n"], c["n"])
    return (1, c["heads"], c["n"], c["n"])


def build_softmax(c: dict):
    return _module(lambda m, x: x.softmax(-1)), _softmax_shape(c)


def cost_softmax(c):
    e = math.prod(_softmax_shape(c))
    return 5.0 * e, e


def build_transpose(c: dict):
    kind = c["perm"]
    if kind == "nchw_nhwc":
        return _module(lambda m, x: x.permute(0, 2, 3, 1).contiguous() * 1.0), \
            (1, c["c"], c["hw"], c["hw"])
    if kind == "nhwc_nchw":
        return _module(lambda m, x: x.permute(0, 3, 1, 2).contiguous() * 1.0), \
            (1, c["hw"], c["hw"], c["c"])
    if kind == "tokens_heads":  # [1, N, h, d] -> [1, h, N, d]
        h = max(1, c["c"] // 32)
        return _module(lambda m, x: x.reshape(1, c["n"], h, c["c"] // h).permute(0, 2, 1, 3)
                       * 1.0), (1, c["n"], (c["c"] // h) * h)
    return _module(lambda m, x: x.transpose(1, 2) * 1.0), (1, c["n"], c["c"])


def build_concat(c: dict):
    torch = _torch()
    kind = c["how"]
    shape = _map_or_tokens(c)
    axis = 1
    if kind == "cat2":
        return _module(lambda m, x: torch.cat([x, torch.relu(x)], axis)), shape
    if kind == "cat3":
        return _module(lambda m, x: torch.cat([x, torch.relu(x), torch.sigmoid(x)], axis)), \
            shape
    if kind == "many":  # thin slices of the channels (last axis, as on a channels-last map)
        # each transformed, then joined: EdgeViT's local propagation joins 36-144 of them
        width = shape[1] if len(shape) == 4 else shape[2]
        parts = max(2, min(width, c.get("parts", 16)))
        sizes = [width // parts + (1 if i < width % parts else 0) for i in range(parts)]

        def many(m, x):
            x = x.permute(0, 2, 3, 1) if len(shape) == 4 else x
            return torch.cat([torch.relu(t) for t in torch.split(x, sizes, -1)], -1)

        return _module(many), shape
    if kind == "token":  # a learned class token in front of the patch tokens (ViT, DeiT)
        width = shape[2] if len(shape) == 3 else shape[1]
        return _module(lambda m, x: torch.cat([m.cls.expand(1, 1, width), x.flatten(2)
                                               .transpose(1, 2) if len(shape) == 4 else x], 1),
                       cls=torch.nn.Parameter(torch.randn(1, 1, width),
                                              requires_grad=False)), shape
    if kind == "split":
        return _module(lambda m, x: torch.relu(x.chunk(2, axis)[0]) + x.chunk(2, axis)[1]), \
            shape
    if kind == "roll":  # Swin's shifted windows
        return _module(lambda m, x: torch.roll(x, (1, 1), (2, 3) if len(shape) == 4
                                               else (1, 2)) * 1.0), shape
    return _module(lambda m, x: torch.nn.functional.pad(x, (1, 1, 1, 1) if len(shape) == 4
                                                        else (0, 0, 1, 0)) * 1.0), shape


def build_reduce(c: dict):
    torch = _torch()
    how = c["how"]
    if c["layout"] == "map":
        return _module(lambda m, x: x.mean((2, 3))), (1, c["c"], c["hw"], c["hw"])
    if how == "first":  # a class token
        return _module(lambda m, x: x[:, 0] * 1.0), (1, c["n"], c["c"])
    if how == "pool1d":  # Swin's head: AdaptiveAvgPool1d over the tokens
        return _module(lambda m, x: torch.flatten(m.pool(x.transpose(1, 2)), 1),
                       pool=torch.nn.AdaptiveAvgPool1d(1)), (1, c["n"], c["c"])
    return _module(lambda m, x: x.mean(1)), (1, c["n"], c["c"])


def build_movement(c: dict):
    """Data movement as exporters write it, each the way a real model uses it: a crop
    (Swin's windows unpadded, a class token dropped), a strided slice, Swin's patch merging
    (four strided slices and a concat) and YOLOv5's Focus, half of the channels (CSP,
    GhostNet), a gather of channels or tokens by a constant index, a zero or reflection pad,
    a broadcast, a tiling, a select by a computed or a constant mask. On onnxruntime they are
    Slice, Concat, SpaceToDepth, Gather, Pad, Expand, Tile, Greater and Where kernels; on TFLite
    SLICE, STRIDED_SLICE, CONCATENATION, GATHER_ND, PAD, MIRROR_PAD, BROADCAST_TO, GREATER and
    SELECT_V2 (benchmarks/exporter_kinds.py lists them against the zoo's)."""
    torch = _torch()
    f = torch.nn.functional
    shape = _map_or_tokens(c)
    op, tokens = c["op"], c["layout"] == "tokens"
    d = max(1, shape[2] // 8)  # a crop or pad of an eighth, as a window size leaves
    if op == "crop":
        fwd = (lambda m, x: x[:, d:]) if tokens else (lambda m, x: x[:, :, :-d, :-d])
    elif op == "stride":
        fwd = (lambda m, x: x[:, ::2]) if tokens else (lambda m, x: x[:, :, ::2, ::2])
    elif op == "merge" and not tokens:  # Swin's patch merging, on a channels-last map
        fwd = lambda m, x: torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2],  # noqa: E731
                                      x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    elif op == "focus" and not tokens:  # YOLOv5's Focus: the same on a channels-first map
        fwd = lambda m, x: torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2],  # noqa: E731
                                      x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], 1)
    elif op in ("merge", "focus"):  # tokens: the even and odd tokens side by side
        fwd = lambda m, x: torch.cat([x[:, 0::2], x[:, 1::2]], 2)  # noqa: E731
    elif op == "half":
        axis = 2 if tokens else 1
        fwd = lambda m, x: x.narrow(axis, 0, x.shape[axis] // 2)  # noqa: E731
    elif op == "gather":  # a constant permutation of a third of the channels or tokens
        axis = 1
        n = shape[axis]
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(n))[:max(1, n // 3)]
        fwd = lambda m, x: torch.index_select(x, axis, m.idx)  # noqa: E731
        return _module(fwd, idx=torch.nn.Buffer(idx)), shape
    elif op in ("pad", "reflect"):
        pads = (0, 0, 0, d) if tokens else (0, d, 0, d)
        mode = "constant" if op == "pad" else "reflect"
        fwd = lambda m, x: f.pad(x, pads, mode=mode)  # noqa: E731
    elif op == "expand":  # a pooled summary broadcast back over the tokens
        fwd = lambda m, x: x.mean(1, keepdim=True).expand(shape)  # noqa: E731
    elif op == "tile":
        fwd = (lambda m, x: x.repeat(1, 2, 1)) if tokens else \
            (lambda m, x: x.repeat(1, 1, 2, 2))
    elif op == "where":  # a select by a mask computed from the activation
        fwd = lambda m, x: torch.where(x > 0, x, torch.zeros(()))  # noqa: E731
    elif op == "mask":  # a constant mask filled in (Swin's shifted-window attention mask)
        mask = torch.rand(shape[1:], generator=torch.Generator().manual_seed(7)) > 0.5
        return _module(lambda m, x: x.masked_fill(m.mask, -100.0),
                       mask=torch.nn.Buffer(mask)), shape
    else:
        raise ValueError(f"unknown movement {op!r}")
    return _module(fwd), shape


def cost_movement(c):
    e = _elems(c)
    return float(e), 4 * e if c["op"] == "tile" else e


def build_resize(c: dict):
    torch = _torch()
    mode = c["mode"]
    return _module(lambda m, x: torch.nn.functional.interpolate(
        x, scale_factor=2, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))
    ), (1, c["c"], c["hw"], c["hw"])


def build_upconv(c: dict):
    """A transposed convolution upsampling by its stride (EdgeViT's local propagation)."""
    torch = _torch()
    up = torch.nn.ConvTranspose2d(c["c"], c["c"], c["s"], c["s"],
                                  groups=c["c"] if c["dw"] else 1)
    return _module(lambda m, x: m.up(x), up=up), (1, c["c"], c["hw"], c["hw"])


def cost_upconv(c):
    per = c["s"] ** 2 * (1 if c["dw"] else c["c"])
    o = c["hw"] * c["s"]
    return 2.0 * o * o * c["c"] * per / c["s"] ** 2, c["c"] * o * o


def cost_elems(c):
    return float(_elems(c)), _elems(c)


# --- the templates ---------------------------------------------------------------------------
HW = Param("hw", "hw", 4, 224)
ACTS = ("relu", "relu6", "hardswish", "silu", "gelu", "none")
LAYOUT = Param("layout", "choice", choices=("map", "tokens"), weights=(0.5, 0.5))
MOVEMENTS = ("crop", "stride", "merge", "focus", "half", "gather", "pad", "reflect", "expand",
             "tile", "where", "mask")
C_ANY = Param("c", "channels", 8, 1024)
N_ANY = Param("n", "tokens", 16, 3136)

TEMPLATES: dict[str, Template] = {t.name: t for t in [
    Template("conv", (HW, Param("cin", "channels", 3, 768), Param("cout", "channels", 8, 1024),
                      Param("k", "choice", choices=(1, 3, 5, 7), weights=(.5, .35, .08, .07)),
                      Param("s", "choice", choices=(1, 2), weights=(.75, .25)),
                      Param("act", "choice", choices=ACTS, weights=(.3, .15, .15, .1, .1, .2)),
                      Param("residual", "choice", choices=(0, 1), weights=(.75, .25))),
             0.28, build_conv, cost_conv),
    Template("stem", (Param("hw", "choice", choices=(128, 160, 192, 224, 256)),
                      Param("cin", "choice", choices=(3,)),
                      Param("cout", "choice", choices=(16, 24, 32, 48, 64)),
                      Param("k", "choice", choices=(3, 4, 7), weights=(.6, .1, .3)),
                      Param("s", "choice", choices=(2, 4), weights=(.85, .15)),
                      Param("act", "choice", choices=ACTS, weights=(.3, .15, .15, .1, .1, .2)),
                      Param("residual", "choice", choices=(0,)),
                      Param("pool", "choice", choices=(0, 1))),
             0.02, build_stem, cost_conv),
    Template("dwconv", (HW, Param("c", "channels", 8, 1536),
                        Param("k", "choice", choices=(3, 5, 7), weights=(.6, .25, .15)),
                        Param("s", "choice", choices=(1, 2), weights=(.75, .25)),
                        Param("act", "choice", choices=ACTS, weights=(.3, .15, .15, .1, .1, .2))),
             0.12, build_dwconv, cost_dwconv),
    Template("gconv", (HW, Param("c", "channels", 32, 1024),
                       Param("gw", "choice", choices=(8, 16, 24, 32, 48, 64)),
                       Param("s", "choice", choices=(1, 2), weights=(.75, .25)),
                       Param("act", "choice", choices=("relu", "none"))),
             0.04, build_gconv, cost_gconv),
    Template("pool", (HW, C_ANY, Param("pool", "choice", choices=(
        "max3s2", "max2s2", "avg3s1", "avg2s2", "head", "avg4s4", "avg8s8")),
        Param("classes", "int", 10, 1000)),
             0.04, build_pool, cost_pool),
    Template("se", (Param("hw", "hw", 4, 112), C_ANY,
                    Param("ratio", "choice", choices=(4, 8, 16)),
                    Param("act", "choice", choices=("relu", "silu")),
                    Param("gate", "choice", choices=("sigmoid", "hardsigmoid")),
                    Param("squeeze", "choice", choices=("pool", "mean"))),
             0.04, build_se, cost_se),
    Template("patch", (Param("hw", "choice", choices=(64, 96, 128, 160, 192, 224, 256)),
                       Param("p", "choice", choices=(2, 4, 7, 8, 14, 16, 32)),
                       Param("cout", "channels", 16, 768)),
             0.02, build_patch, cost_patch),
    Template("linear", (Param("n", "tokens", 1, 3136), Param("din", "channels", 16, 2048),
                        Param("dout", "channels", 16, 4096),
                        Param("act", "choice", choices=("none", "gelu", "relu", "hardswish",
                                                        "silu"), weights=(.5, .2, .1, .1, .1)),
                        Param("bias", "choice", choices=(1, 0), weights=(.6, .4)),
                        Param("head", "choice", choices=(0, 1), weights=(.85, .15))),
             0.14, build_linear, cost_linear),
    Template("attention", (Param("n", "tokens", 16, 1024), Param("heads", "int", 1, 16),
                           Param("head_dim", "choice", choices=(16, 24, 32, 48, 64)),
                           Param("dim", "int", 16, 16),
                           Param("qkv", "choice", choices=("fused", "split")),
                           Param("prenorm", "choice", choices=(0, 1)),
                           Param("residual", "choice", choices=(0, 1, 2))),
             0.10, _Attention.build, _Attention.cost),
    Template("mlp", (N_ANY, Param("dim", "channels", 16, 768),
                     Param("ratio", "choice", choices=(2, 3, 4)),
                     Param("act", "choice", choices=("gelu", "relu", "hardswish", "silu"),
                           weights=(.6, .1, .15, .15)),
                     Param("post", "choice", choices=(0, 1), weights=(.6, .4))),
             0.06, build_mlp, cost_mlp),
    Template("norm", (HW, C_ANY, N_ANY, Param("norm", "choice", choices=(
        "ln_tokens", "ln_channels_first", "groupnorm1", "batchnorm", "bn_tokens"),
        weights=(.35, .2, .15, .15, .15))),
             0.05, build_norm, cost_norm),
    Template("eltwise", (HW, C_ANY, N_ANY, LAYOUT,
                         Param("op", "choice", choices=("add", "mul", "sub", "div"),
                               weights=(.4, .35, .15, .1)),
                         Param("bcast", "choice", choices=("full", "const", "channel",
                                                           "scalar"))),
             0.04, build_eltwise, cost_elems),
    Template("activation", (HW, C_ANY, N_ANY, LAYOUT, Param("act", "choice", choices=(
        "relu", "relu6", "hardswish", "silu", "gelu", "sigmoid", "hardsigmoid", "tanh",
        "erf"))),
             0.03, build_activation, cost_elems),
    Template("softmax", (Param("n", "tokens", 16, 1024), Param("heads", "int", 1, 16),
                         Param("scores", "choice", choices=("square", "keys", "windows"),
                               weights=(.5, .3, .2)),
                         Param("m", "tokens", 16, 1024),
                         Param("windows", "choice", choices=(2, 4, 8, 16))),
             0.02, build_softmax, cost_softmax),
    Template("transpose", (HW, C_ANY, N_ANY, Param("perm", "choice", choices=(
        "nchw_nhwc", "nhwc_nchw", "tokens_heads", "swap12"))),
             0.02, build_transpose, lambda c: (float(c["c"] * max(c["hw"] ** 2, c["n"])),
                                                c["c"] * max(c["hw"] ** 2, c["n"]))),
    Template("concat", (HW, C_ANY, N_ANY, LAYOUT, Param("how", "choice", choices=(
        "cat2", "cat3", "split", "roll", "pad", "many", "token"),
        weights=(.15, .1, .15, .1, .1, .25, .15)),
        Param("parts", "choice", choices=(4, 8, 16, 36, 72, 144),
              weights=(.1, .1, .2, .2, .2, .2))),
             0.02, build_concat, cost_elems),
    Template("reduce", (HW, C_ANY, N_ANY, LAYOUT, Param("how", "choice", choices=(
        "mean", "first", "pool1d"))), 0.03, build_reduce, cost_elems),
    Template("upconv", (Param("hw", "hw", 4, 56), Param("c", "channels", 8, 512),
                        Param("s", "choice", choices=(2, 4)),
                        Param("dw", "choice", choices=(0, 1), weights=(.4, .6))),
             0.02, build_upconv, cost_upconv),
    Template("movement", (HW, C_ANY, N_ANY, LAYOUT, Param("op", "choice", choices=MOVEMENTS)),
             0.03, build_movement, cost_movement),
    Template("resize", (Param("hw", "hw", 4, 56), Param("c", "channels", 8, 512),
                        Param("mode", "choice", choices=("nearest", "bilinear"))),
             0.01, build_resize, lambda c: (4.0 * c["c"] * c["hw"] ** 2, 4 * c["c"] * c["hw"] ** 2)),
]}


# --- samples of one kind, near given sizes (a prediction's missing kinds) ----------------------
def _m(op, **fixed):
    return ("movement", dict(fixed, op=op))


# kernel kind -> the template configurations (template, fixed parameters) that make kernels of
# it, on onnxruntime and on TFLite (litert-torch); tests/test_anymodel_missing.py exports each
# and checks. A kind not here gets no template samples, only the model's own kernels.
SOURCES: dict[str, tuple[tuple[str, dict], ...]] = {
    "Slice": (_m("crop"), _m("stride"), _m("merge", layout="map"), _m("half")),
    "Concat": (_m("merge"), ("concat", {"how": "cat2"})),
    "Gather": (_m("gather"),),
    "Pad": (_m("pad"), _m("reflect")),
    "Expand": (_m("expand"), _m("tile")),
    "Tile": (_m("tile"),),
    "Where": (_m("where"), _m("mask")),
    "Greater": (_m("where"),),
    "SpaceToDepth": (_m("focus", layout="map"),),
    "Split": (("concat", {"how": "split"}),),
    "Transpose": (("transpose", {}),),
    "Resize": (("resize", {}),),
    "ReduceMean": (("reduce", {"how": "mean"}),),
    "Erf": (("activation", {"act": "erf"}),),
    "SLICE": (_m("crop"), _m("half")),
    "STRIDED_SLICE": (_m("stride"), _m("merge")),
    "CONCATENATION": (_m("merge"), ("concat", {"how": "cat2"})),
    "GATHER_ND": (_m("gather"),),
    "PAD": (_m("pad"),),
    "MIRROR_PAD": (_m("reflect"),),
    "BROADCAST_TO": (_m("expand"), _m("tile")),
    "SELECT_V2": (_m("where"), _m("mask")),
    "GREATER": (_m("where"),),
    "TRANSPOSE": (("transpose", {}),),
    "DEPTHWISE_CONV_2D/LARGE": (("dwconv", {"k": 7}),),
    "RESIZE_BILINEAR": (("resize", {"mode": "bilinear"}),),
    "RESIZE_NEAREST_NEIGHBOR": (("resize", {"mode": "nearest"}),),
}


def draw_fixed(template: str, fixed: dict, rng: np.random.Generator) -> dict | None:
    """One configuration of ``template`` with ``fixed`` parameters, within the limits (None
    when the draw falls outside them)."""
    t = TEMPLATES[template]
    cfg = {p.name: p.draw(rng) for p in t.params}
    cfg = _fix(template, dict(cfg, **fixed))
    flops, elems = t.cost(cfg)
    return cfg if flops <= MAX_FLOPS and elems <= MAX_ELEMS else None


def near(kind: str, sizes, n: int, seed: int = 0, candidates: int = 400) -> list[tuple]:
    """``n`` (template, config) pairs that make kernels of ``kind``, their sizes (elements
    of the largest tensor) spread log-evenly from a quarter of the smallest of ``sizes`` to
    four times the largest: samples that bracket a model's kernels of that kind. [] for a
    kind no template makes."""
    sources = SOURCES.get(kind, ())
    if not sources or n < 1:
        return []
    rng = np.random.default_rng([seed, 31337])
    pool = []
    for i in range(candidates):
        template, fixed = sources[i % len(sources)]
        cfg = draw_fixed(template, fixed, rng)
        if cfg is not None:
            pool.append((template, cfg, math.log(max(1, TEMPLATES[template].cost(cfg)[1]))))
    if not pool:
        return []
    lo = math.log(max(1.0, min(sizes) / 4)) if sizes else min(p[2] for p in pool)
    hi = math.log(max(sizes) * 4) if sizes else max(p[2] for p in pool)
    out: list[tuple] = []
    for target in np.linspace(lo, hi, n):
        best = min((p for p in pool if p[:2] not in [o[:2] for o in out]),
                   key=lambda p: abs(p[2] - target), default=None)
        if best is not None:
            out.append(best)
    return [(t, c) for t, c, _ in out]


def build(template: str, cfg: dict, seed: int = 0):
    """(module with seeded weights, input shape) of a template configuration."""
    torch = _torch()
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return TEMPLATES[template].build(cfg)
    finally:
        torch.random.set_rng_state(state)
