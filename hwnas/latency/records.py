"""End-to-end records: whole subnets measured on a device, the ground truth for predictors.

A records file belongs to one device. Each record is one architecture with one Pass per pass;
several passes over the same subnets (in different processes or at different times) give the
noise floor, and their pooled median is the target a predictor is scored against. The file is
JSON (readable, diffable), written atomically after every measurement, so a long ``measure`` run
resumes where it stopped.

Drift-free passes (timed beside the reference network, profilers/drift.py) keep the ratio to the
reference and the reference's ms around them. Their milliseconds are the ratio at one fixed
reference speed: the records file's own (the median of its reference timings) or, once
``rescale`` is called, the device's table's, so that records and tables share one scale.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwnas.arch_key import arch_key
from hwnas.errors import TableError
from hwnas.latency.safeio import (MAX_RECORDS_BYTES, atomic_write_text, backup, load_json,
                                  read_capped)
from hwnas.latency.stats import RatioStats, Stats, check_ms
from hwnas.locks import folder_lock

log = logging.getLogger(__name__)
RECORDS_SCHEMA = 1
RECORDS_TAG = "hwnas-records"


@dataclass(frozen=True)
class Pass:
    """One independent measurement of a whole subnet."""

    timed: Stats  # ms as timed
    ratio: RatioStats | None = None  # per-call times over the reference's (drift-free)
    reference_ms: float | None = None  # the reference's median around this measurement

    def ms(self, scale_ms: float | None) -> float:
        """Median ms: drift-free at ``scale_ms`` when both exist, else as timed."""
        if self.ratio is not None and scale_ms is not None:
            return self.ratio.median * scale_ms
        return self.timed.median_ms

    def to_obj(self):
        if self.ratio is None:
            return self.timed.to_list()  # the original format: old readers keep working
        return {"timed": self.timed.to_list(), "ratio": self.ratio.to_list(),
                "reference_ms": self.reference_ms}

    @classmethod
    def from_obj(cls, obj) -> "Pass":
        if isinstance(obj, list):
            return cls(Stats.from_list(obj))
        ref = float(obj["reference_ms"])
        if not (math.isfinite(ref) and ref > 0):
            raise ValueError(f"reference_ms {ref} is not a positive number")
        return cls(Stats.from_list(obj["timed"]), RatioStats.from_list(obj["ratio"]), ref)


@dataclass
class Record:
    arch: dict  # the architecture's JSON form (with "space")
    passes: list[Pass] = field(default_factory=list)
    scale_ms: float | None = None  # the reference ms that turns ratios into ms (see Records)
    # each pass as read from the file (None for one measured by this process): written back
    # as it was, so that per-pass fields this version does not know survive a save, and a
    # merge compares passes exactly as stored
    stored: list = field(default_factory=list)

    def pass_ms(self) -> list[float]:
        """Each pass's median ms (drift-free where the pass has a ratio)."""
        return [p.ms(self.scale_ms) for p in self.passes]

    def pass_objs(self) -> list:
        stored = self.stored + [None] * (len(self.passes) - len(self.stored))
        return [o if o is not None else p.to_obj() for p, o in zip(self.passes, stored)]

    @property
    def pooled_ms(self) -> float:
        """Median of the per-pass medians: robust to one disturbed pass."""
        return float(np.median(self.pass_ms()))

    @property
    def key(self) -> str:
        return arch_key(self.arch)


@dataclass
class Records:
    device: str
    meta: dict = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)

    def __post_init__(self):
        self._own_scale = True
        self._rescale(self.reference_ms)

    def __len__(self) -> int:
        return len(self.records)

    def find(self, arch_dict: dict) -> Record | None:
        key = arch_key(arch_dict)
        return next((r for r in self.records if r.key == key), None)

    def add(self, arch_dict: dict, measured: "Stats | Pass") -> Record:
        rec = self.find(arch_dict)
        if rec is None:
            rec = Record(arch_dict, scale_ms=self.scale_ms)
            self.records.append(rec)
        rec.stored += [None] * (len(rec.passes) - len(rec.stored))
        rec.passes.append(measured if isinstance(measured, Pass) else Pass(measured))
        rec.stored.append(None)
        if isinstance(measured, Pass) and measured.ratio is not None and self._own_scale:
            self._rescale(self.reference_ms)
        return rec

    @classmethod
    def from_pairs(cls, device: str, pairs, meta: dict | None = None) -> "Records":
        """Records built at once from (arch JSON, ms | Stats | Pass) pairs; an arch given
        twice gets two passes. Linear in the number of pairs (``add`` looks each arch up in
        a list, which is quadratic over an import of 15,625 networks)."""
        by_key: dict[str, Record] = {}
        for arch, measured in pairs:
            p = (measured if isinstance(measured, Pass) else
                 Pass(measured if isinstance(measured, Stats) else Stats.single(measured)))
            key = arch_key(arch)
            rec = by_key.get(key)
            if rec is None:
                rec = by_key[key] = Record(arch)
            rec.passes.append(p)
            rec.stored.append(None)
        # __post_init__ sets every record's drift-free scale from the passes' references
        return cls(device, dict(meta or {}), list(by_key.values()))

    # --- the reference scale -----------------------------------------------------------------
    @property
    def reference_ms(self) -> float | None:
        """The median reference ms over every drift-free pass in this file (None: none)."""
        refs = [p.reference_ms for r in self.records for p in r.passes if p.ratio is not None]
        return float(np.median(refs)) if refs else None

    @property
    def reference_key(self) -> str | None:
        """Which reference this file's drift-free passes are ratios to (None: it has none)."""
        from hwnas.profilers.reference import LEGACY_REFERENCE_KEY

        if self.reference_ms is None:
            return None
        return (self.meta.get("protocol") or {}).get("reference", LEGACY_REFERENCE_KEY)

    @property
    def scale_ms(self) -> float | None:
        return self._scale_ms

    def rescale(self, reference_ms: float | None) -> "Records":
        """Express drift-free passes at ``reference_ms`` (a table's), not at this file's own
        reference speed; None goes back to the file's own."""
        self._own_scale = reference_ms is None
        self._rescale(self.reference_ms if reference_ms is None else reference_ms)
        return self

    def _rescale(self, scale_ms: float | None) -> None:
        self._scale_ms = scale_ms
        for r in self.records:
            r.scale_ms = scale_ms

    def complete(self, n_passes: int) -> list[Record]:
        return [r for r in self.records if len(r.passes) >= n_passes]

    # --- persistence -------------------------------------------------------------------------
    def to_obj(self) -> dict:
        return {"format": RECORDS_TAG, "schema": RECORDS_SCHEMA, "device": self.device,
                "meta": self.meta,
                "records": [{"arch": r.arch, "passes": r.pass_objs()} for r in self.records]}

    def save(self, path: str | Path) -> None:
        """Read-merge-write under the folder's lock: records and passes another process saved
        since this one read the file are kept (merged by architecture, passes united), and
        this object is updated to the merged state. Nothing completed is ever dropped."""
        path = Path(path)
        with folder_lock(path.parent):
            if path.is_file():
                try:
                    disk = Records.load(path, self.device)
                except TableError as e:  # garbled since we read it: keep it aside, not lose it
                    log.warning("kept the unreadable %s as %s (%s)", path, backup(path), e)
                else:
                    self.merge(disk)
            atomic_write_text(path, json.dumps(self.to_obj(), indent=1))

    def merge(self, other: "Records") -> None:
        """Add ``other``'s records and passes that this one lacks (passes compared exactly as
        stored: a pass measured once is one pass, however many processes read it)."""
        mine = {r.key: r for r in self.records}
        for theirs in other.records:
            rec = mine.get(theirs.key)
            if rec is None:
                self.records.append(theirs)
                mine[theirs.key] = theirs
                continue
            have = [_canon(o) for o in rec.pass_objs()]
            rec.stored = rec.stored + [None] * (len(rec.passes) - len(rec.stored))
            for p, obj in zip(theirs.passes, theirs.pass_objs()):
                c = _canon(obj)
                if c in have:
                    have.remove(c)  # a multiset: two equal passes on disk stay two
                else:
                    rec.passes.append(p)
                    rec.stored.append(obj)
        self.meta = {**other.meta, **self.meta}
        # the drift-free scale: this file's own (now over both writers' passes) or the one set
        self._rescale(self.reference_ms if self._own_scale else self._scale_ms)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "Records":
        path = Path(path)
        if not os.path.lexists(path):
            raise TableError(f"no records file: {path} (make one with 'hwnas measure')")
        data = read_capped(path, MAX_RECORDS_BYTES, "records file")  # not a FIFO, not endless
        try:
            obj = load_json(data, str(path), MAX_RECORDS_BYTES)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TableError(f"{path} is corrupt or truncated: {e}") from None
        if not isinstance(obj, dict) or obj.get("format") != RECORDS_TAG:
            raise TableError(f"{path} is not an hwnas records file")
        if obj.get("schema") != RECORDS_SCHEMA:
            raise TableError(f"{path} has records schema {obj.get('schema')!r}, expected "
                             f"{RECORDS_SCHEMA}")
        if device is not None and obj.get("device") != device:
            raise TableError(f"{path} holds records of device {obj.get('device')!r}, "
                             f"not {device!r}")
        try:
            recs = [_record(r) for r in obj["records"]]
            meta = dict(obj.get("meta", {}))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise TableError(f"{path} is corrupt ({type(e).__name__}: {e})") from None
        for r in recs:
            for p in r.passes:
                if not math.isfinite(p.timed.median_ms) or p.timed.median_ms <= 0:
                    raise TableError(f"{path} has a NaN, zero or negative latency "
                                     f"({p.timed.median_ms}); refusing to use it")
        out = cls(obj["device"], meta, recs)
        _check_bounds(out, path)
        return out

    @classmethod
    def load_or_new(cls, path: str | Path, device: str) -> "Records":
        return cls.load(path, device) if Path(path).exists() else cls(device)

    def to_frame(self):
        """One row per record: arch JSON, pooled latency, pass count and per-pass medians."""
        import pandas as pd

        rows = []
        for r in self.records:
            row = {"device": self.device, "space": r.arch.get("space"),
                   "arch": json.dumps(r.arch), "pooled_ms": r.pooled_ms, "passes": len(r.passes)}
            row.update({f"pass{i}_ms": ms for i, ms in enumerate(r.pass_ms())})
            row.update({f"pass{i}_ratio": p.ratio.median for i, p in enumerate(r.passes)
                        if p.ratio is not None})
            rows.append(row)
        return pd.DataFrame(rows)


def _check_bounds(recs: "Records", path: Path) -> None:
    """Every pass within the physical bounds (stats.MIN_MS, MAX_MS), as timed, at the file's
    drift-free scale, and its reference; the first outside them is named."""
    for i, r in enumerate(recs.records):
        for j, p in enumerate(r.passes):
            where = f"{path}: record {i} pass {j}"
            check_ms(p.timed.median_ms, where)
            if p.ratio is not None:
                check_ms(p.reference_ms, f"{where} (its reference network)")
                check_ms(p.ms(r.scale_ms), f"{where} (drift-free)")


def _canon(pass_obj) -> str:
    return json.dumps(pass_obj, sort_keys=True)


def _record(r: dict) -> Record:
    """One record from its JSON form; raises KeyError/TypeError/ValueError when malformed."""
    arch, passes = r["arch"], r["passes"]
    if not isinstance(arch, dict) or not isinstance(arch.get("space"), str):
        raise ValueError(f"an arch is a JSON object with a 'space' name, got {arch!r:.80}")
    if not isinstance(passes, list) or not passes:
        raise ValueError(f"a record needs a non-empty list of passes, got {passes!r:.80}")
    # a pass is its Stats as a list, or an object (drift-free: timed, ratio, reference_ms);
    # fields of an object this version does not know are kept, unread, in ``stored``
    return Record(arch, [Pass.from_obj(p) for p in passes], stored=list(passes))
