"""The profiling driver: fill a device's table op by op, resumably, watching for drift.

* Resume: ops already in the table (measured under the same protocol) are skipped, and the table
  is written atomically every few ops, so an interrupted run (Ctrl-C, a phone unplugged) loses at
  most the ops since the last save and continues where it stopped.
* Drift: a sentinel op is re-timed every ``sentinel_every`` ops. If it moved by more than the
  tolerance (thermal throttling, a noisy neighbour), the driver pauses, re-checks, and re-measures
  the ops timed since the last good check. Drift that persists is recorded in the table's meta,
  never hidden.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from hwnas.errors import Interrupted, ProfileError
from hwnas.latency.table import LatencyTable
from hwnas.ops import OpSpec
from hwnas.profilers import Profiler
from hwnas.profilers.recording import (SAVE_EVERY, _check_drift, _now, _record, _Sentinel,
                                       open_table, pick_sentinel, sync_meta)

log = logging.getLogger(__name__)


def profile_ops(profiler: Profiler, ops: Sequence[OpSpec], path: Path, *,
                fresh: bool = False, sentinel_every: int = 50, drift_tolerance: float = 0.10,
                cooldown_s: float = 2.0, progress: bool = True,
                meta: dict | None = None) -> LatencyTable:
    """Measure every op not yet in the table at ``path``; returns the saved table.

    ``meta`` joins the table's meta before its first save (so a run stopped at any save
    carries it: the first search marks its budget as unfinished this way).

    A profiler with ``members`` (several phones, see parallel.Fleet) shares the op list among
    them, in parallel."""
    from tqdm import tqdm

    if profiler.members:
        from hwnas.profilers.parallel import profile_ops_parallel

        return profile_ops_parallel(profiler, ops, path, fresh=fresh,
                                    sentinel_every=sentinel_every,
                                    drift_tolerance=drift_tolerance, cooldown_s=cooldown_s,
                                    progress=progress, meta=meta)
    path = Path(path)
    table = open_table(path, profiler, fresh)
    table.meta.update(meta or {})
    unique = list(dict((op.key, op) for op in ops).values())
    todo = [op for op in unique if op.key not in table]
    if not todo:
        return table
    sentinel = _Sentinel(profiler, pick_sentinel(ops), drift_tolerance)
    table.meta["sentinel"] = {"key": sentinel.op.key, "baseline_ms": sentinel.baseline}
    since_check: list[OpSpec] = []
    # a resumed run shows where it stands (184/670), not a count of what is left (0/486)
    bar = tqdm(todo, desc=f"profiling {table.device}", unit="op", disable=not progress,
               leave=False, total=len(unique), initial=len(unique) - len(todo))
    replace = [fresh]  # a fresh table's first save moves the old one aside, later ones merge

    def save() -> None:
        sync_meta(table, profiler)
        table.save_merged(path, replace=replace[0])
        replace[0] = False

    try:
        for i, op in enumerate(bar, 1):
            _record(table, profiler, op)
            since_check.append(op)
            if i % sentinel_every == 0:
                _check_drift(table, sentinel, since_check, cooldown_s)
                since_check = []
            if i % SAVE_EVERY == 0:
                save()
        table.meta["updated"] = _now()
        save()  # inside the try: a Ctrl-C during the last save is reported as any other
    except KeyboardInterrupt:
        done = sum(op.key in table for op in todo)
        if done:
            save()  # nothing measured is lost; the next run resumes from here
            raise Interrupted(f"the {done} op(s) measured by this run are saved in {path} "
                              f"({len(table)} in all); rerun to resume") from None
        raise Interrupted("nothing was measured by this run") from None
    except ProfileError:
        save()
        raise
    finally:
        bar.close()
    return table
