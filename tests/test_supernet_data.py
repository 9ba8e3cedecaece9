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


# --- shapes: the procedural set ------------------------------------------------------------
SMALL_SHAPES = "shapes:classes=6,per_class=10,size=32"


def test_shapes_are_deterministic_balanced_and_cached(hwnas_home):
    from hwnas.data.procedural import cache_path, generate, parse_spec

    spec = parse_spec(SMALL_SHAPES)
    generate.cache_clear()
    images, labels = generate(spec, hwnas_home / "cache")
    assert images.shape == (60, 3, 32, 32) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [10] * 6
    path = cache_path(spec, hwnas_home / "cache")
    assert path.is_file()
    generate.cache_clear()
    again, labels2 = generate(spec, hwnas_home / "cache")  # read back from the cache
    assert np.array_equal(again, images) and np.array_equal(labels, labels2)
    generate.cache_clear()
    fresh, _ = generate(spec)  # drawn again, without the cache: the same pixels
    assert np.array_equal(fresh, images)
    other, _ = generate(parse_spec(SMALL_SHAPES + ",seed=1"))
    assert not np.array_equal(other, images)
    # an image is not a copy of another: every image differs
    flat = images.reshape(len(images), -1)
    assert len({row.tobytes() for row in flat}) == len(flat)


def test_shapes_load_like_digits(hwnas_home):
    a = load_data(SMALL_SHAPES, seed=0)
    assert a.classes == 6 == count_classes(SMALL_SHAPES) and a.image_size == 32
    assert len(a.train) + len(a.holdout) + len(a.test) == 60
    assert a.train.augment and not a.test.augment
    x, y = next(iterate_batches(a.test, 8, shuffle=False))
    assert x.dtype == torch.float32 and x.shape == (8, 3, 32, 32)
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.std()) > 0.1
    xa, _ = next(iterate_batches(a.train, 8, seed=0))
    xb, _ = next(iterate_batches(a.train, 8, seed=0))
    assert torch.equal(xa, xb)  # shifts and flips are seeded
    b = load_data(SMALL_SHAPES, seed=1)
    assert not torch.equal(a.test.labels, b.test.labels)  # the split seed, not the images


def test_shapes_class_is_the_shape_and_texture_not_the_colour():
    """Two images of one class share no colour: colour is a nuisance, never the label."""
    from hwnas.data.procedural import draw

    a = draw("hexagon", "stripes", 64, np.random.default_rng(1))
    b = draw("hexagon", "stripes", 64, np.random.default_rng(2))
    assert a.shape == (64, 64, 3) and 0 <= a.min() and a.max() <= 1
    assert abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))).max() > 0.02


@pytest.mark.parametrize("spec, message", [
    ("shapes:classes=1", "classes must be"), ("shapes:classes=999", "classes must be"),
    ("shapes:size=8", "size must be"), ("shapes:colour=3", "unknown option"),
    ("shapes:classes=many", "must be an integer"), ("shapes:per_class=2", "per_class")])
def test_bad_shapes_specs(spec, message):
    from hwnas.errors import HwnasError

    with pytest.raises(HwnasError, match=message):
        load_data(spec)
    with pytest.raises(HwnasError, match=message):
        count_classes(spec)


def test_a_corrupt_shapes_cache_is_redrawn(hwnas_home):
    from hwnas.data.procedural import cache_path, generate, parse_spec

    spec = parse_spec(SMALL_SHAPES)
    path = cache_path(spec, hwnas_home / "cache")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz")
    generate.cache_clear()
    images, _ = generate(spec, hwnas_home / "cache")
    assert images.shape == (60, 3, 32, 32)
    generate.cache_clear()
    assert np.array_equal(generate(spec, hwnas_home / "cache")[0], images)
