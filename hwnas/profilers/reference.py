"""The reference network every drift-free measurement is timed beside (see drift.py).

It is one fixed network for every device and space: ElasticViT's smallest subnet at 224 px (a
conv stem, MBConv stages and four small transformer stages). It runs the same kinds of kernels
as the items (convolutions, depthwise convolutions, matmuls, softmax, LayerNorm), so what slows
the machine slows the reference in the same way, and it is small enough to be timed often
(~9 ms on one core here, tens of ms on a phone's big core).

Why 224 px and not the 128 px of v1: the reference must respond to the machine's slow and fast
minutes as the items do. Measured here (benchmarks/reference_choice.py), the same
subnet at 128 px (~5 ms) over-responded: when the machine ran 4-13% faster or slower, it moved
1.3-2x as much as the 160 px subnets and the ops timed beside it, so every ratio of that pass
moved with it. At 224 px it moved with them: on the same 24 subnets in the same run, the
between-pass CV fell from 2.8% to 1.5% and pass pairs within 5% rose from 73% to 96%; the sum of
60 ops' ratios varied 1.3% between passes instead of 2.2%.

Its weights come from a fixed seed so that its exported files are the same everywhere. Changing
the network changes what every stored ratio means: bump ``REFERENCE_KEY`` when doing so, and
tables made with another reference refuse to be extended (the key is part of the protocol).
"""

from __future__ import annotations

from pathlib import Path

REFERENCE_KEY = "reference-v2-elasticvit-smallest-224"
REFERENCE_RESOLUTION = 224
# Records files written before their meta named the reference (by ``measure_archs``) were all
# timed against v1: a file with drift-free passes and no key is read as v1.
LEGACY_REFERENCE_KEY = "reference-v1-elasticvit-smallest-128"


def same_reference(key_a: str | None, key_b: str | None) -> bool:
    """Whether two sets of ratios can share one ms scale (None: not drift-free, any scale)."""
    return key_a is None or key_b is None or key_a == key_b


def check_records_reference(records, path) -> None:
    """Refuse to add passes timed against this hwnas's reference to a file whose passes were
    timed against another: one records file has one ms scale (checked before measuring, so
    nothing is measured in vain and the file is not touched)."""
    from hwnas.errors import HwnasError

    key = records.reference_key
    if not same_reference(key, REFERENCE_KEY):
        raise HwnasError(f"{path} holds passes timed against reference {key!r}, not this "
                         f"hwnas's {REFERENCE_KEY!r}: their ratios cannot share one scale; "
                         f"move the file aside (it stays readable) to start new records")


def reference_model():
    """(module, NCHW input shape) of the reference network, with seeded weights."""
    import torch

    from hwnas.spaces.elasticvit.space import ElasticViTSpace

    space = ElasticViTSpace(resolutions=(REFERENCE_RESOLUTION,))
    arch = space.smallest(REFERENCE_RESOLUTION)
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        module = space.build_model(arch)
    finally:
        torch.random.set_rng_state(state)  # no global state left changed behind the caller
    return module.eval(), space.input_shape(arch)


def reference_onnx(cache_dir: Path, dtype: str = "float32", batch: int = 1) -> Path:
    """The reference as ONNX, exported once into the export cache."""
    from hwnas.profilers.export import export_onnx

    suffix = "" if (dtype, batch) == ("float32", 1) else f"_b{batch}_{dtype}"
    path = Path(cache_dir) / "onnx" / f"_{REFERENCE_KEY}{suffix}.onnx"
    if not path.exists():
        module, shape = reference_model()
        export_onnx(module, (batch, *shape[1:]), path, dtype)
    return path


def reference_tflite(cache_dir: Path) -> Path:
    """The reference as .tflite (NHWC input, as the conv blocks), exported once."""
    from hwnas.profilers.export import export_tflite

    path = Path(cache_dir) / "tflite" / f"_{REFERENCE_KEY}.tflite"
    if not path.exists():
        module, shape = reference_model()
        export_tflite(module, shape, path, channels_last=True)
    return path


def reference_error(device: str, err: BaseException):
    """The one-line error for a reference that cannot be built or run on ``device``."""
    import errno

    from hwnas.errors import ProfileError

    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS,
                                                    errno.EACCES):
        # the disk, not the model: writing the export failed (safeio names the file and room)
        reason = err.strerror or type(err).__name__
        where = f"{err.filename}: " if err.filename else ""
        return ProfileError(f"{device}: cannot write the reference model ({where}"
                            f"{reason[:1].lower() + reason[1:]})")
    detail = str(err).splitlines()[0] if str(err) else type(err).__name__
    return ProfileError(f"{device}: cannot measure the reference network ({detail}); delete the "
                        f"cached reference model in the export cache to rebuild it, or set "
                        f"'reference: false' in the device config to measure without the "
                        f"drift-free protocol")
