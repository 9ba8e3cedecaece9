"""Energy: what one call of a block (or network) cost the GPU board, beside its latency.

Measured from NVML's total-energy counter (millijoules since the driver loaded) read before and
after a loop of back-to-back calls. It is *board* energy: it includes the idle power drawn while
the GPU waited for the host, which is real energy spent on that call. A table holds Energy only
where a counter really advanced; where none was available the key is absent, never 0.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass


@dataclass(frozen=True)
class Energy:
    mj_per_call: float  # millijoules per call of one batch
    mean_power_w: float  # mean board power over the measuring loop

    def __post_init__(self):
        for name in ("mj_per_call", "mean_power_w"):
            v = getattr(self, name)
            if not (isinstance(v, float) and math.isfinite(v) and v > 0):
                raise ValueError(f"Energy.{name} must be a positive finite float, not {v!r}")

    def per_image_mj(self, batch: int) -> float:
        return self.mj_per_call / batch

    def to_list(self) -> list:
        return list(astuple(self))

    @classmethod
    def from_list(cls, values) -> "Energy":
        if len(values) != 2:
            raise ValueError("Energy needs 2 values [mJ per call, mean power W]")
        return cls(float(values[0]), float(values[1]))


def energy_from_counter(before_mj: int, after_mj: int, elapsed_s: float,
                        calls: int) -> Energy | None:
    """Energy per call from two counter readings around ``calls`` calls; None if unusable.

    None (not zero) when the counter did not advance or went backwards: NVML updates it in
    steps, and a loop shorter than a step reads as nothing. The caller says so and writes no
    number, because a zero would later look like a free block.
    """
    delta = after_mj - before_mj
    if delta <= 0 or elapsed_s <= 0 or calls < 1:
        return None
    return Energy(float(delta / calls), float(delta / 1000.0 / elapsed_s))


def calls_for_duration(median_ms: float, min_s: float, cap: int = 1_000_000) -> int:
    """How many calls of ``median_ms`` keep the GPU busy for at least ``min_s`` seconds."""
    if not median_ms > 0:
        return cap
    return max(1, min(cap, math.ceil(min_s * 1000.0 / median_ms)))
