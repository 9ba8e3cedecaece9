"""Import latency tables that others measured, keeping their numbers exactly.

* nn-Meter's hybrid-ViT LUTs: flat JSON {block key: ms}; the keys are already hwnas's keys.
* TF-NAS's LUTs: a pickle {block: {mid_channels: ms}} plus 'base'. Flattened to
  ``{block}_mid{M}``. Widths were measured every 8 channels and linearly interpolated, so some
  small widths are negative: they are kept as given and listed in ``table.flags``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import numbers
from collections import OrderedDict
from pathlib import Path

from hwnas import __version__
from hwnas.device_configs import DeviceConfig, device_names
from hwnas.errors import TableError
from hwnas.latency.safeio import safe_load
from hwnas.latency.stats import Stats
from hwnas.latency.table import LatencyTable

TFNAS_ALLOWED = frozenset({("collections", "OrderedDict")})


def _base_meta(cfg: DeviceConfig, fmt: str, path: Path) -> dict:
    return {
        "device": cfg.name, "source_format": fmt, "source_file": path.name,
        "source": cfg.source, "runtime": "external", "threads": cfg.threads,
        "batch": cfg.batch, "precision": cfg.precision, "warmup": cfg.warmup, "runs": cfg.runs,
        "imported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "hwnas_version": __version__, "call_overhead_ms": 0.0, "latency_unit": "ms per batch",
    }


def _check_name_matches(path: Path, device: str) -> None:
    """Catch importing pixel4's file as pixel6: the nn-Meter files are named by device."""
    stem = path.name.lower()
    for other in device_names():
        if other != device and stem.startswith(other + "_"):
            raise TableError(f"{path.name} looks like the table of {other}, not {device}")


def _number(key: str, value, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TableError(f"{source}: entry {key!r} is not a finite number ({value!r})")
    return float(value)


def import_nn_meter(path: str | Path, cfg: DeviceConfig) -> LatencyTable:
    path = Path(path)
    _check_name_matches(path, cfg.name)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise TableError(f"no such file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TableError(f"{path} is not valid JSON (corrupt or truncated?): {e}") from None
    if not isinstance(raw, dict) or not raw:
        raise TableError(f"{path}: an nn-Meter LUT is a non-empty JSON object of key -> ms")
    meta = _base_meta(cfg, "nn-meter", path)
    meta["runtime"] = "tflite benchmark_model (nn-Meter)"
    entries = {str(k): Stats.single(_number(k, v, str(path))) for k, v in raw.items()}
    flags = {k: "negative latency in source" for k, s in entries.items() if s.median_ms < 0}
    return LatencyTable(meta, entries, flags)


def tfnas_key(block: str, mid: int) -> str:
    return f"{block}_mid{mid}"


def import_tf_nas(path: str | Path, cfg: DeviceConfig) -> LatencyTable:
    path = Path(path)
    raw = safe_load(path, allowed=TFNAS_ALLOWED)
    if not isinstance(raw, (dict, OrderedDict)) or "base" not in raw:
        raise TableError(f"{path}: a TF-NAS LUT is a dict with 'base' and MBInvertedResBlock keys")
    meta = _base_meta(cfg, "tf-nas", path)
    meta["runtime"] = "pytorch 1.1 (TF-NAS)"
    meta["statistic"] = "mean of runs (TF-NAS reports means, stored as median and mean)"
    entries, flags = {}, {}
    for block, value in raw.items():
        if block == "base":
            entries["base"] = Stats.single(_number(block, value, str(path)), cfg.runs)
            continue
        if not isinstance(value, dict):
            raise TableError(f"{path}: entry {block!r} should map mid channels to ms")
        for mid, ms in value.items():
            key = tfnas_key(block, int(mid))
            entries[key] = Stats.single(_number(key, ms, str(path)), cfg.runs)
            if ms < 0:
                flags[key] = "negative: TF-NAS interpolated between widths measured every 8"
    return LatencyTable(meta, entries, flags)


IMPORTERS = {"nn-meter": import_nn_meter, "tf-nas": import_tf_nas}
