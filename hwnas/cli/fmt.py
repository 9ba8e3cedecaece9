"""How the command line prints a latency: one formatter, so that no command shows 0.000 ms.

Three decimals of a millisecond hide everything under 0.5 us, and a fixed format of a huge
number is a wall of digits; significant digits (and microseconds below one) say what the number
is at every scale. Only click and the standard library here (importing the CLI stays light).
"""

from __future__ import annotations

import math


def fmt_ms(ms: float) -> str:
    """'12.345 ms' from 1 ms up (three decimals, as hwnas always printed), '0.5123 ms' down to
    1 us, '12.5 µs' below; anything else (0, negative, NaN) as it is, never rounded to 0."""
    ms = float(ms)
    if not math.isfinite(ms) or ms <= 0:
        return f"{ms:.4g} ms"
    if ms >= 1:
        return f"{ms:.3f} ms"
    if ms >= 1e-3:
        return f"{ms:.4g} ms"
    return f"{ms * 1e3:.4g} µs"
