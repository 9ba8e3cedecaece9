"""Batch prediction of a file of architectures (``hwnas predict --archs FILE --csv OUT``),
timed by phase.

The general path (``adapting.read_arch_list``, then the chosen predictor) builds an Arch object per row, validates it, walks
its ops to check the table covers them, and encodes it again for the LUT: ~25,000 rows/s. For
ElasticViT rows in hwnas's own JSON form priced by a LUT, this module parses each row straight
into ``space.encode``'s row layout, validates the whole batch with numpy, and prices it with
the compiled LUT (``fastlut``), whose NaN marks a key the table lacks. Anything else (another
space, a native row form, a bad row, a missing key, a fitted kernel or e2e predictor) goes the
general way, which says what is wrong with which row: the fast path never decides an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_FIELDS = {"space", "resolution", "channels", "depths", "conv_expand", "conv_kernel",
           "mlp_ratio", "v_scale"}


class _Slow(Exception):
    """This file (or row) is not for the fast path; the general path handles it."""


@dataclass
class BatchResult:
    chosen: object  # the Chosen predictor
    ms: np.ndarray
    n: int
    fast: bool  # priced by the compiled LUT on encoded rows
    seconds: dict = field(default_factory=dict)  # phase -> s: read, parse, setup, predict, write


def predict_file(device: str, archs_path: str | Path, out: str | Path,
                 space: str | None = None, kind: str = "auto",
                 home: Path | None = None) -> BatchResult:
    """Predict every architecture of a file and write ``arch,predicted_ms,predictor`` in its
    order, with each phase timed."""
    from hwnas.api.adapting import ARCH_LIST_MAX_BYTES
    from hwnas.latency.safeio import read_capped

    t = {"start": time.perf_counter()}
    text = read_capped(archs_path, ARCH_LIST_MAX_BYTES).decode("utf-8-sig", errors="strict")
    t["read"] = time.perf_counter()
    try:
        got = _fast(device, text, space, kind, home, t)
    except _Slow:
        got = None
    if got is None:
        return _general(device, archs_path, out, space, kind, home, t)
    chosen, ms, cells = got
    _write(out, cells, ms, chosen.kind)
    t["write"] = time.perf_counter()
    return BatchResult(chosen, ms, len(cells), True, _phases(t))


def _phases(t: dict) -> dict:
    names = [k for k in ("start", "read", "parse", "setup", "predict", "write") if k in t]
    return {b: t[b] - t[a] for a, b in zip(names, names[1:])}


def _general(device, archs_path, out, space, kind, home, t) -> BatchResult:
    """The general steps, timed: Arch objects, the chosen predictor's
    ``predict``. Its parse phase reads the file again (the fast path's read is not reused)."""
    from hwnas.api.adapting import read_arch_list
    from hwnas.api.device import context
    from hwnas.api.predicting import arch_context, predictor

    t.pop("read", None)  # the fast path's read, given up on, counts in the parse below
    sp, archs, texts = read_arch_list(archs_path, space)
    t["parse"] = time.perf_counter()
    ctx = arch_context(context(device, sp.name, home=home), archs)
    chosen = predictor(ctx, kind, archs=archs)
    t["setup"] = time.perf_counter()
    ms = chosen.predict(archs)
    t["predict"] = time.perf_counter()
    _write(out, texts, ms, chosen.kind)
    t["write"] = time.perf_counter()
    return BatchResult(chosen, np.asarray(ms), len(texts), False, _phases(t))


def _cells(text: str) -> list[str]:
    """The rows' arch texts, as read_arch_list reads them; any irregularity is left to it."""
    from hwnas.api.adapting import arch_cells
    from hwnas.errors import HwnasError

    try:
        return [cell for _, cell in arch_cells(text, "")]
    except HwnasError:
        raise _Slow from None


def _fast(device, text, space, kind, home, t):
    """(chosen, ms, cells) when the whole file takes the fast path, else None or _Slow."""
    import json

    from hwnas.spaces import get_space
    from hwnas.spaces.elasticvit.space import ElasticViTSpace

    if space not in (None, "elasticvit") or kind not in ("auto", "lut"):
        return None
    # JSON booleans pass as integers once in numpy; the general path refuses them per row
    if "true" in text or "false" in text:
        return None
    cells = _cells(text)
    if not cells:
        return None
    sp = get_space("elasticvit")
    if type(sp) is not ElasticViTSpace:
        return None
    try:
        objs = [json.loads(c) for c in cells]  # a row that is not JSON: the general path
    except (ValueError, RecursionError):
        return None
    X = encode_rows(sp, objs)
    t["parse"] = time.perf_counter()
    return _predict_encoded(device, sp, X, kind, home, t, cells)


def encode_rows(space, objs: list) -> np.ndarray:
    """``space.encode`` rows of hwnas-JSON ElasticViT dicts, validated against ``space`` as a
    batch; _Slow for anything the general path must judge (it says what is wrong).

    Column by column in numpy, not row by row: a Python loop over each row's ~90 values cost
    ~25 us a row, more than reading and pricing it together."""
    from itertools import chain

    for d in objs:
        if type(d) is not dict or d.keys() != _FIELDS or d["space"] != "elasticvit":
            raise _Slow
    n = len(objs)

    def ints(values) -> np.ndarray:  # integers only: a float, string or list is the general's
        try:
            arr = np.array(values)
        except (ValueError, OverflowError):
            raise _Slow from None
        if arr.dtype.kind != "i" or arr.ndim != (2 if values and type(values[0]) is list
                                                 else 1):
            raise _Slow
        return arr

    res = ints([d["resolution"] for d in objs])
    ch = ints([d["channels"] for d in objs])
    dep = ints([d["depths"] for d in objs])
    n_st = len(space.stages)
    if ch.shape != (n, n_st) or dep.shape != (n, n_st):
        raise _Slow
    maxd = np.array([max(st.depths) for st in space.stages])
    if (dep < 0).any() or (dep > maxd).any():
        raise _Slow
    X = np.zeros((n, 1 + 2 * n_st + 2 * int(maxd.sum())), dtype=np.int64)
    X[:, 0], X[:, 1:1 + n_st], X[:, 1 + n_st:1 + 2 * n_st] = res, ch, dep
    starts = 1 + 2 * n_st + 2 * np.concatenate([[0], np.cumsum(maxd)[:-1]])
    for stages, fa, fb in ((range(0, 3), "conv_expand", "conv_kernel"),
                           (range(3, n_st), "mlp_ratio", "v_scale")):
        stages = list(stages)
        per_row = dep[:, stages].sum(axis=1)  # layers each row lists for these stages
        for f in (fa, fb):
            if not np.array_equal([len(d[f]) if type(d[f]) is list else -1 for d in objs],
                                  per_row):
                raise _Slow
        if not per_row.sum():
            continue
        row = np.repeat(np.arange(n), per_row)
        k = np.arange(len(row)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
        cum = np.cumsum(dep[:, stages], axis=1)[row]  # layer k lies in stage s: k < cum[s]
        s = (k[:, None] >= cum).sum(axis=1)
        j = k - np.where(s > 0, np.take_along_axis(cum, np.maximum(s - 1, 0)[:, None],
                                                   axis=1)[:, 0], 0)
        col = starts[np.asarray(stages)[s]] + 2 * j
        X[row, col] = ints(list(chain.from_iterable(d[fa] for d in objs)))
        X[row, col + 1] = ints(list(chain.from_iterable(d[fb] for d in objs)))
    if not valid_rows(space, X).all():
        raise _Slow
    return X  # space.encode's values, as integers (the compiled LUT indexes with integers)


def valid_rows(space, X: np.ndarray) -> np.ndarray:
    """Per row: every choice allowed by ``space`` (padding past a stage's depth is 0 by
    construction in encode_rows)."""
    n_st = len(space.stages)
    ok = np.isin(X[:, 0], space.resolutions)
    for i, st in enumerate(space.stages):
        ok &= np.isin(X[:, 1 + i], st.widths) & np.isin(X[:, 1 + n_st + i], st.depths)
    col = 1 + 2 * n_st
    for i, st in enumerate(space.stages):
        depth = X[:, 1 + n_st + i]
        for j in range(max(st.depths)):
            used = depth > j
            ok &= ~used | (np.isin(X[:, col], st.choice_a) & np.isin(X[:, col + 1], st.choice_b))
            col += 2
    return ok


def _predict_encoded(device, sp, X, kind, home, t, cells):
    """Price validated encoded rows with the device's LUT; None where it is not a LUT over a
    table that covers every row (the general path then chooses, fills or refuses)."""
    from dataclasses import replace

    from hwnas.api.device import context, load_table
    from hwnas.api.predicting import predictor
    from hwnas.predictors.fastlut import CompiledElasticViTLUT
    from hwnas.predictors.lut import LUTPredictor
    from hwnas.spaces import get_space

    ctx = context(device, sp.name, home=home)
    if not ctx.paths.table.exists():
        return None  # fewshot, or no table: the general path says which
    # the space narrowed to the rows' resolutions, as arch_context narrows it
    ctx = replace(ctx, space=get_space(sp.name, sorted({int(r) for r in np.unique(X[:, 0])})))
    table = load_table(ctx)
    if np.isnan(CompiledElasticViTLUT(ctx.space, table).predict_encoded(X)).any():
        return None  # a key the table lacks: kernel fill, or the missing keys' error
    chosen = predictor(ctx, kind, table, covered=True)
    if type(chosen.predictor) is not LUTPredictor:
        return None  # a fitted kernel or e2e model prices Arch objects
    t["setup"] = time.perf_counter()
    ms = chosen.predictor.predict_encoded(X)
    t["predict"] = time.perf_counter()
    return chosen, ms, cells


def _write(out, cells, ms, kind) -> None:
    import csv
    import io

    from hwnas.latency.safeio import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["arch", "predicted_ms", "predictor"])
    w.writerows(zip(cells, [f"{v:.6g}" for v in ms.tolist()], [kind] * len(cells)))
    atomic_write_text(out, buf.getvalue())
