"""A zoo of real architectures at mobile sizes, built offline with random weights.

Hugging Face ``transformers`` builds its vision models from a config alone (no download,
no torchvision): ResNet, MobileNetV2, EfficientNet, RegNet, ConvNeXt, ViT, DeiT, LeViT,
MobileViT, Swin and PoolFormer. Each entry below is a published configuration (or the
smallest published member of its family), at the resolution it was published for; some
defaults in ``transformers`` are huge (EfficientNet's is B7 at 600 px), so every field that
matters is given. hwnas's own named models (``hwnas.models``) are in the zoo too, under
their names.

Weights are random but *variance-preserving* (Kaiming-normal on fan-in, unit BatchNorm and
LayerNorm), seeded: ``transformers``' own initialisation shrinks some networks' activations
towards denormal floats, which x86 CPUs process 10-100x slower, and a latency benchmark would
then time the arithmetic of denormals instead of the network.

The zoo is an extra (``pip install 'hwnas[zoo]'``): without ``transformers`` the HF entries
raise a one-line ModelError; hwnas's own models still work.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from hwnas.errors import ModelError

ZOO_HINT = "the model zoo needs Hugging Face transformers: pip install 'hwnas[zoo]'"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    family: str  # "convnet", "vit" or "hybrid" (for the benchmark's per-family figures)
    source: str  # "hf:<Config class>" or "hwnas" (hwnas.models)
    config: dict  # the transformers config fields (empty for hwnas models)
    resolution: int
    note: str = ""

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.resolution, self.resolution)


def _hf(name, family, cls, res, note="", **config) -> ZooEntry:
    return ZooEntry(name, family, f"hf:{cls}", dict(config, num_labels=1000), res, note)


HF = [
    _hf("resnet-18", "convnet", "ResNetConfig", 224, "ResNet-18", layer_type="basic",
        depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], embedding_size=64),
    _hf("resnet-50-160", "convnet", "ResNetConfig", 160, "ResNet-50 at 160 px",
        layer_type="bottleneck", depths=[3, 4, 6, 3], hidden_sizes=[256, 512, 1024, 2048],
        embedding_size=64),
    _hf("mobilenet-v2-1.0", "convnet", "MobileNetV2Config", 224, "MobileNetV2 1.0",
        depth_multiplier=1.0, image_size=224),
    _hf("mobilenet-v2-0.5-160", "convnet", "MobileNetV2Config", 160, "MobileNetV2 0.5, 160 px",
        depth_multiplier=0.5, image_size=160),
    _hf("efficientnet-b0", "convnet", "EfficientNetConfig", 224, "EfficientNet-B0",
        width_coefficient=1.0, depth_coefficient=1.0, image_size=224, dropout_rate=0.2,
        hidden_dim=1280),
    _hf("regnet-x-400mf", "convnet", "RegNetConfig", 224, "RegNetX-400MF", layer_type="x",
        depths=[1, 2, 7, 12], hidden_sizes=[32, 64, 160, 400], groups_width=16,
        embedding_size=32),
    _hf("regnet-y-400mf", "convnet", "RegNetConfig", 224, "RegNetY-400MF", layer_type="y",
        depths=[1, 3, 6, 6], hidden_sizes=[48, 104, 208, 440], groups_width=8,
        embedding_size=32),
    _hf("convnext-atto", "convnet", "ConvNextConfig", 224, "ConvNeXt-Atto (timm's smallest)",
        hidden_sizes=[40, 80, 160, 320], depths=[2, 2, 6, 2]),
    _hf("convnext-femto", "convnet", "ConvNextConfig", 224, "ConvNeXt-Femto",
        hidden_sizes=[48, 96, 192, 384], depths=[2, 2, 6, 2]),
    _hf("poolformer-s12", "convnet", "PoolFormerConfig", 224, "PoolFormer-S12",
        depths=[2, 2, 6, 2], hidden_sizes=[64, 128, 320, 512]),
    _hf("vit-tiny-patch16", "vit", "ViTConfig", 224, "ViT-Ti/16 (DeiT-tiny's shape)",
        hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768,
        image_size=224, patch_size=16),
    _hf("deit-small-distilled", "vit", "DeiTConfig", 224, "DeiT-S distilled (2 tokens)",
        hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
        image_size=224, patch_size=16),
    _hf("deit-tiny-distilled", "vit", "DeiTConfig", 224, "DeiT-Ti distilled (2 tokens)",
        hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768,
        image_size=224, patch_size=16),
    _hf("levit-128s", "vit", "LevitConfig", 224, "LeViT-128S", hidden_sizes=[128, 256, 384],
        num_attention_heads=[4, 6, 8], depths=[2, 3, 4], key_dim=[16, 16, 16],
        image_size=224),
    _hf("levit-192", "vit", "LevitConfig", 224, "LeViT-192", hidden_sizes=[192, 288, 384],
        num_attention_heads=[3, 5, 6], depths=[4, 4, 4], key_dim=[32, 32, 32], image_size=224),
    _hf("swin-tiny", "vit", "SwinConfig", 224, "Swin-T", embed_dim=96, depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24], window_size=7, image_size=224),
    _hf("mobilevit-xxs", "hybrid", "MobileViTConfig", 256, "MobileViT-XXS",
        hidden_sizes=[64, 80, 96], neck_hidden_sizes=[16, 16, 24, 48, 64, 80, 320],
        expand_ratio=2.0, image_size=256),
    _hf("mobilevit-xs", "hybrid", "MobileViTConfig", 256, "MobileViT-XS",
        hidden_sizes=[96, 120, 144], neck_hidden_sizes=[16, 32, 48, 64, 80, 96, 384],
        image_size=256),
    _hf("mobilevit-s", "hybrid", "MobileViTConfig", 256, "MobileViT-S",
        hidden_sizes=[144, 192, 240], neck_hidden_sizes=[16, 32, 64, 96, 128, 160, 640],
        image_size=256),
]
HWNAS_FAMILIES = {"deit-tiny": "vit", "deit-small": "vit", "vitas-c": "vit",
                  "mobilenetv2": "convnet", "edgevit-xxs": "hybrid", "edgevit-xs": "hybrid",
                  "edgevit-s": "hybrid", "elastic_T1": "hybrid", "elastic_T2": "hybrid",
                  "elastic_S1": "hybrid", "elastic_M": "hybrid", "elastic_L3": "hybrid",
                  "vit-resnas-tiny": "vit", "vit-resnas-small": "vit",
                  "vit-resnas-medium": "vit"}
# Model rewrites that keep the architecture but fix how a module is written, per config class;
# the tag goes into the export cache key. EfficientNet: transformers' pooler is
# AvgPool2d(hidden_dim=1280, ceil_mode=True) over a 7 x 7 map, a global average pool written
# as a 1280-wide window. PyTorch and onnxruntime clip the window; litert-torch lowers a
# ceil-mode pool exactly but literally (PAD to the whole window, AVERAGE_POOL_2D, a MUL that
# rescales), which materialises a [1, 1280, 1280, 1280] tensor (7.8 GiB). The published
# EfficientNet pools globally (Keras' GlobalAveragePooling2D, a MEAN on a phone), and
# AdaptiveAvgPool2d(1) converts to exactly that MEAN; the result is the same number.
REWRITES = {"EfficientNetConfig": "global-pool-v1"}
# the DeiT checkpoints' classes: AutoModel cannot tell the distilled one from the plain one
HF_CLASSES = {"DeiTConfig": "DeiTForImageClassificationWithTeacher",
              "LevitConfig": "LevitForImageClassificationWithTeacher"}


def _hwnas_entries() -> list[ZooEntry]:
    from hwnas.models import MODELS

    out = []
    for name in sorted(MODELS):
        out.append(ZooEntry(name, HWNAS_FAMILIES.get(name, "vit"), "hwnas", {}, 0,
                            "hwnas named model"))
    return out


def entries() -> dict[str, ZooEntry]:
    return {e.name: e for e in HF + _hwnas_entries()}


def zoo_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("transformers") is not None


def get(name: str) -> ZooEntry:
    known = entries()
    if name not in known:
        raise ModelError(f"unknown model {name!r}; the zoo has: {', '.join(sorted(known))}")
    return known[name]


# --- building --------------------------------------------------------------------------------
def _init_weights(module, seed: int) -> None:
    """Variance-preserving random weights (see the module docstring)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                m.weight.fill_(1.0)
                m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
            elif isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm)):
                if m.weight is not None:
                    m.weight.fill_(1.0)
                    m.bias.zero_()


def build(name: str, seed: int = 0):
    """(eval-mode torch module returning logits, batch-1 NCHW input shape)."""
    e = get(name)
    if e.source == "hwnas":
        from hwnas.models import named_model

        import torch

        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            module, shape = named_model(name).build()
        finally:
            torch.random.set_rng_state(state)
        return module.eval(), tuple(shape)
    return _build_hf(e, seed), e.input_shape


def _build_hf(e: ZooEntry, seed: int):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never a download, whatever happens
    if not zoo_available():
        raise ModelError(f"{e.name}: {ZOO_HINT}")
    import logging

    import torch
    import transformers

    logging.getLogger("transformers").setLevel(logging.ERROR)
    cls_name = e.source.split(":", 1)[1]
    config = getattr(transformers, cls_name)(**e.config)
    config._attn_implementation = "eager"  # plain matmul-softmax-matmul, as exporters see it
    model_cls = getattr(transformers, HF_CLASSES.get(cls_name, "AutoModelForImageClassification"))
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if model_cls is transformers.AutoModelForImageClassification:
            model = model_cls.from_config(config)
        else:
            model = model_cls(config)
    finally:
        torch.random.set_rng_state(state)
    _init_weights(model, seed)
    if cls_name == "EfficientNetConfig":
        _global_pool(model.efficientnet)

    class Logits(torch.nn.Module):
        """pixel_values -> logits: one tensor in, one out, as a deployed classifier."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(pixel_values=x).logits

    return Logits().eval()


def _global_pool(model) -> None:
    """transformers' EfficientNet pooler (a ceil-mode pool whose window is the hidden width)
    as the global pool it computes (REWRITES says why)."""
    import torch

    pool = model.pooler
    if isinstance(pool, torch.nn.AvgPool2d):
        model.pooler = torch.nn.AdaptiveAvgPool2d(1)
    elif isinstance(pool, torch.nn.MaxPool2d):
        model.pooler = torch.nn.AdaptiveMaxPool2d(1)


def cache_key(name: str, fmt: str, seed: int = 0) -> str:
    """Exports are cached by what they depend on: the entry, the seed and the libraries."""
    from importlib.metadata import PackageNotFoundError, version

    e = get(name)
    versions = {"torch": version("torch")}  # not imported: transformers takes seconds
    if e.source.startswith("hf:"):
        try:
            versions["transformers"] = version("transformers")
        except PackageNotFoundError:
            raise ModelError(f"{name}: {ZOO_HINT}") from None
    fields = [e.name, e.source, e.config, e.resolution, fmt, seed, versions]
    rewrite = REWRITES.get(e.source.split(":", 1)[-1])
    if rewrite:  # only rewritten entries' keys change: the others' cached exports stay valid
        fields.append(rewrite)
    body = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def export(name: str, fmt: str, cache_dir: Path, seed: int = 0) -> Path:
    """The zoo model as an ONNX or TFLite file, exported once into ``cache_dir/zoo``."""
    from hwnas.latency.safeio import atomic_write_bytes

    get(name)
    if fmt not in ("onnx", "tflite"):
        raise ModelError(f"unknown model format {fmt!r}")
    path = Path(cache_dir) / "zoo" / f"{name}-{cache_key(name, fmt, seed)}.{fmt}"
    if path.exists():
        return path
    module, shape = build(name, seed)
    if fmt == "onnx":
        from hwnas.anymodel.graph import export_onnx_bytes

        data = export_onnx_bytes(module, [shape])
    else:
        from hwnas.anymodel.graph import export_tflite_bytes

        data = export_tflite_bytes(module, [shape])
    atomic_write_bytes(path, data)
    return path
