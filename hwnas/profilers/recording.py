"""Recording measurements into a table: open (resume), store, the drift sentinel.

Shared by the sequential driver (run.py) and the several-phones driver (parallel.py), which
both import it; neither imports the other at module level.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from hwnas.errors import ProfileError
from hwnas.latency.stats import RATIO_FLOOR
from hwnas.latency.table import LatencyTable
from hwnas.ops import OpSpec
from hwnas.profilers import Measurement, Profiler

log = logging.getLogger(__name__)
SAVE_EVERY = 20


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def open_table(path: Path, profiler: Profiler, fresh: bool = False) -> LatencyTable:
    """The existing table to extend, or a new one; refuses to mix measurement protocols."""
    protocol = profiler.protocol()
    if path.exists() and not fresh:
        table = LatencyTable.load(path, profiler.meta().get("device"))
        old = table.meta.get("protocol")
        if old != protocol:
            raise ProfileError(
                f"{path} was measured with {old}, not {protocol}; pass --fresh to start a new table"
            )
        table.meta.update(profiler.meta(), protocol=protocol, updated=_now())
        return table
    meta = dict(profiler.meta(), protocol=protocol, created=_now(), updated=_now(),
                drift_events=[])
    return LatencyTable(meta)


def sync_meta(table: LatencyTable, profiler: Profiler) -> None:
    """Move what the profiler noticed since the last save (phones cooling down) into the meta."""
    events = profiler.drain_events()
    if events:
        table.meta.setdefault("thermal_events", []).extend(events)


def pick_sentinel(ops: Sequence[OpSpec]) -> OpSpec:
    """An op at the 75th percentile of MACs: big enough that its median is stable (small ops
    swing by 10-20% on a shared box), small enough to re-time often."""
    by_macs = sorted(ops, key=lambda o: (o.macs(), o.key))
    return by_macs[len(by_macs) * 3 // 4]


class _Sentinel:
    """Re-times one op now and then. With the drift-free protocol it watches the op's *ratio*
    to the reference: the machine's speed may drift (that is what the ratio cancels, and it is
    recorded as ``raw_drift``), but a ratio that moves means the protocol is not holding (the
    op and the reference disturbed differently), and the recent ops are measured again."""

    def __init__(self, profiler: Profiler, op: OpSpec, tolerance: float):
        self.profiler, self.op, self.tolerance = profiler, op, tolerance
        # The first call of a process runs cold (lazy init, clocks ramping up); a baseline
        # taken from it makes every later check look like drift. Discard it, keep the median.
        self._value()
        values = [self._value() for _ in range(3)]
        self.baseline = float(np.median([v for v, _ in values]))
        self.raw_baseline = float(np.median([r for _, r in values]))
        self.raw_drift = 0.0

    def _value(self) -> tuple[float, float]:
        """(the watched value: the ratio when there is one, else ms; ms as timed)."""
        m = self.profiler.measure_op_full(self.op)
        return (m.ratio.median if m.ratio is not None else m.stats.median_ms), m.stats.median_ms

    def drift(self) -> float:
        value, raw = self._value()
        self.raw_drift = raw / self.raw_baseline - 1.0
        return value / self.baseline - 1.0


def store(table: LatencyTable, key: str, m: Measurement) -> None:
    """Put one measurement into the table: drift-free when it was timed beside the reference."""
    from hwnas.profilers.reference import REFERENCE_KEY

    flag = m.flag or nonpositive_flag(m, key)
    ratio = m.ratio
    if ratio is not None and not ratio.median > RATIO_FLOOR:
        # An op cheaper than the per-call overhead subtracted from it comes out at or under
        # 0 about as often as over; keep it at the timer's floor, flagged, rather than lose
        # the whole profile over it (CI met a 1x1 skip at -5e-5 of the reference).
        ratio = ratio.floored()
        flag = m.flag or (f"measured at {m.ratio.median:.2g} of the reference, at or under "
                        f"the per-call overhead; kept at the timer's floor ({RATIO_FLOOR:g})")
    ref = (REFERENCE_KEY, m.reference_ms) if ratio is not None else None
    table.put(key, m.stats, m.energy, flag, ratio=ratio, reference=ref)


def _record(table: LatencyTable, profiler: Profiler, op: OpSpec) -> None:
    """Measure one op into the table, with its energy and flag where the profiler gives them."""
    store(table, op.key, profiler.measure_op_full(op))


def nonpositive_flag(m: Measurement, key: str) -> str:
    """A block timed at or under the per-call overhead subtracted from it keeps its number,
    flagged (so the table loads and says why); a non-finite timing or ratio is a failed
    measurement."""
    import math

    if not math.isfinite(m.stats.median_ms):
        raise ProfileError(f"{key}: the measurement gave {m.stats.median_ms} ms")
    if m.ratio is not None and not math.isfinite(m.ratio.median):
        raise ProfileError(f"{key}: the measurement gave a ratio to the reference of "
                           f"{m.ratio.median}")
    if m.stats.median_ms <= 0:
        return "measured at or under the per-call overhead subtracted from it"
    return ""


def _check_drift(table: LatencyTable, sentinel: _Sentinel, recent: list[OpSpec],
                 cooldown_s: float) -> None:
    drift = sentinel.drift()
    if abs(sentinel.raw_drift) > sentinel.tolerance:  # the machine: noted, not acted on
        table.meta.setdefault("speed_drift", []).append(
            {"at": _now(), "drift": round(sentinel.raw_drift, 4)})
    if abs(drift) <= sentinel.tolerance:
        return
    log.warning("sentinel %s drifted %+.1f%%; cooling down %.0fs", sentinel.op.key,
                100 * drift, cooldown_s)
    time.sleep(cooldown_s)
    again = sentinel.drift()
    event = {"at": _now(), "drift": round(drift, 4), "after_cooldown": round(again, 4),
             "machine_speed_drift": round(sentinel.raw_drift, 4),
             "ops_since_check": len(recent)}
    if abs(again) <= sentinel.tolerance:
        for op in recent:  # timed during the disturbance: measure them again
            _record(table, sentinel.profiler, op)
        event["action"] = "re-measured"
    else:
        event["action"] = "kept; new baseline"
        sentinel.baseline *= 1.0 + again
    table.meta.setdefault("drift_events", []).append(event)
