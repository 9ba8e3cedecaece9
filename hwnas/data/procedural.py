"""``shapes``: a procedural image-classification set, generated from a seed (no download).

Digits at 97% top-1 cannot show whether one way of training a supernet beats another: every
subnet is at the ceiling. ``shapes`` sits well below it. A class is a (shape, texture) pair, e.g.
"hexagon, striped" (12 shapes x 5 textures; the default 24 classes are the 12 shapes solid and
striped); everything else is a nuisance drawn per image:

* position, scale (0.5 to 0.8 of the image) and a rotation of up to ~17 degrees either way;
* colours: the figure any hue, light; the ground any hue, dark; so colour says nothing about
  the class, but the figure always stands out from the ground;
* the texture's period (3.5-6.5 px), orientation and phase: the kind is the class;
* at most one smaller distractor figure (any shape, texture and colours) and pixel noise.

Fine textures and shapes that differ in a corner or two (pentagon, hexagon, circle) at 30-50 px
reward resolution and capacity. How hard is hard enough is set by what a CPU can train: a first
version (any rotation, random contrast polarity, a textured ground, 2-3 distractors) stayed at
chance (4-11% of 24 classes) for every subnet of the ``tiny`` preset after 200-300 steps, which
separates nothing. This one: the smallest ``tiny`` subnet trained alone for 300 steps of batch
32 reaches 23% of 24 classes (58% of the 12 solid shapes).

The images are generated once per (classes, per_class, size, seed), cached under
``$HWNAS_HOME/cache/data`` and kept in memory as uint8 (``TensorImages`` normalises each batch):
the default 24 classes x 400 images at 64 px are 118 MB. Drawing is plain numpy, about 3 ms per
64-px image on one core.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwnas.errors import HwnasError

log = logging.getLogger(__name__)

SHAPES = ("circle", "square", "triangle", "pentagon", "hexagon", "star", "cross", "ring",
          "crescent", "diamond", "arrow", "heart")
TEXTURES = ("solid", "stripes", "checker", "dots", "waves")
NAME = "shapes"
# Bumped whenever drawing changes, so that a cached set is never one an older hwnas drew.
GENERATOR_VERSION = 2
ROTATION = 0.3  # radians either way
FIGURE_SCALE = (0.5, 0.8)  # of the image side
DISTRACTOR_SCALE = (0.18, 0.3)
MAX_DISTRACTORS = 1
NOISE = 0.05  # std of the pixel noise, on [0, 1] intensities


@dataclass(frozen=True)
class ShapesSpec:
    """The parameters of one ``shapes`` set. ``classes`` runs through (shape, texture) pairs,
    texture-major: the first ``len(SHAPES)`` classes are the solid shapes, and so on."""

    classes: int = 24
    per_class: int = 400
    size: int = 64
    seed: int = 0

    def __post_init__(self):
        most = len(SHAPES) * len(TEXTURES)
        if not 2 <= self.classes <= most:
            raise HwnasError(f"shapes: classes must be 2..{most}, got {self.classes}")
        if self.per_class < 5:
            raise HwnasError(f"shapes: per_class must be at least 5, got {self.per_class}")
        if not 32 <= self.size <= 256:
            raise HwnasError(f"shapes: size must be 32..256 px, got {self.size}")

    def class_names(self) -> list[str]:
        return [f"{SHAPES[i % len(SHAPES)]}/{TEXTURES[i // len(SHAPES)]}"
                for i in range(self.classes)]

    def to_str(self) -> str:
        return f"{NAME}:classes={self.classes},per_class={self.per_class},size={self.size}," \
               f"seed={self.seed}"


def parse_spec(text: str) -> ShapesSpec | None:
    """``shapes`` or ``shapes:classes=40,per_class=300,size=96,seed=1``; None if not shapes."""
    if text != NAME and not text.startswith(NAME + ":"):
        return None
    kwargs = {}
    for part in filter(None, text[len(NAME) + 1:].split(",")):
        key, _, value = part.partition("=")
        if key not in ("classes", "per_class", "size", "seed"):
            raise HwnasError(f"shapes: unknown option {key!r} in {text!r} (classes, per_class, "
                             f"size, seed)")
        try:
            kwargs[key] = int(value)
        except ValueError:
            raise HwnasError(f"shapes: {key} must be an integer, got {value!r}") from None
    return ShapesSpec(**kwargs)


# --- drawing ---------------------------------------------------------------------------------
def _polygon(u, v, n: int, r: float = 1.0):
    """Inside a regular n-gon of circumradius r (one vertex up)."""
    theta = np.arctan2(u, -v)
    sector = 2 * np.pi / n
    local = (theta % sector) - sector / 2
    return np.hypot(u, v) * np.cos(local) <= r * np.cos(np.pi / n)


def _shape_mask(kind: str, u, v):
    r = np.hypot(u, v)
    if kind == "circle":
        return r <= 0.95
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.75
    if kind == "triangle":
        return _polygon(u, v + 0.15, 3, 1.05)
    if kind == "pentagon":
        return _polygon(u, v, 5, 0.95)
    if kind == "hexagon":
        return _polygon(u, v, 6, 0.95)
    if kind == "star":
        theta = np.arctan2(u, -v)
        return r <= 0.45 + 0.5 * np.abs(np.cos(2.5 * theta)) ** 3
    if kind == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.95))
    if kind == "ring":
        return (r <= 0.95) & (r >= 0.55)
    if kind == "crescent":
        return (r <= 0.95) & (np.hypot(u - 0.45, v) >= 0.75)
    if kind == "diamond":
        return np.abs(u) / 0.65 + np.abs(v) <= 1.0
    if kind == "arrow":
        head = (v <= -0.05) & (np.abs(u) <= (v + 1.0) * 0.95) & (v >= -1.0)
        return head | ((v > -0.05) & (v <= 0.95) & (np.abs(u) <= 0.28))
    if kind == "heart":
        a = np.hypot(u + 0.42, v + 0.3) <= 0.5
        b = np.hypot(u - 0.42, v + 0.3) <= 0.5
        return a | b | ((v >= -0.3) & (np.abs(u) <= 0.92 * (0.95 - v) / 1.25 + 0.0))
    raise ValueError(kind)


def _texture(kind: str, x, y, rng) -> np.ndarray:
    """A 0/1 (or soft) pattern over pixel coordinates; period and orientation are nuisances."""
    if kind == "solid":
        return np.ones_like(x)
    period = rng.uniform(3.5, 6.5)
    angle = rng.uniform(0, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    a, b = (c * x + s * y) / period, (-s * x + c * y) / period
    phase = rng.uniform(0, 1, size=2)
    if kind == "stripes":
        return ((a + phase[0]) % 1.0 < 0.5).astype(np.float32)
    if kind == "checker":
        return (((np.floor(a + phase[0]) + np.floor(b + phase[1])) % 2) == 0).astype(np.float32)
    if kind == "dots":
        da, db = (a + phase[0]) % 1.0 - 0.5, (b + phase[1]) % 1.0 - 0.5
        return (np.hypot(da, db) < 0.3).astype(np.float32)
    if kind == "waves":
        return (np.sin(2 * np.pi * (a + 0.35 * np.sin(2 * np.pi * b / 2.5)) + phase[0] * 6)
                > 0).astype(np.float32)
    raise ValueError(kind)


def _colour_pair(rng) -> tuple[np.ndarray, np.ndarray]:
    """Two random RGB colours in [0, 1] whose luminances differ by at least 0.25."""
    lum = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    while True:
        a, b = rng.random(3, dtype=np.float32), rng.random(3, dtype=np.float32)
        if abs(float(a @ lum) - float(b @ lum)) >= 0.25:
            return a, b


def _with_luminance(rgb: np.ndarray, lum: float) -> np.ndarray:
    """``rgb`` scaled towards black or white until its luminance is ``lum``."""
    cur = float(rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    if cur >= lum:
        return (rgb * np.float32(lum / max(cur, 1e-6))).astype(np.float32)
    t = np.float32((lum - cur) / (1.0 - cur))
    return (rgb + (1 - rgb) * t).astype(np.float32)


def _paint(img, shape: str, texture: str, scale: float, colours, rng, x, y) -> None:
    """Paint one figure (random position and rotation) into ``img`` in place, touching only
    its bounding box; ``colours`` = (on the pattern, off the pattern)."""
    size = img.shape[0]
    half = scale * size / 2
    cx, cy = rng.uniform(half * 0.8, size - half * 0.8, 2)
    rot = rng.uniform(-ROTATION, ROTATION)
    lo_x, hi_x = max(0, int(cx - 1.42 * half)), min(size, int(cx + 1.42 * half) + 2)
    lo_y, hi_y = max(0, int(cy - 1.42 * half)), min(size, int(cy + 1.42 * half) + 2)
    bx, by = x[lo_y:hi_y, lo_x:hi_x], y[lo_y:hi_y, lo_x:hi_x]
    c, s = np.cos(rot), np.sin(rot)
    u, v = (bx - cx) / half, (by - cy) / half
    mask = _shape_mask(shape, c * u + s * v, -s * u + c * v)
    p = _texture(texture, bx, by, rng)[..., None]
    fill = colours[0] * p + colours[1] * (1 - p)
    box = img[lo_y:hi_y, lo_x:hi_x]
    box[mask] = fill[mask]


def draw(shape: str, texture: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One (size, size, 3) float32 image in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    fg = _with_luminance(rng.random(3, dtype=np.float32), rng.uniform(0.6, 0.85))
    bg = _with_luminance(rng.random(3, dtype=np.float32), rng.uniform(0.1, 0.3))
    img = np.broadcast_to(bg, (size, size, 3)).copy()
    for _ in range(int(rng.integers(MAX_DISTRACTORS + 1))):  # under the figure
        _paint(img, SHAPES[int(rng.integers(len(SHAPES)))],
               TEXTURES[int(rng.integers(len(TEXTURES)))], rng.uniform(*DISTRACTOR_SCALE),
               _colour_pair(rng), rng, x, y)
    # a textured figure alternates its colour with the ground's: stripes cut out of the ground
    _paint(img, shape, texture, rng.uniform(*FIGURE_SCALE), (fg, bg), rng, x, y)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(NOISE)
    return np.clip(img, 0, 1, out=img)


def _generate(spec: ShapesSpec) -> tuple[np.ndarray, np.ndarray]:
    names = spec.class_names()
    n = spec.classes * spec.per_class
    images = np.empty((n, 3, spec.size, spec.size), dtype=np.uint8)
    labels = np.repeat(np.arange(spec.classes, dtype=np.int64), spec.per_class)
    for label, name in enumerate(names):
        shape, texture = name.split("/")
        for i in range(spec.per_class):
            rng = np.random.default_rng([spec.seed, label, i])
            img = draw(shape, texture, spec.size, rng)
            images[label * spec.per_class + i] = np.round(img * 255).transpose(2, 0, 1)
    order = np.random.default_rng([spec.seed, 1 << 20]).permutation(n)
    return images[order], labels[order]


def cache_path(spec: ShapesSpec, cache_dir: Path) -> Path:
    key = hashlib.sha256(f"{spec.to_str()} v{GENERATOR_VERSION}".encode()).hexdigest()[:16]
    return cache_dir / "data" / f"{NAME}-{key}.npz"


@functools.lru_cache(maxsize=2)  # the benchmark loads the same set for every run
def generate(spec: ShapesSpec, cache_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, S, S), labels int64 (N,)), class-balanced, in a seeded order.

    Each image has its own Generator seeded by (seed, class, index), so an image does not depend
    on the order of generation. With ``cache_dir`` the set is kept there (written atomically,
    read back without pickle): drawing the default 9,600 images takes about half a minute.
    """
    from hwnas.latency.safeio import atomic_write_bytes

    path = cache_path(spec, cache_dir) if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                images, labels = z["images"], z["labels"]
            if images.shape == (spec.classes * spec.per_class, 3, spec.size, spec.size):
                return images, labels
        except (OSError, ValueError, KeyError) as e:
            log.warning("regenerating %s: the cached copy %s is unreadable (%s)", spec.to_str(),
                        path, e)
    images, labels = _generate(spec)
    if path is not None:
        buf = io.BytesIO()
        np.savez(buf, images=images, labels=labels)
        atomic_write_bytes(path, buf.getvalue())
    return images, labels


__all__ = ["NAME", "SHAPES", "TEXTURES", "ShapesSpec", "cache_path", "draw", "generate",
           "parse_spec"]
