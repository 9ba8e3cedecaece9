"""Does latency-aware sampling train a better supernet? Writes the "supernet" section of
BENCHMARKS.md.

    taskset -c 0 python benchmarks/supernet.py --quick   # ~6 min: every stage runs, tiny budget
    taskset -c 0 python benchmarks/supernet.py           # the full comparison (about an hour)
    taskset -c 0 python benchmarks/supernet.py --data digits --steps 288 --no-write  # the
                                                         # issue-13 setting (digits, 288 steps)

On one CPU core, at equal compute (the same number of subnet passes: every method trains 4
subnets per step for the same number of steps, on the same batches), it compares:

* uniform sampling with the sandwich rule (largest + 2 uniform + smallest; the largest teaches);
* ElasticViT's sampling over FLOPs levels, and the same over latency levels on one device;
* an ablation over latency levels that switches on one part of ElasticViT's recipe at a time
  (pools alone, + the adjacent-level walk, + the level's min subnet, + performance-aware banks),
  and the teacher choices (hwnas's first version: the level's dearest subnet teaches; the
  sandwich rule's teacher: the supernet's largest), each for several seeds;

by the test top-1 (BN recalibrated) of the smallest, middle and largest subnet of each latency
level (the same 9 subnets for every method), and by Kendall's tau between the inherited top-1
and the top-1 of ~10 subnets across the whole range trained alone. Then, on the latency-aware
supernet, NSGA-II (pymoo) against the single-target evolution on the same number of subnets
scored: hypervolume of (holdout top-1, latency) and the best top-1 under 3 targets.

Data: ``shapes`` (hwnas's procedural set: 24 classes of textured shapes at 64 px, with colour,
pose, ground texture, distractors and noise as nuisances). Space: the ``tiny`` preset (ElasticViT's
stage structure, CPU-sized) at 64 px. Latency: ``local-cpu``'s per-op table for exactly that space,
profiled by this script (onnxruntime, one thread pinned to the core this process may use) and
cached in the output folder. Every run's result is cached there too (by a fingerprint of its
settings), so an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import machine_line, write_section  # noqa: E402
from hwnas.supernet.latency import table_latency_fn  # noqa: E402
from hwnas.supernet.pools import build_pools, flops_cost_fn, sample_sized  # noqa: E402
from hwnas.supernet.sampling import RECIPES, SamplerConfig  # noqa: E402
from hwnas.supernet.spec import SpaceSpec  # noqa: E402
from hwnas.supernet.train import DataSpec, TrainConfig, train_supernet  # noqa: E402

log = logging.getLogger("benchmarks.supernet")
LEVEL_QUANTILES = (0.1, 0.5, 0.9)  # of the latency (and MMACs) of archs of every size
TARGET_QUANTILES = (0.25, 0.5, 0.75)
PLOTS = ROOT / "benchmarks" / "plots"


@dataclass(frozen=True)
class Setting:
    quick: bool = False
    data: str = "shapes"
    preset: str = "tiny"
    resolution: int = 64
    device: str = "local-cpu"
    steps: int = 300
    batch_size: int = 32
    lr: float = 2e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    ablation_seeds: tuple[int, ...] = (0, 1)
    per_level: int = 48
    eval_images: int = 768  # of the test split, per subnet
    calib_batches: int = 2  # of 128 un-augmented training images, for BN recalibration
    kendall_subnets: int = 10
    alone_steps: int = 300
    alone_seeds: tuple[int, ...] = (0, 1)
    search_population: int = 12
    search_generations: int = 3
    search_eval_images: int = 384  # of the holdout split, per candidate
    profile_runs: int = 12

    def fingerprint(self, *parts) -> str:
        keep = {k: v for k, v in asdict(self).items()
                if k not in ("quick", "seeds", "ablation_seeds", "alone_seeds")}
        # The standalone runs' length does not change a supernet run (the standalone runs'
        # own key holds their steps): it is held at its first default so that a longer
        # standalone reference reuses the cached supernet runs.
        keep["alone_steps"] = 300
        text = json.dumps([keep, *parts], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


QUICK = Setting(quick=True, steps=24, seeds=(0,), ablation_seeds=(0,), per_level=16,
                eval_images=256, calib_batches=2, kendall_subnets=5, alone_steps=20,
                alone_seeds=(0,), search_population=6, search_generations=1,
                search_eval_images=128, profile_runs=4)


@dataclass(frozen=True)
class Variant:
    name: str
    method: str  # "uniform" (sandwich), "flops" or "latency" pools
    sampler: dict = field(default_factory=dict)  # SamplerConfig overrides
    main: bool = False  # part of the main comparison (and Kendall's tau)

    def sampler_config(self) -> SamplerConfig:
        if self.method == "uniform":
            return SamplerConfig(method="sandwich", subnets_per_step=2, **self.sampler)
        return SamplerConfig(method="pools", subnets_per_step=3, bank_size=8, rescore_every=25,
                             **self.sampler)


# Everything trains 4 subnets per step. The ablation ladder adds one part of ElasticViT's
# recipe at a time; "latency" (and "flops") is the full recipe, so it closes the ladder. hwnas's
# default recipe is "+ level walk" (sampling.RECIPES["walk"]), what this ladder found best.
# Every variant names its recipe in full: a run's cache key is its sampler config, so a change
# of SamplerConfig's defaults must not change what a variant means.
ELASTICVIT = {k: v for k, v in RECIPES["elasticvit"].items() if k != "method"}
ONLY_POOLS = {"walk": "uniform", "min_subnet": False, "banks": False}
VARIANTS = (
    Variant("uniform", "uniform", main=True),
    Variant("flops", "flops", ELASTICVIT, main=True),
    Variant("latency", "latency", ELASTICVIT, main=True),
    Variant("pools only", "latency", ONLY_POOLS),
    # hwnas's default recipe since the ablation: in the main comparison too
    Variant("+ level walk", "latency", {**ONLY_POOLS, "walk": "adjacent"}, main=True),
    Variant("+ min subnet", "latency", {**ONLY_POOLS, "walk": "adjacent", "min_subnet": True}),
    Variant("teacher: level's dearest (v1)", "latency", {**ELASTICVIT, "teacher": "level"}),
    Variant("teacher: supernet's largest", "latency", {**ELASTICVIT, "teacher": "supernet"}),
    Variant("uniform (labels teach)", "uniform", {"sandwich_labels": True}, main=True),
    # the one thing the uniform baseline has that the pools lack: its largest trains every step
    Variant("latency + supernet's largest", "latency", {**ELASTICVIT, "largest": True}),
    # what the ladder and the teachers point to: keep the part that helped (the walk) and the
    # uniform baseline's anchor, drop the two parts that cost accuracy (min subnet, banks)
    Variant("walk + supernet's largest", "latency",
            {**ONLY_POOLS, "walk": "adjacent", "largest": True}),
)
# The main comparison. "uniform (labels teach)" belongs in it: the pools' default teacher is
# ElasticViT's rule (every drawn subnet learns from the labels), so uniform sampling under the
# same rule is the like-for-like baseline; plain "uniform" is the sandwich rule (BigNAS).
MAIN = ("uniform", "uniform (labels teach)", "flops", "latency", "+ level walk")
LADDER = ("pools only", "+ level walk", "+ min subnet", "latency")
TEACHERS = ("latency", "teacher: level's dearest (v1)", "teacher: supernet's largest",
            "latency + supernet's largest", "uniform", "uniform (labels teach)")
FIX = ("uniform (labels teach)", "+ level walk", "walk + supernet's largest",
       "latency + supernet's largest", "latency")


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return n


def parse(argv) -> tuple[Setting | None, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="A smoke check (minutes).")
    p.add_argument("--data", default=None, help="Data spec (default: shapes).")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seeds", type=int, default=None, help="Seeds of the main comparison.")
    p.add_argument("--ablation-seeds", type=int, default=None)
    p.add_argument("--alone-seeds", type=int, default=None,
                   help="Seeds of each subnet trained alone (Kendall's tau).")
    p.add_argument("--alone-steps", type=_positive, default=None,
                   help="Training steps of each subnet trained alone (Kendall's tau).")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "supernet")
    p.add_argument("--no-write", action="store_true", help="Do not touch BENCHMARKS.md.")
    p.add_argument("--only", default=None,
                   help="Comma-separated variant names: train and report only these.")
    p.add_argument("--no-kendall", action="store_true",
                   help="Skip the subnets trained alone (and so Kendall's tau).")
    p.add_argument("--no-search", action="store_true", help="Skip NSGA-II vs evolution.")
    p.add_argument("--reuse-runs", action="store_true",
                   help="Reuse every finished run of the same settings, even if the pools "
                        "rebuilt now differ from the ones it trained on.")
    p.add_argument("--cached-only", action="store_true",
                   help="Train nothing: report the finished runs only (a row then says how "
                        "many seeds it has when that is fewer than asked).")
    p.add_argument("--gpu", action="store_true",
                   help="Only measure training throughput of the full space at 224 px on CUDA.")
    a = p.parse_args(argv)
    if a.gpu:
        return None, a
    s = QUICK if a.quick else Setting()
    if a.data:
        s = replace(s, data=a.data)
    if a.steps:
        s = replace(s, steps=a.steps)
    if a.seeds:
        s = replace(s, seeds=tuple(range(a.seeds)))
    if a.ablation_seeds:
        s = replace(s, ablation_seeds=tuple(range(a.ablation_seeds)))
    if a.alone_seeds:
        s = replace(s, alone_seeds=tuple(range(a.alone_seeds)))
    if a.alone_steps:
        s = replace(s, alone_steps=a.alone_steps)
    return s, a


# --- the device's latency -------------------------------------------------------------------
def device_table(s: Setting, space, out: Path):
    """local-cpu's per-op table for the space's ops, profiled here (cached in ``out``)."""
    from hwnas.device_configs import load_device
    from hwnas.home import export_cache
    from hwnas.profilers import make_profiler
    from hwnas.profilers.run import profile_ops

    cfg = load_device(s.device)
    cfg = cfg.with_overrides(runs=s.profile_runs, warmup=max(2, s.profile_runs // 3))
    path = out / f"table-{s.device}-{s.preset}-{s.resolution}-r{cfg.runs}.pkl"
    cached = path.exists()
    ops = space.enumerate_ops(s.resolution)
    if cached:
        # A complete cached table is used as it is, whatever protocol timed it: the cached runs
        # were trained on pools built from it, and re-profiling would move the pools.
        from hwnas.latency.table import LatencyTable

        table = LatencyTable.load(path)
        if all(o.key in table.entries for o in ops):
            proto = "drift-free" if table.reference else \
                "timed before the drift-free protocol, without the reference"
            return table, (f"profiled by this script with hwnas's onnxruntime profiler "
                           f"({len(table)} ops, {cfg.runs} runs each; cached from an earlier "
                           f"run, {proto})")
    t0 = time.perf_counter()
    with make_profiler(cfg, export_cache(out / "home")) as prof:
        table = profile_ops(prof, ops, path, progress=False)
    when = "cached from an earlier run" if cached else f"{time.perf_counter() - t0:.0f} s"
    return table, (f"profiled by this script with hwnas's onnxruntime profiler ({len(table)} "
                   f"ops, {cfg.runs} runs each; {when})")


def spread_archs(space, lat_fn, n: int, seed: int, k: int = 400):
    """``n`` archs whose latencies lie at evenly spaced quantiles of archs of every size."""
    rng = np.random.default_rng([seed, 7])
    archs = [sample_sized(space, rng, float(rng.random())) for _ in range(k)]
    lat = np.asarray(lat_fn(archs))
    order = np.argsort(lat)
    picks = [int(order[int(q * (k - 1))]) for q in np.linspace(0.02, 0.98, n)]
    return [archs[i] for i in picks]


def level_refs(pools) -> dict[str, object]:
    """The smallest, middle (median cost) and largest member of each level's pool."""
    refs = {}
    for i, members in enumerate(pools.members):
        ranked = sorted(members, key=lambda m: m[1])
        for name, m in (("smallest", ranked[0]), ("middle", ranked[len(ranked) // 2]),
                        ("largest", ranked[-1])):
            refs[f"L{i}-{name}"] = m[0]
    return refs


# --- runs --------------------------------------------------------------------------------------
@dataclass
class Context:
    s: Setting
    out: Path
    spec: SpaceSpec
    space: object
    lat_fn: object
    pools: dict
    refs: dict
    kendall: list
    data: object
    command: str = ""
    reuse_runs: bool = False
    cached_only: bool = False


def run_variant(ctx: Context, v: Variant, seed: int) -> dict:
    """Train one (variant, seed) and evaluate it; cached by the fingerprint of its settings."""
    from hwnas.supernet.evaluate import evaluate_subnet, top1

    s = ctx.s
    scfg = v.sampler_config()
    fields = asdict(scfg)
    for later in ("sandwich_labels", "largest"):  # added later: cached runs keep their key
        if not fields.get(later):
            fields.pop(later, None)
    if scfg.method == "sandwich":  # pools-only switches a sandwich run ignores, at the values
        fields.update(min_subnet=True, banks=True)  # they had when its runs were first cached
    key = s.fingerprint(v.method, fields, seed)
    slug = v.name.replace(" ", "_").replace(":", "").replace("'", "").replace("+", "plus")
    run_dir = ctx.out / "runs" / f"{slug}-s{seed}-{key}"
    done = run_dir / "result.json"
    pools = ctx.pools.get(v.method)
    pools_sha = hashlib.sha256(json.dumps(pools.to_obj()["members"] if pools else None)
                               .encode()).hexdigest()[:12]
    if done.exists():
        cached = json.loads(done.read_text())
        # pools follow the profiled table; --reuse-runs keeps runs whose pools came from an
        # earlier load of the same cached table (rebuilt pools can differ in a few members)
        if ctx.reuse_runs or cached.get("pools_sha", pools_sha) == pools_sha:
            if v.main and not cached.get("kendall"):
                cached = _score_kendall(ctx, run_dir, cached)
            return cached
    if ctx.cached_only:
        return None
    spe = min(s.steps, len(ctx.data.train) // s.batch_size)
    epochs = -(-s.steps // spe)
    spe = -(-s.steps // epochs)
    cfg = TrainConfig(epochs=epochs, batch_size=s.batch_size, lr=s.lr,
                      warmup_epochs=0.05 * epochs, seed=seed, steps_per_epoch=spe, log_every=0)
    for stale in run_dir.glob("checkpoint.pt"):
        stale.unlink()  # a run that did not finish starts again
    t0, c0 = time.perf_counter(), time.process_time()
    res = train_supernet(ctx.spec, DataSpec(s.data, seed=0), cfg, scfg, run_dir, pools=pools)
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    model, ev = res.model, _eval_options(s)
    no_recal = {}
    if v.method == "latency":  # BN as training left it: what skipping recalibration costs
        for name, arch in ctx.refs.items():
            model.set_active(arch)
            no_recal[name] = top1(model, arch, ctx.data.test, batch_size=128, device="cpu",
                                  max_images=s.eval_images)
    acc = {name: evaluate_subnet(model, arch, ctx.data.train, ctx.data.test, **ev)
           for name, arch in ctx.refs.items()}
    kendall = _kendall_scores(ctx, model) if v.main else []
    levels = [h.get("levels", {}) for h in res.history]
    out = {"variant": v.name, "seed": seed, "steps": sum(h["steps"] for h in res.history),
           "train_s": round(train_s, 1), "train_cpu_s": round(train_cpu, 1), "eval_s": round(time.perf_counter() - t0 - train_s, 1),
           "acc": acc, "no_recal": no_recal, "kendall": kendall, "level_steps": levels,
           "checkpoint": str(res.checkpoint), "pools_sha": pools_sha}
    done.write_text(json.dumps(out, indent=1))
    log.info("%s seed %d: trained %.0f s; %s", v.name, seed, train_s,
             ", ".join(f"{k} {100 * a:.1f}" for k, a in acc.items()))
    return out


def _eval_options(s: Setting) -> dict:
    """How every subnet of every run is scored (BN recalibrated, the same test images)."""
    return dict(batch_size=128, calib_batches=s.calib_batches, max_images=s.eval_images, seed=0)


def _kendall_scores(ctx: Context, model) -> list[float]:
    from hwnas.supernet.evaluate import evaluate_subnet

    return [evaluate_subnet(model, a, ctx.data.train, ctx.data.test, **_eval_options(ctx.s))
            for a in ctx.kendall]


def _score_kendall(ctx: Context, run_dir: Path, cached: dict) -> dict:
    """A run trained as an ablation rung (which skips the Kendall subnets) that is now in the
    main comparison: score the Kendall subnets from its saved checkpoint, no retraining."""
    from hwnas.supernet.evaluate import load_supernet

    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.exists():
        return cached
    model, _ = load_supernet(ckpt)
    cached = {**cached, "kendall": _kendall_scores(ctx, model)}
    (run_dir / "result.json").write_text(json.dumps(cached, indent=1))
    return cached


def run_alone(ctx: Context, seed: int) -> list[float]:
    from hwnas.supernet.standalone import AloneConfig, train_alone

    s = ctx.s
    cfg = AloneConfig(steps=s.alone_steps, batch_size=s.batch_size, lr=s.lr, seed=seed)
    key = s.fingerprint("alone", asdict(cfg), [a.to_dict() for a in ctx.kendall])
    path = ctx.out / "runs" / f"alone-s{seed}-{key}.json"
    if path.exists():
        return json.loads(path.read_text())["top1"]
    accs = []
    for arch in ctx.kendall:
        r = train_alone(ctx.space, arch, ctx.data, cfg, max_eval_images=s.eval_images)
        log.info("alone seed %d: %.2f ms -> top-1 %.3f (%.0f s)", seed,
                 float(ctx.lat_fn([arch])[0]), r.top1, r.seconds)
        accs.append(r.top1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"top1": accs}))
    return accs


def search_comparison(ctx: Context, checkpoint: str, targets) -> dict:
    """Evolution at each target vs one NSGA-II run, on the same number of subnets scored."""
    from hwnas.search.evolution import EvolutionConfig, evolve
    from hwnas.search.nsga import NSGAConfig, ScoreCache, hypervolume, nsga2
    from hwnas.supernet.evaluate import evaluate_subnet, load_supernet

    s = ctx.s
    model, _ = load_supernet(checkpoint)

    def holdout(archs):
        return [evaluate_subnet(model, a, ctx.data.train, ctx.data.holdout, batch_size=128,
                                calib_batches=max(1, s.calib_batches // 2),
                                max_images=s.search_eval_images, seed=0) for a in archs]

    def test(arch):
        return evaluate_subnet(model, arch, ctx.data.train, ctx.data.test, batch_size=128,
                               calib_batches=s.calib_batches, max_images=s.eval_images, seed=0)

    out = {}
    t0 = time.perf_counter()
    evo_cache = ScoreCache(holdout)
    evo_cfg = EvolutionConfig(population=s.search_population, generations=s.search_generations,
                              parents=max(2, s.search_population // 4))
    picks = {}
    for t in targets:
        r = evolve(ctx.space, ctx.lat_fn, t, np.random.default_rng([0, 2]), objective=evo_cache,
                   cfg=evo_cfg)
        picks[t] = r.best
    from hwnas.search.nsga import ParetoPoint

    evaluated = [ParetoPoint(a, float(lat), evo_cache.scores[k])
                 for k, (a, lat) in _scored(evo_cache, ctx).items()]
    out["evolution"] = {
        "scored": evo_cache.scored, "seconds": round(time.perf_counter() - t0, 1),
        "hv": hypervolume(evaluated, max(targets)),
        "best": {t: (picks[t].score, test(picks[t].arch), picks[t].latency_ms) for t in targets}}
    t0 = time.perf_counter()
    cache = ScoreCache(holdout)
    res = nsga2(ctx.space, ctx.lat_fn, cache, NSGAConfig(budget=evo_cache.scored, population=
                                                         2 * s.search_population,
                                                         offspring=s.search_population, seed=0),
                max_latency_ms=max(targets))
    best = {t: res.best_under(t) for t in targets}
    out["nsga2"] = {
        "scored": res.scored, "seconds": round(time.perf_counter() - t0, 1),
        "hv": hypervolume(res.evaluated, max(targets)),
        "best": {t: (b.score, test(b.arch), b.latency_ms) if b else None
                 for t, b in best.items()}}
    out["points"] = {"evolution": [(p.latency_ms, p.score) for p in evaluated],
                     "nsga2": [(p.latency_ms, p.score) for p in res.evaluated]}
    return out


def _scored(cache, ctx) -> dict:
    """key -> (arch, latency) of every architecture a ScoreCache scored."""
    from hwnas.arch import arch_from_obj

    archs = {k: arch_from_obj(json.loads(k)) for k in cache.scores}
    lat = ctx.lat_fn(list(archs.values()))
    return {k: (a, l) for (k, a), l in zip(archs.items(), lat)}


# --- report ------------------------------------------------------------------------------------
def mean_spread(values) -> str:
    """mean ± half the range, in points (with one value: just the value)."""
    v = 100 * np.asarray(values, dtype=float)
    if len(v) == 1:
        return f"{v[0]:.1f}"
    return f"{v.mean():.1f} ± {(v.max() - v.min()) / 2:.1f}"


def render(ctx: Context, how: str, levels, targets, results, alone, search, secs,
           plot_paths) -> str:
    s = ctx.s
    cmd = ctx.command
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    ref_ms = dict(zip(ctx.refs, ctx.lat_fn(list(ctx.refs.values()))))
    by = {name: [r for r in results if r["variant"] == name] for name in {r["variant"]
                                                                          for r in results}}
    lines = [f"## Supernet sampling: uniform vs FLOPs vs latency levels (`{cmd}`)", "",
             f"{machine_line()} One core (`taskset -c 0`), one torch thread; load average at "
             f"the end {load} (the box is shared). This invocation: {secs[0] / 60:.0f} min wall, "
             f"{secs[1] / 60:.0f} min of CPU (runs cached by an earlier invocation cost none; "
             f"the per-run times below are each run's own).", ""]
    if s.quick:
        lines += ["**Quick mode: far too little training for the accuracies to mean anything; "
                  "it checks that every stage runs.**", ""]
    n_train = len(ctx.data.train)
    lines += [
        f"Data `{s.data}` ({ctx.data.classes} classes; {n_train} training, "
        f"{len(ctx.data.test)} test images, {s.eval_images} of them scored per subnet; chance "
        f"{100 / ctx.data.classes:.1f}%). Space `{s.preset}` at {s.resolution} px. Device "
        f"`{s.device}`: per-op latency {how}. Every run trains **{s.steps} steps x batch "
        f"{s.batch_size} x 4 subnets** (equal compute in subnet passes), AdamW lr {s.lr}, "
        f"cosine. Latency levels {levels[0]} ms and FLOPs levels {levels[1]} MMACs (the 10/50/"
        f"90% quantiles of archs of every size), {s.per_level} archs per level. Top-1 on the "
        f"test split after BN recalibration ({s.calib_batches} batches) for the smallest, "
        f"middle (median) and largest member of each latency level, the same 9 subnets for "
        f"every method; **mean ± half-range over seeds {list(s.seeds)}** (the half-range is "
        f"the noise floor to read differences against).", ""]
    head = "| sampling | " + " | ".join(f"L{i} {k}" for i in range(len(levels[0]))
                                       for k in ("smallest", "middle", "largest")) + " |"
    ms_row = "| (predicted ms) | " + " | ".join(f"{ref_ms[k]:.3g}" for k in ctx.refs) + " |"
    sep = "|---|" + "---:|" * len(ctx.refs)

    def table(names, title):
        rows = [title, "", head, sep, ms_row]
        for n in names:
            rs = by.get(n, [])
            if rs:
                asked = len(s.seeds if n in MAIN else s.ablation_seeds)
                label = n if len(rs) >= asked else f"{n} ({len(rs)} seed{'s' * (len(rs) > 1)})"
                rows.append(f"| {label} | " + " | ".join(mean_spread([r["acc"][k] for r in rs])
                                                          for k in ctx.refs) + " |")
        return rows + [""]

    lines += table(MAIN, "**Main comparison** (test top-1 %):")
    if alone:
        lines += _kendall(ctx, by, alone)
    lines += table(LADDER, f"**Ablation, one part of ElasticViT's recipe at a time** (latency "
                           f"levels; seeds {list(s.ablation_seeds)}; 'latency' = all four):")
    lines += table(TEACHERS, "**Who teaches** (full recipe over latency levels; v1 = hwnas's "
                             "first version, the one issue 13 measured; and uniform sampling "
                             "with the sandwich rule's teacher, or with every drawn subnet "
                             "learning from the labels as in ElasticViT's rule):")
    lines += table(FIX, "**The fix** ('+ level walk', the walk without the min subnet and "
                        "banks that cost accuracy, is hwnas's default recipe since this "
                        "ablation; with the supernet's largest trained every step too; against "
                        "the like-for-like uniform baseline and ElasticViT's full recipe, "
                        "'latency'):")
    lines += _bn_and_levels(ctx, by, head, sep)
    if search:
        lines += _search_table(s, search, targets)
    for p in plot_paths:
        lines.append(f"![{p.stem}](benchmarks/plots/{p.name})")
    times = [r["train_s"] for r in results]
    cpu = [r["train_cpu_s"] for r in results if "train_cpu_s" in r]
    lines += ["", f"Training per run: {np.median(times):.0f} s wall median "
              f"({min(times):.0f}-{max(times):.0f})" + (f", {np.median(cpu):.0f} s CPU median"
                                                         if cpu else "")
              + f"; {len(results)} runs."]
    return "\n".join(lines)


def _kendall(ctx, by, alone) -> list[str]:
    from hwnas.supernet.standalone import kendall_tau

    s = ctx.s
    lines = []
    lat_k = ctx.lat_fn(ctx.kendall)
    alone_mean = np.mean(alone, axis=0)
    lines += [f"**Kendall's tau** between inherited top-1 and top-1 when trained alone "
              f"({len(ctx.kendall)} subnets, {lat_k.min():.3g} to {lat_k.max():.3g} ms, evenly "
              f"spread; alone = {s.alone_steps} steps of one subnet, the same recipe; mean over "
              f"{len(alone)} seed(s)):", "", "| sampling | tau (mean ± half-range over seeds) "
              "| per seed |", "|---|---:|---|"]
    for n in MAIN:
        # a run trained before its variant joined the main comparison was not scored on the
        # Kendall subnets; it has no tau rather than a NaN one
        taus = [kendall_tau(r["kendall"], alone_mean) for r in by.get(n, []) if r["kendall"]]
        if taus:
            label = n if len(taus) == len(by[n]) else f"{n} ({len(taus)} seeds scored)"
            lines.append(f"| {label} | {np.mean(taus):+.2f} ± {(max(taus) - min(taus)) / 2:.2f} | "
                         + ", ".join(f"{t:+.2f}" for t in taus) + " |")
    if len(alone) > 1:
        lines.append(f"| alone seed 0 vs alone seed 1 (the noise ceiling) | "
                     f"{kendall_tau(alone[0], alone[1]):+.2f} | |")
    lines += ["", "Trained alone: " + ", ".join(
        f"{ms:.3g} ms {100 * a:.0f}%" for ms, a in zip(lat_k, alone_mean)) + ".", ""]
    return lines


def _bn_and_levels(ctx, by, head, sep) -> list[str]:
    lines = []
    nr = by.get("latency", [])
    if nr and nr[0]["no_recal"]:
        lines += ["**BN recalibration**: the latency-aware supernet evaluated with BatchNorm "
                  "statistics as training left them, instead of recalibrated per subnet:", "",
                  head, sep, "| no recalibration | " + " | ".join(
                      mean_spread([r["no_recal"][k] for r in nr]) for k in ctx.refs) + " |",
                  "| recalibrated | " + " | ".join(mean_spread([r["acc"][k] for r in nr])
                                                   for k in ctx.refs) + " |", ""]
    steps_per_level = _level_share(nr)
    if steps_per_level:
        lines += [f"Steps per level (latency, mean over seeds): {steps_per_level}.", ""]
    return lines


def _search_table(s, search, targets) -> list[str]:
    lines = []
    if search:
        lines += [f"**NSGA-II (pymoo) vs evolution** on the latency-aware supernet (seed 0), "
                  f"scored by holdout top-1 ({s.search_eval_images} images) after BN "
                  f"recalibration. Evolution: one run per target (population "
                  f"{s.search_population}, {s.search_generations} generations) sharing one "
                  f"score cache; NSGA-II: one run capped at the largest target, stopped at the "
                  f"same number of distinct subnets scored. Hypervolume of (top-1, latency / "
                  f"{max(targets):.3g} ms) over everything each scored; best holdout top-1 under "
                  f"each target, with the test top-1 of that pick:", "",
                  "| search | subnets scored | hypervolume | " + " | ".join(
                      f"<= {t:.3g} ms: holdout / test" for t in targets) + " | wall s |",
                  "|---|---:|---:|" + "---:|" * len(targets) + "---:|"]
        for name in ("evolution", "nsga2"):
            r = search[name]
            cells = [f"{100 * b[0]:.1f} / {100 * b[1]:.1f}" if b else "none"
                     for b in (r["best"][t] for t in targets)]
            lines.append(f"| {name} | {r['scored']} | {r['hv']:.4f} | " + " | ".join(cells)
                         + f" | {r['seconds']:.0f} |")
        lines.append("")
    return lines


def _level_share(results) -> str:
    counts = {}
    for r in results:
        for per_epoch in r["level_steps"]:
            for lv, n in per_epoch.items():
                counts[lv] = counts.get(lv, 0) + n / len(results)
    return ", ".join(f"L{lv} {n:.0f}" for lv, n in sorted(counts.items()))


def plot(ctx: Context, results, search, targets) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    paths = []
    tag = "" if ctx.s.data == Setting.data else "_" + "".join(
        c if c.isalnum() else "-" for c in ctx.s.data)
    ms = ctx.lat_fn(list(ctx.refs.values()))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, name in enumerate(MAIN):
        rs = [r for r in results if r["variant"] == name]
        if not rs:
            continue
        acc = 100 * np.array([[r["acc"][k] for k in ctx.refs] for r in rs])
        ax.errorbar(ms * (1 + 0.01 * (i - 1.5)), acc.mean(0),
                    yerr=[acc.mean(0) - acc.min(0), acc.max(0) - acc.mean(0)], fmt="o",
                    capsize=3, label=name)
    ax.set(xlabel=f"predicted latency on {ctx.s.device} (ms)", ylabel="test top-1 (%)",
           title="9 level subnets: mean and range over seeds")
    ax.legend()
    if ctx.s.data.startswith("shapes"):
        paths.append(shapes_samples(ctx.s.data, PLOTS / "shapes_samples.png"))
    p = PLOTS / f"supernet_sampling{tag}.png"
    fig.savefig(p, dpi=110, bbox_inches="tight")
    plt.close(fig)
    paths.append(p)
    if search:
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for name, colour in (("evolution", "C0"), ("nsga2", "C3")):
            pts = np.array(search["points"][name])
            ax.scatter(pts[:, 0], 100 * pts[:, 1], s=8, alpha=0.5, color=colour, label=name)
        for t in targets:
            ax.axvline(t, color="k", ls=":", lw=0.8)
        ax.set(xlabel=f"predicted latency on {ctx.s.device} (ms)", ylabel="holdout top-1 (%)",
               title="subnets scored: evolution (3 targets) vs NSGA-II, same budget")
        ax.legend()
        p = PLOTS / f"supernet_nsga_vs_evolution{tag}.png"
        fig.savefig(p, dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(p)
    return paths


def shapes_samples(spec: str, path: Path, per_class: int = 2) -> Path:
    """The first images of each class, a row of classes per texture: what the data looks like."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwnas.data.procedural import SHAPES, generate, parse_spec
    from hwnas.home import export_cache

    shapes = parse_spec(spec)
    images, labels = generate(shapes, export_cache())
    names = shapes.class_names()
    cols = len(SHAPES)
    rows = -(-shapes.classes // cols) * per_class
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.95), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for c in range(shapes.classes):
        idx = np.flatnonzero(labels == c)[:per_class]
        for k, i in enumerate(idx):
            ax = axes[(c // cols) * per_class + k, c % cols]
            ax.imshow(images[i].transpose(1, 2, 0))
            if k == 0:
                ax.set_title(names[c], fontsize=6)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


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
    s, args = parse(argv)
    if s is None:  # --gpu
        md = gpu_throughput(ROOT / "benchmarks" / "out" / "supernet")
        if md and not args.no_write:
            write_section("supernet-gpu", md)
        print(md or "no GPU")
        return 0
    t_start, cpu_start = time.perf_counter(), time.process_time()
    out = args.out / ("quick" if s.quick else "full")
    data = DataSpec(s.data, seed=0).load()
    spec = SpaceSpec(s.preset, (s.resolution,), data.classes)
    space = spec.build()
    table, how = device_table(s, space, out)
    lat_fn = table_latency_fn(table, space)
    rng = np.random.default_rng(0)
    sized = [sample_sized(space, rng, float(rng.random())) for _ in range(400)]

    def q(values, qs):  # three significant digits read better in the report
        return [float(f"{x:.3g}") for x in np.quantile(values, qs)]

    lat, flops = lat_fn(sized), flops_cost_fn(space)(sized)
    levels = (q(lat, LEVEL_QUANTILES), q(flops, LEVEL_QUANTILES))
    targets = q(lat, TARGET_QUANTILES)
    pools = {"latency": build_pools(spec, lat_fn, levels[0], metric="latency",
                                    per_level=s.per_level, seed=0, device=s.device),
             "flops": build_pools(spec, flops_cost_fn(space), levels[1], metric="flops",
                                  per_level=s.per_level, seed=0)}
    ctx = Context(s, out, spec, space, lat_fn, pools, level_refs(pools["latency"]),
                  spread_archs(space, lat_fn, s.kendall_subnets, 0), data)
    ctx.reuse_runs = args.reuse_runs
    ctx.cached_only = args.cached_only
    ctx.command = " ".join(["taskset -c 0 python benchmarks/supernet.py"] + [
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])
    only = set(args.only.split(",")) if args.only else None
    results = []
    for v in VARIANTS:
        if only and v.name not in only:
            continue
        for seed in (s.seeds if v.main else s.ablation_seeds):
            r = run_variant(ctx, v, seed)
            if r is not None:
                results.append(r)
    alone = [] if args.no_kendall else [run_alone(ctx, seed) for seed in s.alone_seeds]
    first = next((r for r in results if r["variant"] == "latency" and r["seed"] == s.seeds[0]),
                 None)
    search = search_comparison(ctx, first["checkpoint"], targets) \
        if first is not None and not args.no_search else None
    paths = plot(ctx, results, search, targets) if not args.no_write else []
    secs = (time.perf_counter() - t_start, time.process_time() - cpu_start)
    md = render(ctx, how, levels, targets, results, alone, search, secs, paths)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(md + "\n")
    (out / "results.json").write_text(json.dumps(
        {"setting": asdict(s), "results": results, "alone": alone,
         "search": {k: v for k, v in (search or {}).items() if k != "points"}}, indent=1,
        default=str))
    if not args.no_write:  # the default data owns "supernet"; another gets its own section
        write_section("supernet" if s.data == Setting.data else f"supernet-{s.data}", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
