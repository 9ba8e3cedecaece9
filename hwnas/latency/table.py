"""LatencyTable: op key -> Stats, plus the metadata needed to reproduce every number.

On disk it is a pickle of plain containers (schema-versioned), written atomically and read back
with the restricted unpickler, so a table from anywhere can be loaded without running code.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from hwnas.errors import MissingKeysError, TableError
from hwnas.latency.energy import Energy
from hwnas.latency.safeio import MAX_TABLE_BYTES, backup, dump_pickle, safe_load
from hwnas.latency.stats import MAX_MS, RatioStats, Stats, check_ms
from hwnas.locks import folder_lock

log = logging.getLogger(__name__)
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
    # key -> energy per call, measured beside the latency (GPUs with NVML). Optional: a key
    # without a measured energy is absent, never 0. Old tables load with this empty.
    energy: dict[str, Energy] = field(default_factory=dict)
    # The drift-free protocol: key -> the op's per-call times over the reference network's
    # (unitless), and key -> the Stats as timed. For such keys ``entries`` holds
    # ratio x ``reference_ms``: every entry at one fixed machine speed, however the speed
    # drifted while the table was filled. Keys measured without a reference are absent.
    ratios: dict[str, RatioStats] = field(default_factory=dict)
    timed: dict[str, Stats] = field(default_factory=dict)

    @property
    def device(self) -> str:
        return self.meta.get("device", "?")

    @property
    def batch(self) -> int:
        """Images per timed call: every latency and energy in the table is per batch."""
        return int(self.meta.get("batch", 1))

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

    def lookup_per_image(self, keys: Iterable[str]) -> np.ndarray:
        """Medians of ``keys`` in ms per image (per batch / batch)."""
        return self.lookup(keys) / self.batch

    def lookup_energy(self, keys: Iterable[str]) -> np.ndarray:
        """Energy of ``keys`` in mJ per batch. Raises MissingKeysError for keys without one."""
        keys = list(keys)
        missing = [k for k in keys if k not in self.energy]
        if missing:
            raise MissingKeysError(missing, f"latency table of {self.device}", what="energy")
        return np.array([self.energy[k].mj_per_call for k in keys], dtype=np.float64)

    # --- the reference (drift-free protocol) ----------------------------------------------
    @property
    def reference(self) -> dict | None:
        """``{"key", "ms", "observations_ms"}``, or None for a table timed without one."""
        return self.meta.get("reference")

    @property
    def reference_ms(self) -> float | None:
        """The reference network's median over every run that filled this table: the one
        machine speed at which its entries are expressed."""
        ref = self.reference
        return float(ref["ms"]) if ref else None

    def _observe(self, reference_key: str, reference_ms: float) -> None:
        ref = self.meta.setdefault("reference", {"key": reference_key, "ms": reference_ms,
                                                 "observations_ms": []})
        if ref.get("key") != reference_key:
            raise TableError(f"this table's ratios are to reference {ref.get('key')!r}, not "
                             f"{reference_key!r}; profile a fresh table")
        ref["observations_ms"].append(float(reference_ms))

    def sync_reference(self) -> None:
        """Recompute the reference ms (the median of all observations) and re-express every
        drift-free entry at it. Called before every save."""
        ref = self.reference
        if not ref or not ref.get("observations_ms"):
            return
        ms = float(np.median(ref["observations_ms"]))
        ref["ms"] = ms
        obs = np.asarray(ref["observations_ms"])
        ref["drift"] = {"min": round(float(obs.min() / ms - 1), 4),
                        "max": round(float(obs.max() / ms - 1), 4),
                        "p10": round(float(np.percentile(obs, 10) / ms - 1), 4),
                        "p90": round(float(np.percentile(obs, 90) / ms - 1), 4)}
        for k, r in self.ratios.items():
            self.entries[k] = r.to_ms(ms)

    def put(self, key: str, stats: Stats, energy: Energy | None = None, flag: str = "",
            ratio: RatioStats | None = None, reference: tuple[str, float] | None = None) -> None:
        """Store a fresh measurement; it replaces the old one's energy and flag too.

        With ``ratio`` and ``reference`` (its key and its ms around this item), the entry is
        kept drift-free: as the ratio, expressed in ms at the table's reference speed."""
        if ratio is not None and reference is not None:
            self._observe(*reference)
            self.ratios[key] = ratio
            self.timed[key] = stats
            stats = ratio.to_ms(self.reference_ms)
        else:
            self.ratios.pop(key, None)
            self.timed.pop(key, None)
        self.entries[key] = stats
        if energy is None:
            self.energy.pop(key, None)
        else:
            self.energy[key] = energy
        if flag:
            self.flags[key] = flag
        else:
            self.flags.pop(key, None)

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
            # an optional field: readers that predate it ignore it, so the schema stays 1
            "energy": {k: e.to_list() for k, e in self.energy.items()},
            # optional too: tables timed without the reference (imported ones) have none
            "ratios": {k: r.to_list() for k, r in self.ratios.items()},
            "timed": {k: s.to_list() for k, s in self.timed.items()},
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
            meta = dict(obj["meta"])
            flags = {str(k): str(v) for k, v in dict(obj.get("flags", {})).items()}
            energy = {str(k): Energy.from_list(v) for k, v in obj.get("energy", {}).items()}
            ratios = {str(k): RatioStats.from_list(v) for k, v in obj.get("ratios", {}).items()}
            timed = {str(k): Stats.from_list(v) for k, v in obj.get("timed", {}).items()}
            ref = meta.get("reference")
            if ref is not None and not (isinstance(ref, dict) and math.isfinite(
                    float(ref["ms"])) and float(ref["ms"]) > 0):
                raise ValueError(f"reference ms {ref!r} is not a positive number")
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise TableError(f"{source} is corrupt ({type(e).__name__}: {e})") from None
        _check_meta(meta, source)
        bad = [k for k, s in entries.items() if not math.isfinite(s.median_ms)]
        if bad:
            raise TableError(f"{source} has a non-finite latency ({entries[bad[0]].median_ms}) "
                             f"for {len(bad)} key(s), e.g. {bad[0]}")
        # a table gives a latency to every op it prices: 0 or less is a broken measurement,
        # unless the source itself gave it and it is flagged as such (TF-NAS's interpolation)
        bad = [k for k, s in entries.items() if s.median_ms <= 0 and k not in flags]
        if bad:
            raise TableError(f"{source} has a zero or negative latency "
                             f"({entries[bad[0]].median_ms} ms) for {len(bad)} key(s) not "
                             f"flagged by their source, e.g. {bad[0]}; refusing to use it")
        _check_bounds(entries, flags, ref, source)
        stray = sorted(set(energy) - set(entries))
        if stray:
            raise TableError(f"{source} has energy without latency for {len(stray)} key(s), "
                             f"e.g. {stray[0]}")
        stray = sorted(set(ratios) - set(entries))
        if stray or (ratios and ref is None):
            raise TableError(f"{source} has drift-free ratios without their entries or "
                             f"reference (e.g. {stray[:1] or sorted(ratios)[:1]})")
        return cls(meta, entries, flags, energy, ratios, timed)

    def save(self, path: str | Path) -> None:
        """Write the table as it is (replacing the file), under its folder's lock."""
        self.sync_reference()
        with folder_lock(Path(path).parent):
            dump_pickle(path, self.to_obj())

    def save_merged(self, path: str | Path, replace: bool = False) -> None:
        """Write the table, keeping what another process saved at ``path`` since it was read.

        Entries on disk that this table lacks (same device and protocol) are added to it, with
        their drift-free ratios, and the reference timings of both are pooled; ours win where
        both have a key. A table on disk that cannot be merged (another protocol or device,
        unreadable) or, with ``replace`` (a fresh start), any table on disk, is moved aside as
        a timestamped backup: a measured table is never simply overwritten.
        """
        path = Path(path)
        with folder_lock(path.parent):
            if path.is_file():
                why = "replaced by a fresh profile"
                try:
                    disk = None if replace else LatencyTable.load(path)
                except TableError as e:
                    disk, why = None, f"unreadable ({e})"
                same = disk is not None and all(
                    disk.meta.get(k) == self.meta.get(k) for k in ("device", "protocol"))
                if same:
                    self._merge_from(disk)
                else:
                    if disk is not None:
                        why = "measured with another protocol or for another device"
                    log.warning("kept the table at %s as %s (%s)", path, backup(path), why)
            self.sync_reference()
            dump_pickle(path, self.to_obj())

    def _merge_from(self, disk: "LatencyTable") -> None:
        for k in disk.entries.keys() - self.entries.keys():
            self.entries[k] = disk.entries[k]
            for mine, theirs in ((self.flags, disk.flags), (self.energy, disk.energy),
                                 (self.ratios, disk.ratios), (self.timed, disk.timed)):
                if k in theirs:
                    mine[k] = theirs[k]
        theirs = disk.reference
        if theirs and theirs.get("observations_ms"):
            ours = self.meta.setdefault("reference", dict(theirs, observations_ms=[]))
            # pooled as a multiset: the timings both read from the file count once
            have = list(ours.get("observations_ms", []))
            extra = list(have)
            for ms in theirs["observations_ms"]:
                if ms in extra:
                    extra.remove(ms)
                else:
                    have.append(ms)
            ours["observations_ms"] = have

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "LatencyTable":
        """Read a table; with ``device``, refuse one whose meta names another device."""
        table = cls.from_obj(safe_load(path, cap=MAX_TABLE_BYTES, what="latency table"),
                             str(path))
        owner = table.meta.get("device")
        if device is not None and owner is not None and owner != device:
            raise TableError(f"{path} holds the latency table of {owner}, not of {device}; "
                             f"move it back, or re-import or re-profile {device}")
        return table


def _check_bounds(entries: dict, flags: dict, ref, source: str) -> None:
    """Every latency within the physical bounds (stats.MIN_MS, MAX_MS), naming the first
    outside them; a source's own flagged value at or below 0 only not absurdly far below."""
    for k, s in entries.items():
        ms = s.median_ms
        if ms > 0 or k not in flags:
            check_ms(ms, f"{source}: entry {k!r}")
        elif -ms > MAX_MS:
            raise TableError(f"{source}: entry {k!r} has a latency of {ms!r} ms, more than an "
                             f"hour below zero; refusing to use it")
    if ref is not None:
        check_ms(float(ref["ms"]), f"{source}: the reference network")


def _check_meta(meta: dict, source: str) -> None:
    """The meta fields that enter arithmetic must be what they claim to be."""
    ovh = meta.get("call_overhead_ms", 0.0)
    if isinstance(ovh, bool) or not isinstance(ovh, (int, float)) or not (
            math.isfinite(ovh) and ovh >= 0):
        raise TableError(f"{source} is corrupt: meta call_overhead_ms is {ovh!r}, not a "
                         f"finite number of ms >= 0")
    batch = meta.get("batch", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise TableError(f"{source} is corrupt: meta batch is {batch!r}, not a positive integer")
    if not isinstance(meta.get("device", ""), str):
        raise TableError(f"{source} is corrupt: meta device is {meta['device']!r}, not a name")
