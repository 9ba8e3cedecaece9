"""The drift-free protocol: time every item interleaved with the device's reference network.

Why: this machine's speed drifts by 5-15% over minutes (a noisy neighbour, the host's clocks).
More runs, the minimum or a low percentile do not remove that: whole passes move together. An
item and a fixed reference network timed within the same second see the same machine, so the
ratio of the two is (nearly) free of the drift. hwnas therefore times

    reference, item, reference, item, ..., reference

in ``rounds`` rounds, divides each of the item's calls by the mean of the reference medians
just before and just after its round, and keeps the ratios beside the milliseconds. A table or
records file converts ratios back to ms with one fixed reference speed (its ``reference.ms``),
so numbers timed in a slow minute and in a fast minute agree.

A *bench* is anything with ``time_calls(n) -> np.ndarray`` (ms per call of ``n`` calls); every
profiler makes benches for its items and for its reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from hwnas.latency.stats import RatioStats, Stats


class Bench(Protocol):
    def time_calls(self, n: int) -> np.ndarray: ...


@dataclass(frozen=True)
class ReferencePlan:
    """How an item is interleaved with the reference (from the device config)."""

    rounds: int = 10  # item runs are split into this many rounds
    reference_runs: int = 1  # reference calls before each round and after the last
    reference_warmup: int = 3
    # keep timing (more batches of ``runs``) while the median ratio's relative standard error
    # is above this, up to ``max_batches`` batches: a busy neighbour costs time, not accuracy
    precision: float = 0.004
    max_batches: int = 1
    settle: int = 0  # untimed calls of the item at the start of each round
    # or, with settle 0: as many untimed calls as make up this much of the item's own time
    # (its warm-up median), at most SETTLE_MAX_CALLS; a network of this much or more gets none
    settle_ms: float = 0.0

    def for_networks(self, runs: int, max_batches: int) -> "ReferencePlan":
        """Whole networks: one timed call of the network beside every reference call (their
        calls are long enough for the machine's speed to change within a round), and more
        batches while the ratio is imprecise. Ops get one batch: a table sums ~30 of them, so
        their errors average out, and a 20 µs op never reaches 0.4% on a busy box.

        A network shorter than NETWORK_SETTLE_MS is first called untimed until that much of its
        time has run (``settle_ms``): right after the reference a small network runs cold, +20%
        (LiteRT) and +31% (onnxruntime) at 1.4 ms, +13% at 2.3-2.8 ms, +4-5% at 5 ms, within
        ~±2% from ~8 ms (docs/ARCHITECTURE.md, "A network right after the reference runs
        cold"). A network of 8 ms or more is timed as before, so the reference after it is too."""
        from dataclasses import replace

        return replace(self, rounds=runs, max_batches=max_batches, settle=0,
                       settle_ms=NETWORK_SETTLE_MS)

    def settled(self, runs: int, max_batches: int) -> "ReferencePlan":
        """Whole networks in rounds of SETTLED_ROUND calls between reference runs, the first
        SETTLED_SKIP untimed (benchmarks/network_protocol.py, network_precision.py)."""
        from dataclasses import replace

        timed = SETTLED_ROUND - SETTLED_SKIP
        return replace(self, rounds=max(1, -(-runs // timed)), max_batches=max_batches,
                       settle=SETTLED_SKIP)


# Untimed calls of a small network before each timed one: until this much of its time ran
# (from ~8 ms a network's first call after the reference was within ~±2% of back to back),
# at most SETTLE_MAX_CALLS (a 1 ms network: 7).
NETWORK_SETTLE_MS = 8.0
SETTLE_MAX_CALLS = 8


def network_meta(plan: "ReferencePlan | None") -> dict:
    """What a records file says of how its whole networks were timed (descriptive: records of
    the protocol before, one call a round, read as before; a network under 8 ms read up to
    20-30% slower that way)."""
    return {} if plan is None else {"network_settle_ms": NETWORK_SETTLE_MS}


def settle_calls(item_ms: float, settle_ms: float) -> int:
    """Untimed calls that make up ``settle_ms`` of an item of ``item_ms`` with the timed call."""
    if settle_ms <= 0 or not np.isfinite(item_ms) or item_ms <= 0:
        return 0
    return int(min(SETTLE_MAX_CALLS, max(0, np.ceil(settle_ms / item_ms) - 1)))


# A settled round: this many network calls between reference runs, the first SETTLED_SKIP
# untimed. Against back to back, in the same round: one call a round read MobileNetV2-0.5 at
# 160 px +20% (LiteRT) and +31% (onnxruntime) slower, a settled round +0.1% and +0.9%.
SETTLED_ROUND = 8
SETTLED_SKIP = 2


@dataclass(frozen=True)
class Interleaved:
    """One item's timings and the reference around them."""

    samples_ms: np.ndarray  # the item's per-call times, as timed
    local_reference_ms: np.ndarray  # per call: the reference's median around its round
    reference_ms: float  # the reference's median over this item's rounds

    def stats(self, overhead_ms: float = 0.0) -> Stats:
        return Stats.from_samples(self.samples_ms - overhead_ms)

    def ratio(self, overhead_ms: float = 0.0) -> RatioStats:
        return RatioStats.from_samples((self.samples_ms - overhead_ms) / self.local_reference_ms)

    @classmethod
    def from_runner(cls, msg: dict) -> "Interleaved":
        """From the answer of hwnas's timing runner (ssh_runner.py, on a board or here)."""
        return cls(np.asarray(msg["samples_ms"], dtype=float),
                   np.asarray(msg["local_reference_ms"], dtype=float),
                   float(msg["reference_ms"]))


def runner_plan(plan: "ReferencePlan | None") -> dict | None:
    """A plan as hwnas's timing runner takes it (ssh_runner.py cannot import this module)."""
    return None if plan is None else {
        "rounds": plan.rounds, "reference_runs": plan.reference_runs,
        "reference_warmup": plan.reference_warmup, "precision": plan.precision,
        "max_batches": plan.max_batches, "settle": plan.settle, "settle_ms": plan.settle_ms}


def plan_of(cfg) -> ReferencePlan | None:
    """The device config's plan, or None when it switches the reference off."""
    if not cfg.reference:
        return None
    return ReferencePlan(cfg.reference_rounds, cfg.reference_runs,
                         precision=cfg.reference_precision)


def protocol_reference(plan: ReferencePlan | None) -> dict:
    """The part of a profiler's protocol that says which reference its ratios are to.

    A table measured against one reference (or none) cannot be extended against another: the
    ratios would mean different things."""
    from hwnas.profilers.reference import REFERENCE_KEY

    return {"reference": REFERENCE_KEY if plan is not None else "none"}


def median_rse(ratios: np.ndarray) -> float:
    """Relative standard error of the median of ``ratios``, from their MAD (robust to the odd
    call a neighbour interrupted)."""
    med = float(np.median(ratios))
    mad_sigma = 1.4826 * float(np.median(np.abs(ratios - med)))
    return 1.2533 * mad_sigma / np.sqrt(len(ratios)) / med


def _reference_ms(reference: Bench, runs: int) -> float:
    """The reference's median over ``runs`` calls, after one untimed call.

    The untimed call puts the reference back in a steady state (its weights in cache, its
    arena warm) whatever the item before it did: after an op timed in flush context (a 24 MB
    read evicts everything) the reference ran ~1.6x slower than after a whole network, so a
    table's ratios and a records file's would have been to two different references."""
    return float(np.median(reference.time_calls(1 + runs)[1:]))


def interleave(item: Bench, reference: Bench, runs: int, warmup: int,
               plan: ReferencePlan) -> Interleaved:
    """Warm both up, then time ``runs`` calls of ``item`` in rounds between reference runs;
    more batches of ``runs`` while the ratio is not yet precise (see ReferencePlan)."""
    # the warm-up's median says how long the item runs, so how many calls settle it
    warm = item.time_calls(max(warmup, 1)) if warmup or plan.settle_ms else np.empty(0)
    settle = plan.settle or (settle_calls(float(np.median(warm)), plan.settle_ms)
                             if len(warm) else 0)
    reference.time_calls(plan.reference_warmup)
    rounds = max(1, min(plan.rounds, runs))
    sizes = np.diff(np.linspace(0, runs, rounds + 1).round().astype(int))
    refs = [_reference_ms(reference, plan.reference_runs)]
    samples, local = [], []
    for batch in range(max(1, plan.max_batches)):
        for size in sizes:
            if settle:  # the item out of the reference's cold start
                item.time_calls(settle)
            s = item.time_calls(int(size))
            refs.append(_reference_ms(reference, plan.reference_runs))
            samples.append(s)
            # the mean of the reference before and after cancels a linear drift over the round
            local.append(np.full(len(s), 0.5 * (refs[-2] + refs[-1])))
        ratios = np.concatenate(samples) / np.concatenate(local)
        if median_rse(ratios) <= plan.precision:
            break
    return Interleaved(np.concatenate(samples), np.concatenate(local), float(np.median(refs)))
