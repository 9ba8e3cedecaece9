"""LatencyTable: op key -> Stats, plus the metadata needed to reproduce every number.

On disk it is a pickle of plain containers (schema-versioned), written atomically and read back
with the restricted unpickler, so a table from anywhere can be loaded without running code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from hwnas.errors import MissingKeysError, TableError
from hwnas.latency.safeio import dump_pickle, safe_load
from hwnas.latency.stats import Stats

SCHEMA_VERSION = 1
FORMAT_TAG = "hwnas-latency-table"


@dataclass
class LatencyTable:
    """Mutable while a profile fills it; every write to disk is atomic."""

    meta: dict
    entries: dict[str, Stats] = field(default_factory=dict)
    # key -> reason, for numbers kept as the source gave them but not to be trusted blindly
    # (e.g. TF-NAS's negative interpolated entries)
    flags: dict[str, str] = field(default_factory=dict)

    @property
    def device(self) -> str:
        return self.meta.get("device", "?")

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def missing(self, keys: Iterable[str]) -> list[str]:
        return [k for k in keys if k not in self.entries]

    def lookup(self, keys: Iterable[str]) -> np.ndarray:
        """Medians of ``keys`` in ms. Raises MissingKeysError listing every absent key."""
        keys = list(keys)
        missing = self.missing(keys)
        if missing:
            raise MissingKeysError(missing, f"latency table of {self.device}")
        return np.array([self.entries[k].median_ms for k in keys], dtype=np.float64)

    def medians(self) -> dict[str, float]:
        return {k: s.median_ms for k, s in self.entries.items()}

    # --- persistence -------------------------------------------------------------------------
    def to_obj(self) -> dict:
        return {
            "format": FORMAT_TAG,
            "schema": SCHEMA_VERSION,
            "meta": self.meta,
            "entries": {k: s.to_list() for k, s in self.entries.items()},
            "flags": dict(self.flags),
        }

    @classmethod
    def from_obj(cls, obj, source: str = "table") -> "LatencyTable":
        if not isinstance(obj, dict) or obj.get("format") != FORMAT_TAG:
            raise TableError(f"{source} is not an hwnas latency table (import foreign tables with "
                             f"'hwnas import')")
        if obj.get("schema") != SCHEMA_VERSION:
            raise TableError(f"{source} has table schema {obj.get('schema')!r}; this hwnas reads "
                             f"schema {SCHEMA_VERSION}")
        try:
            entries = {str(k): Stats.from_list(v) for k, v in obj["entries"].items()}
            meta, flags = dict(obj["meta"]), dict(obj.get("flags", {}))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise TableError(f"{source} is corrupt ({type(e).__name__}: {e})") from None
        bad = [k for k, s in entries.items() if math.isnan(s.median_ms)]
        if bad:
            raise TableError(f"{source} has NaN latency for {len(bad)} key(s), e.g. {bad[0]}")
        return cls(meta, entries, flags)

    def save(self, path: str | Path) -> None:
        dump_pickle(path, self.to_obj())

    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        return cls.from_obj(safe_load(path), str(path))
