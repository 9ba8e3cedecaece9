"""The latency of any model: kernel-level prediction scored on a zoo it never saw.

Writes the ``anymodel`` section of BENCHMARKS.md. For each device (local-cpu, then
local-tflite where the models convert):

1. **Kernel profiling** into a fresh home: ``hwnas profile --kernels --budget N`` (sampled
   template kernels and calibration networks only); wall-clock and CPU minutes.
2. **The zoo, predicted** from its kernels by the regressors fitted on those samples: no zoo
   model's measurement goes into training (the predictor is fitted and frozen before any zoo
   model is timed).
3. **The zoo, measured** end to end, drift-free, in ``--passes`` passes in random order.
4. **The additivity ceiling**: every distinct kernel of every zoo model cut out and timed with
   the same protocol as the sampled ones; their sum against the whole network, per family.
   The kernels are timed in each of ``--contexts`` (hot, network: weights evicted, scratch
   warm, input hot; network@MB: network context after a read of MB instead of the default
   read, twice the L2), in random order per model, and additivity is reported per context,
   per family and per kind; on onnxruntime each kind's kernels alone are set against the
   same kernels inside the network (onnxruntime's own profiler over the whole optimized
   graph).
5. Baselines: a FLOPs-linear fit on the same calibration networks the overhead model saw, and
   (optimistic, it sees the zoo) a leave-one-out FLOPs-linear fit on the zoo itself.
6. What a user who measured their other models gets (``hwnas measure`` adds them to the
   overhead fit, anymodel/api.py ``own_networks``): each zoo model predicted with the same
   regressors and the overhead model fitted on the calibration networks and the other zoo
   models (leave-one-out).

``--rescore KEEP --replicates KEEP2`` scores other kept runs beside it, in one table: how
much a whole run (its kernel table, calibration networks and zoo measurements) moves.

Run from the repository root::

    python -m benchmarks.anymodel            # full: see "Run time" below
    python -m benchmarks.anymodel --skip-tflite
    python -m benchmarks.anymodel --skip-cpu --models a,b,c   # LiteRT only, its own section
    python -m benchmarks.anymodel --quick    # smoke run: a few minutes, numbers meaningless

The full run needs ``hwnas[zoo]`` (transformers); without it only hwnas's own models are
scored.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._report import machine_line, write_section  # noqa: E402

HWNAS_MODELS = ("deit-tiny", "mobilenetv2", "edgevit-xxs", "elastic_T1", "elastic_M",
                "vit-resnas-tiny")
QUICK_MODELS = ("mobilenet-v2-0.5-160", "mobilevit-xxs", "elastic_T1", "deit-tiny")
QUICK_TFLITE_MODELS = ("mobilenet-v2-0.5-160",)
MAX_TENSOR_BYTES = 1 << 30  # a converted graph with a bigger tensor is reported, not timed


@dataclass
class ZooResult:
    name: str
    family: str
    gflops: float
    kernels: int
    predicted_units: float = math.nan
    covered_flops: float = 1.0
    measured_units: list = field(default_factory=list)
    kernel_sum_units: float = math.nan
    weight_mb: float = 0.0  # the kernels' weights (the overhead model's memory term)
    untimed: int = 0  # kernels the timer refused (no activation input, too big): not summed
    error: str = ""
    # the sum of the zoo model's kernels timed in each context (KERNEL_CONTEXTS), with the
    # call overhead once; kernel_sum_units is the one of the kernel table's context
    ctx_sums: dict = field(default_factory=dict)
    # per context, the measured units of the kernels the runtime folds into the next one in a
    # network (LiteRT: a PAD into its VALID convolution; kernels.fused_mask); in ctx_sums too
    fused_sums: dict = field(default_factory=dict)
    dispatched: int = 0  # kernels the network runs (less the fused): the overhead's count
    # (kernels' sum, kernels dispatched, MB of weights) as the overhead model reads them
    # (api.overhead_terms; None: kinds never sampled carry its work)
    terms: tuple | None = None

    @property
    def measured(self) -> float:
        return float(np.median(self.measured_units)) if self.measured_units else math.nan


def zoo_names(args) -> list[str]:
    from hwnas.anymodel import zoo

    if args.models:
        return args.models.split(",")
    if args.quick:
        return [n for n in QUICK_MODELS if zoo.zoo_available() or n in HWNAS_MODELS]
    hf = [e.name for e in zoo.HF] if zoo.zoo_available() else []
    return hf + list(HWNAS_MODELS)


def run_device(device: str, args, home: Path, cache: Path, names: list[str]) -> dict:
    """Profile kernels, predict the zoo, measure it, and time its kernels."""
    from hwnas import api as core
    from hwnas.anymodel import zoo
    from hwnas.anymodel.graph import detect, runtime_of
    from hwnas.anymodel.kernels import fused_mask
    from hwnas.anymodel.model import load_model
    from hwnas.anymodel.predictor import weights_mb
    from hwnas.anymodel.api import fit_predictor, kernel_paths, overhead_terms
    from hwnas.anymodel.profile import (KernelTimer, kernel_entries, net_entries,
                                        profile_kernels, table_summary)
    from hwnas.home import export_cache
    from hwnas.errors import HwnasError
    from hwnas.profilers import make_profiler

    over = dict(warmup=args.warmup, runs=args.runs)
    ctx = core.context(device, home=home, **over)
    runtime = runtime_of(ctx.cfg)
    fmt = "onnx" if runtime == "onnxruntime" else "tflite"
    budget = args.budget if runtime == "onnxruntime" else args.tflite_budget
    contexts = args.contexts.split(",")
    t0, c0 = time.perf_counter(), time.process_time()
    with core._profiler(ctx, ()) as prof:  # api.profile_kernels, with the kernel context
        report = profile_kernels(prof, runtime, kernel_paths(ctx)[0], export_cache(home),
                                 budget, nets=args.nets, progress=True,
                                 threads=ctx.cfg.threads, context=args.kernel_context)
    prof_wall, prof_cpu = time.perf_counter() - t0, time.process_time() - c0
    table = report.table
    pred = fit_predictor(ctx, table)  # frozen from here on: nothing of the zoo in it
    scale = table.reference_ms
    cv = kernel_cv(table)
    # the zoo: export (cached), kernels, prediction
    results, graphs = [], {}
    for name in names:
        e = zoo.get(name)
        try:
            path = zoo.export(name, fmt, cache)
            mf = load_model(path, fmt, name=name)
            g = detect(runtime, mf.data, mf.input_shape, ctx.cfg.threads, name)
        except HwnasError as err:
            results.append(ZooResult(name, e.family, math.nan, 0, error=str(err)[:120]))
            continue
        r = ZooResult(name, e.family, sum(k.flops for k in g.kernels) / 1e9, len(g.kernels),
                      weight_mb=weights_mb(g.kernels))
        huge = max(g.kernels, key=lambda k: max(t.size for t in k.outputs))
        if max(t.size for t in huge.outputs) * 4 > MAX_TENSOR_BYTES:
            # what the converter made of it, not a model to time within this benchmark: one
            # call takes seconds and its kernels, timed alone, do not fit in memory
            r.error = (f"not timed: the converted graph has a {huge.op} with a "
                       f"{max(t.size for t in huge.outputs) * 4 / 2 ** 30:.1f} GiB output "
                       f"{list(huge.outputs[0].shape)}")
            results.append(r)
            continue
        p = pred.predict(list(g.kernels), scale, allow_missing=True)
        r.predicted_units, r.covered_flops = p.latency_ms / scale, p.covered_flops
        r.terms = overhead_terms(pred, list(g.kernels))
        results.append(r)
        graphs[name] = (mf, g)
    # measure whole networks (random order per pass) and every distinct kernel
    rng = np.random.default_rng(0)
    cfg = ctx.cfg
    table_ctx = args.kernel_context
    contexts = [table_ctx] + [c for c in contexts if c != table_ctx]
    by_ctx: dict[str, dict[str, float]] = {c: {} for c in contexts}  # signature -> units
    ms_ctx: dict[str, dict[str, float]] = {c: {} for c in contexts}  # signature -> ms
    units = by_ctx[table_ctx]
    ok = [r for r in results if r.name in graphs]
    # per kind and context: [kernels' units alone, kernels' ms in the network (onnxruntime's
    # own profiler; None on LiteRT, whose XNNPACK delegate runs the graph as one node)]
    kind_add: dict[str, dict[str, list]] = {c: {} for c in contexts}
    with make_profiler(cfg, cache) as prof:
        timers = {c: KernelTimer(prof, runtime, *context_of(c)) for c in contexts}
        timer = timers[table_ctx]
        for _ in range(args.passes):
            for i in rng.permutation(len(ok)):
                r = ok[i]
                mf, g = graphs[r.name]
                m = timer.network(mf.data, mf.input_shape)
                r.measured_units.append(m.ratio.median)
        per_kind: dict[str, list] = {}
        order = np.random.default_rng(1)  # contexts in random order per model: none always first
        for r in ok:
            mf, g = graphs[r.name]
            innet = node_ms(g, mf.input_shape, ctx.cfg.threads) if runtime == "onnxruntime" \
                else {}
            kinds_ok = [k for k in g.kernels if k.view or k.kind in pred.kinds]
            predicted = dict(zip([id(k) for k in kinds_ok], pred.kernel_units(kinds_ok)))
            fused = {id(k) for k, f in zip(g.kernels, fused_mask(g.kernels)) if f}
            r.dispatched = len(g.kernels) - len(fused)
            for c in (contexts[i] for i in order.permutation(len(contexts))):
                total, untimed, got = 0.0, 0, by_ctx[c]
                r.fused_sums[c] = 0.0
                for k in g.kernels:
                    if k.view:
                        continue
                    if k.signature not in got:
                        try:
                            m = timers[c].kernel(g, k)
                            got[k.signature] = m.ratio.median
                            ms_ctx[c][k.signature] = max(m.stats.median_ms, 0.0)
                        except HwnasError:
                            got[k.signature] = math.nan
                    if not np.isfinite(got[k.signature]):  # refused (the timer said why)
                        untimed += 1
                        continue
                    total += got[k.signature]
                    if id(k) in fused:
                        r.fused_sums[c] += got[k.signature]
                    # [units alone, ms alone, ms in the network, kernels]
                    add = kind_add[c].setdefault(k.kind, [0.0, 0.0, 0.0, 0])
                    add[0] += got[k.signature]
                    add[1] += ms_ctx[c][k.signature]
                    add[2] += innet.get(k.name, 0.0)  # 0: not reported (LiteRT)
                    add[3] += 1
                    if c == table_ctx:
                        row = per_kind.setdefault(k.kind, [0.0, 0.0, 0])
                        row[0] += got[k.signature]
                        row[1] += predicted.get(id(k), math.nan)
                        row[2] += 1
                r.ctx_sums[c] = total + prof.call_overhead_ms / scale
                if c == table_ctx:
                    r.kernel_sum_units, r.untimed = r.ctx_sums[c], untimed
        drift = kernel_drift(table, timer, runtime, ctx.cfg.threads)
    if args.keep:  # the zoo's measurements, for studying the predictor offline
        (home / "zoo_measured.json").write_text(json.dumps({
            "kernel_units": units, "kernel_units_by_context": by_ctx, "kernel_ms": ms_ctx,
            "kind_additivity": kind_add, "call_overhead_units": prof.call_overhead_ms / scale,
            "networks": {r.name: r.measured_units for r in ok}}, indent=0))
    nets = net_entries(table)
    return {"device": device, "runtime": runtime, "budget": budget, "results": results,
            "summary": table_summary(table), "prof_wall": prof_wall, "prof_cpu": prof_cpu,
            "measured_now": report.measured_now,
            "scale": scale, "overhead": pred.overhead, "cv": cv,
            "nets": [(sum(k.flops for k in ks) / 1e9, u) for ks, u in nets],
            "kernels_measured": len(units), "version": table.meta.get("runtime_version", "?"),
            "per_kind": per_kind, "drift": drift, "contexts": contexts,
            "kind_add": kind_add,
            "n_sampled": len(kernel_entries(table)[0]), **_own_fit_inputs(pred, table)}


def _own_fit_inputs(pred, table) -> dict:
    """What the leave-one-out row needs: the calibration networks' overhead terms and measured
    units, and the call overhead in reference units (as api.fit_predictor reads them)."""
    from hwnas.anymodel.api import overhead_terms
    from hwnas.anymodel.profile import net_entries

    return {"net_terms": [(overhead_terms(pred, ks), u) for ks, u in net_entries(table)],
            "call_units": float(table.meta.get("call_overhead_ms", 0.0))
            / (table.reference_ms or 1.0)}


DEVICES = {"home-cpu": ("local-cpu", "anymodel",
                        "The latency of any model: kernels predicted, zoo measured"),
           "home-tflite": ("local-tflite", "anymodel-tflite",
                           "The latency of any model on LiteRT (local-tflite)")}


def rescore_device(keep: Path, home_dir: str, cache: Path) -> tuple[str, str, dict]:
    """A kept run scored again, nothing timed: the predictor is refitted with this code on the
    kept kernel table (sampled kernels and calibration networks, as measured then) and scored
    against the zoo's kept measurements (networks and their kernels, every context). The zoo's
    graphs are read from the export cache the run used; one that is not there is an error, not
    a new export (a new conversion need not be the graph that was timed)."""
    import datetime as dt
    import pickle

    from hwnas import api as core
    from hwnas.anymodel import zoo
    from hwnas.anymodel.api import fit_predictor, kernel_paths, overhead_terms
    from hwnas.anymodel.graph import detect, runtime_of
    from hwnas.anymodel.kernels import fused_mask
    from hwnas.anymodel.model import load_model
    from hwnas.anymodel.predictor import weights_mb
    from hwnas.anymodel.profile import kernel_entries, net_entries, table_summary
    from hwnas.latency.table import LatencyTable

    device, section, title = DEVICES[home_dir]
    home = keep / home_dir
    zpath = home / "zoo_measured.json"
    kept = json.loads(zpath.read_text())
    when = dt.datetime.fromtimestamp(zpath.stat().st_mtime, dt.timezone.utc)
    old = {}
    if (keep / f"{section}.result.pkl").exists():
        old = pickle.loads((keep / f"{section}.result.pkl").read_bytes())
    ctx = core.context(device, home=home)
    runtime = runtime_of(ctx.cfg)
    fmt = "onnx" if runtime == "onnxruntime" else "tflite"
    table = LatencyTable.load(kernel_paths(ctx)[0])
    pred = fit_predictor(ctx, table)
    scale = table.reference_ms
    # keyed by what was timed (a signature's hash: op, attributes and shapes), not by its kind
    # prefix: a kind this code splits (LiteRT's large depthwise convolutions) is the same kernel
    by_ctx = {c: {sig.split(":", 1)[-1]: u for sig, u in got.items()}
              for c, got in kept["kernel_units_by_context"].items()}
    contexts = list(by_ctx)  # the kernel table's context first, as run_device wrote them
    call = kept["call_overhead_units"]
    results, per_kind = [], {}
    for name, measured in kept["networks"].items():
        e = zoo.get(name)
        path = Path(cache) / "zoo" / f"{name}-{zoo.cache_key(name, fmt, 0)}.{fmt}"
        if not path.exists():
            raise SystemExit(f"rescore: {path} is not in the cache the run used (--cache)")
        mf = load_model(path, fmt, name=name)
        g = detect(runtime, mf.data, mf.input_shape, ctx.cfg.threads, name)
        r = ZooResult(name, e.family, sum(k.flops for k in g.kernels) / 1e9, len(g.kernels),
                      weight_mb=weights_mb(g.kernels), measured_units=list(measured))
        p = pred.predict(list(g.kernels), scale, allow_missing=True)
        r.predicted_units, r.covered_flops = p.latency_ms / scale, p.covered_flops
        r.terms = overhead_terms(pred, list(g.kernels))
        kinds_ok = [k for k in g.kernels if k.view or k.kind in pred.kinds]
        predicted = dict(zip([id(k) for k in kinds_ok], pred.kernel_units(kinds_ok)))
        fused = {id(k) for k, f in zip(g.kernels, fused_mask(g.kernels)) if f}
        r.dispatched = len(g.kernels) - len(fused)
        for c in contexts:
            total, untimed, r.fused_sums[c] = 0.0, 0, 0.0
            for k in g.kernels:
                u = by_ctx[c].get(k.signature.split(":", 1)[-1], math.nan) if not k.view \
                    else 0.0
                if k.view:
                    continue
                if not np.isfinite(u):
                    untimed += 1
                    continue
                total += u
                if id(k) in fused:
                    r.fused_sums[c] += u
                if c == contexts[0]:
                    row = per_kind.setdefault(k.kind, [0.0, 0.0, 0])
                    row[0] += u
                    row[1] += predicted.get(id(k), math.nan)
                    row[2] += 1
            r.ctx_sums[c] = total + call
            if c == contexts[0]:
                r.kernel_sum_units, r.untimed = r.ctx_sums[c], untimed
        results.append(r)
    o = old.get("res", {})
    s = table_summary(table)
    res = {"device": device, "runtime": runtime, "budget": o.get("budget", s["kernels"]),
           "results": results, "summary": s, "prof_wall": o.get("prof_wall", 60 * s["minutes"]),
           "prof_cpu": o.get("prof_cpu", math.nan), "measured_now": o.get("measured_now", 0),
           "scale": scale, "overhead": pred.overhead, "cv": kernel_cv(table),
           "nets": [(sum(k.flops for k in ks) / 1e9, u) for ks, u in net_entries(table)],
           "kernels_measured": len(by_ctx[contexts[0]]),
           "version": table.meta.get("runtime_version", "?"), "per_kind": per_kind,
           "drift": o.get("drift", []), "contexts": contexts,
           "kind_add": kept["kind_additivity"], "n_sampled": len(kernel_entries(table)[0]),
           **_own_fit_inputs(pred, table),
           "rescored": {"kept": str(keep), "measured": when.strftime("%Y-%m-%d %H:%M UTC"),
                        "argv": old.get("argv")}}
    return section, title, res


def node_ms(g, input_shape, threads: int, runs: int = 20) -> dict[str, float]:
    """onnxruntime's own per-node times of the optimized graph run as a whole (its profiler,
    median of ``runs`` calls after 5 warm-ups): what each kernel takes inside the network."""
    import onnxruntime as ort

    from hwnas.anymodel.ort import session_options

    with tempfile.TemporaryDirectory() as tmp:
        so = session_options(threads)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # optimized
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "profile")
        sess = ort.InferenceSession(g.optimized.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal(tuple(input_shape)).astype(np.float32)
        feed = {sess.get_inputs()[0].name: x}
        for _ in range(5 + runs):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    per: dict[str, list] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per.setdefault(e["name"][:-len("_kernel_time")], []).append(e["dur"] / 1e3)
    return {k: float(np.median(v[-runs:])) for k, v in per.items()}


def kernel_drift(table, timer, runtime: str, threads: int, n: int = 40) -> list[float]:
    """Sampled kernels timed again after the zoo, over their ratio in the table (timed minutes
    earlier): how far a hot kernel's ratio to the reference moves between profiling and use,
    the predictor's own noise floor on a shared machine. (Our reading of why it moves more than
    a whole network's: the reference and the networks feel a neighbour's pressure on the shared
    cache; a hot kernel running from L2 does not.)"""
    import random

    from hwnas.anymodel import templates as tpl
    from hwnas.anymodel.graph import detect, export_onnx_bytes
    from hwnas.errors import HwnasError

    if runtime != "onnxruntime":
        return []
    samples = list(table.meta["anymodel"]["samples"])
    random.Random(0).shuffle(samples)
    out: list[float] = []
    for smp in samples:
        if len(out) >= n:
            break
        try:
            module, shape = tpl.build(smp["template"], smp["config"])
            g = detect(runtime, export_onnx_bytes(module, [shape]), shape, threads)
        except (HwnasError, RuntimeError, ValueError):
            continue
        # the sample's dearest measured kernel: cheap ones sit at the timer's noise floor
        ks = [k for k in g.kernels if not k.view and k.signature in table.ratios]
        if not ks:
            continue
        k = max(ks, key=lambda k: table.ratios[k.signature].median)
        try:
            out.append(timer.kernel(g, k).ratio.median / table.ratios[k.signature].median)
        except (HwnasError, RuntimeError, ValueError):
            continue
    return out


def kernel_cv(table, folds: int = 5) -> dict:
    """Per kind, share of held-out sampled kernels within ±10% (5-fold CV), and the count."""
    from hwnas.anymodel.predictor import KindRegressors
    from hwnas.anymodel.profile import kernel_entries

    kernels, units = kernel_entries(table)
    if len(kernels) < 2 * folds:
        return {}
    rng = np.random.default_rng(0)
    fold = rng.integers(0, folds, len(kernels))
    pred = np.full(len(kernels), np.nan)
    for f in range(folds):
        tr, te = fold != f, fold == f
        regs = KindRegressors().fit([k for k, t in zip(kernels, tr) if t], units[tr])
        idx = [i for i in np.where(te)[0] if kernels[i].kind in regs.kinds]
        if idx:
            pred[idx] = regs.predict([kernels[i] for i in idx])[0]
    out = {}
    for kind in sorted({k.kind for k in kernels}):
        idx = [i for i, k in enumerate(kernels) if k.kind == kind and not np.isnan(pred[i])]
        if idx:
            err = np.abs(pred[idx] / units[idx] - 1)
            # weighted by time: a 2 us kernel off by 1 us matters less than a 2 ms one
            w = units[idx] / units[idx].sum()
            out[kind] = (len([k for k in kernels if k.kind == kind]), float(np.mean(err <= 0.1)),
                         float(np.sum(w * (err <= 0.1))), float(np.sum(w * err)))
    return out


# --- scoring ---------------------------------------------------------------------------------
def flops_fit(x, y) -> tuple[float, float]:
    """y ~ a * x + b, least squares on relative errors."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    w = 1 / y
    a = np.column_stack([x, np.ones_like(x)]) * w[:, None]
    coef, *_ = np.linalg.lstsq(a, y * w, rcond=None)
    return float(coef[0]), float(coef[1])


def score(pred, true) -> dict:
    from hwnas.predictors.metrics import score as sc

    p, t = np.asarray(pred, float), np.asarray(true, float)
    keep = np.isfinite(p) & np.isfinite(t) & (p > 0)
    if keep.sum() < 3:
        return {"n": int(keep.sum())}
    return sc(p[keep], t[keep])


def evaluate(res: dict) -> dict:
    rs = [r for r in res["results"] if r.measured_units and np.isfinite(r.predicted_units)]
    true = np.array([r.measured for r in rs])
    fl = np.array([r.gflops for r in rs])
    out = {"rows": rs}
    out["kernels"] = score([r.predicted_units for r in rs], true)
    # the calibration networks are subnets of hwnas's spaces, and hwnas's named models come
    # from the same families: the models from elsewhere alone say whether that flatters
    outside = [i for i, r in enumerate(rs) if not _hwnas_model(r.name)]
    if 3 <= len(outside) < len(rs):
        out["kernels_outside"] = score([rs[i].predicted_units for i in outside], true[outside])
    nets = res["nets"]
    if len(nets) >= 2:
        a, b = flops_fit([g for g, _ in nets], [u for _, u in nets])
        out["flops_nets"] = score(a * fl + b, true)
    loo = []
    for i in range(len(rs)):
        m = np.arange(len(rs)) != i
        a, b = flops_fit(fl[m], true[m]) if m.sum() >= 2 else (math.nan, math.nan)
        loo.append(a * fl[i] + b)
    out["flops_loo"] = score(loo, true)
    if res.get("net_terms"):
        out["own_loo"] = score(own_loo(res, rs, true), true)
    out["ksum"] = score([r.kernel_sum_units for r in rs], true)
    table_ctx = (res.get("contexts") or ["hot"])[0]
    unfused = [r.kernel_sum_units - r.fused_sums.get(table_ctx, 0.0) for r in rs]
    if any(r.fused_sums.get(table_ctx, 0.0) > 0 for r in rs):
        out["ksum_unfused"] = score(unfused, true)
    ov = res["overhead"]
    # as the predictor counts them: the fused kernels neither run nor dispatch
    out["ksum_over"] = score([ov.apply(u, r.dispatched or r.kernels, r.weight_mb)
                              for u, r in zip(unfused, rs)], true)
    fam = {}
    for f in ("convnet", "vit", "hybrid"):
        idx = [i for i, r in enumerate(rs) if r.family == f]
        if idx:
            fam[f] = {"n": len(idx),
                      "pred": score([rs[i].predicted_units for i in idx], true[idx]),
                      "ksum": [rs[i].kernel_sum_units / true[i] - 1 for i in idx],
                      "flops": score([loo[i] for i in idx], true[idx])}
    out["families"] = fam
    out["noise"] = [abs(r.measured_units[0] / r.measured_units[1] - 1) for r in rs
                    if len(r.measured_units) >= 2]
    ratio = np.array([r.predicted_units for r in rs]) / true
    if len(ratio) >= 3:  # how much of the error one factor shared by every model explains
        rest = ratio / np.median(ratio) - 1
        out["shared"] = (100 * (np.median(ratio) - 1), float(np.mean(np.abs(rest) <= 0.1)),
                         float(np.mean(np.abs(rest) <= 0.05)))
    return out


def _hwnas_model(name: str) -> bool:
    from hwnas.anymodel import zoo

    e = zoo.entries().get(name)
    return e is not None and e.source == "hwnas"


def own_loo(res: dict, rs: list, true) -> list[float]:
    """Each zoo model predicted with the overhead model fitted as hwnas fits it on a device
    whose user measured the other zoo models (api.fit_predictor with api.own_networks): the
    calibration networks and the other models, each network weighted alike. The regressors
    are the same; only the overhead model sees the other models."""
    from hwnas.anymodel.predictor import Overhead

    syn = [(t, u) for t, u in res["net_terms"] if t is not None]
    out = []
    for i, r in enumerate(rs):
        others = [(o.terms, true[j]) for j, o in enumerate(rs) if j != i and o.terms]
        pool = syn + others
        if r.terms is None or len(pool) < 4:
            out.append(math.nan)
            continue
        over = Overhead.fit([t[0] for t, _ in pool], [t[1] for t, _ in pool],
                            [u for _, u in pool], res["call_units"], [t[2] for t, _ in pool],
                            len(others))
        out.append(over.apply(*r.terms))
    return out


def goal5_line(noise) -> str:
    """The ±5% goal that the ±10% goal (90% of the zoo) implies, and what the noise floor
    leaves of it. Gaussian per-model errors with 90% within ±10% have sigma = 10 / 1.645 =
    6.1%, which puts 59% within ±5%; a model's measurement has sigma = median pass difference
    / 0.954 (two passes differ by sqrt(2) sigma; median |N(0, 1)| is 0.674), and the
    share the noise alone keeps within ±5% says whether ±5% can be resolved at all."""
    from math import erf, sqrt

    sigma_m = 100 * float(np.median(noise)) / 0.954
    within = erf(5 / (sqrt(2) * sigma_m)) if sigma_m > 0 else 1.0
    return (f"±5% goal: 60% of the zoo (what 90% within ±10% means for Gaussian errors: "
            f"sigma 6.1%, 59% within ±5%); a measurement's own sigma here is "
            f"{sigma_m:.1f}%, which alone keeps {100 * within:.0f}% within ±5%.")


def ranking_line(rows) -> str:
    """The ranking's noise floor: Kendall tau of the measurement's first pass against its
    second (the most a predictor's tau against the pass medians can be expected to reach when
    the zoo holds near-twins, deit-tiny and vit-tiny-patch16 here), and the predictor's order
    on the pairs both passes order alike (the pairs the measurement itself can rank)."""
    from itertools import combinations

    from scipy.stats import kendalltau

    rs = [r for r in rows if len(r.measured_units) >= 2 and np.isfinite(r.predicted_units)]
    if len(rs) < 3:
        return ""
    first = [r.measured_units[0] for r in rs]
    second = [r.measured_units[1] for r in rs]
    alike, agree, wrong = 0, 0, []
    for i, j in combinations(range(len(rs)), 2):
        a, b = np.sign(first[i] - first[j]), np.sign(second[i] - second[j])
        if a == 0 or a != b:
            continue
        alike += 1
        if np.sign(rs[i].predicted_units - rs[j].predicted_units) == a:
            agree += 1
        else:
            gap = 100 * (rs[i].measured / rs[j].measured - 1)
            wrong.append(f"{rs[i].name} / {rs[j].name} ({gap:+.1f}%)")
    pairs = len(rs) * (len(rs) - 1) // 2
    line = (f"Ranking's noise floor: the measurement's own Kendall tau, pass 1 against pass 2, "
            f"is {kendalltau(first, second)[0]:.3f}. Both passes order {alike} of the {pairs} "
            f"pairs alike; the predictor orders {agree} of them so (tau over those pairs "
            f"{(2 * agree - alike) / alike:.3f})" if alike else "")
    return line + (f"; the pairs it orders otherwise (or ties), with their measured gap: "
                   f"{', '.join(wrong)}." if wrong else ".") if line else ""


def drift_line(d: np.ndarray) -> str:
    p10, p50, p90 = np.percentile(d, [10, 50, 90])
    return (f"{100 * (p50 - 1):+.1f}%, p10..p90 {100 * (p10 - 1):+.1f}% .. "
            f"{100 * (p90 - 1):+.1f}%, within ±10%: {100 * np.mean(np.abs(d - 1) <= 0.1):.0f}%")


def _fmt(s: dict, key: str, pct: bool = True) -> str:
    if key not in s:
        return "n/a"
    v = s[key]
    return f"{100 * v:.0f}%" if pct else f"{v:.2f}"


def replicates_lines(reps: list[dict]) -> list[str]:
    """Whole runs of the benchmark (each its own kernel table, zoo measurements and fit),
    scored by this code side by side: ±5% / ±10% / RMSPE / Kendall tau per predictor."""
    def cell(sc):
        return (f"{_fmt(sc, 'within5')} / {_fmt(sc, 'within10')} / {sc['rmspe']:.1f}% / "
                f"{sc['kendall']:.3f}" if sc.get("n", 0) >= 3 else "n/a")

    out = ["Whole runs side by side (each its own kernel table, calibration networks and zoo "
           "measurements, rescored by this code; the first is the one above). ±5% / ±10% / "
           "RMSPE / Kendall tau:", "",
           "| run (kept in) | measured | passes differ (median) | overhead scale | shared "
           "shift | kernels + overhead (hwnas) | the other zoo models measured (LOO) |",
           "|---|---|---|---|---|---|---|"]
    for r in reps:
        ev = evaluate(r)
        noise = f"{100 * np.median(ev['noise']):.1f}%" if ev["noise"] else "n/a"
        shift = f"{ev['shared'][0]:+.1f}%" if ev.get("shared") else "n/a"
        kept = r.get("rescored") or {}
        out.append(f"| `{kept.get('kept', '?')}` | {kept.get('measured', '?')} | {noise} | "
                   f"{r['overhead'].scale:.3f} | {shift} | {cell(ev['kernels'])} | "
                   f"{cell(ev.get('own_loo', {}))} |")
    return out


def render(args, runs: list[dict], title: str) -> str:
    mode = "QUICK SMOKE RUN (tiny budget, few models; not figures to quote)" if args.quick \
        else "full run"
    if args.cpu_clock:
        mode += "; DIAGNOSTIC: thread CPU clock, not wall time"
    when = machine_line()
    kept = runs[0].get("rescored") if runs else None
    if kept:  # nothing was timed by this invocation: say when the measurements were made
        when = when.replace("_Measured ", "_Rescored ", 1).rstrip("._") + (
            f"; every measurement is from {kept['measured']} (the run that kept them in "
            f"`{kept['kept']}`" + (f": `python -m benchmarks.anymodel {' '.join(kept['argv'])}`"
                                  if kept.get("argv") else "") + ")._")
        mode = ("RESCORED from kept measurements: no device timed by this invocation; the "
                "predictor refitted with this code on the kept kernel table and scored against "
                "the zoo's kept measurements")
    if getattr(args, "note", None):  # what the kept run was, beyond its command line
        mode += f". {args.note.rstrip('.')}"
    lines = [f"## {title}", "",
             when, "",
             f"_`python -m benchmarks.anymodel {' '.join(sys.argv[1:])}`: {mode}. Regressors "
             f"trained on sampled kernels only (templates and calibration networks, never a zoo "
             f"model); every zoo model measured end to end, drift-free, {args.passes} "
             f"pass(es) in random order, warm-up {args.warmup}, {args.runs} runs; milliseconds "
             f"are reference units times the kernel table's reference ms._", ""]
    for res in runs:
        ev = evaluate(res)
        s = res["summary"]
        took = (f"in {res['prof_wall'] / 60:.1f} min wall ({res['prof_cpu'] / 60:.1f} min "
                f"CPU; budget {res['budget']})")
        if res.get("rescored"):
            took = (f"in {s['minutes']:.1f} min wall, the table's own account (budget "
                    f"{res['budget']})")
        elif res.get("measured_now", s["kernels"]) < s["kernels"]:  # a kept table, resumed
            took = (f"in {s['minutes']:.1f} min wall, the table's own account (this run "
                    f"resumed a kept table and measured {res['measured_now']} more kernels "
                    f"in {res['prof_wall'] / 60:.1f} min; budget {res['budget']})")
        lines += [f"### {res['device']} ({res['runtime']}, {res['version']})", "",
                  f"**Kernel profiling**: {s['kernels']} kernels of {len(s['kinds'])} kinds "
                  f"and {s['nets']} {s.get('nets_kind', 'calibration')} networks {took}. Reference "
                  f"network {res['scale']:.3f} ms. Overhead model: measured = "
                  f"{res['overhead'].scale:.3f} x kernels + {res['overhead'].per_kernel * res['scale'] * 1e3:.1f} us "
                  f"x kernels + {res['overhead'].per_weight_mb * res['scale']:.3f} ms x MB of "
                  f"weights + {res['overhead'].per_call * res['scale']:.3f} ms "
                  f"(fitted on {res['overhead'].n_networks} {s.get('nets_kind', 'calibration')} "
                  f"networks).", "",
                  "| predictor (n models) | ±5% | ±10% | RMSPE | Kendall tau |",
                  "|---|---|---|---|---|"]
        for label, key in (("**kernels + overhead (hwnas)**", "kernels"),
                           ("kernels + overhead, the models not from hwnas's own families "
                            "(the calibration networks' spaces)", "kernels_outside"),
                           ("kernels + overhead, the other zoo models measured on the device "
                            "(leave-one-out: `hwnas measure` adds them to the overhead fit)",
                            "own_loo"),
                           ("FLOPs-linear, fitted on the calibration networks", "flops_nets"),
                           ("FLOPs-linear, leave-one-out on the zoo (sees the zoo)",
                            "flops_loo"),
                           ("sum of *measured* kernels (additivity ceiling)", "ksum"),
                           ("sum of measured kernels less the fused ones (LiteRT: PADs "
                            "XNNPACK folds into their convolution)", "ksum_unfused"),
                           ("sum of measured kernels (less the fused) + overhead model",
                            "ksum_over")):
            sc = ev.get(key, {})
            if sc.get("n", 0) < 3:
                continue
            lines.append(f"| {label} ({sc['n']}) | {_fmt(sc, 'within5')} | "
                         f"{_fmt(sc, 'within10')} | {sc['rmspe']:.1f}% | "
                         f"{sc['kendall']:.3f} |")
        noise = ev["noise"]
        if noise:
            lines += ["", f"Noise floor: the two passes of a model differ by "
                          f"{100 * np.median(noise):.1f}% (median), "
                          f"{100 * np.max(noise):.1f}% (max). " + goal5_line(noise)]
        ranking = ranking_line(ev["rows"])
        if ranking:
            lines += ["", ranking]
        drift = np.asarray(res.get("drift", []))
        if len(drift):
            lines += ["", f"Kernel drift: {len(drift)} sampled kernels timed again after the "
                          f"zoo, over their ratio in the table from the profiling minutes "
                          f"before: median {drift_line(drift)}. The predictor is built from "
                          f"those ratios, so this is its noise floor on this machine."]
        shared = ev.get("shared")
        if shared:
            lines += ["", f"Shared shift: the median model is predicted {shared[0]:+.1f}% off. "
                          f"With that one factor removed (an oracle; not a result), ±10% would "
                          f"be {100 * shared[1]:.0f}% and ±5% {100 * shared[2]:.0f}%: the rest is "
                          f"per-model error."]
        if len(res.get("replicates", [])) > 1:
            lines += ["", *replicates_lines(res["replicates"])]
        lines += ["", "Per family (kernels + overhead vs FLOPs leave-one-out; additivity = sum "
                      "of measured kernels / measured network - 1):", "",
                  "| family | n | ±10% (hwnas) | RMSPE (hwnas) | ±10% (FLOPs LOO) | "
                  "additivity min / median / max |", "|---|---|---|---|---|---|"]
        for f, d in ev["families"].items():
            ks = np.asarray(d["ksum"])
            lines.append(f"| {f} | {d['n']} | {_fmt(d['pred'], 'within10')} | "
                         f"{d['pred'].get('rmspe', math.nan):.1f}% | "
                         f"{_fmt(d['flops'], 'within10')} | {100 * ks.min():+.1f}% / "
                         f"{100 * np.median(ks):+.1f}% / {100 * ks.max():+.1f}% |")
        lines += additivity_lines(res, ev["rows"])
        lines += ["", "| model | family | GFLOPs | kernels | measured ms | predicted ms | "
                      "error | sum of measured kernels | covered FLOPs |",
                  "|---|---|---|---|---|---|---|---|---|"]
        sc = res["scale"]
        for r in res["results"]:
            if r.error or not r.measured_units:
                lines.append(f"| {r.name} | {r.family} | | | | | | | "
                             f"{r.error or 'not measured'} |")
                continue
            lines.append(f"| {r.name} | {r.family} | {r.gflops:.2f} | {r.kernels} | "
                         f"{r.measured * sc:.2f} | {r.predicted_units * sc:.2f} | "
                         f"{100 * (r.predicted_units / r.measured - 1):+.1f}% | "
                         f"{r.kernel_sum_units * sc:.2f} "
                         f"({100 * (r.kernel_sum_units / r.measured - 1):+.1f}%"
                         f"{f'; {r.untimed} untimed' if r.untimed else ''}) | "
                         f"{100 * r.covered_flops:.0f}% |")
        kinds = sorted(res["per_kind"].items(), key=lambda kv: -kv[1][0])[:16]
        if kinds:
            lines += ["", "Where the predictor errs: per kernel kind, summed over every zoo model "
                          "(ms at the reference speed; the zoo's kernels measured one by one, "
                          "as in the additivity column, against the regressors' predictions):",
                      "", "| kind | kernels | measured ms | predicted ms | error |",
                      "|---|---|---|---|---|"]
            for kind, (meas, prd, n) in kinds:
                err = f"{100 * (prd / meas - 1):+.1f}%" if meas > 0 and np.isfinite(prd) \
                    else "n/a"
                lines.append(f"| {kind} | {n} | {meas * sc:.2f} | {prd * sc:.2f} | {err} |")
        if res["cv"]:
            top = sorted(res["cv"].items(), key=lambda kv: -kv[1][0])[:14]
            lines += ["", "Kernel regressors, 5-fold CV on the sampled kernels, per kind: "
                          "samples, share within ±10% (plain / weighted by time), mean error "
                          "weighted by time: " +
                      "; ".join(f"{k} {n}, {100 * v:.0f}%/{100 * wv:.0f}%, {100 * we:.0f}%"
                                for k, (n, v, wv, we) in top) + "."]
        lines.append("")
    return "\n".join(lines)


CONTEXT_RE = r"hot|network(@\d+(\.\d+)?)?"  # --contexts: network@MB, a read of MB


def context_of(label: str) -> tuple[str, int | None]:
    """(kernel context, eviction read in bytes or None: the runtime's default) of a
    --contexts label: hot, network, or network@MB (network context after a read of MB)."""
    base, _, mb = label.partition("@")
    return base, (int(float(mb) * (1 << 20)) if mb else None)


def context_label(label: str) -> str:
    base, read = context_of(label)
    return label if read is None else f"{base}, read {label.partition('@')[2]} MB"


def additivity_lines(res: dict, rows) -> list[str]:
    """Additivity in each kernel context: per family (sum of a model's kernels timed alone
    over its network measured, - 1) and per kind (the zoo's kernels of the kind timed alone
    over the same kernels inside the network, where the runtime reports them)."""
    contexts = res.get("contexts") or []
    if not contexts:
        return []
    lines = ["", "Additivity by kernel context (hot: an untimed call before each timed one; "
                 "network: weights evicted by a read of twice the L2 (on onnxruntime, of "
                 "24 MB before 2026-12-07 21:00), a twin run to warm code and scratch, inputs "
                 "touched; network, read N MB: the same after a read of N MB). Sum of the "
                 "model's kernels timed alone, plus one call overhead, over the network "
                 "measured, - 1; share of models within ±10%, then min / "
                 "median / max per family:", "",
             "| context | n | within ±10% | " + " | ".join(
                 f"{f} min / median / max" for f in ("convnet", "vit", "hybrid")) + " |",
             "|---|---|---|---|---|---|"]
    def row(label: str, errs: dict) -> str:
        cells = []
        for f in ("convnet", "vit", "hybrid"):
            e = np.array([errs[r.name] for r in rows if r.family == f and r.name in errs])
            cells.append(f"{100 * e.min():+.1f}% / {100 * np.median(e):+.1f}% / "
                         f"{100 * e.max():+.1f}%" if len(e) else "")
        within = np.mean(np.abs(np.array(list(errs.values()))) <= 0.1)
        return f"| {label} | {len(errs)} | {100 * within:.0f}% | " + " | ".join(cells) + " |"

    for c in contexts:
        errs = {r.name: r.ctx_sums[c] / r.measured - 1 for r in rows if c in r.ctx_sums}
        if not errs:
            continue
        lines.append(row(context_label(c), errs))
        if any(r.fused_sums.get(c, 0.0) > 0 for r in rows):
            lines.append(row(f"{context_label(c)}, less the fused",
                             {r.name: (r.ctx_sums[c] - r.fused_sums.get(c, 0.0)) / r.measured - 1
                              for r in rows if c in r.ctx_sums}))
    kinds = res["kind_add"][contexts[0]]
    top = sorted(kinds, key=lambda k: -kinds[k][1])[:18]
    innet = any(kinds[k][2] > 0 for k in top)
    head = "| kind | kernels | " + " | ".join(f"ms alone ({context_label(c)})" for c in contexts)
    if innet:
        head += " | ms in the network | " + " | ".join(f"{context_label(c)} / in network"
                                                      for c in contexts)
    lines += ["", "Per kind, summed over the zoo (every kernel of every model, ms as timed" +
              ("; in the network: onnxruntime's profiler over the whole optimized graph, "
               "median of 20 calls" if innet else "; LiteRT runs the graph as one XNNPACK "
               "node, so it reports no per-kernel time inside the network") + "):", "",
              head + " |", "|" + "---|" * (head.count("|"))]
    for k in top:
        row = [f"{res['kind_add'][c].get(k, [0, math.nan])[1]:.2f}" for c in contexts]
        line = f"| {k} | {kinds[k][3]} | " + " | ".join(row)
        if innet:
            net = kinds[k][2]
            line += (f" | {net:.2f} | " if net > 0 else " | n/a | ") + " | ".join(
                f"{100 * (res['kind_add'][c][k][1] / net - 1):+.0f}%" if k in res["kind_add"][c]
                and net > 0 else "n/a" for c in contexts)
        lines.append(line + " |")
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke-size run")
    ap.add_argument("--budget", type=int, default=None, help="kernels to profile (local-cpu)")
    ap.add_argument("--tflite-budget", type=int, default=None)
    ap.add_argument("--nets", type=int, default=None, help="calibration networks (subnets of hwnas's spaces)")
    ap.add_argument("--passes", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--models", default=None, help="comma-separated zoo names")
    ap.add_argument("--skip-tflite", action="store_true")
    ap.add_argument("--skip-cpu", action="store_true",
                    help="local-tflite only (its own section: the local-cpu one is kept)")
    ap.add_argument("--kernel-context", default="hot", choices=("hot", "network"),
                    help="how the kernel table's kernels are timed (profile --kernels)")
    ap.add_argument("--contexts", default="hot,network",
                    help="the contexts the zoo's kernels are timed in for the additivity "
                         "check, comma-separated (hot, network, network@MB: network "
                         "context after a read of MB)")
    ap.add_argument("--cache", type=Path, default=None, help="reuse an export cache")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep the devices' kernel tables and records in this folder")
    ap.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    ap.add_argument("--rescore", type=Path, default=None, metavar="KEEP",
                    help="time nothing: refit the predictor with this code on a --keep "
                         "folder's kernel tables and score it against the zoo measurements kept "
                         "there (needs the run's --cache); the section says so, and when")
    ap.add_argument("--section-suffix", default=None, metavar="NAME",
                    help="with --rescore: write the device's section as SECTION-NAME, beside "
                         "the device's own (another run kept side by side in BENCHMARKS.md)")
    ap.add_argument("--note", default=None, metavar="TEXT",
                    help="with --rescore: what the kept run was, said in the section")
    ap.add_argument("--replicates", default=None, metavar="KEEP[,KEEP]",
                    help="with --rescore: other kept runs of the same benchmark, scored with "
                         "this code beside it in one table (how much a whole run moves)")
    ap.add_argument("--cpu-clock", action="store_true",
                    help="DIAGNOSTIC: time with the thread's CPU clock instead of the wall "
                         "clock, to see through a busy neighbour's time slices on a shared "
                         "machine (not what hwnas measures; never written to BENCHMARKS.md)")
    args = ap.parse_args(argv)
    args.replicates = [Path(k) for k in args.replicates.split(",") if k] \
        if args.replicates else []
    if args.replicates and not args.rescore:
        ap.error("--replicates goes with --rescore (kept runs scored beside it)")
    if args.note is not None and not args.rescore:
        ap.error("--note goes with --rescore")
    if args.section_suffix is not None and (not args.rescore or not re.fullmatch(
            r"[a-z0-9][a-z0-9-]*", args.section_suffix)):
        ap.error("--section-suffix goes with --rescore, and is lowercase letters, digits and "
                 "dashes")
    bad = [c for c in args.contexts.split(",") if not re.fullmatch(CONTEXT_RE, c)]
    if bad:
        ap.error(f"--contexts: unknown context(s) {', '.join(bad)}; hot, network, or "
                 f"network@MB (network context after a read of MB)")
    if args.cpu_clock:
        import time as _time

        _time.perf_counter_ns = _time.thread_time_ns  # every profiler reads this clock
        args.no_write = True
    q = args.quick
    from hwnas.anymodel.api import DEFAULT_BUDGET

    # what `hwnas profile --kernels` profiles on either runtime, unless told otherwise (LiteRT
    # was scored at 600 and 1200 before; at 2000, runs 5-7 put 100%, 100% and 86% of the zoo
    # within 10%, against 86% and 86% at 1200)
    args.budget = args.budget or (150 if q else DEFAULT_BUDGET)
    args.tflite_budget = args.tflite_budget or (25 if q else DEFAULT_BUDGET)
    args.nets = args.nets if args.nets is not None else (4 if q else None)
    args.passes = args.passes or (1 if q else 2)
    args.warmup = args.warmup or (3 if q else 10)
    args.runs = args.runs or (10 if q else 30)
    if args.rescore:
        if not args.cache:
            ap.error("--rescore needs the --cache the kept run used (the zoo's graphs)")
        homes = [h for h in DEVICES if (args.rescore / h / "zoo_measured.json").exists()
                 and not (h == "home-cpu" and args.skip_cpu)
                 and not (h == "home-tflite" and args.skip_tflite)]
        if not homes:
            ap.error(f"--rescore: no kept zoo measurements (home-*/zoo_measured.json) in "
                     f"{args.rescore}")
        for h in homes:
            section, title, res = rescore_device(args.rescore, h, args.cache)
            res["replicates"] = [res] + [rescore_device(k, h, args.cache)[2]
                                         for k in args.replicates
                                         if (k / h / "zoo_measured.json").exists()]
            if args.section_suffix:  # another run, beside the device's section
                section += f"-{args.section_suffix}"
                title += f" ({args.section_suffix})"
            md = render(args, [res], title)
            print(md)
            if not args.no_write:
                write_section(section, md)
        return
    names = zoo_names(args)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp) / "cache"
        tmp = args.keep or Path(tmp)
        if not args.skip_cpu:
            runs.append(("anymodel", "The latency of any model: kernels predicted, zoo measured",
                         run_device("local-cpu", args, Path(tmp) / "home-cpu", cache, names)))
        if not args.skip_tflite:
            from hwnas.profilers.export import tflite_export_available

            if tflite_export_available():
                tnames = [n for n in names if not q or n in QUICK_TFLITE_MODELS] or names[:1]
                runs.append(("anymodel-tflite", "The latency of any model on LiteRT "
                             "(local-tflite)",
                             run_device("local-tflite", args, Path(tmp) / "home-tflite", cache,
                                        tnames)))
            else:
                print("local-tflite skipped: litert-torch (hwnas[tflite-export]) is not "
                      "installed", file=sys.stderr)
    if args.keep:  # everything a section is written from: --rescore writes it again
        import pickle

        from hwnas.latency.safeio import atomic_write_bytes

        for section, title, res in runs:
            atomic_write_bytes(args.keep / f"{section}.result.pkl", pickle.dumps(
                {"section": section, "title": title, "res": res, "argv": sys.argv[1:],
                 "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}))
    # one section per device, so that a run of one leaves the other's figures in place
    for section, title, res in runs:
        md = render(args, [res], title)
        print(md)
        if not args.no_write:
            write_section(section, md)


if __name__ == "__main__":
    main()
