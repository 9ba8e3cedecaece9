"""The ``hwnas`` command line. Each command parses its arguments and calls ``hwnas.api``.

User errors (HwnasError) print one line on stderr and exit 1; Ctrl-C exits 130 after the
profiler has saved what it measured. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import logging
import sys

import click

from hwnas import __version__
from hwnas.cli_adb import benchmark_bin_option, serial_option

DEVICE = click.option("--device", "-d", required=True, help="Named device (see 'hwnas devices').")
SPACE = click.option("--space", default="elasticvit", show_default=True, help="Search space.")
RESOLUTION = click.option("--resolution", "-r", "resolutions", type=int, multiple=True,
                          help="Input resolution(s); default: the device config's.")
JSON = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def _load_arch(space, path):
    """An architecture file in any form the space has a codec for (hwnas JSON, ElasticViT's
    list, ViTAS rows, a ViT-ResNAS network_def, a TF-NAS config), validated."""
    from pathlib import Path

    from hwnas.errors import ArchError

    try:
        text = Path(path).read_text()
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        raise ArchError(f"cannot read architecture file {path}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = text  # some seeds' formats are Python text (ViT-ResNAS's network_def)
    return space.arch_from_obj(obj)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hwnas")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Hardware-aware NAS: profile a device, predict latency, search under a latency target."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@cli.command()
@JSON
@click.option("--adb", is_flag=True, help="List the Android phones attached over adb instead.")
def devices(as_json: bool, adb: bool) -> None:
    """List named devices and whether a latency table exists for each."""
    if adb:
        from hwnas.cli_adb import devices_adb, format_devices_adb

        rows = devices_adb()
        return _echo_json(rows) if as_json else click.echo(format_devices_adb(rows))
    from hwnas.device_configs import device_names, load_device
    from hwnas.home import device_paths

    rows = []
    for name in device_names():
        cfg = load_device(name)
        paths = device_paths(name, batch=cfg.batch, precision=cfg.precision)
        rows.append({"device": name, "profiler": cfg.profiler, "table": paths.table.exists(),
                     "description": cfg.description})
    if as_json:
        return _echo_json(rows)
    for r in rows:
        mark = "table" if r["table"] else "-"
        click.echo(f"{r['device']:<16} {r['profiler']:<12} {mark:<6} {r['description']}")


@cli.command()
@DEVICE
@SPACE
@RESOLUTION
@click.option("--fresh", is_flag=True, help="Start a new table instead of resuming.")
@click.option("--context", type=click.Choice(["flush", "isolated"]), default=None,
              help="Time blocks in network-like context (flush) or alone (isolated).")
@click.option("--warmup", type=int, default=None, help="Warm-up runs per op (config default).")
@click.option("--runs", type=int, default=None, help="Timed runs per op (config default).")
@click.option("--batch", type=int, default=None, help="Batch size (GPU devices; config default).")
@click.option("--precision", type=click.Choice(["fp32", "tf32", "fp16", "bf16"]), default=None,
              help="Precision (GPU devices; config default).")
@click.option("--backend", type=click.Choice(["torch", "ort-cuda", "ort-trt"]), default=None,
              help="GPU runtime (cuda devices; config default).")
@click.option("--model", default=None,
              help="Profile only the blocks of this named reference model (deit-tiny, ...).")
@click.option("--budget", type=float, default=None,
              help="Measure only this fraction of the ops (coverage, then where kernel "
                   "regressors are least sure); 'hwnas fit --kind kernel' predicts the rest.")
@serial_option
@benchmark_bin_option
def profile(device, space, resolutions, fresh, context, warmup, runs, batch, precision, backend,
            model, budget, serials, benchmark_bin) -> None:
    """Measure every op of the space on DEVICE into its latency table (resumes).

    GPU tables are kept per batch and precision, so --batch 32 --precision fp16 and the
    defaults live side by side.
    """
    from hwnas import api

    if model:
        table = api.profile_model(device, model)
        click.echo(f"{device}: {len(table)} ops in its table (covers {model})")
        return
    ctx = api.context(device, space, resolutions, context=context, warmup=warmup, runs=runs,
                      batch=batch, precision=precision, backend=backend,
                      benchmark_bin=benchmark_bin)
    table = api.profile(ctx, fresh=fresh, budget=budget, serials=tuple(serials))
    click.echo(f"{device}: {len(table)} ops in {ctx.paths.table} "
               f"(resolutions {table.meta.get('resolutions')})")


@cli.command()
@DEVICE
@SPACE
@RESOLUTION
@click.option("--arch", "arch_file", type=click.Path(), help="An architecture JSON file.")
@click.option("--sample", type=int, default=0, help="Measure N subnets stratified by latency.")
@click.option("--passes", type=int, default=1, show_default=True,
              help="Independent passes over the subnets (for the noise floor).")
@click.option("--seed", type=int, default=0, show_default=True)
def measure(device, space, resolutions, arch_file, sample, passes, seed) -> None:
    """Measure whole subnets end to end into DEVICE's records file (resumes)."""
    from hwnas import api
    from hwnas.errors import HwnasError

    if not arch_file and sample <= 0:
        raise HwnasError("give --arch FILE or --sample N")
    ctx = api.context(device, space, resolutions)
    archs = [_load_arch(ctx.space, arch_file)] if arch_file else []
    recs = api.measure(ctx, archs, sample=sample, passes=passes, seed=seed)
    for a in archs:
        click.echo(f"{recs.find(a.to_dict()).pooled_ms:.3f} ms (pooled median)")
    click.echo(f"{device}: {len(recs)} subnets in {ctx.paths.records}")


@cli.command(name="import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["nn-meter", "tf-nas"]))
@click.argument("file", type=click.Path())
@DEVICE
def import_(fmt, file, device) -> None:
    """Import a table measured by others (nn-Meter JSON, TF-NAS pickle) for DEVICE."""
    from hwnas import api

    table = api.import_table(fmt, file, device)
    flagged = f", {len(table.flags)} flagged (kept as given)" if table.flags else ""
    click.echo(f"{device}: imported {len(table)} entries from {file}{flagged}")


@cli.command()
@DEVICE
@SPACE
@click.option("--arch", "arch_file", type=click.Path(), help="An architecture file.")
@click.option("--model", default=None,
              help="A named reference model instead (deit-tiny, mobilenetv2, edgevit-xxs, ...).")
@JSON
def predict(device, space, arch_file, model, as_json) -> None:
    """Predict the latency of an architecture (or a named model) on DEVICE."""
    from hwnas import api
    from hwnas.errors import HwnasError

    if bool(arch_file) == bool(model):
        raise HwnasError("give exactly one of --arch FILE or --model NAME")
    if model:
        ctx, m = api.model_context(device, model)
        arch = m.arch
    else:
        ctx = api.context(device, space, resolutions=None)
        arch = _load_arch(ctx.space, arch_file)
    pred = api.lut_predictor(ctx)
    out = {"device": device, "predicted_ms": float(pred.predict([arch])[0]),
           "raw_lut_ms": float(pred.predict_raw([arch])[0]),
           "calibrated_on": pred.n_calibration_, "macs": ctx.space.macs(arch)}
    if as_json:
        return _echo_json(out)
    cal = (f"calibrated on {out['calibrated_on']} subnets" if out["calibrated_on"]
           else "uncalibrated")
    click.echo(f"{out['predicted_ms']:.3f} ms on {device} (LUT sum {out['raw_lut_ms']:.3f} ms, "
               f"{cal}; {out['macs'] / 1e6:.1f} MMACs)")


@cli.command()
@SPACE
@click.option("--arch", "arch_file", required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True)
@click.option("--out", required=True, type=click.Path())
def export(space, arch_file, fmt, out) -> None:
    """Export the static model of an architecture (random weights)."""
    from hwnas import api
    from hwnas.spaces import get_space

    sp = get_space(space)
    path = api.export(sp, _load_arch(sp, arch_file), fmt, out)
    click.echo(f"wrote {path}")


@cli.command()
@DEVICE
@SPACE
@RESOLUTION
@click.option("--target-latency", "target", required=True,
              help="Budget in ms. With --supernet: a list (10,15,20) for every device, or one "
                   "'/'-separated group per device (20,30/10,15).")
@click.option("--seed", type=int, default=0, show_default=True)
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
@click.option("--population", type=int, default=16, show_default=True,
              help="With --supernet: evolution population.")
@click.option("--generations", type=int, default=4, show_default=True,
              help="With --supernet: evolution generations.")
@click.option("--calib-batches", type=int, default=8, show_default=True,
              help="With --supernet: batches for BatchNorm recalibration per candidate.")
@click.option("--max-eval-images", type=int, default=None,
              help="With --supernet: cap on held-out images per candidate.")
@click.option("--eval-batch-size", type=int, default=64, show_default=True)
@click.option("--run-on", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="With --supernet: where to evaluate candidates.")
@click.option("--pareto", is_flag=True,
              help="With --supernet: NSGA-II (pymoo) on accuracy vs latency (and energy where "
                   "the table has it), one run per device; writes the front.")
@click.option("--budget", type=click.IntRange(min=2), default=96, show_default=True,
              help="With --pareto: subnets scored per device.")
@JSON
def search(device, space, resolutions, target, seed, out, no_remeasure, elasticity, supernet,
           data, population, generations, calib_batches, max_eval_images, eval_batch_size, run_on,
           pareto, budget, as_json) -> None:
    """Find the best subnet whose predicted latency on DEVICE is at or under the target.

    With --supernet, DEVICE and the target may be lists (one supernet, many devices: one
    arch file per pair in --out, searched through one shared accuracy cache)."""
    from hwnas.cli_supernet import search_many, search_route

    ctx = click.get_current_context()
    if search_route(ctx, device, target, pareto, supernet) == "many":
        return search_many(ctx, device, target, seed, out, supernet, data, population,
                           generations, calib_batches, max_eval_images, eval_batch_size, run_on,
                           pareto, budget, as_json)
    target = float(target)  # search_route checked it is one positive number
    if supernet:
        return _search_supernet(device, target, seed, out, no_remeasure, supernet, data,
                                population, generations, calib_batches, max_eval_images,
                                eval_batch_size, run_on, as_json)
    from hwnas import api
    from hwnas.latency.safeio import atomic_write_text

    res = api.search(device, target, seed=seed, space=space, resolutions=resolutions,
                     remeasure=not no_remeasure, elasticity=elasticity)
    best = res.result.best
    doc = res.result.to_dict()
    doc.update(device=device, predicted_ms=best.latency_ms,
               measured_ms=res.measured.median_ms if res.measured else None,
               calibrated_on=res.predictor.n_calibration_, pareto_plot=str(res.plot))
    if hasattr(best.arch, "to_elasticvit_list"):
        doc["elasticvit_list"] = best.arch.to_elasticvit_list()
    if out:
        atomic_write_text(out, json.dumps(doc, indent=2))
    if as_json:
        return _echo_json(doc)
    _print_search(doc, target)


def _search_supernet(device, target, seed, out, no_remeasure, supernet, data, population,
                     generations, calib_batches, max_eval_images, eval_batch_size, run_on,
                     as_json) -> None:
    from hwnas.search.evolution import EvolutionConfig
    from hwnas.supernet.search import AccuracySearchConfig
    from hwnas.supernet.workflows import search_from_checkpoint

    cfg = AccuracySearchConfig(
        EvolutionConfig(population=population, generations=generations,
                        parents=max(2, population // 4)),
        batch_size=eval_batch_size, calib_batches=calib_batches,
        max_eval_images=max_eval_images, seed=seed)
    res = search_from_checkpoint(supernet, device=device, target_ms=target,
                                 out_dir=out or f"search-{device}-{target:g}ms", data=data,
                                 cfg=cfg, measure=not no_remeasure,
                                 run_on=None if run_on == "auto" else run_on)
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
    click.echo(f"target:    {target:.3f} ms")
    click.echo(f"predicted: {doc['predicted_ms']:.3f} ms "
               f"({100 * (doc['predicted_ms'] / target - 1):+.1f}% vs target)")
    if doc["measured_ms"] is not None:
        click.echo(f"measured:  {doc['measured_ms']:.3f} ms "
                   f"({100 * (doc['measured_ms'] / target - 1):+.1f}% vs target, re-measured "
                   f"end to end on {doc['device']})")
    click.echo(f"Pareto set: {len(doc['pareto'])} subnets; plot: {doc['pareto_plot']}")


@cli.command(name="fit")
@DEVICE
@SPACE
@RESOLUTION
@click.option("--kind", required=True,
              type=click.Choice(["flops", "flops+blocks", "lut", "kernel", "e2e"]))
@click.option("--model", default=None, help="kernel: rf|gbr|xgb; e2e: xgb|mlp.")
@click.option("--records", "records_path", type=click.Path(), help="Default: DEVICE's records.")
@click.option("--test-fraction", type=float, default=0.5, show_default=True,
              help="Share of subnets held out for evaluate (chosen by arch hash).")
def fit_(device, space, resolutions, kind, model, records_path, test_fraction) -> None:
    """Fit a latency predictor on DEVICE's end-to-end records and save it."""
    from hwnas import api

    ctx = api.context(device, space, resolutions)
    _, train = api.fit(ctx, kind, model, records_path, test_fraction)
    click.echo(f"{device}: fitted {kind} on {len(train.archs)} subnets -> "
               f"{ctx.paths.predictor(kind)}")


@cli.command()
@DEVICE
@SPACE
@RESOLUTION
@click.option("--predictor", "kind", required=True,
              type=click.Choice(["flops", "flops+blocks", "lut-raw", "lut", "kernel", "e2e"]))
@click.option("--records", "records_path", type=click.Path(), help="Default: DEVICE's records.")
@click.option("--plots", "plots_dir", type=click.Path(), help="Where to write the PNG plots.")
@JSON
def evaluate(device, space, resolutions, kind, records_path, plots_dir, as_json) -> None:
    """Score a fitted predictor on held-out subnets, against the noise floor."""
    from pathlib import Path

    from hwnas import api

    ctx = api.context(device, space, resolutions)
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
    click.echo("plots: " + ", ".join(str(p) for p in ev.plots))


@cli.group()
def records() -> None:
    """End-to-end measurement records."""


@records.command(name="export")
@DEVICE
@click.option("--csv", "csv_path", required=True, type=click.Path())
def records_export(device, csv_path) -> None:
    """Write DEVICE's records as CSV (one row per subnet, per-pass medians)."""
    from hwnas import api
    from hwnas.latency.records import Records

    recs = Records.load(api.context(device).paths.records, device)
    recs.to_frame().to_csv(csv_path, index=False)
    click.echo(f"wrote {len(recs)} records to {csv_path}")


def _register_extra_commands() -> None:
    """Commands that live beside their library (they import only click at load time)."""
    from hwnas.cli_supernet import COMMANDS as SUPERNET_COMMANDS

    for cmd in SUPERNET_COMMANDS:
        cli.add_command(cmd)


_register_extra_commands()


def main(argv=None) -> None:
    from hwnas.errors import HwnasError

    try:
        cli.main(args=argv, prog_name="hwnas", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("hwnas: interrupted; what was measured is saved; rerun to resume", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("hwnas: interrupted; what was measured is saved; rerun to resume", err=True)
        sys.exit(130)
    except click.exceptions.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except HwnasError as e:
        click.echo(f"hwnas: error: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
