"""The ``hwnas`` command line. Each command parses its arguments and calls ``hwnas.api``.

Every numeric option is range-checked, and every output path checked, by its click type
(``hwnas.cli.types``) before a command does anything. Whatever escapes a command becomes one
line on stderr and exit 1 (Ctrl-C: 130, saying only what was really saved); ``-vv`` adds the
traceback. That boundary is ``hwnas.cli.boundary.HwnasGroup``, the class of ``cli``.
"""

from __future__ import annotations

import json
import logging

import click

from hwnas import __version__
from hwnas.cli.adb import benchmark_bin_option, serial_option
from hwnas.cli.anymodel import ALLOW_MISSING, BREAKDOWN, INPUT_SHAPE, ONNX, TFLITE
from hwnas.cli.boundary import HwnasGroup
from hwnas.cli.fmt import fmt_ms
from hwnas.cli.types import (POSITIVE, SEED, TEST_FRACTION,
                             OutputPath, check_output, to_stdout)

DEVICE = click.option("--device", "-d", required=True, help="Named device (see 'hwnas devices').")
SPACE_HELP = ("Search space: a registered name, or module:Class for a space of your own "
              "(e.g. my_space:MySpace, or path/to/my_space.py:MySpace).")
SPACE = click.option("--space", default="elasticvit", show_default=True, help=SPACE_HELP)
RESOLUTION = click.option("--resolution", "-r", "resolutions", type=click.IntRange(1, 4096),
                          multiple=True, help="Input resolution(s); default: the device config's.")
JSON = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
# hwnas.predictors.select.CHOICES, repeated so that --help does not import the predictors
PREDICTOR = click.option(
    "--predictor", "predictor_kind",
    type=click.Choice(["auto", "lut", "kernel", "e2e", "fewshot"]),
    default="auto", show_default=True,
    help="Latency predictor: the calibrated LUT, the fitted kernel, e2e or few-shot predictor "
         "('hwnas fit', 'hwnas adapt'), or auto: the fitted one with the best held-out score, "
         "else the LUT.")
ACCEPT_HOST = click.option(
    "--accept-host", is_flag=True,
    help="Use DEVICE's table even though it was measured on another CPU model than this "
         "machine's (a home copied from another machine).")
ARCH_SPACE = click.option("--space", default=None,
                          help="Search space of the arch file (default: the space the file "
                               "names, else elasticvit); a registered name or module:Class.")


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def _load_archs(path, space: str | None):
    """Every architecture in an arch file of any kind hwnas writes (hwnas.archfile)."""
    from hwnas.archfile import load_arch_file

    return load_arch_file(path, space)


def _resolutions(found) -> list[int]:
    """The input resolutions of the architectures in an arch file (what its context covers)."""
    return sorted({found.space.input_shape(a)[-1] for a in found.archs})


@click.group(cls=HwnasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hwnas")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Hardware-aware NAS: profile a device, predict latency, search under a latency target."""
    from hwnas.cli.boundary import LOG_FORMAT, log_to_stderr

    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format=LOG_FORMAT)  # third-party libraries' records
    log_to_stderr(level)


@cli.command()
@DEVICE
@SPACE
@RESOLUTION
@click.option("--fresh", is_flag=True, help="Start a new table instead of resuming.")
@click.option("--context", type=click.Choice(["flush", "isolated"]), default=None,
              help="Time blocks in network-like context (flush) or alone (isolated).")
@click.option("--warmup", type=click.IntRange(0, 100_000), default=None,
              help="Warm-up runs per op (config default).")
@click.option("--runs", type=click.IntRange(1, 1_000_000), default=None,
              help="Timed runs per op (config default).")
@click.option("--batch", type=click.IntRange(1, 65536), default=None,
              help="Batch size (GPU devices; config default).")
@click.option("--precision", type=click.Choice(["fp32", "tf32", "fp16", "bf16"]), default=None,
              help="Precision (GPU devices; config default).")
@click.option("--backend", type=click.Choice(["torch", "ort-cuda", "ort-trt"]), default=None,
              help="GPU runtime (cuda devices; config default).")
@click.option("--model", default=None,
              help="Profile only the blocks of this named reference model (deit-tiny, ...).")
@click.option("--budget", type=POSITIVE, default=None,
              help="Measure only this fraction of the ops (coverage, then where kernel "
                   "regressors are least sure); 'hwnas fit --kind kernel' predicts the rest. "
                   "With --kernels: the number of kernels to measure (default 1500).")
@click.option("--kernels", is_flag=True,
              help="Sample and measure runtime kernels (and calibration networks) for "
                   "predicting any model ('hwnas predict --onnx/--tflite/--model').")
@serial_option
@benchmark_bin_option
@ACCEPT_HOST
def profile(device, space, resolutions, fresh, context, warmup, runs, batch, precision, backend,
            model, budget, kernels, serials, benchmark_bin, accept_host) -> None:
    """Measure every op of the space on DEVICE into its latency table (resumes).

    GPU tables are kept per batch and precision, so --batch 32 --precision fp16 and the
    defaults live side by side. With --kernels, measure the device's runtime kernels instead.
    """
    from hwnas import api
    from hwnas.errors import HwnasError

    if kernels:
        from hwnas.cli.anymodel import profile_kernels

        return profile_kernels(device, budget, fresh, warmup=warmup, runs=runs,
                               serials=tuple(serials), benchmark_bin=benchmark_bin)
    if budget is not None and budget > 1:
        raise HwnasError(f"--budget must be a fraction in (0, 1] of the ops, not {budget:g} "
                         f"(a count of kernels needs --kernels)")
    if model:
        given = [name for name, v in (("--fresh", fresh), ("--budget", budget),
                                      ("--resolution", resolutions), ("--serial", serials),
                                      ("--context", context)) if v]
        if given or space != "elasticvit":
            given += ["--space"] if space != "elasticvit" else []
            raise HwnasError(f"{', '.join(given)} cannot be used with --model (a model's blocks "
                             f"and resolution are its own; its ops are added to the table)")
        table = api.profile_model(device, model, warmup=warmup, runs=runs, batch=batch,
                                  precision=precision, backend=backend,
                                  benchmark_bin=benchmark_bin)
        click.echo(f"{device}: {len(table)} ops in its table (covers {model})")
        return
    ctx = api.context(device, space, resolutions, accept_host=accept_host, context=context,
                      warmup=warmup, runs=runs,
                      batch=batch, precision=precision, backend=backend,
                      benchmark_bin=benchmark_bin)
    table = api.profile(ctx, fresh=fresh, budget=budget, serials=tuple(serials))
    click.echo(f"{device}: {len(table)} ops in {ctx.paths.table} "
               f"(resolutions {table.meta.get('resolutions')})")
    if table.meta.get("budget"):  # the rest is predicted: say how it is completed
        b = table.meta["budget"]
        click.echo(f"profiled {b['measured']} of {b['of']} ops on a budget; kernel regressors "
                   f"predict the rest in search and predict; 'hwnas profile --device {device}' "
                   f"(same space and resolutions) measures them")


@cli.command()
@DEVICE
@ARCH_SPACE
@RESOLUTION
@click.option("--arch", "arch_file", type=click.Path(),
              help="An architecture file: every architecture it holds is measured.")
@click.option("--sample", type=click.IntRange(1, 100_000), default=None,
              callback=lambda ctx, param, n: n or 0,  # absent: 0, none sampled (--arch only)
              help="Measure N subnets stratified by latency (N >= 1; without --sample, only "
                   "the --arch file's).")
@click.option("--passes", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Independent passes over the subnets (for the noise floor).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--warmup", type=click.IntRange(0, 100_000), default=None,
              help="Warm-up runs (config default).")
@click.option("--runs", type=click.IntRange(1, 1_000_000), default=None,
              help="Timed runs per pass (config default).")
@ONNX
@TFLITE
@click.option("--model", default=None,
              help="A zoo model or hwnas named model (see 'hwnas zoo'), measured end to end.")
@INPUT_SHAPE
@serial_option
@benchmark_bin_option
@ACCEPT_HOST
def measure(device, space, resolutions, arch_file, sample, passes, seed, warmup, runs,
            onnx_file, tflite_file, model, input_shape, serials, benchmark_bin,
            accept_host) -> None:
    """Measure whole subnets, or any model (--onnx, --tflite, --model), end to end into
    DEVICE's records file (resumes)."""
    from hwnas import api
    from hwnas.errors import HwnasError

    if onnx_file or tflite_file or model:
        from hwnas.cli.anymodel import measure_any

        return measure_any(device, onnx_file, tflite_file, model, input_shape, passes, warmup,
                           runs, tuple(serials), benchmark_bin)
    if serials or benchmark_bin:
        raise HwnasError("--serial and --benchmark-bin go with --onnx, --tflite or --model here; "
                         "'hwnas profile' takes them for tables")
    if not arch_file and sample <= 0:
        raise HwnasError("give --arch FILE or --sample N")
    archs = []
    if arch_file:
        found = _load_archs(arch_file, space)
        archs, space = list(found.archs), space or found.space.name
        resolutions = resolutions or _resolutions(found)
    ctx = api.context(device, space, resolutions, accept_host=accept_host, warmup=warmup,
                      runs=runs)
    recs = api.measure(ctx, archs, sample=sample, passes=passes, seed=seed)
    for a in archs:
        rec = recs.find(a.to_dict())
        click.echo(f"{fmt_ms(rec.pooled_ms)} (median of {len(rec.passes)} pass(es), drift-free "
                   f"at the device's reference speed)" if rec.passes[0].ratio is not None else
                   f"{fmt_ms(rec.pooled_ms)} (median of {len(rec.passes)} pass(es))")
    click.echo(f"{device}: {len(recs)} subnets in {ctx.paths.records}")


@cli.command(name="import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["nn-meter", "tf-nas", "help"]))
@click.argument("file", type=click.Path())
@DEVICE
@click.option("--force", is_flag=True,
              help="Replace DEVICE's existing table or records (kept as a timestamped backup).")
@click.option("--index", "index_file", type=click.Path(), default=None,
              help="help: the index of the networks (default: str_arch2idx.pt or metainfo.pt "
                   "beside the latency/ folder).")
def import_(fmt, file, device, force, index_file) -> None:
    """Import what others measured for DEVICE: a table (nn-Meter JSON, TF-NAS pickle), or
    whole networks (HELP's <space>/latency/<device>.pt) as its records.

    A table must be one the format's project measured for DEVICE's hardware, and its keys
    must be op keys of the format's space. A DEVICE hwnas does not know yet becomes an
    imported device (a yaml in $HWNAS_HOME/devices). Existing data is replaced only with
    --force.
    """
    from hwnas import api
    from hwnas.errors import HwnasError

    if fmt == "help":
        got = api.import_records("help", file, device, force=force, index=index_file)
        return _echo_records_import(got, file)
    if index_file:
        raise HwnasError("--index is for 'hwnas import help'")

    table = api.import_table(fmt, file, device, force=force)
    flagged = f", {len(table.flags)} flagged (kept as given)" if table.flags else ""
    click.echo(f"{device}: imported {len(table)} entries from {file}{flagged}")
    if table.meta.get("recognised_as"):  # by content (importers.PUBLISHED), not by its name
        click.echo(f"{file} is the published table {table.meta['recognised_as']} (recognised "
                   f"by its sha256)")
    else:  # a file hwnas does not know: imported, with a warning on stderr
        from hwnas.latency.importers import warn_if_unrecognised

        warn_if_unrecognised(table, file, device)
    if "replaced" in table.meta:
        r = table.meta["replaced"]
        click.echo(f"the previous table ({r['was']}) is kept as {r['backup']}")


@cli.command()
@DEVICE
@ARCH_SPACE
@click.option("--arch", "arch_file", type=click.Path(),
              help="An architecture file (any file hwnas writes that holds architectures).")
@click.option("--model", default=None,
              help="A named reference model instead (deit-tiny, mobilenetv2, edgevit-xxs, ...), "
                   "or a zoo model (see 'hwnas zoo').")
@ONNX
@TFLITE
@INPUT_SHAPE
@BREAKDOWN
@ALLOW_MISSING
@click.option("--kernels", "by_kernels", is_flag=True,
              help="Predict a named model from its runtime kernels ('hwnas profile --kernels'), "
                   "as --onnx and --tflite files and zoo models are.")
@click.option("--archs", "archs_file", type=click.Path(), default=None,
              help="Many architectures at once: a CSV with a column 'arch' (what --arch "
                   "takes, as text; native forms too) or JSON lines. Needs --csv.")
@click.option("--csv", "csv_out", type=OutputPath(), default=None,
              help="With --archs: write arch,predicted_ms,predictor, one row per input row.")
@PREDICTOR
@JSON
@ACCEPT_HOST
def predict(device, space, arch_file, model, onnx_file, tflite_file, input_shape, breakdown,
            allow_missing, by_kernels, archs_file, csv_out, predictor_kind, as_json,
            accept_host) -> None:
    """Predict the latency of architectures (or a named model) on DEVICE; or of any model
    (--onnx, --tflite, a zoo --model) from its runtime kernels, without running it there."""
    from hwnas import api
    from hwnas.cli.anymodel import predict_any, wants_any_model
    from hwnas.errors import HwnasError

    if archs_file or csv_out:
        if not (archs_file and csv_out):
            raise HwnasError("--archs FILE and --csv OUT go together")
        if arch_file or model or onnx_file or tflite_file:
            raise HwnasError("--archs is alone: not with --arch, --model, --onnx or --tflite")
        from hwnas.api.batch import predict_file

        got = predict_file(device, archs_file, csv_out, space, predictor_kind)
        err = to_stdout(csv_out)
        ms, sec = got.ms, got.seconds
        click.echo(f"{device}: predicted {got.n} architectures in {sum(sec.values()):.2f} s "
                   f"({float(min(ms)):.4g} to {float(max(ms)):.4g} ms) -> {csv_out}", err=err)
        # the phases apart: reading and parsing grow with the file, prediction is the LUT's rate
        rate = got.n / sec["predict"] if sec.get("predict") else float("inf")
        how = ("compiled LUT on encoded rows" if got.fast else "per-architecture predictor")
        click.echo("time: " + ", ".join(f"{k} {v:.3f} s" for k, v in sec.items())
                   + f"; prediction {rate:,.0f} architectures/s ({how})", err=err)
        click.echo(f"predictor: {got.chosen.describe()}", err=err)
        return

    if wants_any_model(onnx_file, tflite_file, model, input_shape, breakdown, allow_missing,
                       by_kernels):
        if arch_file:
            raise HwnasError("--arch is for subnets; give --onnx, --tflite or --model alone")
        return predict_any(device, onnx_file, tflite_file, model, input_shape, breakdown,
                           allow_missing, as_json)
    if bool(arch_file) == bool(model):
        raise HwnasError("give exactly one of --arch FILE or --model NAME")
    if model:
        ctx, m = api.model_context(device, model)
        archs = [m.arch]
    else:
        found = _load_archs(arch_file, space)
        ctx = api.context(device, space or found.space.name, resolutions=_resolutions(found),
                          accept_host=accept_host)
        archs = list(found.archs)
    table = api.load_table(ctx) if ctx.paths.table.exists() or ctx.live else None
    chosen = api.predictor(ctx, predictor_kind, table, archs)
    predicted = chosen.predict(archs)
    raw = _raw_lut(ctx, table, archs)
    rows = [{"device": device, "predicted_ms": float(p), "predictor": chosen.kind,
             "predictor_detail": chosen.detail,
             "raw_lut_ms": None if r is None else float(r), "macs": ctx.space.macs(a),
             "ops": len(ctx.space.ops(a)), "ops_predicted": _ops_predicted(ctx, table, a),
             "arch": a.to_dict()} for a, p, r in zip(archs, predicted, raw)]
    if as_json:
        return _echo_json(rows[0] if len(rows) == 1 else rows)
    for r in rows:
        lut = f"LUT sum {fmt_ms(r['raw_lut_ms'])}; " if r["raw_lut_ms"] is not None else ""
        filled = (f"; {r['ops_predicted']} of its {r['ops']} ops predicted by kernel "
                  f"regressors, not measured" if r["ops_predicted"] else "")
        click.echo(f"{fmt_ms(r['predicted_ms'])} on {device} ({lut}{r['macs'] / 1e6:.1f} "
                   f"MMACs{filled})")
    click.echo(f"predictor: {chosen.describe()}")


def _echo_records_import(got, file) -> None:
    unit = (f"; values in whole {got.resolution_ms:g} ms steps" if got.resolution_ms else "")
    click.echo(f"{got.device}: imported {got.networks} {got.space} networks from {file} as "
               f"records ({got.path}){unit}")
    if got.device_file:
        click.echo(f"{got.device} is a new imported device ({got.device_file})")
    if got.backup:
        click.echo(f"the previous records are kept as {got.backup}")


def _ops_predicted(ctx, table, arch) -> int:
    """How many of the arch's ops the table lacks (a fitted kernel predictor fills them)."""
    return 0 if table is None else len(table.missing(ctx.space.op_keys(arch)))


def _raw_lut(ctx, table, archs) -> list:
    """The table's plain sum per arch, where the table covers the arch (None elsewhere)."""
    from hwnas.predictors.lut import LUTPredictor

    if table is None:
        return [None] * len(archs)
    lut = LUTPredictor(table, ctx.space, calibrate=False)
    out = []
    for a in archs:
        covered = not table.missing(ctx.space.op_keys(a))
        out.append(float(lut.predict_raw([a])[0]) if covered else None)
    return out


@cli.command()
@ARCH_SPACE
@click.option("--arch", "arch_file", required=True, type=click.Path(),
              help="An architecture file (any file hwnas writes that holds architectures).")
@click.option("--index", type=click.IntRange(0, 10**9), default=None,
              help="Which architecture, when the file holds several (records, pools).")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True)
@click.option("--out", required=True, type=OutputPath())
def export(space, arch_file, index, fmt, out) -> None:
    """Export the static model of an architecture (random weights)."""
    from hwnas import api
    from hwnas.errors import ArchError

    found = _load_archs(arch_file, space)
    if index is None and len(found.archs) > 1:
        raise ArchError(f"{arch_file} ({found.what}) holds {len(found.archs)} architectures; "
                        f"pick one with --index 0..{len(found.archs) - 1}")
    index = index or 0
    if not 0 <= index < len(found.archs):
        raise ArchError(f"--index {index} is outside 0..{len(found.archs) - 1}")
    path = api.export(found.space, found.archs[index], fmt, out)
    click.echo(f"wrote {path}", err=to_stdout(out))


@cli.command()
@DEVICE
@SPACE
@RESOLUTION
@click.option("--target-latency", "target", required=True,
              help="Budget in ms. With --supernet: a list (10,15,20) for every device, or one "
                   "'/'-separated group per device (20,30/10,15).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--out", type=click.Path(),
              help="Write the result as JSON (with --supernet: a folder for arch.json and "
                   "subnet.pt).")
@click.option("--no-remeasure", is_flag=True, help="Skip re-measuring the chosen subnet.")
@click.option("--elasticity", is_flag=True,
              help="TF-NAS's width elasticity: rescale the pick's widths to sit just under the "
                   "target (spaces with elastic widths, e.g. tfnas).")
@click.option("--supernet", type=click.Path(), default=None,
              help="Score candidates by this supernet checkpoint's held-out top-1 instead of "
                   "the MACs proxy (the space comes from the checkpoint).")
@click.option("--data", default=None, help="With --supernet: the dataset (default: the "
              "checkpoint's).")
@click.option("--population", type=click.IntRange(2, 100_000), default=16, show_default=True,
              help="With --supernet: evolution population.")
@click.option("--generations", type=click.IntRange(0, 100_000), default=4, show_default=True,
              help="With --supernet: evolution generations.")
@click.option("--calib-batches", type=click.IntRange(1, 100_000), default=8, show_default=True,
              help="With --supernet: batches for BatchNorm recalibration per candidate.")
@click.option("--max-eval-images", type=click.IntRange(1), default=None,
              help="With --supernet: cap on held-out images per candidate.")
@click.option("--eval-batch-size", type=click.IntRange(1, 65536), default=64, show_default=True)
@click.option("--run-on", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="With --supernet: where to evaluate candidates.")
@click.option("--warmup", type=click.IntRange(0, 100_000), default=None,
              help="Warm-up runs of each measurement on the device (config default).")
@click.option("--runs", type=click.IntRange(1, 1_000_000), default=None,
              help="Timed runs of each measurement on the device (config default).")
@PREDICTOR
@click.option("--pareto", is_flag=True,
              help="With --supernet: NSGA-II (pymoo) on accuracy vs latency (and energy where "
                   "the table has it), one run per device; writes the front.")
@click.option("--budget", type=click.IntRange(min=2, max=1_000_000), default=96,
              show_default=True, help="With --pareto: subnets scored per device.")
@click.option("--full", is_flag=True,
              help="Profile every op of the space first (or complete a table profiled on a "
                   "budget) and calibrate the LUT on 12 subnets, instead of the first search's "
                   "20% of the ops with kernel regressors predicting the rest.")
@click.option("--landing-passes", type=click.IntRange(1, 20), default=2, show_default=True,
              help="Drift-free passes the landing makes of each candidate it measures (more: "
                   "steadier figures on a noisy device, at more time per candidate).")
@JSON
@ACCEPT_HOST
def search(device, space, resolutions, target, seed, out, no_remeasure, elasticity, supernet,
           data, population, generations, calib_batches, max_eval_images, eval_batch_size, run_on,
           warmup, runs, predictor_kind, pareto, budget, full, landing_passes, as_json,
           accept_host) -> None:
    """Find the best subnet whose latency on DEVICE is at or under the target.

    On a device hwnas can measure, the best candidates are measured (drift-free) until one
    lands just under the target; the pick is then re-measured in 3 fresh passes, and its
    latency is the median of every pass made of it.

    The first search on a device profiles 20% of the ops and lets kernel regressors predict the
    rest (it says which); 'hwnas profile' completes the table later, --full profiles it all
    first.

    With --supernet, DEVICE and the target may be lists (one supernet, many devices: one
    arch file per pair in --out, searched through one shared accuracy cache)."""
    from hwnas.cli.supernet import search_many, search_route

    ctx = click.get_current_context()
    _refuse_supernet_only(ctx, supernet, pareto)
    if full and (supernet or pareto):  # a supernet search times nothing of the table's kind
        raise click.UsageError("--full cannot be used with --supernet or --pareto", ctx=ctx)
    if search_route(ctx, device, target, pareto, supernet) == "many":
        if out:
            check_output(out, folder=True, param_hint="'--out'")
        return search_many(ctx, device, target, seed, out, supernet, data, population,
                           generations, calib_batches, max_eval_images, eval_batch_size, run_on,
                           pareto, budget, as_json)
    target = float(target)  # search_route checked it is one positive number
    if out:  # a file (a folder with --supernet): refused now, not after the search
        check_output(out, folder=bool(supernet), param_hint="'--out'")
    if supernet:
        return _search_supernet(device, target, seed, out, no_remeasure, supernet, data,
                                population, generations, calib_batches, max_eval_images,
                                eval_batch_size, run_on, predictor_kind, as_json)
    from hwnas import api
    from hwnas.latency.safeio import atomic_write_text
    from hwnas.search.landing import LandingConfig

    res = api.search(device, target, seed=seed, space=space, resolutions=resolutions,
                     remeasure=not no_remeasure, elasticity=elasticity,
                     predictor_kind=predictor_kind, warmup=warmup, runs=runs,
                     accept_host=accept_host, full=full,
                     landing=LandingConfig(passes=landing_passes))
    best = res.result.best
    doc = res.result.to_dict()
    # "arch" at the top level too: the file is an arch file for every --arch
    doc.update(arch=best.arch.to_dict(), space=space, device=device,
               predicted_ms=best.latency_ms,
               measured_ms=res.measured.median_ms if res.measured else None,
               measured_passes=res.measured.n if res.measured else None,
               remeasured_ms=res.remeasured.median_ms if res.remeasured else None,
               predictor=res.predictor.kind, predictor_detail=res.predictor.detail,
               pareto_plot=str(res.plot) if res.plot else None,
               landing=res.landing.to_dict() if res.landing else None,
               table=res.table, phases_s=res.phases_s)
    if hasattr(best.arch, "to_elasticvit_list"):
        doc["elasticvit_list"] = best.arch.to_elasticvit_list()
    if out:
        atomic_write_text(out, json.dumps(doc, indent=2))
        if to_stdout(out):  # the JSON is the output; a report after it would break a pipe
            return
    if as_json:
        return _echo_json(doc)
    _print_search(doc, target)


# options that only a supernet search reads: given without --supernet they would be ignored,
# and a user who typed --data believes the accuracy of their dataset was searched
_SUPERNET_ONLY = ("data", "population", "generations", "calib_batches", "max_eval_images",
                  "eval_batch_size", "run_on")


def _refuse_supernet_only(ctx: click.Context, supernet, pareto) -> None:
    from click.core import ParameterSource

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)

    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    if not supernet:
        stray = [flag(n) for n in _SUPERNET_ONLY if given(n)]
        if stray:
            raise click.UsageError(f"{', '.join(stray)} only appl{'ies' if len(stray) == 1 else 'y'}"
                                   f" with --supernet (a supernet checkpoint to score candidates)",
                                   ctx=ctx)
    if not pareto and given("budget"):
        raise click.UsageError("--budget only applies with --pareto", ctx=ctx)
    if given("landing_passes") and (supernet or pareto or ctx.params.get("no_remeasure")
                                    or ctx.params.get("elasticity")):
        raise click.UsageError("--landing-passes cannot be used with --supernet, --pareto, "
                               "--elasticity or --no-remeasure: no landing measures candidates "
                               "there", ctx=ctx)


def _passes(doc: dict) -> str:
    """How many passes the pick's figure pools: the 3 fresh ones, and the landing's."""
    n = doc.get("measured_passes") or 3
    return "3 fresh passes" if n <= 3 else f"{n} passes (the landing's {n - 3} and 3 fresh)"


def _search_supernet(device, target, seed, out, no_remeasure, supernet, data, population,
                     generations, calib_batches, max_eval_images, eval_batch_size, run_on,
                     predictor_kind, as_json) -> None:
    from hwnas.search.evolution import EvolutionConfig
    from hwnas.supernet.search import AccuracySearchConfig
    from hwnas.api.supernet import search_from_checkpoint

    cfg = AccuracySearchConfig(
        EvolutionConfig(population=population, generations=generations,
                        parents=max(2, population // 4)),
        batch_size=eval_batch_size, calib_batches=calib_batches,
        max_eval_images=max_eval_images, seed=seed)
    res = search_from_checkpoint(supernet, device=device, target_ms=target,
                                 out_dir=out or f"search-{device}-{target:g}ms", data=data,
                                 cfg=cfg, measure=not no_remeasure,
                                 run_on=None if run_on == "auto" else run_on,
                                 predictor=predictor_kind)
    if res.arch_path is None:  # a non-zero torchrun rank: rank 0 reports
        return
    doc = json.loads(res.arch_path.read_text())
    if as_json:
        return _echo_json(doc)
    click.echo(json.dumps(doc, indent=2))
    click.echo(f"wrote {res.arch_path}")


def _print_search(doc: dict, target: float) -> None:
    best = doc["best"]
    click.echo(f"objective: {doc['objective']}; {doc['evaluated']} subnets evaluated")
    click.echo(f"best architecture: {json.dumps(best['arch'])}")
    if "elasticvit_list" in doc:
        click.echo(f"ElasticViT format: {json.dumps(doc['elasticvit_list'])}")
    click.echo(f"MMACs: {best['score'] / 1e6:.1f}")
    click.echo(f"predictor: {doc['predictor']} ({doc['predictor_detail']})")
    if doc.get("table"):  # a table profiled on a budget: what was measured, what predicted
        t = doc["table"]
        click.echo(f"table:     profiled {t['measured_ops']} of {t['ops']} ops "
                   f"({100 * t['measured_ops'] / t['ops']:.0f}%); the other {t['predicted_ops']} "
                   f"are predicted by kernel regressors; '{t['complete_with']}' completes the "
                   f"table (then searches use the measured LUT)")
    click.echo(f"target:    {fmt_ms(target)}")
    click.echo(f"predicted: {fmt_ms(doc['predicted_ms'])} "
               f"({100 * (doc['predicted_ms'] / target - 1):+.1f}% vs target; the predictor's "
               f"number for this subnet)")
    if doc.get("landing"):
        land = doc["landing"]
        click.echo(f"landing:   {len(land['checked'])} candidates measured in {land['rounds']} "
                   f"round(s); measured / predicted near the target: {land['correction']:.3f}")
        if land.get("landed") is False and land.get("left_window"):
            final = land["final_ms"]
            click.echo(f"NOT LANDED: over all its passes the pick measured {fmt_ms(final)} "
                       f"({100 * (final / target - 1):+.1f}% vs target), outside "
                       f"{100 * (land['window_ms'][0] / target - 1):.0f}%..0%; the landing's "
                       f"passes alone read {fmt_ms(land['measured_ms'])} "
                       f"({100 * (land['measured_ms'] / target - 1):+.1f}%). One pass differs "
                       f"from the next by 1-2% on a busy machine: search again with another "
                       f"--seed, or ask for a slightly "
                       f"{'lower' if final > target else 'higher'} target.")
        elif land.get("landed") is False:
            # near the space's edge the subnets can be too coarse for the window: say so, and
            # show the gap on either side rather than present the pick as on target
            lo, hi = land["window_ms"]

            def side(c) -> str:
                return ("none measured" if c is None else
                        f"{fmt_ms(c['measured_ms'])} ({100 * c['gap']:+.1f}%)")

            click.echo(f"NOT LANDED: no subnet measured within {100 * (lo / target - 1):.0f}%.."
                       f"0% of the target ({fmt_ms(lo)} to {fmt_ms(hi)}); nearest measured "
                       f"below: {side(land['nearest_below'])}, above: "
                       f"{side(land['nearest_above'])}. The pick is the best one measured "
                       f"under the target, not a landing.")
    if doc["measured_ms"] is not None:
        click.echo(f"measured:  {fmt_ms(doc['measured_ms'])} "
                   f"({100 * (doc['measured_ms'] / target - 1):+.1f}% vs target, end to end "
                   f"on {doc['device']}, drift-free, median of {_passes(doc)})")
    plot = f"; plot: {doc['pareto_plot']}" if doc["pareto_plot"] else "; no plot (see the warning)"
    click.echo(f"Pareto set: {len(doc['pareto'])} subnets{plot}")


@cli.command(name="fit")
@DEVICE
@SPACE
@RESOLUTION
@click.option("--kind", required=True,
              type=click.Choice(["flops", "flops+blocks", "lut", "kernel", "e2e", "fewshot"]))
@click.option("--regressor", default=None, help="kernel: rf|gbr|xgb; e2e: xgb|mlp.")
@click.option("--model", "old_regressor", default=None, hidden=True,
              help="The old spelling of --regressor.")
@click.option("--records", "records_path", type=click.Path(), help="Default: DEVICE's records.")
@click.option("--test-fraction", type=TEST_FRACTION, default=0.5, show_default=True,
              help="Share of subnets held out for evaluate (chosen by arch hash).")
@click.option("--proxies", default=None, metavar="A,B,...",
              help="fewshot: the other devices to learn from (default: every device with "
                   "records in the space).")
@ACCEPT_HOST
def fit_(device, space, resolutions, kind, regressor, old_regressor, records_path,
         test_fraction, proxies, accept_host) -> None:
    """Fit a latency predictor on DEVICE's end-to-end records and save it. fewshot: from 5 or
    more of DEVICE's records, together with other devices' records of the space."""
    from hwnas import api
    from hwnas.errors import HwnasError

    if kind == "fewshot":
        if regressor or old_regressor:
            raise HwnasError("--regressor is for kernel and e2e")
        ctx = api.context(device, space, resolutions, accept_host=accept_host)
        names = [n.strip() for n in proxies.split(",") if n.strip()] if proxies else None
        _, rep = api.fit_fewshot(ctx, names, records_path)
        return _echo_fewshot(device, ctx, rep)
    if proxies:
        raise HwnasError("--proxies is for --kind fewshot")

    if old_regressor is not None:
        if regressor is not None:
            raise click.UsageError("give --regressor only (--model is its old spelling)")
        click.echo("hwnas: fit --model is deprecated; use --regressor", err=True)
        regressor = old_regressor
    model = regressor

    ctx = api.context(device, space, resolutions, accept_host=accept_host)
    _, train = api.fit(ctx, kind, model, records_path, test_fraction)
    click.echo(f"{device}: fitted {kind} on {len(train.archs)} subnets -> "
               f"{ctx.paths.predictor(kind)}")


def _echo_fewshot(device, ctx, rep) -> None:
    inputs = ", ".join(f"{k} {w:.2f}" for k, w in sorted(rep.inputs.items(), key=lambda kv: -kv[1])
                       if w >= 0.005)  # weights that round to 0 say nothing
    click.echo(f"{device}: fitted fewshot on {rep.n_target} {ctx.space.name} networks -> "
               f"{ctx.predictor_path('fewshot')}")
    click.echo(f"uses: {inputs} ({rep.chosen})")
    flops = (f"; FLOPs-linear on the same records: {rep.flops_loo_rmspe:.1f}%"
             if rep.flops_loo_rmspe == rep.flops_loo_rmspe else "")
    click.echo(f"leave-one-out: RMSPE {rep.loo_rmspe:.1f}%, {100 * rep.loo_within10:.0f}% "
               f"within ±10%{flops}")


@cli.command()
@DEVICE
@click.option("--space", required=True, help=SPACE_HELP)
@click.option("--samples", type=click.IntRange(5, 10_000), default=10, show_default=True,
              help="Networks to measure on DEVICE (5 or more).")
@click.option("--proxies", default=None, metavar="A,B,...",
              help="The other devices to learn from (default: every device with records in "
                   "the space).")
@click.option("--seed", type=SEED, default=0, show_default=True)
def adapt(device, space, samples, proxies, seed) -> None:
    """Make a predictor for DEVICE from a few measurements: choose SAMPLES networks of SPACE
    spread over what other devices' records know, measure them on DEVICE (drift-free), fit
    the few-shot predictor and print its leave-one-out error. 'hwnas search --device DEVICE
    --space SPACE --target-latency T' then runs on it."""
    from hwnas import api

    names = [n.strip() for n in proxies.split(",") if n.strip()] if proxies else None
    out = api.adapt(device, space, samples, seed, names)
    click.echo(f"{device}: measured {len(out.measured)} {out.space} networks "
               f"({min(ms for _, ms in out.measured):.3g} to "
               f"{max(ms for _, ms in out.measured):.3g} ms; one profiler session)")
    ctx = api.context(device, space)
    _echo_fewshot(device, ctx, out.report)
    click.echo(f"next: hwnas search --device {device} --space {out.space} --target-latency T")


@cli.command()
@DEVICE
@SPACE
@RESOLUTION
@click.option("--predictor", "kind", required=True,
              type=click.Choice(["flops", "flops+blocks", "lut-raw", "lut", "kernel", "e2e"]))
@click.option("--records", "records_path", type=click.Path(), help="Default: DEVICE's records.")
@click.option("--plots", "plots_dir", type=OutputPath(folder=True),
              help="Where to write the PNG plots.")
@JSON
@ACCEPT_HOST
def evaluate(device, space, resolutions, kind, records_path, plots_dir, as_json,
             accept_host) -> None:
    """Score a fitted predictor on held-out subnets, against the noise floor."""
    from pathlib import Path

    from hwnas import api

    ctx = api.context(device, space, resolutions, accept_host=accept_host)
    ev = api.evaluate(ctx, kind, records_path, Path(plots_dir) if plots_dir else None)
    if as_json:
        return _echo_json({"kind": kind, "scores": ev.scores, "noise_floor": ev.noise,
                           "plots": [str(p) for p in ev.plots]})
    rows = [("predictor " + kind, ev.scores)] + ([("noise floor", ev.noise)] if ev.noise else [])
    click.echo(f"{'':<22}{'n':>5}{'±5%':>8}{'±10%':>8}{'RMSE ms':>9}{'RMSPE%':>8}"
               f"{'tau':>7}{'rho':>7}")
    for name, s in rows:
        click.echo(f"{name:<22}{s['n']:>5}{100 * s['within5']:>7.1f}%{100 * s['within10']:>7.1f}%"
                   f"{s['rmse_ms']:>9.3f}{s['rmspe']:>8.2f}{s['kendall']:>7.3f}"
                   f"{s['spearman']:>7.3f}")
    if ev.noise:
        click.echo(f"RMSPE is {ev.scores['rmspe'] / ev.noise['rmspe']:.2f}x the noise floor")
    click.echo("plots: " + (", ".join(str(p) for p in ev.plots) or "none (see the warning)"))


@cli.group()
def records() -> None:
    """End-to-end measurement records."""


@records.command(name="export")
@DEVICE
@click.option("--csv", "csv_path", required=True, type=OutputPath())
def records_export(device, csv_path) -> None:
    """Write DEVICE's records as CSV (one row per subnet, per-pass medians)."""
    from hwnas import api
    from hwnas.latency.records import Records
    from hwnas.latency.safeio import atomic_write_text

    recs = Records.load(api.context(device).paths.records, device)
    atomic_write_text(csv_path, recs.to_frame().to_csv(index=False))
    click.echo(f"wrote {len(recs)} records to {csv_path}", err=to_stdout(csv_path))


@records.command(name="import")
@click.argument("csv_file", metavar="CSV", type=click.Path())
@DEVICE
@click.option("--space", required=True, help=SPACE_HELP)
@click.option("--force", is_flag=True,
              help="Replace DEVICE's existing records (kept as a timestamped backup).")
def records_import(csv_file, device, space, force) -> None:
    """Measurements taken anywhere as DEVICE's records: a CSV with columns arch (what --arch
    takes for SPACE, as text; native forms too) and latency_ms (std_ms, runs optional). A
    DEVICE hwnas does not know yet becomes an imported device."""
    from hwnas import api

    _echo_records_import(api.import_records_csv(csv_file, device, space, force=force), csv_file)


def _register_extra_commands() -> None:
    """Commands that live beside their library (they import only click at load time)."""
    from hwnas.cli.supernet import COMMANDS as SUPERNET_COMMANDS
    from hwnas.cli.table import COMMANDS as TABLE_COMMANDS
    from hwnas.cli.anymodel import COMMANDS as ANYMODEL_COMMANDS
    from hwnas.cli.devices import COMMANDS as DEVICE_COMMANDS

    for cmd in DEVICE_COMMANDS + SUPERNET_COMMANDS + TABLE_COMMANDS + ANYMODEL_COMMANDS:
        cli.add_command(cmd)


_register_extra_commands()


def main(argv=None) -> None:
    """The ``hwnas`` entry point: exits 0, 1 (one line on stderr) or 130 (interrupted)."""
    from hwnas.native_imports import defer_interrupts_during_native_imports

    defer_interrupts_during_native_imports()  # a Ctrl-C inside torch's import is not an abort
    cli.main(args=argv, prog_name="hwnas")

