"""End-to-end records: whole subnets measured on a device, the ground truth for predictors.

A records file belongs to one device. Each record is one architecture with one Stats per pass;
several passes over the same subnets (in different processes or at different times) give the
noise floor, and their pooled median is the target a predictor is scored against. The file is
JSON (readable, diffable), written atomically after every measurement, so a long ``measure`` run
resumes where it stopped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwnas.errors import TableError
from hwnas.latency.safeio import atomic_write_text
from hwnas.latency.stats import Stats

RECORDS_SCHEMA = 1
RECORDS_TAG = "hwnas-records"


@dataclass
class Record:
    arch: dict  # the architecture's JSON form (with "space")
    passes: list[Stats] = field(default_factory=list)

    @property
    def pooled_ms(self) -> float:
        """Median of the per-pass medians: robust to one disturbed pass."""
        return float(np.median([s.median_ms for s in self.passes]))

    @property
    def key(self) -> str:
        return json.dumps(self.arch, sort_keys=True)


@dataclass
class Records:
    device: str
    meta: dict = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def find(self, arch_dict: dict) -> Record | None:
        key = json.dumps(arch_dict, sort_keys=True)
        return next((r for r in self.records if r.key == key), None)

    def add(self, arch_dict: dict, stats: Stats) -> Record:
        rec = self.find(arch_dict)
        if rec is None:
            rec = Record(arch_dict)
            self.records.append(rec)
        rec.passes.append(stats)
        return rec

    def complete(self, n_passes: int) -> list[Record]:
        return [r for r in self.records if len(r.passes) >= n_passes]

    # --- persistence -------------------------------------------------------------------------
    def to_obj(self) -> dict:
        return {"format": RECORDS_TAG, "schema": RECORDS_SCHEMA, "device": self.device,
                "meta": self.meta,
                "records": [{"arch": r.arch, "passes": [s.to_list() for s in r.passes]}
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
            recs = [Record(r["arch"], [Stats.from_list(s) for s in r["passes"]])
                    for r in obj["records"]]
        except (KeyError, TypeError, ValueError) as e:
            raise TableError(f"{path} is corrupt ({type(e).__name__}: {e})") from None
        for r in recs:
            for s in r.passes:
                if not math.isfinite(s.median_ms) or s.median_ms <= 0:
                    raise TableError(f"{path} has a NaN, zero or negative latency "
                                     f"({s.median_ms}); refusing to use it")
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
            row.update({f"pass{i}_ms": s.median_ms for i, s in enumerate(r.passes)})
            rows.append(row)
        return pd.DataFrame(rows)
