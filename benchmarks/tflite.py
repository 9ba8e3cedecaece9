"""local-tflite (LiteRT) against local-cpu (onnxruntime), and the speed of the adb path.

Writes the ``tflite`` section of BENCHMARKS.md:

1. the same ElasticViT subnets, end to end, on both runtimes: latency and noise floor;
2. how well a per-block table from one runtime predicts the other's whole networks
   (LUT sum = sum of block medians + one call overhead), against predicting its own;
3. the time to profile one resolution through the adb path: real adb server and client, the
   stand-in phone of the tests (tests/adbd_standin.py, LiteRT on this machine, NOT a phone).

Run from the repository root:  python -m benchmarks.tflite [--quick]
``--quick`` is a smoke-size run (two small subnets, five adb blocks); the full run takes about
half an hour on a 2-core machine, most of it exporting blocks with litert-torch.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._report import machine_line, write_section  # noqa: E402
from hwnas.device_configs import load_device  # noqa: E402
from hwnas.predictors.lut import LUTPredictor  # noqa: E402
from hwnas.profilers import make_profiler  # noqa: E402
from hwnas.profilers.run import profile_ops  # noqa: E402
from hwnas.spaces import get_space  # noqa: E402

RUNTIMES = {"local-cpu": "onnxruntime", "local-tflite": "LiteRT"}


def pick_subnets(space, quick: bool, resolution: int, n: int, seed: int = 0):
    """Quick: the smallest subnet and one mutant of it (they share most blocks)."""
    rng = np.random.default_rng(seed)
    if quick:
        base = space.smallest(resolution)
        return [base, space.mutate(base, rng, prob=0.15)]
    return [space.with_resolutions([resolution]).sample(rng) for _ in range(n)]


def measure_runtime(device: str, space, archs, cache: Path, warmup: int, runs: int,
                    repeats: int) -> dict:
    """Block table and whole networks on one runtime; noise from repeated measurements."""
    cfg = load_device(device).with_overrides(warmup=warmup, runs=runs)
    ops = list({op.key: op for a in archs for op in space.ops(a)}.values())
    with tempfile.TemporaryDirectory() as tmp, make_profiler(cfg, cache) as prof:
        t0 = time.perf_counter()
        table = profile_ops(prof, ops, Path(tmp) / "table.pkl", progress=False,
                            sentinel_every=10 ** 9)
        table_s = time.perf_counter() - t0
        e2e = [prof.measure_model(space.build_model(a), space.input_shape(a)) for a in archs]
        probe = sorted(ops, key=lambda o: o.macs())[len(ops) // 2]
        medians = [prof.measure_op(probe).median_ms for _ in range(repeats)]
    lut = LUTPredictor(table, space, calibrate=False).predict_raw(archs)  # + call overhead
    return {"table": table.medians(), "e2e": e2e, "lut": list(lut),
            "table_s": table_s, "n_ops": len(ops), "probe": probe.key,
            "probe_cv": float(np.std(medians, ddof=1) / np.mean(medians)),
            "version": table.meta.get("runtime_version", "?")}


def ape(pred, true) -> np.ndarray:
    return np.abs(np.asarray(pred) - np.asarray(true)) / np.asarray(true)


def kendall(a, b) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic) if len(a) > 2 else math.nan


def cross_runtime(res: dict) -> dict:
    """Each table predicting each runtime's whole networks, raw and with a best single scale."""
    out = {}
    for tab in RUNTIMES:
        for tgt in RUNTIMES:
            lut = np.asarray(res[tab]["lut"])
            true = np.array([s.median_ms for s in res[tgt]["e2e"]])
            scale = float(np.sum(lut * true) / np.sum(lut * lut))  # least-squares factor
            out[tab, tgt] = {"mape": float(ape(lut, true).mean()),
                             "max_ape": float(ape(lut, true).max()),
                             "scaled_mape": float(ape(scale * lut, true).mean()),
                             "scale": scale, "tau": kendall(lut, true)}
    return out


def op_ratios(res: dict) -> dict[str, tuple[float, float, float]]:
    """LiteRT / onnxruntime block latency, by block kind: (min, median, max)."""
    a, b = res["local-tflite"]["table"], res["local-cpu"]["table"]
    kinds: dict[str, list[float]] = {}
    for key in a:
        if b.get(key, 0) > 0:
            kinds.setdefault(key.split("_", 1)[0], []).append(a[key] / b[key])
    return {k: (min(v), float(np.median(v)), max(v)) for k, v in sorted(kinds.items())}


def adb_timing(n_ops: int | None, resolution: int, cache: Path | None) -> dict:
    """Profile blocks of one resolution through adb onto the stand-in phone."""
    import os

    sys.path.insert(0, str(ROOT / "tests"))
    from standin_harness import AdbServer, StandinPhone, standin_bin

    space = get_space("elasticvit")
    all_ops = space.enumerate_ops(resolution)
    idx = np.linspace(0, len(all_ops) - 1, n_ops).round().astype(int) if n_ops else None
    ops = [all_ops[i] for i in dict.fromkeys(idx)] if n_ops else all_ops
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server = AdbServer.start(tmp / "home")
        saved = os.environ.get("ANDROID_ADB_SERVER_PORT")
        os.environ["ANDROID_ADB_SERVER_PORT"] = str(server.port)
        phone = None
        try:
            phone = StandinPhone(server, tmp / "phone")
            phone.start()
            cfg = load_device("pixel6").with_overrides(
                benchmark_bin=str(standin_bin(tmp)), warmup=10, runs=50)
            export_cache = cache or tmp / "cache"
            with make_profiler(cfg, export_cache, serials=(phone.serial,)) as prof:
                from hwnas.profilers.export import tflite_for_op

                t0 = time.perf_counter()
                for op in ops:  # export first, to time it apart from running
                    tflite_for_op(op, export_cache)
                export_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                profile_ops(prof, ops, tmp / "table.pkl", progress=False)
                run_s = time.perf_counter() - t0
        finally:
            if phone is not None:
                phone.kill()
            server.stop()
            if saved is None:
                os.environ.pop("ANDROID_ADB_SERVER_PORT", None)
            else:
                os.environ["ANDROID_ADB_SERVER_PORT"] = saved
    return {"n": len(ops), "total": len(all_ops), "export_s": export_s, "run_s": run_s,
            "resolution": resolution}


def render(args, space, archs, res, cross, ratios, adb) -> str:
    lines = ["## LiteRT (local-tflite) vs onnxruntime (local-cpu), and the adb path",
             "", machine_line(),
             f"_`python -m benchmarks.tflite {' '.join(sys.argv[1:])}`: "
             f"{len(archs)} ElasticViT subnets at {args.resolution}px, 1 thread pinned, "
             f"warm-up {args.warmup}, {args.runs} timed runs each; "
             f"LiteRT: {res['local-tflite']['version']}; onnxruntime "
             f"{res['local-cpu']['version']}._", "",
             "| subnet | MMACs | local-cpu ms | spread | local-tflite ms | spread | "
             "LUT(cpu) ms | LUT(tflite) ms |", "|---|---|---|---|---|---|---|---|"]
    for i, a in enumerate(archs):
        c, t = res["local-cpu"]["e2e"][i], res["local-tflite"]["e2e"][i]
        lines.append(f"| {i} | {space.macs(a) / 1e6:.1f} | {c.median_ms:.3f} | "
                     f"{c.spread:.1%} | {t.median_ms:.3f} | {t.spread:.1%} | "
                     f"{res['local-cpu']['lut'][i]:.3f} | {res['local-tflite']['lut'][i]:.3f} |")
    lines += ["", "Spread is (p90 - p10) / median of the timed calls of one measurement. Noise "
              "floor between measurements: the same block "
              f"(`{res['local-cpu']['probe']}`) timed {args.repeats} times varies by "
              f"{res['local-cpu']['probe_cv']:.1%} (CV of medians) on local-cpu and "
              f"{res['local-tflite']['probe_cv']:.1%} on local-tflite.", "",
              "**A table from one runtime predicting the other** (mean abs % error of the LUT "
              "sum against measured whole networks; *scaled*: after the best single factor; "
              "tau: Kendall rank correlation):", "",
              "| table | predicts | MAPE | max | scaled MAPE | factor | tau |",
              "|---|---|---|---|---|---|---|"]
    for (tab, tgt), m in cross.items():
        lines.append(f"| {tab} | {tgt} | {m['mape']:.1%} | {m['max_ape']:.1%} | "
                     f"{m['scaled_mape']:.1%} | {m['scale']:.2f} | "
                     f"{'n/a' if math.isnan(m['tau']) else format(m['tau'], '.2f')} |")
    lines += ["", "LiteRT / onnxruntime block latency by kind (min / median / max): " +
              "; ".join(f"{k} {lo:.2f}/{med:.2f}/{hi:.2f}" for k, (lo, med, hi)
                        in ratios.items()) + ". The ratio differs by kind, so no single "
              "factor turns one runtime's table into the other's.", ""]
    if adb:
        per = (adb["export_s"] + adb["run_s"]) / adb["n"]
        lines += [f"**Profiling through adb** (real adb server and client; the phone is the "
                  f"tests' loopback stand-in running LiteRT on this machine, not a phone): "
                  f"{adb['n']} of the {adb['total']} blocks at {adb['resolution']}px, "
                  f"warm-up 10, 50 runs: export {adb['export_s']:.1f} s "
                  f"({adb['export_s'] / adb['n']:.2f} s/block, litert-torch), push + "
                  f"benchmark + thermal checks {adb['run_s']:.1f} s "
                  f"({adb['run_s'] / adb['n']:.2f} s/block)." +
                  (f" Extrapolated to all {adb['total']} blocks: "
                   f"{per * adb['total'] / 60:.0f} min (an extrapolation, not a measurement)."
                   if adb["n"] < adb["total"] else "") +
                  " On a phone the benchmark part depends on the phone; the export part does "
                  "not, and is cached by block key.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke-size run")
    ap.add_argument("--resolution", type=int, default=None)
    ap.add_argument("--subnets", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--adb-ops", default=None, help="blocks to profile over adb, or 'all'")
    ap.add_argument("--cache", type=Path, default=None, help="reuse an export cache")
    ap.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = ap.parse_args(argv)
    q = args.quick
    args.resolution = args.resolution or (128 if q else 160)
    args.warmup = args.warmup or (3 if q else 10)
    args.runs = args.runs or (10 if q else 30)
    args.repeats = args.repeats or (3 if q else 5)
    adb_ops = args.adb_ops or ("5" if q else "60")
    space = get_space("elasticvit")
    archs = pick_subnets(space, q, args.resolution, args.subnets)
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        res = {d: measure_runtime(d, space, archs, cache, args.warmup, args.runs, args.repeats)
               for d in RUNTIMES}
        adb = adb_timing(None if adb_ops == "all" else int(adb_ops), args.resolution,
                         args.cache)
    md = render(args, space, archs, res, cross_runtime(res), op_ratios(res), adb)
    print(md)
    if not args.no_write:
        write_section("tflite", md)


if __name__ == "__main__":
    main()
