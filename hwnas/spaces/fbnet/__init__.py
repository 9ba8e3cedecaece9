"""FBNet's space as HW-NAS-Bench builds it for CIFAR: 22 layers x 9 block choices.

    arch.py      FBNetArch, its stages, and the native list of 22 block names
    ops.py       its OpSpecs (stem, blocks, projecting skips, head)
    blocks.py    the static torch modules behind the ops
    space.py     FBNetSpace (registered as "fbnet")
"""
