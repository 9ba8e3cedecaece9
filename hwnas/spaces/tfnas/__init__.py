"""TF-NAS (MobileNetV2-style inverted residuals with elastic mid widths and squeeze-excite).

    arch.py      TFNASArch, its stages, and TF-NAS's own block configs
    ops.py       its OpSpecs
    blocks.py    the static torch modules behind the ops
    space.py     TFNASSpace (registered as "tfnas")
"""
