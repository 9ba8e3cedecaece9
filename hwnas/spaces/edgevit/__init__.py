"""EdgeViT (local-global-local blocks).

    arch.py      EdgeViTArch
    ops.py       its OpSpecs
    blocks.py    the static torch modules behind the ops
    space.py     EdgeViTSpace (registered as "edgevit")
"""
