"""Small helpers shared by the search spaces: checking a choice, and the text of allowed values."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from hwnas.errors import ArchError


def allowed_text(values: Iterable) -> str:
    """``{3, 5}``, or ``48..96 step 16`` for a long evenly spaced range."""
    values = sorted(set(values))
    steps = {b - a for a, b in zip(values, values[1:])}
    if len(values) > 3 and len(steps) == 1:
        return f"{values[0]}..{values[-1]} step {steps.pop()}"
    return "{" + ", ".join(str(v) for v in values) + "}"


def check(field: str, value, allowed: Iterable) -> None:
    """Raise ArchError naming the field and its allowed values unless value is allowed."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ArchError(f"{field}={value} not allowed; allowed: {allowed_text(allowed)}")


def check_resolutions(resolutions: Iterable[int], known: Sequence[int]) -> tuple[int, ...]:
    """Narrowing to some resolutions: each must belong to the space."""
    resolutions = tuple(sorted(set(resolutions)))
    for r in resolutions:
        check("resolution", r, known)
    if not resolutions:
        raise ArchError(f"no resolution given; allowed: {allowed_text(known)}")
    return resolutions


def pick(rng: np.random.Generator, values: Sequence):
    """One value, uniformly, as a plain Python value (never a numpy scalar, so JSON works)."""
    value = values[int(rng.integers(len(values)))]
    return value.item() if hasattr(value, "item") else value


def pad(values: Sequence[float], length: int) -> list[float]:
    """values padded with zeros to a fixed length (for fixed-size encodings)."""
    return list(values) + [0.0] * (length - len(values))
