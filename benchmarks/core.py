"""Core figures for local-cpu: profiling time, noise floor, table bias, search accuracy.

Run: python benchmarks/core.py [--resolution 160] [--subnets 24] [--passes 3]
Writes the "core" section of BENCHMARKS.md. Everything is measured in this one run, side by
side, in a throw-away HWNAS_HOME (nothing of the user's is touched).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import machine_line, write_section  # noqa: E402
from hwnas import api  # noqa: E402
from hwnas.latency.sampling import stratified_sample  # noqa: E402
from hwnas.predictors.lut import LUTPredictor  # noqa: E402


def profile_both(home: Path, res: int):
    """The same ops profiled in network context (flush) and alone (isolated)."""
    out = {}
    for context in ("flush", "isolated"):
        ctx = api.context("local-cpu", resolutions=[res], home=home / context, context=context)
        t0 = time.perf_counter()
        table = api.profile(ctx, progress=False)
        out[context] = (ctx, table, time.perf_counter() - t0)
    return out


def pooled_measurements(ctx, archs, passes: int):
    """Each pass measures every subnet in a fresh session; passes interleave over time."""
    per_pass = []
    for _ in range(passes):
        recs = [api.measure_arch(ctx, a, passes=1).median_ms for a in archs]
        per_pass.append(recs)
    return np.array(per_pass)  # passes x subnets


def noise_floor(per_pass: np.ndarray) -> dict:
    a, b = per_pass[0], per_pass[1]
    rel = np.abs(a - b) / ((a + b) / 2)
    spread = (per_pass.max(0) - per_pass.min(0)) / np.median(per_pass, 0)
    return {"mae_pct": 100 * rel.mean(), "max_pct": 100 * rel.max(),
            "within5": float(np.mean(rel <= 0.05)), "within10": float(np.mean(rel <= 0.10)),
            "spread_pct": 100 * np.median(spread)}


def bias_rows(tables, archs, pooled) -> list[str]:
    rows = []
    for context, (ctx, table, _) in tables.items():
        raw = LUTPredictor(table, ctx.space, calibrate=False).predict_raw(archs)
        rel = raw / pooled - 1
        rows.append(f"| {context} | {100 * rel.mean():+.1f}% | {100 * np.median(rel):+.1f}% | "
                    f"{100 * np.abs(rel).mean():.1f}% | {100 * rel.min():+.1f}% .. "
                    f"{100 * rel.max():+.1f}% |")
    return rows


def search_rows(ctx, targets, home: Path, seed: int = 0) -> tuple[list[str], list[float]]:
    """The product's search (api.search): evolution on the calibrated LUT, then the top
    candidates measured on the device, then the pick re-measured (3 passes pooled)."""
    rows, errs = [], []
    for t in targets:
        t0 = time.perf_counter()
        out = api.search("local-cpu", t, seed=seed, resolutions=list(ctx.space.resolutions),
                         progress=False, home=home)
        dt = time.perf_counter() - t0
        measured = out.measured.median_ms
        errs.append(measured / t - 1)
        rows.append(f"| {t:.1f} | {out.result.best.latency_ms:.3f} | {measured:.3f} | "
                    f"{100 * (measured / t - 1):+.1f}% | {out.result.best.score / 1e6:.0f} | "
                    f"{out.result.evaluated} | {dt:.1f} s |")
    return rows, errs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolution", type=int, default=160)
    ap.add_argument("--subnets", type=int, default=24)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--targets", type=float, nargs="+", default=[5.0, 6.0, 8.0, 10.0])
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="hwnas-bench-"))
    tables = profile_both(home, args.resolution)
    ctx = tables["flush"][0]
    archs = stratified_sample(ctx.space, args.subnets, np.random.default_rng(7),
                              lambda a: np.array([ctx.space.macs(x) for x in a], float))
    per_pass = pooled_measurements(ctx, archs, args.passes)
    pooled = np.median(per_pass, axis=0)
    nf = noise_floor(per_pass)
    api.measure(ctx, sample=api.CALIBRATION_SUBNETS, seed=12345, progress=False)
    s_rows, errs = search_rows(ctx, args.targets, home / "flush")
    n_ops = len(tables["flush"][1])
    md = [
        "## Core: local-cpu (onnxruntime, 1 pinned thread)",
        "",
        machine_line(),
        f"Command: `python benchmarks/core.py --resolution {args.resolution} --subnets "
        f"{args.subnets} --passes {args.passes}`",
        "",
        f"**Profiling one resolution** ({args.resolution} px, {n_ops} ops, 10 warm-up + 30 "
        f"timed runs each, export included): in context {tables['flush'][2] / 60:.1f} min, "
        f"isolated {tables['isolated'][2] / 60:.1f} min.",
        "",
        f"**Noise floor** ({args.subnets} subnets stratified over MACs, {args.passes} passes, "
        f"each pass a fresh session): two passes differ by {nf['mae_pct']:.1f}% on average "
        f"(max {nf['max_pct']:.1f}%); {100 * nf['within5']:.0f}% of subnets agree within ±5%, "
        f"{100 * nf['within10']:.0f}% within ±10%; median max-min spread over passes "
        f"{nf['spread_pct']:.1f}%. Measurements below are pooled medians over the passes.",
        "",
        "**Raw table vs whole networks** (sum of block medians + one call overhead, no "
        "calibration, against pooled whole-network medians):",
        "",
        "| block timing | mean bias | median bias | mean abs error | range |",
        "|---|---|---|---|---|",
        *bias_rows(tables, archs, pooled),
        "",
        "**Search** (`hwnas search`: evolution 64 x 30 on the LUT calibrated on 12 measured "
        "subnets, objective MACs; then the 4 best candidates measured on the device and the "
        "best that fits kept; the pick re-measured end to end, 3 passes pooled; search time "
        "includes those measurements):",
        "",
        "| target ms | predicted ms | re-measured ms | vs target | MMACs | evaluated | "
        "search time |",
        "|---|---|---|---|---|---|---|",
        *s_rows,
        "",
        f"Mean absolute deviation of re-measured latency from target: "
        f"{100 * np.mean(np.abs(errs)):.1f}% (goal ±5%, limit ±10%).",
    ]
    write_section("core", "\n".join(md))
    print("\n".join(md))
    (home / "bench.json").write_text(json.dumps({"noise": nf, "errs": errs}))


if __name__ == "__main__":
    main()
