"""Single-stage ViTs (AutoFormer, ViTAS, DeiT).

    arch.py      ViTArch and its codec for ViTAS's block tables
    ops.py       token OpSpecs: patch embedding, attention, MLP, head
    blocks.py    the static torch modules behind the ops (head-major q/k/v)
    space.py     ViTSpace, registered as "vit" and the "vit-autoformer-*" presets
    elastic.py   the elastic token blocks of its supernet
    supernet.py  ViTSupernet
    pools.py     sized sampling and depth-vs-width comparison for supernet pools
"""
