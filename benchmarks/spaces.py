"""Every registered search space on local-cpu, and the named reference models.

Per space, at one resolution: the number of op keys, the time to profile them, the calibrated
LUT predictor's share of held-out subnets within ±10% of their measured latency (with the raw
sum and a FLOPs fit beside it), and the latency of what search picks at one target, re-measured.
Then each named reference model: measured end to end, and predicted by the raw LUT, by the LUT
calibrated on its family's space and by that space's FLOPs fit (out of distribution for models
outside every space).

Run:   python benchmarks/spaces.py                  (full: 12 calibration + 50 held-out subnets)
       python benchmarks/spaces.py --quick          (smoke test: tiny counts, not figures)
Writes the "spaces" section of BENCHMARKS.md (or --out FILE). Everything runs in a throw-away
HWNAS_HOME.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import BENCHMARKS, machine_line, write_section  # noqa: E402
from hwnas import api  # noqa: E402
from hwnas.device_configs import load_device  # noqa: E402
from hwnas.errors import HwnasError  # noqa: E402
from hwnas.latency.sampling import stratified_sample  # noqa: E402
from hwnas.predictors.baselines import MIN_FIT, FlopsPredictor  # noqa: E402
from hwnas.predictors.lut import LUTPredictor  # noqa: E402
from hwnas.search.evolution import EvolutionConfig, evolve, feasible_range  # noqa: E402
from hwnas.spaces import SPACES  # noqa: E402

DEVICE = "local-cpu"


@dataclass(frozen=True)
class Budget:
    calibration: int = 12
    heldout: int = 50
    op_overrides: dict = field(default_factory=dict)  # profile with the device's defaults
    net_warmup: int = 3
    net_runs: int = 10
    search_passes: int = 3
    evolution: EvolutionConfig = EvolutionConfig()


FULL = Budget()
QUICK = Budget(calibration=4, heldout=6, op_overrides={"warmup": 1, "runs": 3}, net_warmup=1,
               net_runs=3, search_passes=1,
               evolution=EvolutionConfig(population=16, generations=4, parents=4))
QUICK_MODELS = ("mobilenetv2", "edgevit-xxs", "deit-tiny", "elastic_T1")
# the family space whose calibration a named model borrows (its own space when it lies inside)
FAMILY = {"ViTSpace": "vit", "ViTResSpace": "vit-res", "EdgeViTSpace": "edgevit",
          "ElasticViTSpace": "elasticvit", "FixedSpace": "tfnas", "TFNASSpace": "tfnas"}


def pick_resolution(space, quick: bool) -> int:
    if quick:
        return min(space.resolutions)
    for r in (160 if space.name == "elasticvit" else 224, 224):
        if r in space.resolutions:
            return r
    return max(space.resolutions)


def within(pred, true, tol: float = 0.10) -> float:
    return float(np.mean(np.abs(np.asarray(pred) / np.asarray(true) - 1) <= tol))


def measure(net_ctx, archs) -> np.ndarray:
    return np.array([api.measure_arch(net_ctx, a, passes=1).median_ms for a in archs])


def bench_space(name: str, home: Path, b: Budget, quick: bool) -> dict:
    space = SPACES[name]()
    res = pick_resolution(space, quick)
    ctx = api.context(DEVICE, name, [res], home=home, **b.op_overrides)
    t0 = time.perf_counter()
    table = api.profile(ctx, progress=False)
    t_profile = time.perf_counter() - t0
    net_ctx = api.context(DEVICE, name, [res], home=home, warmup=b.net_warmup, runs=b.net_runs)
    raw_lut = LUTPredictor(table, ctx.space, calibrate=False)
    archs = stratified_sample(ctx.space, b.calibration + b.heldout, np.random.default_rng(7),
                              raw_lut.predict_raw)
    order = np.random.default_rng(11).permutation(len(archs))
    archs = [archs[i] for i in order]
    y = measure(net_ctx, archs)
    cal, held = slice(0, b.calibration), slice(b.calibration, None)
    lut = LUTPredictor(table, ctx.space).fit(archs[cal], y[cal])
    flops = FlopsPredictor(ctx.space).fit(archs[cal], y[cal]) if b.calibration >= MIN_FIT \
        else None
    row = {"space": name, "res": res, "keys": len(ctx.space.enumerate_ops(res)),
           "profile_s": t_profile, "heldout": len(y[held]), "lut": lut, "flops": flops,
           "lut_w10": within(lut.predict(archs[held]), y[held]),
           "raw_bias": float(np.median(raw_lut.predict_raw(archs[held]) / y[held] - 1)),
           "flops_w10": within(flops.predict(archs[held]), y[held]) if flops else None}
    row.update(search_once(ctx, net_ctx, lut, float(np.median(y[held])), b))
    return row


def search_once(ctx, net_ctx, lut, median_ms: float, b: Budget) -> dict:
    """Search at the held-out median latency, kept inside the range the predictor thinks
    feasible (a poorly calibrated predictor would otherwise refuse the target)."""
    lo, hi = feasible_range(ctx.space, lut.predict)
    target = float(np.clip(median_ms, lo + 0.1 * (hi - lo), hi))
    t0 = time.perf_counter()
    res = evolve(ctx.space, lut.predict, target, np.random.default_rng(0), cfg=b.evolution)
    t_search = time.perf_counter() - t0
    measured = api.measure_arch(net_ctx, res.best.arch, passes=b.search_passes).median_ms
    return {"target": target, "predicted": res.best.latency_ms, "measured": measured,
            "search_s": t_search}


def bench_models(names, home: Path, b: Budget, fitted: dict) -> list[dict]:
    """Profile the named models' ops into one table, measure each model, predict each."""
    from hwnas.models import named_model, spaces_containing
    from hwnas.profilers import make_profiler
    from hwnas.profilers.run import profile_ops

    cfg = load_device(DEVICE)
    models = [named_model(n) for n in names]
    ops = [op for m in models for op in m.ops()]
    with make_profiler(cfg.with_overrides(**b.op_overrides), home / "cache") as prof:
        table = profile_ops(prof, ops, home / "models-table.pkl", progress=False)
    net_cfg = cfg.with_overrides(warmup=b.net_warmup, runs=b.net_runs)
    rows = []
    with make_profiler(net_cfg, home / "cache") as prof:
        for m in models:
            measured = prof.measure_model(*m.build()).median_ms
            raw = LUTPredictor(table, m.space, calibrate=False).predict_raw([m.arch])[0]
            family = FAMILY[type(m.space).__name__]
            row = {"model": m.name, "macs": m.macs(), "measured": measured, "raw": raw,
                   "inside": ", ".join(spaces_containing(m.arch)) or "none", "family": family}
            if family in fitted:
                lut, flops = fitted[family]["lut"], fitted[family]["flops"]
                row["calibrated"] = lut.coef_ * raw + lut.intercept_
                if flops is not None:
                    row["flops"] = float(flops.coef_[0] * m.macs() / 1e6 + flops.coef_[1])
            rows.append(row)
    return rows


def _pct(pred, true) -> str:
    return "-" if pred is None else f"{100 * (pred / true - 1):+.1f}%"


def space_table(rows) -> list[str]:
    out = ["| space | res | op keys | profile time | calibrated LUT within ±10% | raw LUT "
           "median bias | FLOPs fit within ±10% | search target | predicted | re-measured | "
           "vs target |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fl = "-" if r["flops_w10"] is None else f"{100 * r['flops_w10']:.0f}%"
        out.append(
            f"| {r['space']} | {r['res']} | {r['keys']} | {r['profile_s'] / 60:.1f} min | "
            f"{100 * r['lut_w10']:.0f}% of {r['heldout']} | {100 * r['raw_bias']:+.1f}% | {fl} | "
            f"{r['target']:.2f} ms | {r['predicted']:.2f} ms | {r['measured']:.2f} ms | "
            f"{_pct(r['measured'], r['target'])} |")
    return out


def model_table(rows) -> list[str]:
    out = ["| model | inside space | calibration from | MMACs | measured | raw LUT | "
           "calibrated LUT | FLOPs fit |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['model']} | {r['inside']} | {r['family'] if 'calibrated' in r else '-'} | "
            f"{r['macs'] / 1e6:.0f} | {r['measured']:.2f} ms | {_pct(r['raw'], r['measured'])} | "
            f"{_pct(r.get('calibrated'), r['measured'])} | "
            f"{_pct(r.get('flops'), r['measured'])} |")
    return out


def report(args, b: Budget, rows, model_rows) -> str:
    mode = "QUICK MODE: a smoke test with tiny counts; these are not figures. " if args.quick \
        else ""
    cmd = " ".join(["python benchmarks/spaces.py", *sys.argv[1:]])  # exactly what was run
    ops_runs = b.op_overrides or "the device's defaults (10 warm-up + 30 timed runs, in context)"
    return "\n".join([
        "## Search spaces on local-cpu (onnxruntime, 1 pinned thread)", "", machine_line(),
        f"Command: `{cmd}`. {mode}Ops profiled with {ops_runs}; whole networks measured with "
        f"{b.net_warmup} warm-up + {b.net_runs} timed runs. Per space, {b.calibration + b.heldout}"
        f" subnets stratified over the raw LUT sum: {b.calibration} calibrate the LUT (affine) "
        f"and the FLOPs fit, {b.heldout} are held out. Search: evolution "
        f"{b.evolution.population} x {b.evolution.generations}, objective MACs, target = the "
        f"held-out median latency; the pick re-measured ({b.search_passes} passes pooled).", "",
        *space_table(rows), "",
        "**Named reference models** (out-of-distribution where 'inside space' is none): each "
        "measured end to end; errors are prediction vs measured. The calibrated LUT and the "
        "FLOPs fit are those fitted on the family space above.", "",
        *model_table(model_rows)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="Smoke test: tiny counts, not figures.")
    ap.add_argument("--spaces", default=",".join(SPACES), help="Comma-separated space names.")
    ap.add_argument("--models", default=None, help="Comma-separated named models ('none').")
    ap.add_argument("--out", type=Path, default=BENCHMARKS, help="Markdown file to update.")
    args = ap.parse_args()
    from hwnas.models import list_models

    b = QUICK if args.quick else FULL
    home = Path(tempfile.mkdtemp(prefix="hwnas-bench-spaces-"))
    rows = []
    for name in args.spaces.split(","):
        try:
            rows.append(bench_space(name, home / name, b, args.quick))
        except HwnasError as e:  # report it and go on with the other spaces
            print(f"{name}: {e}", file=sys.stderr, flush=True)
            continue
        print(space_table(rows)[-1], flush=True)
    names = (args.models or ",".join(QUICK_MODELS if args.quick else list_models())).split(",")
    fitted = {r["space"]: r for r in rows}
    model_rows = [] if names == ["none"] else bench_models(names, home, b, fitted)
    md = report(args, b, rows, model_rows)
    write_section("spaces", md, args.out)
    print(md)


if __name__ == "__main__":
    main()
