"""The any-model workflow as functions: what ``hwnas measure/predict/profile`` call.

::

    from hwnas.anymodel import api
    api.profile_kernels("local-cpu", budget=1500)               # once per device
    out = api.predict("local-cpu", onnx="my_model.onnx")       # without running it there
    print(out.prediction.latency_ms, out.prediction.coverage_line())
    got = api.measure("local-cpu", model="mobilevit-xs")       # end to end, drift-free
    print(got.latency_ms)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from hwnas.anymodel.model import ModelFile, check_fits, load_model
from hwnas.errors import HwnasError, ModelError, PredictorError, ProfileError, TableError

log = logging.getLogger(__name__)
DEFAULT_BUDGET = 2000  # kernels: about 7 CPU minutes on local-cpu (BENCHMARKS.md)
PREDICTOR_KIND = "anymodel"
PREDICTOR_SPACE = "any-model"


# --- which model -----------------------------------------------------------------------------
def _one_source(onnx, tflite, model) -> None:
    given = [n for n, v in (("--onnx", onnx), ("--tflite", tflite), ("--model", model)) if v]
    if len(given) != 1:
        raise ModelError("give exactly one of --onnx FILE, --tflite FILE or --model NAME"
                         + (f" (got {', '.join(given)})" if given else ""))


def resolve(cfg, cache_dir: Path, onnx=None, tflite=None, model=None, input_shape=None,
            fmt: str | None = None) -> ModelFile:
    """The validated model in the format the device runs (``fmt``: onnx or tflite)."""
    from hwnas.anymodel import zoo

    _one_source(onnx, tflite, model)
    from hwnas.devices import kind_of

    kind = kind_of(cfg)
    formats = kind.capabilities(cfg).formats or ("onnx",)
    fmt = fmt or formats[0]
    if onnx and fmt != "onnx":
        raise ModelError(f"{cfg.name} runs TFLite models; give --tflite FILE (or --model NAME "
                         f"for a zoo model) instead of --onnx")
    if tflite and fmt != "tflite":
        raise ModelError(f"{cfg.name} ({kind.name}) takes ONNX; give --onnx FILE "
                         f"(or --model NAME) instead of --tflite")
    if model:
        path = zoo.export(model, fmt, cache_dir)
        return load_model(path, fmt, input_shape, name=model)
    return load_model(onnx or tflite, fmt, input_shape)


# --- measuring -------------------------------------------------------------------------------
@dataclass
class Measured:
    model: ModelFile
    latency_ms: float  # pooled over the passes, drift-free at the device's reference speed
    passes: list  # Pass per pass (records.py)
    records_path: Path
    drift_free: bool


def scale_ms(ctx, kernel_table=None, key: str | None = None) -> float | None:
    """The device's reference ms for ratios to reference ``key`` (default: the kernel table's):
    its block table's, else its kernel table's, each only where it was timed against that
    same reference (a ratio to another reference is in another unit)."""
    from hwnas import api as core
    from hwnas.profilers.reference import same_reference

    kt_key = (kernel_table.reference or {}).get("key") if kernel_table is not None else None
    key = key or kt_key
    ms = core.reference_scale_ms(ctx, key=key)
    if ms is None and kernel_table is not None and same_reference(kt_key, key):
        ms = kernel_table.reference_ms
    return ms


def measure(device: str, onnx=None, tflite=None, model=None, input_shape=None,
            passes: int = 1, home: Path | None = None, progress: bool = True,
            serials: tuple[str, ...] = (), **overrides) -> Measured:
    """Measure a model file or zoo model end to end on ``device`` into its records."""
    import numpy as np

    from hwnas import api as core
    from hwnas.home import export_cache
    from hwnas.latency.records import Pass, Records
    from hwnas.profilers.drift import network_meta
    from hwnas.profilers.reference import REFERENCE_KEY, check_records_reference

    if passes < 1:
        raise HwnasError(f"--passes must be at least 1, not {passes}")
    ctx = core.context(device, home=home, **overrides)
    cache = export_cache(home)
    mf = resolve(ctx.cfg, cache, onnx, tflite, model, input_shape)
    check_fits(mf, device, _host_memory_bytes(ctx.cfg))  # a local runtime: before it opens
    # a corrupt records file, or one timed against another reference, fails before measuring
    check_records_reference(Records.load_or_new(ctx.paths.records, device), ctx.paths.records)
    got: list[Pass] = []
    with core._profiler(ctx, serials[:1]) as prof:
        check_fits(mf, device, prof.memory_bytes())
        path = mf.write(cache / "models")
        for _ in range(passes):
            m = _measure_file(prof, ctx.cfg, mf, path, model, onnx or tflite or model)
            got.append(Pass(m.stats, m.ratio, m.reference_ms))
        meta = dict(prof.meta(), **network_meta(prof.plan))
        protocol = prof.protocol()
    records = Records.load_or_new(ctx.paths.records, device)
    records.meta.update(meta, protocol=protocol)
    models = records.meta.setdefault("models", {})
    models[mf.sha256] = {"name": mf.name, "format": mf.format,
                         "input_shape": list(mf.input_shape)}
    for p in got:
        records.add(mf.record_arch(), p)
    records.save(ctx.paths.records)
    scale = scale_ms(ctx, _kernel_table_or_none(ctx), key=REFERENCE_KEY)  # the passes'
    drift_free = got[0].ratio is not None
    if scale is None and drift_free:
        scale = float(np.median([p.reference_ms for p in got]))
    ms = float(np.median([p.ms(scale) for p in got]))
    return Measured(mf, ms, got, ctx.paths.records, drift_free)


def _host_memory_bytes(cfg) -> int | None:
    """This machine's available memory when ``cfg``'s runtime runs here (its kind names this
    machine's CPU), so a model that cannot fit is refused before the profiler opens; None
    for a phone, a board or a GPU, whose profiler says once it is open."""
    from hwnas.anymodel.model import available_memory_bytes
    from hwnas.devices import kind_of

    return available_memory_bytes() if kind_of(cfg).host_cpu(cfg) else None


def _measure_file(prof, cfg, mf: ModelFile, path: Path, zoo_name: str | None,
                  given: str | Path | None = None):
    """See ``_measure_file_as_cached``; an error about the cache copy (``path``) names the
    file the user gave (``given``; the zoo name for a zoo model) instead."""
    try:
        return _measure_file_as_cached(prof, cfg, mf, path, zoo_name)
    except HwnasError as e:
        message = _as_given(str(e), path, given or mf.name)
        if message != str(e):
            e.args = (message,)  # the same error, its own type kept
        raise
    except Exception as e:  # noqa: BLE001 - onnxruntime refusing the model as it runs it
        if not type(e).__module__.startswith("onnxruntime"):
            raise
        raise ModelError(f"onnxruntime cannot run {given or mf.name}: "
                         f"{_runtime_message(e)}") from None


def _runtime_message(e: Exception) -> str:
    """onnxruntime's error without its prefix and source location, on one line."""
    import re

    text = " ".join(str(e).split())
    node = re.search(r"while running (\S+) node", text)
    text = text.split("Status Message: ", 1)[-1]
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"/onnxruntime_src/\S+:\d+ \S+::\S+\([^)]*\)( const)? ", "", text)
    return (f"its {node.group(1)} node: " if node else "") + text[:300]


def _as_given(message: str, cached: Path, given) -> str:
    """``message`` with the cache copy's path (or file name) replaced by the user's file."""
    for shown in (str(cached), cached.name):
        if shown in message:
            return message.replace(shown, str(given))
    return message


def _measure_file_as_cached(prof, cfg, mf: ModelFile, path: Path, zoo_name: str | None):
    """One end-to-end measurement with the device's profiler: the file, or, on a device that
    runs torch modules but no model files (eager CUDA), the zoo model built in torch. A file
    such a device cannot run is the profiler's one-line ProfileError."""
    from hwnas.devices import kind_of

    caps = kind_of(cfg).capabilities(cfg)
    if zoo_name and caps.torch_modules and mf.format not in caps.formats:
        from hwnas.anymodel import zoo

        module, shape = zoo.build(zoo_name)
        return prof.measure_model_full(module, shape)
    return prof.measure_file_full(path, mf.format, mf.input_shape)


# --- kernel profiling ------------------------------------------------------------------------
def kernel_paths(ctx) -> tuple[Path, Path]:
    """(kernel table, fitted any-model predictor) of a device."""
    from hwnas.anymodel.profile import kernel_table_path

    return kernel_table_path(ctx.paths), ctx.paths.predictor(PREDICTOR_KIND)


def _kernel_table_or_none(ctx):
    from hwnas.latency.table import LatencyTable

    path, _ = kernel_paths(ctx)
    return LatencyTable.load(path) if path.exists() else None


def profile_kernels(device: str, budget: int = DEFAULT_BUDGET, nets: int | None = None,
                    seed: int = 0, fresh: bool = False, home: Path | None = None,
                    progress: bool = True, model: str = "rf", serials: tuple[str, ...] = (),
                    **overrides):
    """Sample and measure kernels (and calibration networks) on ``device``, then fit and save
    the any-model predictor. Returns the ProfileReport."""
    from hwnas import api as core
    from hwnas.anymodel.graph import runtime_of
    from hwnas.anymodel.profile import profile_kernels as run
    from hwnas.home import export_cache

    if budget < 1:
        raise ProfileError(f"--budget must be a positive number of kernels, not {budget}")
    if len(serials) > 1:
        raise ProfileError("kernel profiling runs on one phone; pass one --serial")
    ctx = core.context(device, home=home, **overrides)
    runtime = runtime_of(ctx.cfg)
    table_path, pred_path = kernel_paths(ctx)
    if fresh:
        table_path.unlink(missing_ok=True)
    with core._profiler(ctx, serials) as prof:
        report = run(prof, runtime, table_path, export_cache(home), budget, nets=nets,
                     seed=seed, progress=progress, threads=ctx.cfg.threads)
    fit_predictor(ctx, report.table, model)
    return report


# --- predicting ------------------------------------------------------------------------------
def fit_predictor(ctx, table, model: str = "rf", previous=None, kinds=()):
    """Fit the per-kind regressors and the overhead model on the kernel table; save them.

    With ``previous`` (the predictor fitted on this table before kernels of ``kinds`` alone
    were added to it), only those kinds' regressors are fitted: each kind's regressor sees its
    own kernels only, so every other kind's is what a full refit would give. The overhead
    model is always refitted (calibration networks the new kinds now cover join its fit), on
    the calibration networks and the device's own measured models (``own_networks``)."""

    from hwnas.anymodel.predictor import AnyModelPredictor, KindRegressors, Overhead
    from hwnas.anymodel.profile import kernel_entries, net_entries, nets_kind
    from hwnas.predictors.persist import save_predictor

    kernels, units = kernel_entries(table)
    if len(kernels) < 3:
        raise TableError(f"the kernel table of {ctx.cfg.name} holds {len(kernels)} kernels; "
                         f"profile more with 'hwnas profile --device {ctx.cfg.name} --kernels'")
    if previous is not None and kinds and previous.regressors.model == model:
        sel = [i for i, k in enumerate(kernels) if k.kind in set(kinds)]
        regs = KindRegressors.from_state(previous.regressors.state())
        regs.kinds_.update(KindRegressors(model, regs.seed).fit(
            [kernels[i] for i in sel], units[sel]).kinds_)
    else:
        regs = KindRegressors(model).fit(kernels, units)
    measured = {k.signature: float(u) for k, u in zip(kernels, units)}
    base = AnyModelPredictor(regs, measured, Overhead(), table.meta["anymodel"]["runtime"])
    records = _own_records(ctx)  # read once: the fit and the stamp
    own = own_networks(ctx, table, records)
    call = float(table.meta.get("call_overhead_ms", 0.0)) / (table.reference_ms or 1.0)
    over, terms = fit_overhead(base, net_entries(table), [(ks, u) for _, ks, u in own], call)
    over = replace(over, nets_kind=nets_kind(table))
    pred = AnyModelPredictor(regs, measured, over, base.runtime)
    _, path = kernel_paths(ctx)
    save_predictor(path, kind=PREDICTOR_KIND, device=ctx.cfg.name, space=PREDICTOR_SPACE,
                   resolutions=[], state=dict(pred.state(),
                                              stamp=_stamp(table, ctx, records)),
                   trained_on=sorted(measured), model=model,
                   holdout={"nets_residual_rmspe": _rmspe(over, *terms),
                            "own_models": [name for name, _, _ in own]},
                   protocol=table.meta.get("protocol"))
    return pred


MIN_OVERHEAD_COVERAGE = 0.97  # of a network's FLOPs: kinds never sampled carry real work


def overhead_terms(base, kernels) -> tuple[float, int, float] | None:
    """(kernels' sum in reference units, kernels dispatched, MB of weights) of a network, as
    the overhead model reads them; None when kinds the kernel table lacks carry its work."""
    p = base.predict(kernels, 1.0, allow_missing=True)  # in reference units
    if p.covered_flops < MIN_OVERHEAD_COVERAGE:
        log.info("a network left out of the overhead fit (%s)", p.coverage_line())
        return None
    return p.kernels_ms, p.dispatched_kernels, p.weight_mb


def fit_overhead(base, synthetic, own=(), call: float = 0.0):
    """The overhead model on the calibration networks and the device's own measured models
    (each [(kernels, units)]), each network weighted alike; returns it and its terms (sums,
    counts, MB, measured) for the residual."""
    from hwnas.anymodel.predictor import Overhead

    synthetic = list(synthetic)
    sums, counts, wmbs, nets, n_own = [], [], [], [], 0
    for i, (ks, units) in enumerate(synthetic + list(own)):
        t = overhead_terms(base, ks)
        if t is None:
            continue
        sums.append(t[0])
        counts.append(t[1])
        wmbs.append(t[2])
        nets.append(units)
        n_own += i >= len(synthetic)
    return Overhead.fit(sums, counts, nets, call, wmbs, n_own), (sums, counts, wmbs, nets)


# Why the device's own measured models join the overhead fit: the overhead model maps a sum of
# kernels to a whole network, and was fitted on synthetic networks only. Across two runs of the
# LiteRT zoo the median model came out +3.8% and then -4.9% (a bootstrap of one run's 20
# synthetic networks moved it by about ±2%), on onnxruntime +6.1%: what a network does to its
# kernels on that machine then, which random networks stand for imperfectly. Models the user
# measured on the device (hwnas measure --onnx/--tflite/--model) are real networks measured
# there; each counts as one more network in the fit, weighted as a synthetic one. Each zoo
# model predicted with the other zoo models in the fit (BENCHMARKS.md, "The latency of any
# model"): onnxruntime within ±5% 28% -> 76%, ±10% 88% -> 96%; LiteRT ±5% 57% -> 64% and
# 43% -> 57%, ±10% 86% -> 93% and 93% -> 93% (two runs). A third run ("... (run3)") gained
# nothing (onnxruntime ±10% 84% -> 84%, LiteRT 93% -> 86%): a help on some runs, not on all.
def own_networks(ctx, table, records=None) -> list[tuple[str, list, float]]:
    """The device's own models measured end to end that can join the overhead fit: drift-free
    passes against the kernel table's reference and protocol, in the format the kernel table's
    runtime runs, the file still in the export cache (hwnas measure keeps it there). Returns
    (name, kernels, reference units: the median of the passes) per model. ``records``: the
    device's records when already read (``_own_records``)."""
    import numpy as np

    from hwnas.anymodel.graph import detect
    from hwnas.anymodel.model import RECORD_SPACE, written_path
    from hwnas.home import export_cache
    from hwnas.profilers.reference import same_reference

    records = _own_records(ctx) if records is None else records
    if records is None:
        return []
    runtime = table.meta["anymodel"]["runtime"]
    fmt = "onnx" if runtime == "onnxruntime" else "tflite"
    protocol = {k: v for k, v in (table.meta.get("protocol") or {}).items()
                if k not in ("kernels", "kernel_runtime")}
    table_key = (table.meta.get("reference") or {}).get("key")
    if records.meta.get("protocol") != protocol or table_key is None \
            or not same_reference(records.reference_key, table_key):
        return []
    names = records.meta.get("models", {})
    out = []
    for rec in records.records:
        arch = rec.arch
        if arch.get("space") != RECORD_SPACE or arch.get("format") != fmt:
            continue
        ratios = [p.ratio.median for p in rec.passes if p.ratio is not None]
        path = written_path(export_cache(ctx.home) / "models", arch["sha256"],
                            arch.get("input_shape", []), fmt)  # where measure wrote it
        if not ratios or not path.exists():
            continue
        name = names.get(arch["sha256"], {}).get("name", arch["sha256"][:16])
        try:
            mf = load_model(path, fmt, name=name)
            g = detect(runtime, mf.data, mf.input_shape, ctx.cfg.threads, name)
        except HwnasError as e:  # a cache file this hwnas cannot read: not a network to fit
            log.info("measured model %s left out of the overhead fit: %s", name, e)
            continue
        out.append((name, list(g.kernels), float(np.median(ratios))))
    return out


def _own_records(ctx):
    from hwnas.latency.records import Records

    if not ctx.paths.records.exists():
        return None
    try:
        return Records.load(ctx.paths.records)
    except HwnasError as e:  # the records' own commands report a bad file; a prediction
        log.info("records left out of the overhead fit: %s", e)  # does not need it
        return None


def _own_stamp(records) -> list:
    """What of the records the overhead fit read: each model-file record and its passes."""
    from hwnas.anymodel.model import RECORD_SPACE

    if records is None:
        return []
    return sorted([r.arch.get("sha256", ""), r.arch.get("format", ""), len(r.passes)]
                  for r in records.records if r.arch.get("space") == RECORD_SPACE)


def _rmspe(over, sums, counts, wmbs, nets) -> float | None:
    import numpy as np

    if not nets:
        return None
    p = np.array([over.apply(s, n, w) for s, n, w in zip(sums, counts, wmbs)])
    m = np.asarray(nets)
    return float(100 * np.sqrt(np.mean(((p - m) / m) ** 2)))


def _stamp(table, ctx=None, records=None) -> list:
    """When a saved predictor is stale: the kernel table, and the device's own measured models
    (which join the overhead fit) when a context is given (``records``: already read)."""
    if ctx is None:
        return [len(table.entries), table.meta.get("updated")]
    records = _own_records(ctx) if records is None else records
    return [len(table.entries), table.meta.get("updated"), _own_stamp(records)]


def load_predictor(ctx, table=None):
    """The device's fitted any-model predictor, refitted when the kernel table changed."""
    from hwnas.anymodel.predictor import AnyModelPredictor
    from hwnas.errors import PredictorError
    from hwnas.latency.table import LatencyTable
    from hwnas.predictors.persist import load_predictor_file

    table_path, path = kernel_paths(ctx)
    if table is None:
        if not table_path.exists():
            raise TableError(f"no kernel table for {ctx.cfg.name} at {table_path}; run "
                             f"'hwnas profile --device {ctx.cfg.name} --kernels' first")
        table = LatencyTable.load(table_path)
    if path.exists():
        try:
            obj = load_predictor_file(path, ctx.cfg.name, PREDICTOR_SPACE)
            if obj["state"].get("stamp") == _stamp(table, ctx):
                return AnyModelPredictor.from_state(obj["state"]), table
        except (PredictorError, TableError, KeyError) as e:
            log.info("refitting the any-model predictor: %s", e)
    return fit_predictor(ctx, table), table


@dataclass
class Predicted:
    model: ModelFile
    prediction: object  # predictor.Prediction
    runtime: str
    n_kernels_table: int
    added: object = None  # missing.Added: kernels of missing kinds timed for this prediction
    overhead_fit: str = ""  # what the overhead model was fitted on, in words


def graph_of(ctx, mf: ModelFile, runtime: str):
    from hwnas.anymodel.graph import detect

    return detect(runtime, mf.data, mf.input_shape, ctx.cfg.threads, mf.name)


def predict(device: str, onnx=None, tflite=None, model=None, input_shape=None,
            allow_missing: bool = False, home: Path | None = None, progress: bool = False,
            **overrides) -> Predicted:
    """Predict a model's latency on ``device`` from its kernels, without running the model
    there. Kernels of kinds the kernel table lacks are timed on the device first, where hwnas
    measures it (anymodel/missing.py; ``Predicted.added`` says what), unless
    ``allow_missing``; elsewhere the prediction refuses, naming them. ``overrides`` are the
    device config's (warm-up, runs) for that timing."""
    from hwnas import api as core
    from hwnas.anymodel import missing
    from hwnas.anymodel.graph import runtime_of
    from hwnas.anymodel.model import available_memory_bytes
    from hwnas.home import export_cache

    ctx = core.context(device, home=home, **overrides)
    runtime = runtime_of(ctx.cfg)
    # the user's file first: a model that cannot fit is refused before anything else is read
    mf = resolve(ctx.cfg, export_cache(home), onnx, tflite, model, input_shape)
    check_fits(mf, "this machine (its graph is read here)", available_memory_bytes())
    pred, table = load_predictor(ctx)
    if table.meta["anymodel"]["runtime"] != runtime:
        raise TableError(f"the kernel table of {device} holds {table.meta['anymodel']['runtime']} "
                         f"kernels, but {device} runs {runtime}; profile it again with --fresh")
    graph = graph_of(ctx, mf, runtime)
    kernels = list(graph.kernels)
    added = None
    kinds = missing.missing_kinds(pred, kernels)
    if kinds and not allow_missing:
        why = missing.why_not(ctx, table)
        if why is not None:  # the prediction's own refusal follows, as it always did
            log.info("kinds %s not timed on %s: %s", ", ".join(kinds), device, why)
        else:
            table_path, _ = kernel_paths(ctx)
            context = (table.meta.get("protocol") or {}).get("kernels", "hot")
            added = missing.time_missing(ctx, graph, kernels, kinds, runtime, table_path,
                                         mf.name, mf.sha256, context, progress=progress)
            if added.base_stamp is not None:
                from hwnas.latency.table import LatencyTable

                before = _stamp(table)
                table = LatencyTable.load(table_path)
                pred = fit_predictor(ctx, table, pred.regressors.model,
                                     previous=pred if added.base_stamp == before else None,
                                     kinds=added.kinds)
            elif added.kinds:  # another process added them meanwhile: its table, refitted
                pred, table = load_predictor(ctx)
    scale = scale_ms(ctx, table)
    try:
        out = pred.predict(kernels, scale, allow_missing=allow_missing)
    except PredictorError as e:
        if added is None or not added.untimed:
            raise
        if added.kinds:  # what was timed stays in the table: say so
            log.warning("%s", added.line())
        why = "; ".join(f"{k}: {w}" for k, w in added.untimed.items())
        raise PredictorError(f"{e} (timing them on {device} failed: {why})") from None
    return Predicted(mf, out, runtime, len(table.entries), added, pred.overhead.fitted_on())
