"""Stats: the summary of repeated timings of one thing, in milliseconds."""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass

import numpy as np

# The physical bounds of any latency hwnas accepts, in ms: 1 ns (a few cycles) to 1 hour. Outside
# them a number is a unit mix-up or garbage (5e-324 prints as 0.000 ms; 1e307 overflows a sum),
# so every entry point (imports, tables, records, CSV and HELP records) refuses it, naming it.
MIN_MS = 1e-6
MAX_MS = 3.6e6
BOUNDS = "1 ns to 1 hour (1e-06 to 3.6e+06 ms)"


def in_bounds(ms: float) -> bool:
    return MIN_MS <= ms <= MAX_MS  # False for NaN too


def check_ms(ms: float, where: str) -> float:
    """``ms`` when it is a physical latency; else a TableError naming ``where`` (the file and
    the entry, e.g. "lut.json: entry 'conv_...'")."""
    from hwnas.errors import TableError

    if not in_bounds(ms):
        raise TableError(f"{where} has a latency of {ms!r} ms, outside the physical range "
                         f"{BOUNDS}")
    return ms


@dataclass(frozen=True)
class Stats:
    median_ms: float
    mean_ms: float
    std_ms: float
    p10_ms: float
    p90_ms: float
    n: int  # number of timed runs; 0 when a source gave a single number without its runs

    @classmethod
    def from_samples(cls, samples_ms) -> "Stats":
        a = np.asarray(samples_ms, dtype=np.float64)
        if a.size == 0:
            raise ValueError("no samples")
        p10, med, p90 = np.percentile(a, [10, 50, 90])
        std = float(a.std(ddof=1)) if a.size > 1 else 0.0
        return cls(float(med), float(a.mean()), std, float(p10), float(p90), int(a.size))

    @classmethod
    def single(cls, ms: float, n: int = 0) -> "Stats":
        """A number reported by someone else (a mean or median of runs we do not have)."""
        nan = math.nan
        return cls(float(ms), float(ms), nan, nan, nan, int(n))

    def shifted(self, delta_ms: float) -> "Stats":
        """The same spread moved by delta (used to subtract the per-call overhead)."""
        return Stats(self.median_ms + delta_ms, self.mean_ms + delta_ms, self.std_ms,
                     self.p10_ms + delta_ms, self.p90_ms + delta_ms, self.n)

    def per_image(self, batch: int) -> "Stats":
        """Per-image figures of a per-batch measurement (all hwnas tables store per batch)."""
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive integer, not {batch!r}")
        return Stats(*(v / batch for v in astuple(self)[:5]), self.n)

    @property
    def spread(self) -> float:
        """(p90 - p10) / median: a robust relative spread."""
        return (self.p90_ms - self.p10_ms) / self.median_ms if self.median_ms else math.nan

    def to_list(self) -> list:
        return list(astuple(self))

    @classmethod
    def from_list(cls, values) -> "Stats":
        if len(values) != 6:
            raise ValueError("Stats needs 6 values")
        *floats, n = values
        return cls(*(float(v) for v in floats), int(n))


def per_image_ms(per_batch_ms, batch: int):
    """ms per image from ms per batch (a float or an array), for tables with ``batch`` > 1."""
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, not {batch!r}")
    return per_batch_ms / batch


# The timer's noise floor as a ratio: 1e-5 of the reference network (~50 ns on local-cpu).
RATIO_FLOOR = 1e-5


@dataclass(frozen=True)
class RatioStats:
    """Per-call times of an item divided by the device's reference network timed beside it.

    Unitless. The machine's speed drifts by 5-15% over minutes; an item and the reference timed
    within the same second drift together, so their ratio does not. ``to_ms`` turns a ratio back
    into milliseconds at one fixed reference speed (a table's or records file's reference ms).
    """

    median: float
    mean: float
    std: float
    p10: float
    p90: float
    n: int

    @classmethod
    def from_samples(cls, ratios) -> "RatioStats":
        s = Stats.from_samples(ratios)
        return cls(s.median_ms, s.mean_ms, s.std_ms, s.p10_ms, s.p90_ms, s.n)

    def floored(self, floor: float = RATIO_FLOOR) -> "RatioStats":
        """This ratio, or ``floor`` where its median is at or under it. An item cheaper than
        the per-call overhead subtracted from it can come out at or under 0; a table holds
        only positive ratios, and 0 ms is never a latency."""
        if self.median > floor:
            return self
        return RatioStats(floor, max(self.mean, floor), self.std, floor, max(self.p90, floor),
                          self.n)

    def to_ms(self, reference_ms: float) -> Stats:
        return Stats(self.median * reference_ms, self.mean * reference_ms,
                     self.std * reference_ms, self.p10 * reference_ms, self.p90 * reference_ms,
                     self.n)

    def to_list(self) -> list:
        return list(astuple(self))

    @classmethod
    def from_list(cls, values) -> "RatioStats":
        if len(values) != 6:
            raise ValueError("RatioStats needs 6 values")
        *floats, n = values
        r = cls(*(float(v) for v in floats), int(n))
        if not (math.isfinite(r.median) and r.median > 0):
            raise ValueError(f"ratio median must be finite and > 0, not {r.median}")
        return r
