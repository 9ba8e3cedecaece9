"""Several phones of one model filling one table together (``--serial A --serial B``).

One thread per phone (each mostly waits on adb, so threads are enough) takes the next op from a
shared queue, measures it and writes the result into the shared table under a lock. Each phone
re-times the sentinel op against its own baseline, because two units of one model differ.

A phone that drops out puts its op back in the queue; the others finish the list. Only when ops
are left unmeasured does the run end in ProfileError, after saving, so the next run resumes.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Sequence

from hwnas.errors import ProfileError
from hwnas.latency.table import LatencyTable
from hwnas.ops import OpSpec
from hwnas.profilers import KernelJob, Measurement, Profiler
from hwnas.errors import Interrupted
from hwnas.profilers.recording import (SAVE_EVERY, _now, _Sentinel, open_table, pick_sentinel,
                                       store, sync_meta)

log = logging.getLogger(__name__)


class Fleet(Profiler):
    """Several profilers of one device config, used as one (its protocol is theirs, which must
    agree: same phone model, binary, mask and threads). The driver shares an op list among
    its ``members``; anything measured once (a model, a file, a kernel) goes to the first."""

    runtime = "tflite-benchmark_model"

    def __init__(self, members: Sequence[Profiler]):
        if len(members) < 2:
            raise ValueError("a fleet needs at least two profilers")
        self.members = tuple(members)
        self.cfg, self.plan = self.members[0].cfg, self.members[0].plan
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "Fleet":
        with contextlib.ExitStack() as stack:
            for m in self.members:
                stack.enter_context(m)
            protocols = {m.serial: m.protocol() for m in self.members}
            first = next(iter(protocols.values()))
            odd = [s for s, p in protocols.items() if p != first]
            if odd:
                raise ProfileError(f"phones {', '.join(protocols)} cannot share a table: "
                                   f"{odd[0]} measures with {protocols[odd[0]]}, not {first}")
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def meta(self) -> dict:
        meta = self.members[0].meta()
        meta.pop("serial", None)
        meta["phone"] = {m.serial: m.meta()["phone"] for m in self.members}
        meta["serials"] = [m.serial for m in self.members]
        return meta

    def protocol(self) -> dict:
        return self.members[0].protocol()

    def drain_events(self) -> list[dict]:
        return [e for m in self.members for e in m.drain_events()]

    def measure_op_full(self, op: OpSpec) -> Measurement:
        return self.members[0].measure_op_full(op)

    def measure_model_full(self, module, input_shape) -> Measurement:
        return self.members[0].measure_model_full(module, input_shape)

    def measure_file_full(self, path: Path, fmt: str, input_shape=None) -> Measurement:
        return self.members[0].measure_file_full(path, fmt, input_shape)

    def measure_kernel_full(self, job: KernelJob) -> Measurement:
        return self.members[0].measure_kernel_full(job)

    def memory_bytes(self) -> int | None:
        return self.members[0].memory_bytes()


class _Shared:
    """The table, the queue and the bookkeeping the phone threads share (all under ``lock``)."""

    def __init__(self, table: LatencyTable, todo: list[OpSpec], path: Path, fleet: Fleet):
        self.table, self.path, self.fleet = table, path, fleet
        self.replace = False  # True for a fresh table until its first save
        self.todo = collections.deque(todo)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.done = 0
        self.failures: dict[str, BaseException] = {}
        self.by_phone: collections.Counter = collections.Counter()

    def take(self) -> OpSpec | None:
        with self.lock:
            return self.todo.popleft() if self.todo and not self.stop.is_set() else None

    def put(self, op: OpSpec, m: Measurement, serial: str, bar) -> None:
        with self.lock:
            store(self.table, op.key, m)
            self.by_phone[serial] += 1
            self.done += 1
            bar.update(1)
            if self.done % SAVE_EVERY == 0:
                self.save()

    def save(self) -> None:
        sync_meta(self.table, self.fleet)
        self.table.meta["measured_by"] = dict(self.by_phone)
        self.table.save_merged(self.path, replace=self.replace)
        self.replace = False  # a fresh table's first save moves the old one aside


def _worker(phone, shared: _Shared, sentinel_op: OpSpec, sentinel_every: int,
            tolerance: float, cooldown_s: float, bar) -> None:
    op = None
    try:
        sentinel = _Sentinel(phone, sentinel_op, tolerance)
        recent: list[OpSpec] = []
        while (op := shared.take()) is not None:
            shared.put(op, _measure(phone, op), phone.serial, bar)
            recent.append(op)
            op = None
            if len(recent) >= sentinel_every:
                _check_drift(phone, sentinel, recent, cooldown_s, shared)
                recent = []
    except BaseException as e:  # reported by the main thread
        with shared.lock:
            if op is not None:
                shared.todo.appendleft(op)
            shared.failures[phone.serial] = e
            if not isinstance(e, ProfileError):
                shared.stop.set()  # a bug or Ctrl-C: stop everyone


def _measure(phone: Profiler, op: OpSpec) -> Measurement:
    return phone.measure_op_full(op)


def _check_drift(phone, sentinel: _Sentinel, recent: list[OpSpec], cooldown_s: float,
                 shared: _Shared) -> None:
    """As run._check_drift, for one phone, measuring outside the lock and writing under it."""
    drift = sentinel.drift()
    if abs(drift) <= sentinel.tolerance:
        return
    log.warning("%s: sentinel drifted %+.1f%%; cooling down %.0fs", phone.serial, 100 * drift,
                cooldown_s)
    time.sleep(cooldown_s)
    again = sentinel.drift()
    event = {"at": _now(), "serial": phone.serial, "drift": round(drift, 4),
             "after_cooldown": round(again, 4), "ops_since_check": len(recent)}
    if abs(again) <= sentinel.tolerance:
        fresh = {op.key: _measure(phone, op) for op in recent}
        event["action"] = "re-measured"
    else:
        fresh = {}
        event["action"] = "kept; new baseline"
        sentinel.baseline *= 1.0 + again
    with shared.lock:
        for key, m in fresh.items():
            store(shared.table, key, m)
        shared.table.meta.setdefault("drift_events", []).append(event)


def profile_ops_parallel(fleet: Fleet, ops: Sequence[OpSpec], path: Path, *,
                         fresh: bool = False, sentinel_every: int = 50,
                         drift_tolerance: float = 0.10, cooldown_s: float = 2.0,
                         progress: bool = True, meta: dict | None = None) -> LatencyTable:
    """Measure every op not yet in the table at ``path`` on all the fleet's phones at once
    (``meta``: as for ``run.profile_ops``)."""
    from tqdm import tqdm

    path = Path(path)
    table = open_table(path, fleet, fresh)
    table.meta.update(meta or {})
    todo = [op for op in dict((op.key, op) for op in ops).values() if op.key not in table]
    if not todo:
        return table
    sentinel_op = pick_sentinel(ops)
    table.meta["sentinel"] = {"key": sentinel_op.key}
    shared = _Shared(table, todo, path, fleet)
    shared.replace = fresh
    unique = len({op.key for op in ops})
    bar = tqdm(total=unique, initial=unique - len(todo), unit="op", disable=not progress,
               desc=f"profiling {table.device} on {len(fleet.members)} phones", leave=False)
    threads = [threading.Thread(target=_worker, name=f"phone-{m.serial}", daemon=True,
                                args=(m, shared, sentinel_op, sentinel_every, drift_tolerance,
                                      cooldown_s, bar)) for m in fleet.members]
    try:
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.2)
    except KeyboardInterrupt:
        shared.stop.set()  # phones finish their current op; nothing measured is lost
        for t in threads:
            t.join()
        if not shared.done:
            raise Interrupted("nothing was measured by this run") from None
        shared.save()
        raise Interrupted(f"the {shared.done} op(s) measured by this run are saved in {path}; "
                          f"rerun to resume") from None
    finally:
        bar.close()
    return _finish(shared)


def _finish(shared: _Shared) -> LatencyTable:
    table = shared.table
    table.meta["updated"] = _now()
    lost = {s: e for s, e in shared.failures.items()}
    if lost:
        table.meta.setdefault("phone_dropouts", []).extend(
            {"at": _now(), "serial": s, "error": str(e)} for s, e in lost.items())
    shared.save()
    bugs = [e for e in lost.values() if not isinstance(e, ProfileError)]
    if bugs:
        raise bugs[0]
    if shared.todo:
        detail = "; ".join(f"{s}: {e}" for s, e in lost.items())
        raise ProfileError(f"{len(shared.todo)} op(s) left unmeasured ({detail}); the table is "
                           f"saved with {len(table)} ops, run the same command to resume")
    for s, e in lost.items():
        log.warning("phone %s dropped out (%s); the other phones finished its ops", s, e)
    return table
