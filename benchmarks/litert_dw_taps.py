"""How fast LiteRT runs a depthwise convolution, per kernel size (the /LARGE kind's evidence).

``hwnas.anymodel.kernels`` makes a LiteRT depthwise convolution of more than
``TFLITE_DW_FAST_TAPS`` taps a kernel kind of its own. This times depthwise convolutions of
3x3, 5x5, 7x7 and 9x9 at two sizes, converted by litert-torch (stride 1, SAME), each as a
network, interleaved with the reference network (drift-free), ``--rounds`` rounds in random
order, and reports GMAC/s from the medians. Run from the repository root:
``python -m benchmarks.litert_dw_taps`` (about a minute; needs litert-torch).
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

SIZES = ((64, 64), (256, 32))  # (channels, side)
KERNELS = (3, 5, 7, 9)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = ap.parse_args(argv)
    import torch

    from hwnas import api as core
    from hwnas.anymodel.graph import export_tflite_bytes
    from hwnas.anymodel.kernels import TFLITE_DW_FAST_TAPS
    from hwnas.anymodel.profile import KernelTimer
    from hwnas.profilers import make_profiler

    got: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        ctx = core.context("local-tflite", home=Path(tmp) / "home", warmup=10, runs=30)
        jobs = []
        for c, side in SIZES:
            for k in KERNELS:
                torch.manual_seed(0)
                conv = torch.nn.Conv2d(c, c, k, 1, k // 2, groups=c, bias=False).eval()
                jobs.append(((c, side, k), export_tflite_bytes(conv, [(1, c, side, side)])))
        rng = np.random.default_rng(0)
        with make_profiler(ctx.cfg, Path(tmp) / "cache") as prof:
            timer = KernelTimer(prof, "tflite", "hot")
            for _ in range(args.rounds):
                for i in rng.permutation(len(jobs)):
                    key, data = jobs[i]
                    got.setdefault(key, []).append(timer.network(data, None).stats.median_ms)
    lines = ["## LiteRT's depthwise convolutions by kernel size (`benchmarks/litert_dw_taps.py`)",
             "", machine_line(), "",
             f"_`python -m benchmarks.litert_dw_taps {' '.join(sys.argv[1:])}`: depthwise "
             f"convolutions (stride 1, SAME, no bias) converted by litert-torch, each timed as a "
             f"network interleaved with the reference (drift-free), {args.rounds} rounds in "
             f"random order; median ms of the rounds, and GMAC/s from it. hwnas makes those of "
             f"more than {TFLITE_DW_FAST_TAPS} taps a kernel kind of their own._", "",
             "| channels x side | " + " | ".join(f"{k}x{k}: ms (GMAC/s)" for k in KERNELS) + " |",
             "|---|" + "---|" * len(KERNELS)]
    for c, side in SIZES:
        cells = []
        for k in KERNELS:
            ms = float(np.median(got[(c, side, k)]))
            cells.append(f"{ms:.3f} ({side * side * c * k * k / ms / 1e6:.1f})")
        lines.append(f"| {c} x {side} | " + " | ".join(cells) + " |")
    md = "\n".join(lines)
    print(md)
    if not args.no_write:
        write_section("litert-dw-taps", md)


if __name__ == "__main__":
    main()
