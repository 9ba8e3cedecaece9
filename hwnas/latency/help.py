"""Whole-network latencies others measured, as end-to-end records: HELP's files and CSVs.

HELP (HayeonLee/HELP, NeurIPS 2021) ships, per search space, one ``torch.save``d list of
latencies per device (``<space>/latency/<device>.pt``) and an index beside it that says which
network each position is: NAS-Bench-201's ``str_arch2idx.pt`` (cell string -> position) or
FBNet's ``metainfo.pt`` (``{"arch": [{"arch_str": [22 block names], ...}, ...]}``). Every value
is one number someone else reported, so each network becomes a record with one pass of
``Stats.single`` (n = 0). The phones' values are whole milliseconds; the records' meta says so
(``resolution_ms: 1.0``), so a ±10% check can be read against it.

Everything is checked before anything is returned (a caller writes only what loaded whole):
the file is a regular file under a size cap, unpickles with ``weights_only=True`` (no code can
run), is a list of finite positive numbers, and matches its index in length and space.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import numbers
from pathlib import Path

from hwnas import __version__
from hwnas.errors import HwnasError, TableError
from hwnas.latency.records import Records
from hwnas.latency.stats import Stats, check_ms

MAX_BYTES = 64 * 1024 * 1024  # HELP's largest file is 1.5 MB; a bigger one is not theirs
HELP_PROJECT = "HayeonLee/HELP"
HELP_COMMIT = "45f70eb"  # the commit the shared copy came from (shared/data/README.md)
# HELP's folder names -> hwnas space names, and each space's index file
HELP_SPACES = {"nasbench201": "nb201", "fbnet": "fbnet"}
INDEX_FILES = {"nb201": "str_arch2idx.pt", "fbnet": "metainfo.pt"}


def read_capped(path: str | Path, cap: int = MAX_BYTES) -> bytes:
    """A regular file's bytes under ``cap`` (hwnas.latency.safeio.read_capped, which every
    reader shares; kept here by name for its callers)."""
    from hwnas.latency.safeio import read_capped as capped

    return capped(path, cap, "latency file")


def torch_load(path: str | Path):
    """``torch.load(weights_only=True)`` of a capped regular file; one TableError line when it
    is damaged, truncated or not a torch.save file at all."""
    return _torch_loads(read_capped(path), path)


def _torch_loads(data: bytes, path) -> object:
    import torch

    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - a foreign file fails in many ways (zip, pickle, EOF)
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
        raise TableError(f"{path} is damaged, truncated or not a torch.save file "
                         f"({type(e).__name__}{': ' + first if first else ''})") from None


# --- the index -------------------------------------------------------------------------------
def _index_space(obj) -> str | None:
    """Which space an index object is, by its shape (None: neither)."""
    if isinstance(obj, dict) and isinstance(obj.get("arch"), list):
        return "fbnet"
    if isinstance(obj, dict) and obj and all(isinstance(k, str) for k in list(obj)[:100]):
        return "nb201"
    return None


def _index_natives(obj, space: str, where: Path) -> list:
    """The native architecture form of each position, in order."""
    if space == "nb201":
        n = len(obj)
        natives = [None] * n
        for s, i in obj.items():
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
                raise TableError(f"{where}: entry {s!r:.80} has position {i!r:.20}; positions "
                                 f"are 0..{n - 1}")
            if natives[i] is not None:
                raise TableError(f"{where}: position {i} is given twice ({natives[i]!r:.80} and "
                                 f"{s!r:.80})")
            natives[i] = s
        return natives
    archs = obj["arch"]
    natives = []
    for i, a in enumerate(archs):
        names = a.get("arch_str") if isinstance(a, dict) else None
        if not isinstance(names, (list, tuple)):
            raise TableError(f"{where}: arch entry {i} has no 'arch_str' list of block names")
        natives.append(list(names))
    return natives


_INDEX_CACHE: dict = {}  # (path, mtime, size) -> (space, natives): 13 devices share one index


def load_index(path: str | Path, space: str | None = None) -> tuple[str, list]:
    """(space name, native form per position) from HELP's index file."""
    path = Path(path)
    try:
        st = path.stat()
        tag = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        tag = None
    if tag in _INDEX_CACHE:
        found, natives = _INDEX_CACHE[tag]
        if space is not None and found != space:
            raise TableError(f"{path} is an index of the {found} space, not of {space}")
        return found, list(natives)
    obj = torch_load(path)
    found = _index_space(obj)
    if found is None:
        raise TableError(f"{path} is not a HELP index (neither NAS-Bench-201's str_arch2idx "
                         f"nor FBNet's metainfo)")
    if space is not None and found != space:
        raise TableError(f"{path} is an index of the {found} space, not of {space}")
    natives = _index_natives(obj, found, path)
    if tag is not None:
        _INDEX_CACHE.clear()  # one index at a time: HELP's are 1.5 MB of strings
        _INDEX_CACHE[tag] = (found, natives)
    return found, list(natives)


def find_index(latency_file: Path, space: str | None) -> Path:
    """The index beside HELP's ``latency/`` folder (``<space>/latency/<device>.pt``)."""
    folder = latency_file.resolve().parent.parent
    spaces = [space] if space else list(INDEX_FILES)
    for sp in spaces:
        p = folder / INDEX_FILES[sp]
        if p.exists():
            return p
    names = " or ".join(INDEX_FILES[s] for s in spaces)
    raise TableError(f"no {names} beside {latency_file.parent} (HELP keeps the index in the "
                     f"folder above latency/); pass the index file")


# --- the latencies ---------------------------------------------------------------------------
def _latencies(obj, where: Path, natives: list) -> list[float]:
    out = []
    for i, v in enumerate(obj):
        name = f"entry {i}" + (f" ({_short(natives[i])})" if i < len(natives) else "")
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TableError(f"{where}: {name} is {v!r:.40}, not a number")
        f = float(v)
        if not math.isfinite(f) or f <= 0:
            raise TableError(f"{where}: {name} has a latency of {f!r} ms; a latency must be a "
                             f"finite positive number")
        out.append(check_ms(f, f"{where}: {name}"))
    return out


def _short(native) -> str:
    text = native if isinstance(native, str) else json.dumps(native)
    return text if len(text) <= 60 else text[:57] + "..."


def load_help(path: str | Path, index: str | Path | None = None, space: str | None = None
              ) -> tuple[str, list[tuple[dict, float]], dict]:
    """(space name, [(arch JSON, latency ms)], meta) from one of HELP's latency files.

    ``space`` is hwnas's name (nb201, fbnet), or HELP's folder name; None: the index says.
    ``index`` defaults to the one beside the ``latency/`` folder."""
    from hwnas.spaces import get_space

    path = Path(path)
    space = HELP_SPACES.get(space, space) if space else None
    if space is not None and space not in INDEX_FILES:
        raise TableError(f"HELP's files cover the spaces {', '.join(INDEX_FILES)}, not {space}")
    # the file itself first: a FIFO, /dev/zero or a symlink loop is named as what it is, not
    # as a file whose index is missing
    data = read_capped(path)
    if space is None:  # HELP's layout names the space: <space>/latency/<device>.pt
        space = HELP_SPACES.get(path.resolve().parent.parent.name)
    index_path = Path(index) if index is not None else find_index(path, space)
    space, natives = load_index(index_path, space)
    raw = _torch_loads(data, path)
    if hasattr(raw, "tolist") and not isinstance(raw, (list, tuple)):  # a tensor or array
        raw = raw.tolist()
    if not isinstance(raw, (list, tuple)):
        raise TableError(f"{path} holds a {type(raw).__name__}, not a list of latencies")
    if len(raw) != len(natives):
        raise TableError(f"{path} holds {len(raw)} latencies but its index {index_path.name} "
                         f"lists {len(natives)} networks; they are not one device's file and "
                         f"its index")
    values = _latencies(raw, path, natives)
    sp = get_space(space)
    pairs = []
    for i, (native, ms) in enumerate(zip(natives, values)):
        try:
            arch = sp.arch_from_obj(native)
        except HwnasError as e:
            raise TableError(f"{index_path}: entry {i} ({_short(native)}) is not an {space} "
                             f"architecture: {e}") from None
        pairs.append((arch.to_dict(), ms))
    whole = all(float(v).is_integer() for v in values)
    folder = path.resolve().parent.parent.name
    meta = {
        "source_format": "help", "source_file": path.name, "index_file": index_path.name,
        "source": f"{HELP_PROJECT} (commit {HELP_COMMIT}), data/{folder}/latency/{path.name}",
        "project": HELP_PROJECT, "commit": HELP_COMMIT, "space": space,
        "runtime": "external", "latency_unit": "ms per batch",
        "statistic": "one number per network, as HELP reports it (its runs are not given)",
        # phones in HELP's data are whole ms: a 9 ms network is 9 +- 0.5 ms
        "resolution_ms": 1.0 if whole else None,
        "imported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "hwnas_version": __version__,
    }
    return space, pairs, meta


def help_records(path: str | Path, device: str | None = None, index: str | Path | None = None,
                 space: str | None = None) -> Records:
    """HELP's latency file as end-to-end records of ``device`` (default: the file's stem)."""
    space, pairs, meta = load_help(path, index, space)
    device = device or Path(path).stem
    return Records.from_pairs(device, pairs, meta)


# --- CSV -------------------------------------------------------------------------------------
def _arch_cell(text: str):
    """What ``--arch`` accepts, as text: hwnas JSON, a native JSON form, or a native string."""
    from hwnas.latency.safeio import load_json

    text = text.strip()
    try:
        return load_json(text, "the arch cell")
    except json.JSONDecodeError:
        return text  # NAS-Bench-201's cell string, unquoted


def records_from_csv(path: str | Path, space, device: str) -> Records:
    """Records of ``device`` from a CSV with columns ``arch`` and ``latency_ms`` (``std_ms`` and
    ``runs`` optional). A network on several rows gets one pass per row. A bad row is one
    TableError line naming its row number (the header is row 1)."""
    from hwnas.spaces import get_space

    path = Path(path)
    sp = get_space(space) if isinstance(space, str) else space
    try:
        text = read_capped(path).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TableError(f"{path} is not UTF-8 text ({e})") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise TableError(f"{path} is not a readable CSV: {e}") from None
    if not rows:
        raise TableError(f"{path} is empty; it needs a header with arch,latency_ms")
    head = [h.strip() for h in rows[0]]
    missing = [c for c in ("arch", "latency_ms") if c not in head]
    if missing:
        raise TableError(f"{path}: the header lacks {', '.join(missing)} (it has "
                         f"{', '.join(head) or 'nothing'})")
    col = {h: i for i, h in enumerate(head)}
    pairs = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue  # a blank line
        if len(row) != len(head):
            raise TableError(f"{path}: row {n} has {len(row)} fields, the header {len(head)} "
                             f"(quote an arch that holds commas)")
        where = f"{path}: row {n}"
        try:
            arch = sp.arch_from_obj(_arch_cell(row[col["arch"]]))
        except HwnasError as e:
            raise TableError(f"{where}: not an {sp.name} architecture: {e}") from None
        ms = check_ms(_csv_number(row[col["latency_ms"]], "latency_ms", where, positive=True),
                      f"{where}: latency_ms")
        std = (_csv_number(row[col["std_ms"]], "std_ms", where, positive=False)
               if "std_ms" in col and row[col["std_ms"]].strip() else math.nan)
        runs = 0
        if "runs" in col and row[col["runs"]].strip():
            r = _csv_number(row[col["runs"]], "runs", where, positive=True)
            if not r.is_integer():
                raise TableError(f"{where}: runs is {r!r}; a count of runs is a whole number")
            runs = int(r)
        nan = math.nan
        pairs.append((arch.to_dict(), Stats(ms, ms, std, nan, nan, runs)))
    if not pairs:
        raise TableError(f"{path} has a header but no rows")
    meta = {"source_format": "csv", "source_file": path.name, "space": sp.name,
            "runtime": "external", "latency_unit": "ms per batch",
            "statistic": "as the CSV reports it (median or mean of its runs)",
            "imported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "hwnas_version": __version__}
    return Records.from_pairs(device, pairs, meta)


def _csv_number(text: str, name: str, where: str, positive: bool) -> float:
    try:
        v = float(text)
    except ValueError:
        raise TableError(f"{where}: {name} is {text.strip()!r:.40}, not a number") from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise TableError(f"{where}: {name} is {v!r}; it must be a finite "
                         f"{'positive' if positive else 'non-negative'} number")
    return v
