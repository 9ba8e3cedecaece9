"""ViT-ResNAS's multi-stage ViTs (registered as "vit-res"). Builds on the vit family's token ops.

    arch.py      ViTResArch and its codec for ViT-ResNAS's network_def tuples
    ops.py       its own OpSpecs: convolutional patch embedding, spatial reduction
    blocks.py    the static torch modules behind them
    space.py     ViTResSpace
"""
