"""Import latency tables that others measured, keeping their numbers exactly.

* nn-Meter's hybrid-ViT LUTs: flat JSON {block key: ms}; the keys are already hwnas's keys.
* TF-NAS's LUTs: a pickle {block: {mid_channels: ms}} plus 'base'. Flattened to
  ``{block}_mid{M}``. Widths were measured every 8 channels and linearly interpolated, so some
  small widths are negative: they are kept as given and listed in ``table.flags``.

An import must fit its device: every key must be an op key of the format's space (a JSON of
anything else is refused, naming a key), and the device must be one the format measured (a
device whose config names the source project, or any phone for nn-Meter's TFLite tables), so
TF-NAS's GPU table cannot become pixel6's and nn-Meter's phone table cannot become local-cpu's.

The published tables hwnas supports are recognised by content, whatever the file is called:
``PUBLISHED`` holds the sha256 of each (nn-Meter's four phones, TF-NAS's CPU and GPU tables).
One of them imports only as the device that measured it (or a device whose config names that
same file as its source): pixel4's table copied to ``pixel6_lut_ln_v3.json`` is still pixel4's.
A file that is none of them (a table someone measured, an edited copy) imports when its keys
and latencies fit, with a warning that hwnas could not tell which hardware measured it; only
its name is then checked against the devices' own files.
Latencies must be finite and within 1 ns .. 1 hour (stats.MIN_MS, MAX_MS), except TF-NAS's own
flagged negatives (whose size is bounded too).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import numbers
from collections import OrderedDict
from pathlib import Path

from hwnas import __version__
from hwnas.device_configs import DeviceConfig, device_names, load_device
from hwnas.devices import kind_of
from hwnas.errors import HwnasError, TableError
from hwnas.latency.safeio import MAX_IMPORT_BYTES, load_json, read_capped, safe_loads
from hwnas.latency.stats import MAX_MS, Stats, check_ms
from hwnas.latency.table import LatencyTable

TFNAS_ALLOWED = frozenset({("collections", "OrderedDict")})
log = logging.getLogger(__name__)

NN_METER = "microsoft/nn-Meter dev/hybrid-transformer 9c31e19"
TF_NAS = "AberHu/TF-NAS 08b31a2"


class Published(tuple):
    """(format, device, source): one published table hwnas supports."""

    fmt = property(lambda self: self[0])
    device = property(lambda self: self[1])
    source = property(lambda self: self[2])


# sha256 of the exact published files (computed from ../shared/data, which holds them as their
# projects publish them; the data is never copied into this repository) -> what each one is.
PUBLISHED = {
    "d9453d5519e47aa0894c1a7d1240d45892ff797720c7fe63ab800820c9403d23":
        Published(("nn-meter", "pixel1", f"{NN_METER}, lut/pixel1_lut_ln_v3.json")),
    "1f8888a759717a452b5e082d6413ed1d32fc5669f009865e4959af7600cb00b2":
        Published(("nn-meter", "pixel4", f"{NN_METER}, lut/pixel4_lut_ln_v3.json")),
    "7c69968784a30e05d613e883e901424b68df099a6093a9d1729d0d5b9a702364":
        Published(("nn-meter", "pixel6", f"{NN_METER}, lut/pixel6_lut_ln_v3.json")),
    "eb0fdefd490d2c77567e6df7e2acf8fea79ca5d2343727c7865eb54cda8f050b":
        Published(("nn-meter", "xiaomi11", f"{NN_METER}, lut/xiaomi11_lut_ln_v3.json")),
    "dfb5363d71a8421a81499c9191431305968fb1d2e1467a6fdd41153d6153ca23":
        Published(("tf-nas", "xeon-gold-6130", f"{TF_NAS}, latency_pkl/latency_cpu.pkl")),
    "743b2d77331a7741eb5c4ff6b3728394e2145407c05bf69f0e0f614193ed2fd3":
        Published(("tf-nas", "titan-rtx", f"{TF_NAS}, latency_pkl/latency_gpu.pkl")),
}


def recognise(data: bytes, fmt: str, path: Path, cfg: DeviceConfig) -> Published | None:
    """Which published table ``data`` is (None: none hwnas knows). A known table of another
    format, or of another device than ``cfg`` (by name, or by the file its config names as
    its source), is refused in one line saying what it is, whatever the file is called."""
    known = PUBLISHED.get(hashlib.sha256(data).hexdigest())
    if known is None:
        return None
    if known.fmt != fmt:
        raise TableError(f"{path.name} is {known.device}'s {PROJECT[known.fmt]} table "
                         f"({known.source}), not {_a(PROJECT[fmt])} table; import it as "
                         f"'hwnas import {known.fmt} ... --device {known.device}'")
    if cfg.name != known.device and cfg.source != known.source:
        raise TableError(f"{path.name} is the table of {known.device} ({known.source}; "
                         f"recognised by its sha256, whatever its name), not of {cfg.name}; "
                         f"import it with --device {known.device}")
    return known


def _a(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def _content_meta(meta: dict, known: Published | None, data: bytes) -> None:
    """Say in the table what the file was found to be (``recognised_as``: the published
    table's source, or None for a file hwnas does not know)."""
    meta["source_sha256"] = hashlib.sha256(data).hexdigest()
    meta["recognised_as"] = known.source if known is not None else None


def warn_if_unrecognised(table: LatencyTable, path, device: str) -> None:
    """The warning an imported file hwnas could not recognise gets, once it is imported (a
    failed import says only why it failed)."""
    if table.meta.get("source_sha256") and table.meta.get("recognised_as") is None:
        log.warning("%s is not one of the published tables hwnas knows (by sha256); imported "
                    "as %s's because its keys and latencies fit, but which hardware measured "
                    "it could not be checked", path, device)


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


# Which project measured each format, and the op kinds of the space its keys belong to.
PROJECT = {"nn-meter": "nn-Meter", "tf-nas": "TF-NAS"}
SPACE_OF = {"nn-meter": "elasticvit", "tf-nas": "tfnas"}
KINDS = {"nn-meter": frozenset({"firstconv", "conv", "transds", "transattn", "transffn",
                                "mbpool"}),
         "tf-nas": frozenset({"base", "MBInvertedResBlock"})}


def check_device_fits(fmt: str, path: Path, cfg: DeviceConfig) -> None:
    """Refuse to import a table measured on other hardware than ``cfg`` describes."""
    project = PROJECT[fmt]
    if cfg.source:
        if project.lower() not in cfg.source.lower():
            raise TableError(f"{cfg.name}'s table comes from {cfg.source}; a {project} table "
                             f"was measured on other hardware")
    elif fmt not in kind_of(cfg).capabilities(cfg).table_formats:
        raise TableError(f"{cfg.name} is measured here with {cfg.kind}; a {project} table "
                         f"was measured on other hardware (import it for the device it "
                         f"describes, see 'hwnas devices')")


def check_name_fits(path: Path, cfg: DeviceConfig) -> None:
    """For a file not recognised by content: refuse one named as another device's own table
    (its name is all there is to go on)."""
    _check_name_matches(path, cfg.name)
    for other in device_names():  # a file that is, by name, another device's own table
        src = load_device(other).source if other != cfg.name else ""
        if src and src.rsplit("/", 1)[-1] == path.name and not cfg.source.endswith(path.name):
            raise TableError(f"{path.name} is named as the table of {other} ({src}), not of "
                             f"{cfg.name}")


def check_keys(keys, fmt: str, source: str) -> None:
    """Every key must name an op of the format's space (parse_key rebuilds it)."""
    from hwnas.ops import kind_of, parse_key

    bad = []
    for k in keys:
        try:
            if kind_of(k) not in KINDS[fmt]:
                raise HwnasError(k)
            parse_key(k)
        except (HwnasError, ValueError, TypeError):
            bad.append(k)
    if bad:
        raise TableError(f"{source}: {len(bad)} of {len(keys)} keys are not {PROJECT[fmt]} op "
                         f"keys of the {SPACE_OF[fmt]} space, e.g. {bad[0][:60]!r}; is it a "
                         f"{fmt} table?")


def _number(key: str, value, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TableError(f"{source}: entry {key!r} is not a finite number ({value!r:.40})")
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if not math.isfinite(v):
        raise TableError(f"{source}: entry {key!r} is not a finite number ({value!r:.40})")
    return v


def _positive(key: str, value, source: str) -> float:
    v = _number(key, value, source)
    if v <= 0:
        raise TableError(f"{source}: entry {key!r} has a latency of {v!r} ms; a latency must "
                         f"be positive")
    return check_ms(v, f"{source}: entry {key!r}")


def _tfnas_ms(key: str, value, source: str) -> float:
    """A TF-NAS width's ms: positive ones within the physical bounds; TF-NAS's own
    interpolated values at or below 0 are kept (and flagged by the caller), if not absurd."""
    v = _number(key, value, source)
    if v > 0:
        return check_ms(v, f"{source}: entry {key!r}")
    if -v > MAX_MS:  # interpolation between real widths cannot go an hour below zero
        raise TableError(f"{source}: entry {key!r} has a latency of {v!r} ms, more than an "
                         f"hour below zero; not an interpolated TF-NAS value")
    return v


def import_nn_meter(path: str | Path, cfg: DeviceConfig) -> LatencyTable:
    path = Path(path)
    check_device_fits("nn-meter", path, cfg)
    data = read_capped(path, MAX_IMPORT_BYTES, "nn-Meter table")
    known = recognise(data, "nn-meter", path, cfg)
    if known is None:
        check_name_fits(path, cfg)
    try:
        raw = load_json(data, str(path), MAX_IMPORT_BYTES)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TableError(f"{path} is not valid JSON (corrupt or truncated?): {e}") from None
    if not isinstance(raw, dict) or not raw:
        raise TableError(f"{path}: an nn-Meter LUT is a non-empty JSON object of key -> ms")
    meta = _base_meta(cfg, "nn-meter", path)
    meta["runtime"] = "tflite benchmark_model (nn-Meter)"
    # nn-Meter's tables hold measured medians only: nothing of theirs is <= 0
    entries = {str(k): Stats.single(_positive(k, v, str(path))) for k, v in raw.items()}
    check_keys(list(entries), "nn-meter", str(path))
    _content_meta(meta, known, data)
    return LatencyTable(meta, entries, {})


def tfnas_key(block: str, mid: int) -> str:
    return f"{block}_mid{mid}"


def import_tf_nas(path: str | Path, cfg: DeviceConfig) -> LatencyTable:
    path = Path(path)
    check_device_fits("tf-nas", path, cfg)
    data = read_capped(path, MAX_IMPORT_BYTES, "TF-NAS table")
    known = recognise(data, "tf-nas", path, cfg)
    if known is None:
        check_name_fits(path, cfg)
    raw = safe_loads(data, str(path), allowed=TFNAS_ALLOWED)
    if not isinstance(raw, (dict, OrderedDict)) or "base" not in raw:
        raise TableError(f"{path}: a TF-NAS LUT is a dict with 'base' and MBInvertedResBlock keys")
    meta = _base_meta(cfg, "tf-nas", path)
    meta["runtime"] = "pytorch 1.1 (TF-NAS)"
    meta["statistic"] = "mean of runs (TF-NAS reports means, stored as median and mean)"
    entries, flags = {}, {}
    for block, value in raw.items():
        if not isinstance(block, str):
            raise TableError(f"{path}: a block name is {block!r:.40}, not a string")
        if block == "base":
            entries["base"] = Stats.single(_positive(block, value, str(path)), cfg.runs)
            continue
        if not isinstance(value, dict):
            raise TableError(f"{path}: entry {block!r} should map mid channels to ms")
        for mid, ms in value.items():
            if isinstance(mid, bool) or not isinstance(mid, int) or mid < 1:
                raise TableError(f"{path}: entry {block!r} has a mid width {mid!r:.40}; widths "
                                 f"are positive integers")
            key = tfnas_key(block, mid)
            entries[key] = Stats.single(_tfnas_ms(key, ms, str(path)), cfg.runs)
            if entries[key].median_ms <= 0:  # TF-NAS's own: kept as given, and flagged
                flags[key] = "negative: TF-NAS interpolated between widths measured every 8"
    check_keys(list(entries), "tf-nas", str(path))
    _content_meta(meta, known, data)
    return LatencyTable(meta, entries, flags)


IMPORTERS = {"nn-meter": import_nn_meter, "tf-nas": import_tf_nas}
