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
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwnas.errors import TableError
from hwnas.latency.safeio import atomic_write_text
from hwnas.latency.stats import RatioStats, Stats

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

    def pass_ms(self) -> list[float]:
        """Each pass's median ms (drift-free where the pass has a ratio)."""
        return [p.ms(self.scale_ms) for p in self.passes]

    @property
    def pooled_ms(self) -> float:
        """Median of the per-pass medians: robust to one disturbed pass."""
        return float(np.median(self.pass_ms()))

    @property
    def key(self) -> str:
        return json.dumps(self.arch, sort_keys=True)


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
        key = json.dumps(arch_dict, sort_keys=True)
        return next((r for r in self.records if r.key == key), None)

    def add(self, arch_dict: dict, measured: "Stats | Pass") -> Record:
        rec = self.find(arch_dict)
        if rec is None:
            rec = Record(arch_dict, scale_ms=self.scale_ms)
            self.records.append(rec)
        rec.passes.append(measured if isinstance(measured, Pass) else Pass(measured))
        if isinstance(measured, Pass) and measured.ratio is not None and self._own_scale:
            self._rescale(self.reference_ms)
        return rec

    # --- the reference scale -----------------------------------------------------------------
    @property
    def reference_ms(self) -> float | None:
        """The median reference ms over every drift-free pass in this file (None: none)."""
        refs = [p.reference_ms for r in self.records for p in r.passes if p.ratio is not None]
        return float(np.median(refs)) if refs else None

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
                "records": [{"arch": r.arch, "passes": [p.to_obj() for p in r.passes]}
                            for r in self.records]}

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_obj(), indent=1))

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "Records":
        path = Path(path)
        try:
            obj = json.loads(path.read_text())
        except FileNotFoundError:
            raise TableError(f"no records file: {path} (make one with 'hwnas measure')") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TableError(f"{path} is corrupt or truncated: {e}") from None
        if not isinstance(obj, dict) or obj.get("format") != RECORDS_TAG:
            raise TableError(f"{path} is not an hwnas records file")
        if obj.get("schema") != RECORDS_SCHEMA:
            raise TableError(f"{path} has records schema {obj.get('schema')!r}, expected "
                             f"{RECORDS_SCHEMA}")
        if device is not None and obj.get("device") != device:
            raise TableError(f"{path} holds records of device {obj.get('device')!r}, not {device!r}")
        try:
            recs = [Record(r["arch"], [Pass.from_obj(s) for s in r["passes"]])
                    for r in obj["records"]]
        except (KeyError, TypeError, ValueError) as e:
            raise TableError(f"{path} is corrupt ({type(e).__name__}: {e})") from None
        for r in recs:
            for p in r.passes:
                if not math.isfinite(p.timed.median_ms) or p.timed.median_ms <= 0:
                    raise TableError(f"{path} has a NaN, zero or negative latency "
                                     f"({p.timed.median_ms}); refusing to use it")
        return cls(obj["device"], dict(obj.get("meta", {})), recs)

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
