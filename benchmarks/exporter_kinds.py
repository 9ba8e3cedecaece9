"""Which kernel kinds common exporters emit, and which of them the kernel templates make.

A kernel profile (``hwnas profile --kernels``) samples the templates of anymodel/templates.py,
exported the way the profiler exports them: ONNX with torch's TorchScript exporter for
onnxruntime, TFLite with litert-torch. A user's model may come from another exporter: torch's
dynamo exporter writes GELU as Erf, Div and Mul, which onnxruntime then does not fuse. A kind
the zoo has and no template makes is one that no profile measures: ``hwnas predict`` must
time it on the device (anymodel/missing.py), or refuse where it cannot.

For each exporter (``ts``: torch.onnx TorchScript, dynamo=False; ``dynamo``: torch.onnx
dynamo; ``litert``: litert-torch), every zoo model is exported and read as its runtime runs it
(onnxruntime's optimized graph, TFLite's operators); every template variant (each value of
each choice parameter, at small sizes) is exported as the profiler does, and the kinds are
compared. Kinds only: nothing is timed.

    python -m benchmarks.exporter_kinds [--models a,b] [--exporters ts,dynamo,litert] [--write]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
import time
import warnings

import numpy as np

EXPORTERS = ("ts", "dynamo", "litert")
RUNTIME = {"ts": "onnxruntime", "dynamo": "onnxruntime", "litert": "tflite"}
SMALL = {"hw": 12, "n": 20, "c": 16, "cin": 16, "cout": 16, "din": 32, "dout": 32, "dim": 32}
# onnxruntime moves a convolution into its blocked layout only for some channel counts and
# sizes, and fuses differently around it: on onnxruntime a second set of sizes (channels no
# multiple of 8) and a third as drawn
ODD = {"hw": 9, "n": 21, "c": 12, "cin": 12, "cout": 20, "din": 24, "dout": 40, "dim": 24}


def export_dynamo(module, shape) -> bytes:
    """ONNX bytes from torch.onnx's dynamo exporter, optimized as it offers to."""
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(module.eval(), (torch.randn(*shape),), dynamo=True,
                                 opset_version=18, input_names=["input"], verbose=False)
    prog.optimize()
    return prog.model_proto.SerializeToString()


def kinds(exporter: str, module, shape) -> collections.Counter:
    """Kernel kinds (views aside: they cost no work) of ``module`` exported by ``exporter``."""
    from hwnas.anymodel.graph import detect, export_onnx_bytes, export_tflite_bytes

    if exporter == "ts":
        data = export_onnx_bytes(module, [shape])
    elif exporter == "dynamo":
        data = export_dynamo(module, shape)
    else:
        data = export_tflite_bytes(module, [shape])
    rt = RUNTIME[exporter]
    g = detect(rt, data, shape if rt == "onnxruntime" else None, 1)
    return collections.Counter(k.kind for k in g.kernels if not k.view)


PRODUCT = 24  # a template with at most this many combinations of its choices gets them all


def template_variants(sizes: dict = SMALL, seed: int = 0) -> list[tuple[str, dict]]:
    """Every combination of a template's choice parameters where they are few, else every
    value of each with the others as drawn once; at small ``sizes`` (export time grows with
    them). Combinations matter: onnxruntime fuses a grouped convolution's activation into a
    FusedConv only at some group widths."""
    import itertools

    from hwnas.anymodel import templates as tpl

    rng = np.random.default_rng(seed)
    out, seen = [], set()
    for name, t in tpl.TEMPLATES.items():
        base = {p.name: p.draw(rng) for p in t.params}
        if name != "patch":  # a patch of 32 px needs its image
            base.update({k: v for k, v in sizes.items() if k in base})
        choices = [p for p in t.params if p.kind == "choice"]
        if math.prod(len(p.choices) for p in choices) <= PRODUCT:
            changes = [dict(zip([p.name for p in choices], combo))
                       for combo in itertools.product(*[p.choices for p in choices])]
        else:
            changes = [{p.name: v} for p in choices for v in p.choices]
        for change in changes:
            cfg = tpl._fix(name, dict(base, **change))
            key = json.dumps([name, cfg], sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                out.append((name, cfg))
    return out


def template_kinds(runtime: str, onnx_sizes=(SMALL, ODD, {})) -> dict[str, set[str]]:
    """kind -> the templates whose variants make it, exported as the kernel profiler exports
    them (TorchScript for onnxruntime, at each of ``onnx_sizes``; litert-torch in packs for
    TFLite, at small sizes)."""
    from hwnas.anymodel import templates as tpl
    from hwnas.anymodel.graph import Pack, components, detect, export_onnx_bytes, \
        export_tflite_bytes

    made: dict[str, set[str]] = collections.defaultdict(set)
    variants = template_variants()
    if runtime == "onnxruntime":
        for name, cfg in [v for sizes in onnx_sizes for v in template_variants(sizes)]:
            module, shape = tpl.build(name, cfg)
            try:
                g = detect(runtime, export_onnx_bytes(module, [shape]), shape, 1)
            except Exception as e:  # noqa: BLE001 - a variant the exporter refuses: say so
                print(f"  {name} {cfg}: {str(e).splitlines()[0][:120]}", file=sys.stderr)
                continue
            for k in g.kernels:
                if not k.view:
                    made[k.kind].add(name)
        return made
    pack = 40  # one conversion per pack: conversions, not ops, take the time
    for start in range(0, len(variants), pack):
        chunk = variants[start:start + pack]
        built = [tpl.build(n, c) for n, c in chunk]
        try:
            g = detect(runtime, export_tflite_bytes(Pack([m for m, _ in built],
                                                         [s for _, s in built]).module,
                                                    [s for _, s in built]), None)
        except Exception as e:  # noqa: BLE001
            print(f"  pack at {start}: {str(e).splitlines()[0][:120]}", file=sys.stderr)
            continue
        owner = components(g.kernels, len(chunk), [str(i) for i in g.model.subgraphs[0].inputs])
        for k, o in zip(g.kernels, owner):
            if not k.view:
                made[k.kind].add(chunk[o][0] if 0 <= o < len(chunk) else "?")
    return made


def survey(names: list[str], exporters) -> dict:
    from hwnas.anymodel import zoo

    per = {ex: {} for ex in exporters}
    for name in names:
        module, shape = zoo.build(name)
        for ex in exporters:
            t0 = time.perf_counter()
            try:
                per[ex][name] = dict(kinds(ex, module, shape))
            except Exception as e:  # noqa: BLE001 - an exporter that fails on a model: a finding
                per[ex][name] = {"error": str(e).strip().splitlines()[0][:160]}
            print(f"{name} {ex} {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return per


def report(per: dict, made: dict) -> str:
    lines = ["## Kernel kinds per exporter, and the templates that make them", "",
             "_`python -m benchmarks.exporter_kinds`: every model exported by each exporter "
             "and read as its runtime runs it (views aside); the templates exported as the "
             "kernel profiler exports them. A kind no template makes is never sampled by "
             "`hwnas profile --kernels`: `hwnas predict` times it on a live device, and "
             "refuses elsewhere. Kinds only; nothing timed._", ""]
    for ex, models in per.items():
        rt = RUNTIME[ex]
        ok = {n: d for n, d in models.items() if "error" not in d}
        failed = {n: d["error"] for n, d in models.items() if "error" in d}
        count = collections.Counter(k for d in ok.values() for k in d)
        missing = sorted(k for k in count if k not in made[rt])
        lines += [f"**{ex}** ({rt}; {len(ok)} models exported): {len(count)} kinds, "
                  f"{len(count) - len(missing)} made by the templates.", ""]
        lines += ["| kind | models with it | kernels | made by templates |", "|---|---|---|---|"]
        for k, n in count.most_common():
            total = sum(d.get(k, 0) for d in ok.values())
            by = ", ".join(sorted(made[rt].get(k, ()))) or "**none**"
            lines.append(f"| {k} | {n} | {total} | {by} |")
        for n, e in failed.items():
            lines.append(f"\n{n} did not export: {e}")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    from hwnas.anymodel import zoo

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=None, help="comma-separated zoo names (default: all "
                                                   "Hugging Face ones and five of hwnas's)")
    ap.add_argument("--exporters", default=",".join(EXPORTERS))
    ap.add_argument("--write", action="store_true", help="write BENCHMARKS.md's section")
    ap.add_argument("--survey", default=None, metavar="JSON",
                    help="keep the zoo's kinds per exporter in this file and reuse them when "
                         "it exists (the zoo's exports take most of the time; the templates' "
                         "kinds are always recomputed)")
    args = ap.parse_args(argv)
    names = args.models.split(",") if args.models else \
        [e.name for e in zoo.HF] + ["deit-tiny", "mobilenetv2", "edgevit-xxs", "elastic_T1",
                                    "vit-resnas-tiny"]
    exporters = [e for e in args.exporters.split(",") if e]
    made = {rt: template_kinds(rt) for rt in sorted({RUNTIME[e] for e in exporters})}
    from pathlib import Path

    kept = Path(args.survey) if args.survey else None
    if kept is not None and kept.exists():
        per = {ex: {n: d for n, d in json.loads(kept.read_text())[ex].items() if n in names}
               for ex in exporters}
    else:
        per = survey(names, exporters)
        if kept is not None:
            kept.write_text(json.dumps(per, indent=1))
    text = report(per, made)
    print(text)
    if args.write:
        from benchmarks._report import machine_line, write_section

        write_section("exporter-kinds", machine_line() + "\n\n" + text)


if __name__ == "__main__":
    main()
