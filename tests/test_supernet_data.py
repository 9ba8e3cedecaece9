"""The built-in digits dataset, the ImageFolder loader and batch iteration."""

import numpy as np
import pytest
import torch

from hwnas.data import (DataError, count_classes, iterate_batches, load_data, resize_batch,
                        shard_order)

torch.set_num_threads(1)


def test_digits_splits_are_disjoint_and_seeded():
    a, b = load_data("digits", seed=0), load_data("digits", seed=0)
    assert a.classes == 10 and count_classes("digits") == 10
    n = len(a.train) + len(a.holdout) + len(a.test)
    assert n == 1797
    assert torch.equal(a.holdout.images, b.holdout.images)
    assert a.train.augment and not a.holdout.augment and not a.test.augment
    c = load_data("digits", seed=1)
    assert not torch.equal(a.holdout.labels, c.holdout.labels)
    rows = {tuple(x.flatten().tolist()) for x in a.holdout.images[:50]}
    assert not rows & {tuple(x.flatten().tolist()) for x in a.test.images}


def test_batches_depend_only_on_seed_epoch_rank():
    data = load_data("digits")
    first = [y for _, y in iterate_batches(data.train, 32, seed=0, epoch=1, limit=3)]
    again = [y for _, y in iterate_batches(data.train, 32, seed=0, epoch=1, limit=3)]
    other = [y for _, y in iterate_batches(data.train, 32, seed=0, epoch=2, limit=3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    x, _ = next(iterate_batches(data.train, 32, seed=0))
    x2, _ = next(iterate_batches(data.train, 32, seed=0))
    assert torch.equal(x, x2)  # augmentation is seeded too


def test_shards_are_disjoint_and_equal():
    r0 = shard_order(101, seed=0, epoch=0, shuffle=True, rank=0, world=2)
    r1 = shard_order(101, seed=0, epoch=0, shuffle=True, rank=1, world=2)
    assert len(r0) == len(r1) == 50 and not set(r0) & set(r1)


def test_resize_batch():
    x = torch.randn(2, 3, 8, 8)
    assert resize_batch(x, 64).shape == (2, 3, 64, 64)
    assert resize_batch(x, 8) is x
    assert resize_batch(torch.randn(1, 3, 96, 96), 64).shape == (1, 3, 64, 64)


def _write_images(root, classes=("cat", "dog"), per_class=4, size=(40, 30)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")


def test_imagefolder_train_val_layout(tmp_path):
    _write_images(tmp_path / "train", per_class=6)
    _write_images(tmp_path / "val", per_class=2)
    data = load_data(str(tmp_path), image_size=32, holdout_fraction=0.25)
    assert data.classes == 2 == count_classes(str(tmp_path))
    assert len(data.test) == 4 and len(data.holdout) == 3 and len(data.train) == 9
    x, y = next(iterate_batches(data.train, 4, seed=0))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and set(y.tolist()) <= {0, 1}
    x2, _ = next(iterate_batches(data.train, 4, seed=0))
    assert torch.equal(x, x2)  # random crops are seeded per (seed, epoch, index)
    xt, _ = next(iterate_batches(data.test, 4, shuffle=False, drop_last=False))
    assert xt.shape == (4, 3, 32, 32)


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataError, match="neither"):
        load_data(str(tmp_path / "missing"))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        load_data(str(tmp_path / "empty"))
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_data(str(tmp_path / "flat"))
