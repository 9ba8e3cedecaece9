"""Benchmark the supernet on the built-in digits; writes the "supernet" section of BENCHMARKS.md.

    python benchmarks/supernet.py --quick        # ~3 minutes on one core: mechanics, not accuracy
    python benchmarks/supernet.py                # the full comparison (tens of minutes)

It measures, on this CPU: training throughput; test accuracy of the smallest, a middle and the
largest subnet after training; and latency-aware vs FLOPs-aware vs uniform (sandwich) sampling at
an equal training budget, compared by the test accuracy of what accuracy search picks at two
latency targets on one device.

Default space: the ``tiny`` preset at 64 px with 10 classes. Digits are 8x8 images; the full
ElasticViT space needs >= 128 px and trains ~10x slower here (about 4 s per step at batch 16), so
a comparison of three supernets would not fit a shared 2-core box. Default device: ``local-cpu``,
its per-op latency table profiled here with hwnas's onnxruntime profiler for exactly the ops of
that space. ``--space full --resolution 128 --device pixel4`` uses nn-Meter's measured Pixel 4
table from ../shared/data instead (for a machine with more compute).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import machine_line, write_section  # noqa: E402
from hwnas.search.evolution import EvolutionConfig  # noqa: E402
from hwnas.supernet.latency import table_latency_fn  # noqa: E402
from hwnas.supernet.pools import build_pools, flops_cost_fn, sample_sized  # noqa: E402
from hwnas.supernet.sampling import SamplerConfig  # noqa: E402
from hwnas.supernet.search import AccuracySearchConfig, search_by_accuracy  # noqa: E402
from hwnas.supernet.spec import SpaceSpec  # noqa: E402
from hwnas.supernet.train import DataSpec, TrainConfig, train_supernet  # noqa: E402

log = logging.getLogger("benchmarks.supernet")
NN_METER = ROOT.parent / "shared" / "data" / "nn-meter-vit-luts"
LEVEL_QUANTILES = (0.15, 0.45, 0.75)
TARGET_QUANTILES = (0.3, 0.6)
METHODS = ("latency", "flops", "uniform")


@dataclass(frozen=True)
class Bench:
    quick: bool
    preset: str
    resolution: int
    device: str
    epochs: int
    steps_per_epoch: int | None
    batch_size: int
    lr: float
    population: int
    generations: int
    max_eval_images: int | None
    calib_batches: int
    profile_runs: int
    seed: int
    out: Path


def parse(argv) -> tuple[Bench | None, bool]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--space", default="tiny", choices=["tiny", "full"])
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--device", default="local-cpu")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "supernet")
    p.add_argument("--no-write", action="store_true", help="Do not touch BENCHMARKS.md.")
    p.add_argument("--gpu", action="store_true",
                   help="Only measure training throughput of the full space at 224 px on CUDA.")
    a = p.parse_args(argv)
    if a.gpu:
        return None, a.no_write
    q = a.quick
    b = Bench(q, a.space, a.resolution or (64 if a.space == "tiny" else 128), a.device,
              a.epochs or (1 if q else 8), 12 if q else None, 32, 2e-3, 6 if q else 12,
              1 if q else 3, 128 if q else None, 2 if q else 4, 8 if q else 30, a.seed, a.out)
    return b, a.no_write


# --- the device's latency -------------------------------------------------------------------
def device_table(b: Bench, space):
    """The device's per-op table: nn-Meter's for phones, profiled here for local-cpu."""
    from hwnas.device_configs import load_device

    cfg = load_device(b.device)
    if cfg.profiler == "imported":
        from hwnas.latency.importers import import_nn_meter

        return import_nn_meter(NN_METER / f"{b.device}_lut_ln_v3.json", cfg), "nn-Meter table"
    from hwnas.home import export_cache
    from hwnas.profilers import make_profiler
    from hwnas.profilers.run import profile_ops

    cfg = cfg.with_overrides(runs=b.profile_runs, warmup=max(2, b.profile_runs // 3))
    path = b.out / f"table-{b.device}-{b.preset}-{b.resolution}-r{cfg.runs}.pkl"
    cached = path.exists()
    t0 = time.perf_counter()
    with make_profiler(cfg, export_cache(b.out / "home")) as prof:
        table = profile_ops(prof, space.enumerate_ops(b.resolution), path, progress=False)
    when = ("reused from an earlier run of this script" if cached
            else f"{time.perf_counter() - t0:.0f} s")
    how = (f"profiled by this script with hwnas's onnxruntime profiler ({len(table)} ops, "
           f"{cfg.runs} runs each, {cfg.context} context; {when})")
    return table, how


def levels_and_targets(space, lat_fn, seed: int):
    """Levels at quantiles of latency (and of MMACs) over archs of every size, and targets."""
    rng = np.random.default_rng(seed)
    archs = [sample_sized(space, rng, float(rng.random())) for _ in range(400)]
    lat, flops = lat_fn(archs), flops_cost_fn(space)(archs)

    def r(values, qs):  # three significant digits read better in the report
        return [float(f"{x:.3g}") for x in np.quantile(values, qs)]

    return r(lat, LEVEL_QUANTILES), r(flops, LEVEL_QUANTILES), r(lat, TARGET_QUANTILES)


# --- training, evaluation, search -----------------------------------------------------------
def train_all(b: Bench, spec: SpaceSpec, pools: dict) -> dict:
    cfg = TrainConfig(epochs=b.epochs, batch_size=b.batch_size, lr=b.lr, warmup_epochs=0.3,
                      seed=b.seed, steps_per_epoch=b.steps_per_epoch, log_every=0)
    out = {}
    for method in METHODS:
        scfg = SamplerConfig(method="sandwich" if method == "uniform" else "pools",
                             subnets_per_step=2 if method == "uniform" else 3, bank_size=8,
                             rescore_every=25)
        run_dir = b.out / f"run-{method}"
        for stale in run_dir.glob("checkpoint.pt"):
            stale.unlink()  # every benchmark run trains from scratch
        t0 = time.perf_counter()
        res = train_supernet(spec, DataSpec("digits", seed=b.seed), cfg, scfg, run_dir,
                             pools=pools.get(method))
        out[method] = (res, time.perf_counter() - t0)
        log.info("%s: trained in %.0f s", method, out[method][1])
    return out


def reference_subnets(space, lat_pools):
    mid = len(lat_pools.levels) // 2
    middle = min(lat_pools.members[mid], key=lambda m: abs(m[1] - lat_pools.levels[mid]))[0]
    lo, hi = min(space.resolutions), max(space.resolutions)
    return {"smallest": space.smallest(lo), "middle": middle, "largest": space.largest(hi)}


def evaluate_refs(model, refs: dict, data, b: Bench) -> dict:
    from hwnas.supernet.evaluate import evaluate_subnet

    return {name: evaluate_subnet(model, arch, data.train, data.test, batch_size=64,
                                  calib_batches=b.calib_batches, seed=b.seed)
            for name, arch in refs.items()}


def search_all(b: Bench, trained: dict, space, data, lat_fn, targets) -> dict:
    evo = EvolutionConfig(population=b.population, generations=b.generations,
                          parents=max(2, b.population // 4))
    scfg = AccuracySearchConfig(evo, batch_size=64, calib_batches=b.calib_batches,
                                max_eval_images=b.max_eval_images, seed=b.seed)
    out = {}
    for method, (res, _) in trained.items():
        for target in targets:
            r = search_by_accuracy(space, res.model, data, lat_fn, target, scfg)
            out[(method, target)] = r
            log.info("%s @ %.3g ms: %.3f ms, holdout %.3f, test %.3f", method, target,
                     r.best.latency_ms, r.best.score, r.test_top1)
    return out


# --- report -----------------------------------------------------------------------------------
def render(b, spec, how, levels, targets, trained, accs, refs_ms, searched, secs) -> str:
    steps = trained["latency"][0].history
    n_steps = sum(h["steps"] for h in steps)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "## Supernet training and accuracy search (`benchmarks/supernet.py"
        f"{' --quick' if b.quick else ''}`)", "",
        f"{machine_line()} Load average at the end: {load} (the box is shared; throughput "
        "moves with it).", "",
        f"Built-in digits (8x8, upscaled per batch), space `{spec.preset}` at {b.resolution} px, "
        f"10 classes; device `{b.device}`, per-op latency {how}. Every method trains "
        f"{n_steps} steps of batch {b.batch_size} x 4 subnets (ElasticViT's step: 3 from the "
        f"level + its min subnet; uniform: sandwich = largest + 2 uniform + smallest), "
        f"AdamW lr {b.lr}, seed {b.seed}, one thread. Latency levels {levels[0]} ms, FLOPs "
        f"levels {levels[1]} MMACs (the same quantiles of archs of every size). Total "
        f"{secs / 60:.1f} min.", ""]
    if b.quick:
        lines += ["**Quick mode: too little training for the accuracies to mean anything; "
                  "it checks that every stage runs.**", ""]
    lines += ["| sampling | wall s | images/s | subnet-images/s |", "|---|---:|---:|---:|"]
    for m, (res, sec) in trained.items():
        ips = sum(h["steps"] for h in res.history) * b.batch_size / sum(
            h["seconds"] for h in res.history)
        lines.append(f"| {m} | {sec:.0f} | {ips:.1f} | {4 * ips:.1f} |")
    lines += ["", "Test top-1 after BN recalibration (predicted ms in brackets):", "",
              "| sampling | " + " | ".join(f"{k} ({refs_ms[k]:.3g} ms)" for k in refs_ms) + " |",
              "|---|" + "---:|" * len(refs_ms)]
    for m, acc in accs.items():
        lines.append(f"| {m} | " + " | ".join(f"{100 * acc[k]:.1f}%" for k in refs_ms) + " |")
    lines += ["", f"Accuracy search (evolution, population {b.population}, {b.generations} "
              "generations, holdout top-1 after BN recalibration) under predicted latency <= "
              "target:", "", "| target ms | sampling | picked ms | holdout top-1 | test top-1 | "
              "subnets scored |", "|---:|---|---:|---:|---:|---:|"]
    # "scored": feasible candidates the supernet evaluated (infeasible ones cost no evaluation)
    for (m, t), r in searched.items():
        lines.append(f"| {t:.3g} | {m} | {r.best.latency_ms:.3g} | {100 * r.best.score:.1f}% | "
                     f"{100 * r.test_top1:.1f}% | {len(r.search.feasible)} |")
    lines += ["", "One seed: differences of a few points between sampling methods are within "
              "the run-to-run noise of so small a budget."]
    return "\n".join(lines)


def gpu_throughput(out: Path, batch: int = 128, epochs: int = 3) -> str | None:
    """Training images/s of the full ElasticViT space at 224 px on one GPU (AMP), or None."""
    import torch

    if not torch.cuda.is_available():
        log.warning("no CUDA device: skipping the GPU throughput benchmark")
        return None
    spec = SpaceSpec("full", (224,), 10)
    cfg = TrainConfig(epochs=epochs, batch_size=batch, amp=True, log_every=0)
    scfg = SamplerConfig(method="sandwich", subnets_per_step=2)
    for stale in (out / "run-gpu").glob("checkpoint.pt"):
        stale.unlink()
    hist = train_supernet(spec, DataSpec("digits"), cfg, scfg, out / "run-gpu",
                          device="cuda").history
    last = hist[-1]  # the first epoch pays for cuDNN autotuning and allocator warm-up
    return "\n".join([
        "## Supernet training throughput on a GPU (`benchmarks/supernet.py --gpu`)", "",
        f"{machine_line()} GPU: {torch.cuda.get_device_name(0)}.", "",
        f"Full ElasticViT space at 224 px, batch {batch}, fp16 autocast, sandwich sampling "
        "(largest + 2 uniform + smallest subnet per step, so every step pays for the largest "
        f"subnet); digits upscaled to 224 px. Epoch {last['epoch']} of {epochs}: "
        f"**{last['images_per_s']:.0f} images/s** "
        f"({4 * last['images_per_s']:.0f} subnet-images/s)."])


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(1)
    b, no_write = parse(argv)
    if b is None:  # --gpu
        md = gpu_throughput(ROOT / "benchmarks" / "out" / "supernet")
        if md and not no_write:
            write_section("supernet-gpu", md)
        print(md or "no GPU")
        return 0
    t0 = time.perf_counter()
    spec = SpaceSpec(b.preset, (b.resolution,), 10)
    space = spec.build()
    table, how = device_table(b, space)
    lat_fn = table_latency_fn(table, space)
    lat_levels, flops_levels, targets = levels_and_targets(space, lat_fn, b.seed)
    per = 24 if b.quick else 64
    pools = {"latency": build_pools(spec, lat_fn, lat_levels, metric="latency", per_level=per,
                                    seed=b.seed, device=b.device),
             "flops": build_pools(spec, flops_cost_fn(space), flops_levels, metric="flops",
                                  per_level=per, seed=b.seed)}
    trained = train_all(b, spec, pools)
    data = DataSpec("digits", seed=b.seed).load()
    refs = reference_subnets(space, pools["latency"])
    refs_ms = dict(zip(refs, lat_fn(list(refs.values()))))
    accs = {m: evaluate_refs(res.model, refs, data, b) for m, (res, _) in trained.items()}
    searched = search_all(b, trained, space, data, lat_fn, targets)
    secs = time.perf_counter() - t0
    md = render(b, spec, how, (lat_levels, flops_levels), targets, trained, accs, refs_ms,
                searched, secs)
    b.out.mkdir(parents=True, exist_ok=True)
    (b.out / "report.md").write_text(md + "\n")
    (b.out / "results.json").write_text(json.dumps({
        "accuracy": accs, "history": {m: r.history for m, (r, _) in trained.items()},
        "search": [{"method": m, "target_ms": t, "arch": r.best.arch.to_dict(),
                    "predicted_ms": r.best.latency_ms, "holdout": r.best.score,
                    "test": r.test_top1} for (m, t), r in searched.items()]}, indent=1))
    if not no_write:
        write_section("supernet", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
