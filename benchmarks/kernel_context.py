"""Where a kernel timed alone differs from the same kernel inside its network (onnxruntime).

``python -m benchmarks.kernel_context`` (under the timing lock) takes a few zoo networks and
times each of their kernels alone in several contexts: hot (an untimed call before each timed
one) and network context with eviction reads of several sizes before each timed call (0: no
read, only the twin's run; the product's default is twice the L2, 2 MB here, and was the
device's flush_mb, 24 MB, on onnxruntime until 2026-12-07). Beside
them, per kernel, what onnxruntime's own profiler gives the same node inside the whole
network, and the whole network timed end to end.

Issue 24, item 3 asks that the kernels timed alone sum to within ±10% of the network. The
zoo-wide sums (benchmarks/anymodel.py) say how often they do; this says where they do not:
per network and per kind, for each eviction read, against the in-network profile. The
in-network profile is not the truth to the microsecond: onnxruntime's profiler adds its own
cost to every node it records (its node times can sum to more than the network's wall time),
which the first table shows per network.

Writes the ``kernel-context`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import collections
import math
from pathlib import Path

import numpy as np

DEFAULT_MODELS = "elastic_T1,mobilenet-v2-0.5-160,levit-128s,deit-tiny,resnet-18"
DEFAULT_VARIANTS = "hot,0,2,24"


def variant_label(v: str) -> str:
    return "hot" if v == "hot" else f"read {v} MB"


def parse_variants(text: str) -> list[str]:
    """'hot' and eviction reads in MB (>= 0), as given; anything else is a usage error."""
    out = []
    for v in (x.strip() for x in text.split(",") if x.strip()):
        if v != "hot":
            try:
                ok = float(v) >= 0 and math.isfinite(float(v))
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"--variants: {v!r} is neither 'hot' nor a read in MB >= 0")
        out.append(v)
    if not out:
        raise ValueError("--variants: give at least one")
    return out


def time_model(prof, g, mf, variants: list[str], rng) -> dict:
    """The network's ms, its nodes' in-network ms, and per variant each distinct kernel's ms
    alone (variants in random order, so that none always runs first)."""
    from benchmarks.anymodel import node_ms
    from hwnas.anymodel.profile import KernelTimer
    from hwnas.errors import HwnasError

    net = KernelTimer(prof, "onnxruntime").network(mf.data, mf.input_shape)
    inside = node_ms(g, mf.input_shape, prof.cfg.threads, runs=30)
    alone: dict[str, dict[str, float]] = {}
    kernels = [k for k in g.kernels if not k.view]
    for i in rng.permutation(len(variants)):
        v = variants[i]
        timer = KernelTimer(prof, "onnxruntime", "hot") if v == "hot" else \
            KernelTimer(prof, "onnxruntime", "network", int(float(v) * (1 << 20)))
        got: dict[str, float] = {}
        for k in kernels:
            if k.signature in got:
                continue
            try:
                got[k.signature] = max(timer.kernel(g, k).stats.median_ms, 0.0)
            except HwnasError:  # refused (too big to time alone, no activation input)
                got[k.signature] = math.nan
        alone[v] = got
    return {"net_ms": net.stats.median_ms, "inside": inside, "alone": alone,
            "kernels": kernels}


def render(args, rows: dict, variants: list[str]) -> str:
    from benchmarks._report import machine_line

    head = ["network", "ms end to end", "nodes in the network (profiler), sum"] + \
        [f"alone, {variant_label(v)}" for v in variants]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    kinds: dict[str, list] = {}
    within = collections.Counter()
    for name, r in rows.items():
        net = r["net_ms"]
        inside = sum(r["inside"].get(k.name, 0.0) for k in r["kernels"])
        cells = [name, f"{net:.3f}", f"{inside:.3f} ({inside / net - 1:+.1%})"]
        for v in variants:
            vals = [r["alone"][v].get(k.signature, math.nan) for k in r["kernels"]]
            total = float(np.nansum(vals))
            cells.append(f"{total:.3f} ({total / net - 1:+.1%})")
            within[v] += abs(total / net - 1) <= 0.10
        lines.append("| " + " | ".join(cells) + " |")
        for k in r["kernels"]:
            row = kinds.setdefault(k.kind, [0, 0.0] + [0.0] * len(variants))
            row[0] += 1
            row[1] += r["inside"].get(k.name, 0.0)
            for j, v in enumerate(variants):
                u = r["alone"][v].get(k.signature, math.nan)
                row[2 + j] += u if np.isfinite(u) else 0.0
    n = len(rows)
    lines += ["", "Networks whose kernels alone sum to within ±10% of the network: " + ", ".join(
        f"{variant_label(v)} {within[v]}/{n}" for v in variants) + ".", ""]
    khead = ["kind", "kernels", "ms in the network (profiler)"] + \
        [f"{variant_label(v)}: ms, over in-network, us per kernel over" for v in variants]
    lines += ["| " + " | ".join(khead) + " |", "|" + "---|" * len(khead)]
    for kind, row in sorted(kinds.items(), key=lambda x: -x[1][1])[:args.kinds]:
        cells = [kind, str(row[0]), f"{row[1]:.3f}"]
        for j in range(len(variants)):
            a = row[2 + j]
            ratio = f"{a / row[1]:.2f}" if row[1] > 0 else "n/a"
            cells.append(f"{a:.3f}, {ratio}, {1e3 * (a - row[1]) / row[0]:+.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    cmd = (f"`flock /tmp/hwnas-timing.lock .venv/bin/python -m benchmarks.kernel_context "
           f"--models {args.models} --variants {args.variants} --seed {args.seed}"
           + (f" --runs {args.runs}" if args.runs else "")
           + (f" --cache {args.cache}" if args.cache else "") + "`")
    return "\n".join([
        "## Kernels alone against the same kernels inside the network, per eviction read "
        "(`benchmarks/kernel_context.py`)", "", machine_line(), "",
        f"{cmd}: local-cpu (onnxruntime, 1 thread, drift-free kernel timing). Each network "
        f"timed end to end, then profiled by onnxruntime (30 calls after 5 warm-ups, the median "
        f"per node), then each of its distinct kernels timed alone in every context, the "
        f"contexts in random order per network. A read of N MB: network context (a twin of "
        f"the kernel run, its inputs and outputs touched) after reading N MB; the product's "
        f"network context reads twice the L2 (2 MB here; 24 MB on onnxruntime before "
        f"2026-12-07), 0 is the twin's run alone. Sums are over "
        f"every kernel of the network (a kernel used twice counts twice), views excluded; "
        f"in brackets, against the network end to end.", "", *lines])


def main(argv=None) -> None:
    from benchmarks._report import write_section

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--variants", default=DEFAULT_VARIANTS,
                    help="'hot' and eviction reads in MB before each timed call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", type=int, default=16, help="rows of the per-kind table")
    ap.add_argument("--runs", type=int, default=None, help="timed calls per item")
    ap.add_argument("--cache", default=None, help="the zoo's export cache")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    try:
        variants = parse_variants(args.variants)
    except ValueError as e:
        ap.error(str(e))
    import tempfile

    from hwnas import api as core
    from hwnas.anymodel import zoo
    from hwnas.anymodel.graph import detect
    from hwnas.anymodel.model import load_model
    from hwnas.profilers import make_profiler

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="hwnas-kctx-") as tmp:
        cache = Path(args.cache or tmp)
        over = {} if args.runs is None else {"runs": args.runs}
        ctx = core.context("local-cpu", home=Path(tmp) / "home", **over)
        rows = {}
        with make_profiler(ctx.cfg, cache) as prof:
            for name in [m for m in args.models.split(",") if m]:
                mf = load_model(zoo.export(name, "onnx", cache), "onnx", name=name)
                g = detect("onnxruntime", mf.data, mf.input_shape, ctx.cfg.threads, name)
                rows[name] = time_model(prof, g, mf, variants, rng)
                print(name, f"{rows[name]['net_ms']:.3f} ms", flush=True)
    md = render(args, rows, variants)
    print(md)
    if not args.no_write:
        write_section("kernel-context", md)


if __name__ == "__main__":
    main()
