"""Does LiteRT run a PAD that feeds a VALID convolution? (the any-model predictor says no)

litert-torch writes PyTorch's symmetric padding of a strided convolution as a PAD followed by a
VALID convolution; XNNPACK, LiteRT's CPU delegate, can fold such a zero PAD into the
convolution. ``hwnas.anymodel.kernels.fused_mask`` counts it as fused (no time of its own in a
network). This times, for a depthwise convolution at two sizes:

* the network as converted (PAD + VALID convolution);
* the same convolution on an input already padded (no PAD in the graph);
* the PAD and the convolution cut out and timed alone, as the kernel table times kernels.

If the PAD ran, the first would exceed the second by about the PAD alone. Drift-free ratios to
the reference, ``--rounds`` rounds in random order, medians; hot context. Run from the
repository root: ``python -m benchmarks.litert_pad_fold`` (about a minute; needs litert-torch).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._report import machine_line, write_section  # noqa: E402

CASES = ((128, 112), (64, 56))  # (channels, input side): depthwise 3x3, stride 2


def nets(channels: int, side: int):
    """(the converted net with its PAD, the same conv on a padded input) as .tflite bytes."""
    import torch

    from hwnas.anymodel.graph import export_tflite_bytes

    torch.manual_seed(0)
    padded = torch.nn.Conv2d(channels, channels, 3, 2, 1, groups=channels).eval()
    valid = torch.nn.Conv2d(channels, channels, 3, 2, 0, groups=channels).eval()
    # side + 1 (not + 2): the same output size, 3x3 at stride 2 reads one column less
    return (export_tflite_bytes(padded, [(1, channels, side, side)]),
            export_tflite_bytes(valid, [(1, channels, side + 1, side + 1)]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cache", type=Path, default=None, help="export cache (the reference)")
    ap.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = ap.parse_args(argv)
    from hwnas import api as core
    from hwnas.anymodel import tflite as T
    from hwnas.anymodel.kernels import fused_mask
    from hwnas.anymodel.model import load_model
    from hwnas.anymodel.profile import KernelTimer
    from hwnas.profilers import make_profiler

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp) / "cache"
        ctx = core.context("local-tflite", home=Path(tmp) / "home", warmup=10, runs=30)
        built = {}
        for c, side in CASES:
            a, b = nets(c, side)
            for tag, data in (("pad", a), ("valid", b)):
                p = Path(tmp) / f"{tag}{c}.tflite"
                p.write_bytes(data)
                built[(c, tag)] = load_model(p, "tflite", name=p.name)
        rng = np.random.default_rng(0)
        got: dict = {}
        with make_profiler(ctx.cfg, cache) as prof:
            timer = KernelTimer(prof, "tflite", "hot")
            jobs = []
            for c, _ in CASES:
                g = T.detect(built[(c, "pad")].data, "pad")
                assert fused_mask(g.kernels)[0], "the converter did not write PAD + VALID conv"
                jobs += [((c, "network with PAD"), lambda m=built[(c, "pad")]:
                          timer.network(m.data, m.input_shape)),
                         ((c, "network, input padded"), lambda m=built[(c, "valid")]:
                          timer.network(m.data, m.input_shape)),
                         ((c, "PAD alone"), lambda g=g: timer.kernel(g, g.kernels[0])),
                         ((c, "conv alone"), lambda g=g: timer.kernel(g, g.kernels[1]))]
            for _ in range(args.rounds):
                for i in rng.permutation(len(jobs)):
                    key, fn = jobs[i]
                    got.setdefault(key, []).append(fn().stats.median_ms)
        for c, side in CASES:
            med = {k: float(np.median(v)) for (cc, k), v in got.items() if cc == c}
            rows.append((c, side, med))
    lines = ["## LiteRT folds a PAD into the convolution that reads it", "", machine_line(), "",
             f"_`python -m benchmarks.litert_pad_fold {' '.join(sys.argv[1:])}`: depthwise 3x3 "
             f"convolutions at stride 2, converted by litert-torch (PAD + VALID convolution); "
             f"each timed interleaved with the reference network (drift-free), {args.rounds} "
             f"rounds in random order, medians of the per-round medians in ms; hot context, as "
             f"the kernel table is timed._", "",
             "| channels x side | network with PAD | same conv, input padded | PAD alone | "
             "conv alone | PAD's time in the network / alone |", "|---|---|---|---|---|---|"]
    for c, side, m in rows:
        share = (m["network with PAD"] - m["network, input padded"]) / m["PAD alone"]
        lines.append(f"| {c} x {side} | {m['network with PAD']:.3f} | "
                     f"{m['network, input padded']:.3f} | {m['PAD alone']:.3f} | "
                     f"{m['conv alone']:.3f} | {100 * share:.0f}% |")
    lines += ["", "If the network ran the PAD, the last column would be near 100%. The "
                  "any-model predictor counts such a PAD as fused (no time, no dispatch)."]
    md = "\n".join(lines)
    print(md)
    if not args.no_write:
        write_section("litert-pad-fold", md)


if __name__ == "__main__":
    main()
