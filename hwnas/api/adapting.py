"""A device from a handful of measurements: records measured elsewhere come in (HELP's files,
a lab's CSV), a few-shot predictor is fitted on a device's few records together with what
other devices' records know (``fit --kind fewshot``), and ``adapt`` measures the few networks
itself on a device hwnas can reach. Also batch prediction (``predict --archs``)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hwnas.arch_key import arch_key
from hwnas.errors import DeviceError, HwnasError, PredictorError, TableError
from hwnas.home import check_folder, device_paths
from hwnas.latency.records import Records

from hwnas.api.device import Context, context, load_records, session

log = logging.getLogger(__name__)
RECORD_FORMATS = ("help",)
ARCH_LIST_MAX_BYTES = 256 * 1024 * 1024  # 15,625 NAS-Bench-201 strings are ~1.6 MB


# --- records measured elsewhere --------------------------------------------------------------
@dataclass(frozen=True)
class RecordsImport:
    device: str
    space: str
    networks: int
    path: Path
    device_file: str  # the yaml written for a device hwnas did not know ("" if it existed)
    backup: str  # where the replaced records went ("" if none)
    resolution_ms: float | None  # the source's value resolution (phones: whole ms)


def _write_records(recs: Records, device: str, space: str, home: Path | None, force: bool,
                   source: str, description: str) -> RecordsImport:
    """Make ``device`` a device if it is none yet (an imported one, described by its source),
    then write its records; existing records are replaced only with ``force``, kept aside."""
    from hwnas.device_configs import device_names, load_device
    from hwnas.devices.user import ensure_imported_device
    from hwnas.latency.safeio import atomic_write_text, backup
    from hwnas.locks import folder_lock

    known = device in device_names(home)
    cfg = load_device(device, home) if known else None
    paths = (device_paths(device, home, cfg.batch, cfg.precision) if cfg is not None
             else device_paths(device, home))
    check_folder(paths.root, write=True)
    if paths.records.exists() and not force:  # said before anything is written
        raise TableError(f"{device} already has records ({paths.records}); pass --force to "
                         f"replace them (the old file is kept as a backup)")
    made = "" if known else ensure_imported_device(device, source, description, home)
    paths.root.mkdir(parents=True, exist_ok=True)
    kept = ""
    with folder_lock(paths.root):
        if paths.records.exists():
            if not force:
                raise TableError(f"{device} already has records ({paths.records}); pass "
                                 f"--force to replace them")
            kept = str(backup(paths.records))
        recs.meta["device"] = device
        atomic_write_text(paths.records, json.dumps(recs.to_obj(), indent=1))
    return RecordsImport(device, space, len(recs), paths.records, made, kept,
                         recs.meta.get("resolution_ms"))


def import_records(fmt: str, path: str | Path, device: str, home: Path | None = None,
                   force: bool = False, index: str | Path | None = None) -> RecordsImport:
    """Whole networks another project measured (HELP's ``<space>/latency/<device>.pt``) as
    ``device``'s records. The file is checked whole before anything is written."""
    from hwnas.latency.help import load_help

    if fmt not in RECORD_FORMATS:
        raise HwnasError(f"unknown records format {fmt!r}; known: {', '.join(RECORD_FORMATS)}")
    from hwnas.device_configs import device_names, load_device
    from hwnas.devices import kind_of

    device_paths(device, home)  # a bad name: one line, before the file is read
    if device in device_names(home):
        cfg = load_device(device, home)
        if kind_of(cfg).live:  # HELP measured its own devices, never this one
            raise TableError(f"{device} is a {cfg.kind} device hwnas measures; HELP's numbers "
                             f"were measured on other hardware: import them as a device of "
                             f"their own (--device NAME, e.g. the file's name)")
    space, pairs, meta = load_help(path, index)
    recs = Records.from_pairs(device, pairs, meta)
    unit = " (whole ms)" if meta.get("resolution_ms") else ""
    return _write_records(recs, device, space, home, force, meta["source"],
                          f"{device}: {len(recs)} {space} networks measured end to end by "
                          f"others{unit}; {meta['source']}")


def import_records_csv(path: str | Path, device: str, space: str, home: Path | None = None,
                       force: bool = False) -> RecordsImport:
    """A CSV of measurements taken anywhere (columns arch, latency_ms; std_ms, runs optional)."""
    from hwnas.latency.help import records_from_csv
    from hwnas.spaces import get_space

    device_paths(device, home)
    sp = get_space(space)
    recs = records_from_csv(path, sp, device)
    recs.meta.setdefault("source", f"CSV {Path(path).name}")
    recs.meta.setdefault("source_format", "csv")
    return _write_records(recs, device, sp.name, home, force, f"CSV {Path(path).name}",
                          f"{device}: {len(recs)} {sp.name} networks from "
                          f"{Path(path).name}")


# --- few-shot ---------------------------------------------------------------------------------
def proxy_records(ctx: Context, names: Sequence[str] | None = None) -> dict[str, list]:
    """Other devices' records of ``ctx.space`` networks: name -> [(arch, ms)]. ``names``: those
    devices only (each must have records in the space); default every device that has."""
    from hwnas.device_configs import device_names, load_device
    from hwnas.predictors.fitting import load_dataset

    home = ctx.home
    wanted = list(dict.fromkeys(names)) if names else [
        n for n in device_names(home) if n != ctx.cfg.name]
    out = {}
    for name in wanted:
        if name == ctx.cfg.name:
            raise PredictorError(f"{name} is the device being fitted; a proxy is another device")
        cfg = load_device(name, home)
        path = device_paths(name, home, cfg.batch, cfg.precision).records
        if not path.exists():
            if names:
                raise PredictorError(f"proxy {name} has no records ({path})")
            continue
        data = load_dataset(ctx.space, Records.load(path, name))
        if len(data.archs):
            out[name] = list(zip(data.archs, data.pooled_ms))
        elif names:
            raise PredictorError(f"proxy {name} has no records of {ctx.space.name} networks")
    if not out:
        raise PredictorError(f"no other device has records of {ctx.space.name} networks to "
                             f"learn from; import some ('hwnas import help FILE --device NAME' "
                             f"or 'hwnas records import CSV ...')")
    return out


def _any_table(ctx: Context):
    """The device's own table when it covers the space (one more input), else None."""
    from hwnas.latency.table import LatencyTable

    if not ctx.paths.table.exists():
        return None
    try:
        table = LatencyTable.load(ctx.paths.table, ctx.cfg.name)
    except TableError:
        return None
    keys = {op.key for r in ctx.space.resolutions for op in ctx.space.enumerate_ops(r)}
    return None if table.missing(keys) else table


def fit_fewshot(ctx: Context, proxies: Sequence[str] | None = None,
                records_path: str | Path | None = None, seed: int = 0):
    """Fit and save the device's few-shot predictor; (predictor, report)."""
    from hwnas.predictors.fitting import fit_and_save, load_dataset

    check_folder(ctx.predictor_path("fewshot").parent, write=True)
    path = Path(records_path or ctx.paths.records)
    if not path.exists():
        raise PredictorError(f"{ctx.cfg.name} has no records ({path}); measure some networks "
                             f"('hwnas adapt --device {ctx.cfg.name} --space {ctx.space.name}') "
                             f"or import them ('hwnas records import')")
    data = load_dataset(ctx.space, load_records(ctx, path))
    if len(data.archs) < 5:
        raise PredictorError(f"a few-shot fit needs at least 5 measured {ctx.space.name} "
                             f"networks of {ctx.cfg.name}, it has {len(data.archs)}; measure "
                             f"more ('hwnas adapt' or 'hwnas measure')")
    bank = proxy_records(ctx, proxies)
    pred, _ = fit_and_save(ctx.predictor_path("fewshot"), "fewshot", ctx.cfg.name, ctx.space,
                           _any_table(ctx), data, None, 0.0, seed, proxies=bank)
    return pred, pred.report()


@dataclass(frozen=True)
class Adaptation:
    device: str
    space: str
    measured: list  # [(arch, ms)] the networks this run measured
    report: object  # FewShotReport
    predictor_path: Path
    profiler_sessions: int


def adapt(device: str, space: str, samples: int = 10, seed: int = 0,
          proxies: Sequence[str] | None = None, home: Path | None = None,
          progress: bool = True, **overrides) -> Adaptation:
    """Measure ``samples`` networks of ``space`` on a device hwnas can reach, chosen to spread
    over what the proxies know, then fit and save the few-shot predictor."""
    from hwnas.api.measuring import measure
    from hwnas.devices import kind_of
    from hwnas.predictors.fewshot import choose_networks

    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 5:
        raise HwnasError(f"--samples must be an integer >= 5 (the few-shot fit needs 5), got "
                         f"{samples!r}")
    ctx = context(device, space, home=home, **overrides)
    kind = kind_of(ctx.cfg)
    if not kind.live or not kind.capabilities(ctx.cfg).models:
        raise DeviceError(f"adapt measures networks on the device; {device} is "
                          f"{kind.description}. Import its measurements ('hwnas records "
                          f"import') and fit with 'hwnas fit --kind fewshot'")
    bank = proxy_records(ctx, proxies)
    measured_keys = {arch_key(r.arch)
                     for r in load_records(ctx, missing_ok=True).records}
    picks = choose_networks(ctx.space, bank, samples, seed, exclude=measured_keys)
    with session(ctx) as sctx:
        recs = measure(sctx, archs=picks, passes=1, seed=seed, progress=progress)
        opened = sctx.session.opened
    got = {arch_key(r.arch): r.pooled_ms for r in recs.records}
    measured = [(a, got[arch_key(a)]) for a in picks]
    _, report = fit_fewshot(ctx, proxies, seed=seed)
    return Adaptation(device, ctx.space.name, measured, report,
                      ctx.predictor_path("fewshot"), opened)


# --- batch prediction -------------------------------------------------------------------------
def arch_cells(text: str, path) -> list[tuple[int, str]]:
    """(row number, the row's arch text) of a CSV with an ``arch`` column or of JSON lines, in
    file order; HwnasError (one line naming ``path``) for a file that is neither."""
    import csv
    import io

    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    cells: list[tuple[int, str]] = []
    if first.lstrip().startswith(("{", "[", '"')):  # JSON lines
        for i, ln in enumerate(text.splitlines(), 1):
            if ln.strip():
                cells.append((i, ln.strip()))
    else:
        rows = list(csv.reader(io.StringIO(text)))
        if not rows or "arch" not in [c.strip() for c in rows[0]]:
            raise HwnasError(f"{path}: a CSV needs a column 'arch' (or give JSON lines)")
        col = [c.strip() for c in rows[0]].index("arch")
        for i, row in enumerate(rows[1:], 2):
            if not any(c.strip() for c in row):
                continue
            if len(row) <= col:
                raise HwnasError(f"{path}: row {i} has no arch")
            cells.append((i, row[col]))
    if not cells:
        raise HwnasError(f"{path} holds no architectures")
    return cells


def read_arch_list(path: str | Path, space: str | None) -> tuple[object, list, list[str]]:
    """(space, archs, the rows' own text) from a CSV with an ``arch`` column or JSON lines,
    in file order. A bad row is one line naming its number."""
    from hwnas.latency.help import _arch_cell
    from hwnas.latency.safeio import read_capped
    from hwnas.spaces import get_space

    text = read_capped(path, ARCH_LIST_MAX_BYTES).decode("utf-8-sig", errors="strict")
    cells = arch_cells(text, path)
    from hwnas.latency.safeio import JSONLimitError

    objs = []
    for i, cell in cells:
        try:
            objs.append(_arch_cell(cell))
        except RecursionError:
            raise HwnasError(f"{path}: row {i} is nested too deeply to be an arch") from None
        except JSONLimitError as e:  # too deep, or an integer of thousands of digits
            raise HwnasError(f"{path}: row {i}: {e}") from None
    name = space
    if name is None:
        from hwnas.arch import native_space

        first_obj = objs[0]
        name = (first_obj.get("space") if isinstance(first_obj, dict) else
                native_space(first_obj)) or "elasticvit"
        from hwnas.spaces.registry import space_named_by_file

        sp = space_named_by_file(name, str(path))  # data never imports a module:attr
    else:
        sp = get_space(name)
    archs = []
    for (i, cell), obj in zip(cells, objs):
        try:
            archs.append(sp.arch_from_obj(obj))
        except HwnasError as e:
            raise HwnasError(f"{path}: row {i}: {e}") from None
    return sp, archs, [c for _, c in cells]


def predict_batch(device: str, archs_path: str | Path, out: str | Path, space: str | None = None,
                  kind: str = "auto", home: Path | None = None):
    """Predict every architecture of a file; write ``arch,predicted_ms,predictor`` in its
    order. Returns (the Chosen predictor, the predictions, rows). ``hwnas.api.batch`` does
    the work (and times it, for ``hwnas predict --archs``)."""
    from hwnas.api.batch import predict_file

    r = predict_file(device, archs_path, out, space, kind, home)
    return r.chosen, r.ms, r.n
