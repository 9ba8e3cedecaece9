"""End-to-end records: whole subnets measured on a device, the ground truth for predictors.

A records file belongs to one device. Each record is one architecture with one Stats per pass;
several passes over the same subnets (in different processes or at different times) give the
noise floor, and their pooled median is the target a predictor is scored against. The file is
JSON (readable, diffable), written atomically after every measurement, so a long ``measure`` run
resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwnas.errors import TableError
from hwnas.latency.safeio import atomic_write_text, backup
from hwnas.latency.stats import Stats
from hwnas.locks import folder_lock

log = logging.getLogger(__name__)
RECORDS_SCHEMA = 1
RECORDS_TAG = "hwnas-records"


@dataclass
class Record:
    arch: dict  # the architecture's JSON form (with "space")
    passes: list[Stats] = field(default_factory=list)
    # each pass as read from the file (None for one measured by this process): written back
    # as it was, so that per-pass fields this version does not know survive a save, and a
    # merge compares passes exactly as stored
    stored: list = field(default_factory=list)

    def pass_objs(self) -> list:
        stored = self.stored + [None] * (len(self.passes) - len(self.stored))
        return [o if o is not None else s.to_list() for s, o in zip(self.passes, stored)]

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
        rec.stored += [None] * (len(rec.passes) - len(rec.stored))
        rec.passes.append(stats)
        rec.stored.append(None)
        return rec

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
            for stats, obj in zip(theirs.passes, theirs.pass_objs()):
                c = _canon(obj)
                if c in have:
                    have.remove(c)  # a multiset: two equal passes on disk stay two
                else:
                    rec.passes.append(stats)
                    rec.stored.append(obj)
        self.meta = {**other.meta, **self.meta}

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "Records":
        path = Path(path)
        try:
            obj = json.loads(path.read_text())
        except FileNotFoundError:
            raise TableError(f"no records file: {path} (make one with 'hwnas measure')") from None
        except IsADirectoryError:
            raise TableError(f"{path} is a directory, not a records file") from None
        except OSError as e:
            raise TableError(f"cannot read {path}: {(e.strerror or str(e)).lower()}") from None
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
            for s in r.passes:
                if not math.isfinite(s.median_ms) or s.median_ms <= 0:
                    raise TableError(f"{path} has a NaN, zero or negative latency "
                                     f"({s.median_ms}); refusing to use it")
        return cls(obj["device"], meta, recs)

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


def _canon(pass_obj) -> str:
    return json.dumps(pass_obj, sort_keys=True)


def _record(r: dict) -> Record:
    """One record from its JSON form; raises KeyError/TypeError/ValueError when malformed."""
    arch, passes = r["arch"], r["passes"]
    if not isinstance(arch, dict) or not isinstance(arch.get("space"), str):
        raise ValueError(f"an arch is a JSON object with a 'space' name, got {arch!r:.80}")
    if not isinstance(passes, list) or not passes:
        raise ValueError(f"a record needs a non-empty list of passes, got {passes!r:.80}")
    # a pass is its Stats as a list, or (written by a newer hwnas) an object holding them
    # under "stats" beside fields this version keeps without reading
    stats = [Stats.from_list(p["stats"] if isinstance(p, dict) else p) for p in passes]
    return Record(arch, stats, list(passes))
