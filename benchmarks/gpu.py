"""GPU benchmark: cuda latency tables for the elasticvit space, checked against whole subnets.

For batch 1 and 32 in fp32 and fp16 it profiles every elasticvit block at one resolution,
measures sampled subnets end to end, and compares three predictors of the subnet latency on
held-out subnets: the raw LUT sum, the LUT calibrated by a line fitted on a few subnets, and
a FLOPs baseline (a line in MACs fitted on the same subnets). Kendall's tau is scipy's
(tau-b), through hwnas.predictors.metrics. It writes the ``gpu`` section of
BENCHMARKS.md and the raw numbers to ``--out``/results.json.

Run on a machine with an NVIDIA GPU, from the repository root:

    python benchmarks/gpu.py --resolution 224 --subnets 60 --calib 20

Without a GPU it says so and exits with status 2, writing nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a file: make the repository's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import BENCHMARKS, write_section  # noqa: E402

SETTINGS = ((1, "fp32"), (1, "fp16"), (32, "fp32"), (32, "fp16"))
log = logging.getLogger("benchmarks.gpu")


# --- scores ---------------------------------------------------------------------------------
def evaluate(raw, calibrated, macs, true, n_calib: int) -> dict:
    """Scores on the subnets after the first ``n_calib`` (which calibrated the LUT predictor and
    fit the FLOPs line, a * MACs + b)."""
    from hwnas.predictors.metrics import kendall, within

    raw, calibrated, macs, true = (np.asarray(v, float) for v in (raw, calibrated, macs, true))
    test = slice(n_calib, None)
    fa, fb = np.polyfit(macs[:n_calib], true[:n_calib], 1)
    flops = fa * macs[test] + fb
    return {
        "n_test": int(true[test].size), "lut_within10": within(raw[test], true[test], 0.10),
        "calibrated_within10": within(calibrated[test], true[test], 0.10),
        "flops_within10": within(flops, true[test], 0.10),
        "lut_tau": kendall(raw[test], true[test]), "flops_tau": kendall(macs[test], true[test]),
        "lut_over_true_median": float(np.median(raw[test] / true[test])),
    }


# --- measuring -------------------------------------------------------------------------------
def run_setting(space, archs, cfg, res: int, n_calib: int, out: Path, progress: bool) -> dict:
    from hwnas.profilers import make_profiler
    from hwnas.profilers.run import profile_ops

    ops = space.enumerate_ops(res)
    table_path = out / f"{cfg.name}-b{cfg.batch}-{cfg.precision}-{res}.pkl"
    with make_profiler(cfg, out / "cache") as prof:
        t0 = time.perf_counter()
        table = profile_ops(prof, ops, table_path, fresh=True, progress=progress,
                            sentinel_every=cfg.sentinel_every,
                            drift_tolerance=cfg.drift_tolerance)
        profile_s = time.perf_counter() - t0
        nets = [prof.measure_model_full(space.build_model(a), (1, 3, res, res)) for a in archs]
    from hwnas.predictors.lut import LUTPredictor

    true = [m.stats.median_ms for m in nets]
    lut = LUTPredictor(table, space).fit(archs[:n_calib], true[:n_calib])
    row = {"batch": cfg.batch, "precision": cfg.precision, "ops": len(ops),
           "profile_s": profile_s, "lut_ms": lut.predict_raw(archs).tolist(),
           "calibrated_ms": lut.predict(archs).tolist(), "true_ms": true,
           "calibration": [lut.coef_, lut.intercept_], "flagged_ops": len(table.flags),
           "meta": table.meta}
    if len(table.energy) == len(table.entries) and all(m.energy for m in nets):
        row["lut_mj"] = [float(table.lookup_energy(space.op_keys(a)).sum()) for a in archs]
        row["true_mj"] = [m.energy.mj_per_call for m in nets]
    return row


def _markdown(rows: list[dict], args, command: str) -> str:
    m = rows[0]["meta"]
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## GPU latency tables: cuda profiler on {m.get('gpu')}",
        "",
        f"_Measured {when} on an **{m.get('gpu')}** ({m.get('gpu_memory_gib')} GiB, driver "
        f"{m.get('driver_version', '?')}, CUDA {m.get('cuda_version')}, cuDNN "
        f"{m.get('cudnn_version')}, torch {m.get('torch_version')}, backend {args.backend}), "
        f"host {platform.node()}. Every number below came from that machine, made by:_",
        "", f"    {command}", "",
        f"Space `elasticvit` at {args.resolution} px: every block profiled per setting "
        f"({rows[0]['ops']} blocks), then {len(rows[0]['true_ms'])} sampled subnets (seed "
        f"{args.seed}) timed end to end. The first {args.calib} subnets calibrate the LUT "
        f"predictor (a·(sum of blocks + call overhead) + b, hwnas.predictors.lut) and fit the "
        f"FLOPs baseline (a·MACs + b); the scores are on "
        f"the other {len(rows[0]['true_ms']) - args.calib}. Latency is per batch "
        f"(per image = / batch). Energy: {m.get('energy')}.",
        "",
        "| batch | precision | profile time | subnet median, ms/batch (ms/image) | raw LUT / "
        "true | raw LUT ±10% | calibrated LUT ±10% | FLOPs ±10% | LUT τ | FLOPs τ |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        e, med = r["eval"], float(np.median(r["true_ms"]))
        lines.append(
            f"| {r['batch']} | {r['precision']} | {r['profile_s'] / 60:.1f} min | "
            f"{med:.3f} ({med / r['batch']:.4f}) | {e['lut_over_true_median']:.3f} | "
            f"{e['lut_within10']:.0%} | {e['calibrated_within10']:.0%} | "
            f"{e['flops_within10']:.0%} | {e['lut_tau']:.3f} | {e['flops_tau']:.3f} |")
    energy = [r for r in rows if "energy_eval" in r]
    if energy:
        lines += ["", "Energy (board, mJ per batch), LUT sum against whole subnets:", "",
                  "| batch | precision | raw LUT ±10% | LUT τ |", "|---|---|---|---|"]
        lines += [f"| {r['batch']} | {r['precision']} | {r['energy_eval']['lut_within10']:.0%} "
                  f"| {r['energy_eval']['lut_tau']:.3f} |" for r in energy]
    flagged = sum(r["flagged_ops"] for r in rows)
    if flagged:
        lines += ["", f"{flagged} block measurement(s) carry a flag in their table (a warm-up "
                      f"that did not settle, or an energy counter that did not tick)."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="a cuda device config (default: cuda)")
    ap.add_argument("--backend", default="torch", choices=("torch", "ort-cuda", "ort-trt"))
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--subnets", type=int, default=60)
    ap.add_argument("--calib", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--energy", action="store_true", help="also measure energy (~1 s per block)")
    ap.add_argument("--out", type=Path, default=Path("gpu-bench"))
    ap.add_argument("--benchmarks", type=Path, default=BENCHMARKS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.subnets - args.calib < 30 or args.calib < 5:
        ap.error("need --calib >= 5 and at least 30 held-out subnets (--subnets - --calib)")
    import torch

    if not torch.cuda.is_available():
        print(f"benchmarks/gpu.py: no CUDA GPU visible (torch {torch.__version__}, "
              f"torch.cuda.is_available() is False); nothing measured, "
              f"{args.benchmarks.name} left as it was", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from hwnas.device_configs import load_device
    from hwnas.spaces import get_space

    space = get_space("elasticvit", [args.resolution])
    rng = np.random.default_rng(args.seed)
    archs = [space.sample(rng) for _ in range(args.subnets)]
    macs = [space.macs(a) for a in archs]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for batch, precision in SETTINGS:
        cfg = load_device(args.device).with_overrides(batch=batch, precision=precision,
                                                      backend=args.backend, energy=args.energy)
        log.info("profiling batch %d %s on %s", batch, precision, args.backend)
        row = run_setting(space, archs, cfg, args.resolution, args.calib, args.out,
                          sys.stderr.isatty())
        row["eval"] = evaluate(row["lut_ms"], row["calibrated_ms"], macs, row["true_ms"],
                               args.calib)
        if "lut_mj" in row:  # energy: the raw sum only (the LUT predictor is for latency)
            row["energy_eval"] = evaluate(row["lut_mj"], row["lut_mj"], macs, row["true_mj"],
                                          args.calib)
        rows.append(row)
        log.info("  %.1f min, %s", row["profile_s"] / 60, row["eval"])
    (args.out / "results.json").write_text(json.dumps(rows, indent=1, default=str))
    command = "python benchmarks/gpu.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_section("gpu", _markdown(rows, args, command.strip()), path=args.benchmarks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
