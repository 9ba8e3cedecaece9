"""A minimal ImageFolder (``root/<class>/<image>``), decoded with Pillow.

torchvision is deliberately not a dependency (its PyPI wheels do not match this torch build), so
this is the small part of it that supernet training needs: sorted class folders, RGB decoding,
a random-resized-crop + flip for training and resize + centre crop for evaluation. Augmentation
draws from a Generator seeded by (seed, epoch, index), so a sample's crop does not depend on the
worker that loads it and a resumed run sees the same crops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hwnas.errors import HwnasError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # ImageNet statistics
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
EVAL_CROP = 0.875  # resize to size/0.875, centre-crop size (the usual ImageNet protocol)


class DataError(HwnasError):
    """A dataset that is missing, empty or laid out wrongly."""


@dataclass(frozen=True)
class ImageFolder:
    samples: tuple[tuple[str, int], ...]
    classes: tuple[str, ...]
    image_size: int
    augment: bool = False

    @classmethod
    def scan(cls, root: str | Path, image_size: int) -> "ImageFolder":
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"dataset folder not found: {root}")
        classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
        if not classes:
            raise DataError(f"{root} has no class folders (expected {root}/<class>/<image>)")
        samples = tuple(
            (str(f), label) for label, c in enumerate(classes)
            for f in sorted((root / c).rglob("*")) if f.suffix.lower() in IMAGE_EXTENSIONS)
        if not samples:
            raise DataError(f"{root} has class folders but no images "
                            f"({', '.join(IMAGE_EXTENSIONS)})")
        return cls(samples, classes, image_size)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> np.ndarray:
        return np.array([label for _, label in self.samples], dtype=np.int64)

    def subset(self, indices, augment: bool | None = None) -> "ImageFolder":
        samples = tuple(self.samples[int(i)] for i in indices)
        return replace(self, samples=samples, augment=self.augment if augment is None else augment)

    def load(self, index: int, rng: np.random.Generator | None):
        """One (CHW float32 array, label), augmented when ``augment`` and an rng is given."""
        from PIL import Image

        path, label = self.samples[index]
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except OSError as e:
            raise DataError(f"cannot read image {path}: {e}") from None
        img = (_random_resized_crop(img, self.image_size, rng) if self.augment and rng is not None
               else _centre_crop(img, self.image_size))
        if self.augment and rng is not None and rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        arr = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
        return arr.transpose(2, 0, 1).copy(), label


def _centre_crop(img, size: int):
    from PIL import Image

    w, h = img.size
    scale = size / EVAL_CROP / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                     Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def _random_resized_crop(img, size: int, rng: np.random.Generator, scale=(0.25, 1.0)):
    """Inception-style crop: a random area fraction and aspect ratio, resized to size x size."""
    from PIL import Image

    w, h = img.size
    for _ in range(10):
        area = w * h * rng.uniform(*scale)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return img.resize((size, size), Image.Resampling.BILINEAR,
                              box=(left, top, left + cw, top + ch))
    return _centre_crop(img, size)
