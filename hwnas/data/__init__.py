"""Datasets for supernet training and accuracy search: ImageFolder and the built-in ``digits``
and ``shapes`` (procedural, hard enough to separate training methods; see procedural.py).

``load_data(spec)`` returns three disjoint splits. ``train`` trains the supernet, ``holdout`` is
held out of training and is what the search scores candidates on, and ``test`` is only for
reporting, so a reported accuracy is not the one that chose the model.

Batches come from ``iterate_batches``, which shards by rank for distributed training and draws
its order and augmentation only from (seed, epoch, rank): a resumed run sees the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from hwnas.data.imagefolder import DataError, ImageFolder
from hwnas.data.procedural import parse_spec as parse_shapes
from hwnas.data.tensors import TensorImages, load_digits_images, split_indices

Dataset = Union[TensorImages, ImageFolder]
BUILTIN = ("digits", "shapes")


@dataclass(frozen=True)
class DataSplits:
    name: str
    train: Dataset
    holdout: Dataset
    test: Dataset
    classes: int
    image_size: int  # the size images are delivered at; batches are resized per subnet


def check_spec(spec) -> str:
    """``spec`` if it can name a dataset; an empty one ('' is not the current folder) is a
    DataError."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"--data {spec!r} names no dataset; give one of {', '.join(BUILTIN)} or "
                        f"an ImageFolder directory (use ./ for the current one)")
    return spec


def _image_root(spec: str) -> Path:
    """The ImageFolder root ``spec`` names: a folder, or a DataError naming it."""
    root = Path(spec)
    if not root.is_dir():
        raise DataError(f"--data must be one of {', '.join(BUILTIN)} or an ImageFolder "
                        f"directory; {spec!r} is neither")
    return root


def load_data(spec: str, image_size: int = 224, seed: int = 0,
              holdout_fraction: float = 0.15, test_fraction: float = 0.2) -> DataSplits:
    """``"digits"``, ``"shapes[:options]"`` (built in) or an ImageFolder root.

    A root with ``train/`` (and optionally ``val/``) uses ``val/`` as the test split; the holdout
    is a seeded fraction of ``train/``. A root of class folders is split three ways.
    ``image_size`` only applies to ImageFolder (digits are 8x8; shapes are drawn at their own
    ``size`` option). ``seed`` chooses the split, not the images (shapes has its own ``seed``).
    """
    if not 0 < holdout_fraction < 1 or not 0 <= test_fraction < 1:
        raise DataError("holdout and test fractions must lie in (0, 1)")
    check_spec(spec)
    if spec == "digits":
        full = load_digits_images()
        test, holdout, train = split_indices(len(full), (test_fraction, holdout_fraction), seed)
        return DataSplits("digits", full.subset(train, augment=True), full.subset(holdout),
                          full.subset(test), 10, full.images.shape[-1])
    shapes = parse_shapes(spec)
    if shapes is not None:
        full = load_shapes_images(shapes)
        test, holdout, train = split_indices(len(full), (test_fraction, holdout_fraction), seed)
        return DataSplits(spec, full.subset(train, augment=True), full.subset(holdout),
                          full.subset(test), shapes.classes, shapes.size)
    root = _image_root(spec)
    if (root / "train").is_dir():
        full = ImageFolder.scan(root / "train", image_size)
        holdout, train = split_indices(len(full), (holdout_fraction,), seed)
        test = (ImageFolder.scan(root / "val", image_size) if (root / "val").is_dir()
                else full.subset([]))
        if (root / "val").is_dir() and test.classes != full.classes:
            raise DataError(f"{root}/train and {root}/val have different class folders")
    else:
        full = ImageFolder.scan(root, image_size)
        test_idx, holdout, train = split_indices(len(full), (test_fraction, holdout_fraction), seed)
        test = full.subset(test_idx)
    return DataSplits(root.name, full.subset(train, augment=True), full.subset(holdout), test,
                      len(full.classes), image_size)


def load_shapes_images(spec) -> TensorImages:
    """A ``shapes`` set (cached in $HWNAS_HOME/cache) as uint8 TensorImages; training batches
    shift by up to 1/16 of the image and flip."""
    import torch

    from hwnas.data.procedural import generate
    from hwnas.home import export_cache

    images, labels = generate(spec, export_cache())
    return TensorImages(torch.from_numpy(images), torch.from_numpy(labels),
                        shift=max(1, spec.size // 16), flip=True)


def shard_order(n: int, *, seed: int, epoch: int, shuffle: bool, rank: int = 0,
                world: int = 1) -> np.ndarray:
    """This rank's sample order for one epoch; every rank gets the same number of samples."""
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    per_rank = n // world if world > 1 else n
    return order[rank::world][:per_rank]


def iterate_batches(ds: Dataset, batch_size: int, *, seed: int = 0, epoch: int = 0,
                    shuffle: bool = True, drop_last: bool = True, rank: int = 0, world: int = 1,
                    workers: int = 0, limit: int | None = None) -> Iterator:
    """(images, labels) tensors; ``limit`` stops after that many batches."""
    order = shard_order(len(ds), seed=seed, epoch=epoch, shuffle=shuffle, rank=rank, world=world)
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    chunks = [order[i:i + batch_size] for i in range(0, stop, batch_size)][:limit]
    if isinstance(ds, TensorImages):
        for i, idx in enumerate(chunks):
            yield ds.batch(idx, np.random.default_rng([seed, epoch, rank, i]))
        return
    import torch

    loader = torch.utils.data.DataLoader(_EpochView(ds, seed, epoch), batch_sampler=chunks,
                                         num_workers=workers)
    yield from loader


class _EpochView:
    """Items of an ImageFolder for one epoch, each augmented from its own seeded Generator."""

    def __init__(self, ds: ImageFolder, seed: int, epoch: int):
        self.ds, self.seed, self.epoch = ds, seed, epoch

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int):
        return self.ds.load(int(index), np.random.default_rng([self.seed, self.epoch, int(index)]))


def resize_batch(x, resolution: int):
    """Resize a batch to a subnet's input resolution (bilinear; antialiased when shrinking)."""
    import torch.nn.functional as F

    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    shrink = x.shape[-1] > resolution
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                         antialias=shrink)


def count_classes(spec: str) -> int:
    """The number of classes of a data spec, without loading any image. A folder with fewer
    than two class folders is a DataError naming it."""
    check_spec(spec)
    if spec == "digits":
        return 10
    shapes = parse_shapes(spec)
    if shapes is not None:
        return shapes.classes
    root = _image_root(spec)
    root = root / "train" if (root / "train").is_dir() else root
    n = sum(1 for p in root.iterdir() if p.is_dir())
    if n < 2:
        raise DataError(f"--data {root} has {'no' if n == 0 else 'one'} class folder"
                        f"{'s' if n == 0 else ''} (expected {root}/<class>/<image>, at least 2 "
                        f"classes)")
    return n


__all__ = ["BUILTIN", "DataError", "DataSplits", "Dataset", "ImageFolder", "TensorImages",
           "check_spec", "count_classes", "iterate_batches", "load_data", "resize_batch", "shard_order"]
