"""The any-model side of ``hwnas measure``, ``predict`` and ``profile`` (hwnas.anymodel).

``cli.py`` declares the options and dispatches here early, so this module holds the
printing and the rules for when a command is about a model file rather than a subnet.
Only click is imported at load time (``hwnas --help`` stays fast).
"""

from __future__ import annotations

import json

import click

from hwnas.cli.fmt import fmt_ms

BREAKDOWN = click.option(
    "--breakdown", type=click.Choice(["table", "csv"]), is_flag=False, flag_value="table",
    default=None, help="Show the per-kernel breakdown: a table (the default) or CSV.")
ALLOW_MISSING = click.option(
    "--allow-missing", is_flag=True,
    help="Predict even when some kernel kinds were never measured on the device; the output "
         "says how much of the graph (kernels, FLOPs) was covered.")
INPUT_SHAPE = click.option(
    "--input-shape", default=None, metavar="N,C,H,W",
    help="Fix the model's input shape (needed when the file leaves dimensions dynamic).")
ONNX = click.option("--onnx", "onnx_file", type=click.Path(), default=None,
                    help="An ONNX model file (any model, not only a search space's).")
TFLITE = click.option("--tflite", "tflite_file", type=click.Path(), default=None,
                      help="A TFLite model file (for local-tflite and phones).")


def wants_any_model(onnx_file, tflite_file, model, input_shape=None, breakdown=None,
                    allow_missing=False, kernels=False) -> bool:
    """Whether ``predict`` is about a model file or zoo model (not a subnet or hwnas's LUT
    path for its named models, which stays as it was)."""
    if onnx_file or tflite_file or input_shape or breakdown or allow_missing or kernels:
        return True
    if model:
        from hwnas.models import MODELS

        return model not in MODELS
    return False


def measure_any(device, onnx_file, tflite_file, model, input_shape, passes, warmup, runs,
                serials=(), benchmark_bin=None) -> None:
    from hwnas.anymodel import api
    from hwnas.anymodel.model import parse_input_shape

    got = api.measure(device, onnx=onnx_file, tflite=tflite_file, model=model,
                      input_shape=parse_input_shape(input_shape), passes=passes,
                      serials=serials, warmup=warmup, runs=runs, benchmark_bin=benchmark_bin)
    how = "drift-free at the device's reference speed" if got.drift_free else "as timed"
    click.echo(f"{fmt_ms(got.latency_ms)} on {device}: {got.model.name} "
               f"(input {'x'.join(map(str, got.model.input_shape))}; median of "
               f"{len(got.passes)} pass(es), {how})")
    click.echo(f"recorded under sha256 {got.model.sha256[:16]} in {got.records_path}")


def predict_any(device, onnx_file, tflite_file, model, input_shape, breakdown, allow_missing,
                as_json) -> None:
    from hwnas.anymodel import api
    from hwnas.anymodel.model import parse_input_shape

    out = api.predict(device, onnx=onnx_file, tflite=tflite_file, model=model,
                      input_shape=parse_input_shape(input_shape), allow_missing=allow_missing,
                      progress=_stderr_is_a_terminal())
    if out.added is not None:  # kinds the kernel table lacked, timed on the device just now
        click.echo(out.added.line(), err=True)
    p = out.prediction
    if as_json:
        doc = {"device": device, "model": out.model.name, "sha256": out.model.sha256,
               "input_shape": list(out.model.input_shape), "predicted_ms": p.latency_ms,
               "kernels_ms": p.kernels_ms, "overhead_ms": p.overhead_ms,
               "overhead_fit": out.overhead_fit,
               "predictor": f"any-model kernels ({out.runtime})",
               "covered_kernels": p.covered_kernels, "total_kernels": p.total_kernels,
               "covered_flops": p.covered_flops, "missing_kinds": list(p.missing_kinds)}
        if out.added is not None:
            a = out.added
            doc["timed_now"] = {"kinds": list(a.kinds), "model_kernels": a.model_kernels,
                                "distinct_timed": a.timed_own,
                                "template_samples": a.timed_samples, "seconds": a.seconds}
        if breakdown:
            doc["breakdown"] = [r.__dict__ for r in p.rows]
        click.echo(json.dumps(doc, indent=2))
        return
    if breakdown == "csv":
        _csv(p)
        return
    if breakdown == "table":
        _table(p)
    flops = sum(r.flops for r in p.rows)
    click.echo(f"{fmt_ms(p.latency_ms)} on {device}: {out.model.name} "
               f"(input {'x'.join(map(str, out.model.input_shape))}; {p.total_kernels} kernels, "
               f"{flops / 1e9:.2f} GFLOPs)")
    click.echo(f"predictor: any-model kernels ({out.runtime}): sum of kernels "
               f"{fmt_ms(p.kernels_ms)} + per-network overhead {p.overhead_ms:+.3f} ms "
               f"({out.overhead_fit}); {p.coverage_line()}")
    if not p.complete:
        click.echo(f"warning: the prediction leaves out the kernels of kinds never measured "
                   f"on {device} ({100 * (1 - p.covered_flops):.1f}% of FLOPs)", err=True)


def _stderr_is_a_terminal() -> bool:
    import sys

    return sys.stderr.isatty()


def _csv(p) -> None:
    import csv
    import sys

    w = csv.writer(sys.stdout)
    w.writerow(["index", "name", "kind", "shapes", "flops", "latency_ms", "share", "source"])
    total = p.latency_ms
    for r in p.rows:
        ms = "" if r.latency_ms is None else f"{r.latency_ms:.6f}"
        share = "" if r.latency_ms is None else f"{r.latency_ms / total:.5f}"
        w.writerow([r.index, r.name, r.kind, r.shapes, f"{r.flops:.0f}", ms, share, r.source])


def _table(p) -> None:
    """Per kind (where the time goes), then every kernel in graph order."""
    by_kind: dict[str, list] = {}
    for r in p.rows:
        by_kind.setdefault(r.kind, []).append(r)
    total = p.latency_ms
    click.echo(f"{'kind':<28}{'kernels':>8}{'ms':>10}{'share':>8}{'GFLOPs':>9}")
    rows = sorted(by_kind.items(), key=lambda kv: -sum(r.latency_ms or 0 for r in kv[1]))
    for kind, rs in rows:
        ms = sum(r.latency_ms or 0 for r in rs)
        miss = any(r.latency_ms is None for r in rs)
        click.echo(f"{kind:<28}{len(rs):>8}{'missing' if miss else f'{ms:.3f}':>10}"
                   f"{'' if miss else f'{100 * ms / total:.1f}%':>8}"
                   f"{sum(r.flops for r in rs) / 1e9:>9.3f}")
    click.echo(f"{'per-call overhead':<28}{'':>8}"
               f"{total - sum(r.latency_ms or 0 for r in p.rows):>10.3f}")
    click.echo("")
    click.echo(f"{'#':>4}  {'kind':<24}{'ms':>9}  {'source':<9} shapes")
    for r in p.rows:
        ms = "-" if r.latency_ms is None else f"{r.latency_ms:.4f}"
        click.echo(f"{r.index:>4}  {r.kind:<24}{ms:>9}  {r.source:<9} {r.shapes}")
    click.echo("")


def profile_kernels(device, budget, fresh, seed=0, serials=(), **overrides) -> None:
    from hwnas.anymodel import api
    from hwnas.anymodel.profile import table_summary
    from hwnas.errors import ProfileError

    if budget is None:
        from hwnas.anymodel.api import DEFAULT_BUDGET

        budget = DEFAULT_BUDGET
    if budget != int(budget) or budget < 1:
        raise ProfileError(f"with --kernels, --budget is a number of kernels (e.g. 2000), "
                           f"not {budget:g}")
    report = api.profile_kernels(device, int(budget), fresh=fresh, seed=seed,
                                 serials=serials, **overrides)
    s = table_summary(report.table)
    click.echo(f"{device}: {s['kernels']} kernels of {len(s['kinds'])} kinds and {s['nets']} "
               f"{s['nets_kind']} networks in {report.path} ({report.measured_now} measured now, "
               f"{report.seconds / 60:.1f} min)")
    click.echo("kinds: " + ", ".join(f"{k} {n}" for k, n in sorted(s["kinds"].items(),
                                                                    key=lambda kv: -kv[1])))


@click.command(name="zoo")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def zoo_cmd(as_json: bool) -> None:
    """List the model zoo: real architectures at mobile sizes for --model (random weights,
    built offline; the Hugging Face ones need 'pip install hwnas[zoo]')."""
    from hwnas.anymodel import zoo

    have = zoo.zoo_available()
    rows = [{"name": e.name, "family": e.family, "source": e.source,
             "resolution": e.resolution or None, "note": e.note,
             "available": have or e.source == "hwnas"} for e in zoo.entries().values()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        mark = "" if r["available"] else "  (needs hwnas[zoo])"
        res = f"{r['resolution']} px" if r["resolution"] else ""
        click.echo(f"{r['name']:<24}{r['family']:<9}{res:<8}{r['note']}{mark}")


COMMANDS = [zoo_cmd]
