"""In-memory image sets and the built-in ``digits`` dataset.

``digits`` is scikit-learn's bundled copy of the UCI handwritten digits (1,797 grey 8x8 images,
10 classes). It ships inside scikit-learn, so the demo and the tests need no download and no data
file. Images stay at 8x8 in memory; each batch is resized to the subnet's resolution when it is
used (``resize_batch``), as ElasticViT resizes ImageNet batches per subnet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True, eq=False)  # eq would compare tensors elementwise
class TensorImages:
    """Images (N, 3, H, W) and labels (N,) int64. Float images are already normalised; uint8
    images (the procedural sets, 4x smaller in memory) are mapped to [-1, 1] per batch."""

    images: torch.Tensor
    labels: torch.Tensor
    augment: bool = False  # random shifts (by up to ``shift`` pixels) when training
    shift: int = 1
    flip: bool = False  # with augment: random horizontal flips as well

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices, augment: bool | None = None) -> "TensorImages":
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return TensorImages(self.images[idx], self.labels[idx],
                            self.augment if augment is None else augment, self.shift, self.flip)

    def batch(self, indices: np.ndarray, rng: np.random.Generator | None):
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        x, y = self.images[idx], self.labels[idx]
        if x.dtype == torch.uint8:
            x = x.float() * (2.0 / 255.0) - 1.0
        if self.augment and rng is not None:
            x = random_shift(x, self.shift, rng)
            if self.flip:
                mirror = torch.as_tensor(rng.random(len(x)) < 0.5)
                x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
        return x, y


def random_shift(x: torch.Tensor, shift: int, rng: np.random.Generator) -> torch.Tensor:
    """Translate each image by up to ``shift`` pixels (zero-padded): cheap augmentation."""
    n, _, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), value=float(x.min()))
    offs = rng.integers(0, 2 * shift + 1, size=(n, 2))
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offs)])


def load_digits_images() -> TensorImages:
    """All 1,797 digits as 3-channel 8x8 tensors in [-1, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32) / 16.0 * 2.0 - 1.0
    x = x[:, None].expand(-1, 3, -1, -1).contiguous()
    return TensorImages(x, torch.as_tensor(d.target, dtype=torch.int64))


def split_indices(n: int, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """A seeded permutation of range(n) cut into len(fractions)+1 parts (the rest goes last)."""
    perm = np.random.default_rng(seed).permutation(n)
    cuts = np.cumsum([int(round(f * n)) for f in fractions])
    return [np.sort(p) for p in np.split(perm, cuts)]
