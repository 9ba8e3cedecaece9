"""One view of a device's table for a space: measured, predicted and missing ops, apart.

Predicted entries (kernel regressors filling a budgeted profile) are never written into the
device's table; they live in the fitted kernel predictor. This view joins the two so that a
person sees, per op, whether its number was measured or predicted.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def table_rows(ctx, table) -> tuple[list[dict], dict]:
    """(one row per distinct op of the space, a summary) for ``hwnas table show``."""
    from hwnas.errors import HwnasError
    from hwnas.predictors.select import load_kind

    keys = list(dict.fromkeys(op.key for r in ctx.space.resolutions
                              for op in ctx.space.enumerate_ops(r)))
    filled, fill_note = None, "none fitted"
    path = ctx.paths.predictor("kernel")
    if path.exists():
        try:
            chosen = load_kind("kernel", path, ctx.cfg.name, ctx.space, table)
            filled, fill_note = chosen.predictor.table, chosen.detail
        except HwnasError as e:
            fill_note = f"not usable: {e}"
    rows = []
    for k in keys:
        if k in table.entries:
            flag = table.flags.get(k, "")
            r = table.ratios.get(k)
            rows.append({"key": k, "ms": table.entries[k].median_ms,
                         "ratio": r.median if r else None,
                         "source": "measured" + (f" ({flag})" if flag else "")})
        elif filled is not None and k in filled.entries:
            rows.append({"key": k, "ms": filled.entries[k].median_ms, "ratio": None,
                         "source": filled.flags.get(k, "predicted")})
        else:
            rows.append({"key": k, "ms": None, "ratio": None, "source": "missing"})
    n_measured = sum(r["source"].startswith("measured") for r in rows)
    n_missing = sum(r["source"] == "missing" for r in rows)
    ref = table.reference
    summary = {
        "device": ctx.cfg.name, "table": str(ctx.paths.table),
        "space": f"{ctx.space.name} at {list(ctx.space.resolutions)} px ({len(keys)} ops)",
        "measured": n_measured, "predicted": len(rows) - n_measured - n_missing,
        "missing": n_missing, "kernel regressors": fill_note,
        "entries in table": len(table),
        "reference": (f"{ref['key']}, {ref['ms']:.3f} ms (drift over the profile "
                      f"{100 * ref.get('drift', {}).get('p10', 0):+.1f}% .. "
                      f"{100 * ref.get('drift', {}).get('p90', 0):+.1f}%, p10..p90)")
        if ref else "none (timed without the drift-free protocol, or imported)",
        "source": table.meta.get("source_format") or table.meta.get("runtime", "?"),
    }
    if table.meta.get("budget"):
        b = table.meta["budget"]
        unfinished = ", interrupted: the next search resumes it" if b.get("unfinished") else ""
        summary["budget"] = (f"{b['fraction']:g} ({len(table)} of {b['of']} ops "
                             f"measured{unfinished})")
    return rows, summary
