"""Which reference network cancels drift best? Writes the ``reference-choice`` section.

The drift-free protocol divides every item's time by a reference network's timed beside it
(hwnas/profilers/drift.py). That cancels the machine's speed changes only if the reference
responds to them as the items do. This script times the same subnets beside several candidate
references at once, so every candidate sees the same minutes, and reports the between-pass
noise each candidate leaves:

* items: ``--subnets`` ElasticViT subnets at 160 px, one ONNX session each, 1 pinned thread;
* candidates: ElasticViT's smallest subnet at 128 px (hwnas's reference v1) and at 224 px
  (v2), and the items' median-size subnet (a reference matched to the items; it is one of the
  items, so its own CV is 0: a small bias in its favour);
* each item call is timed beside one call of every candidate (in a random order, each after
  an untimed call, as drift.py does), each candidate's value for the call the mean of its
  calls before and after;
* passes alternate a quiet machine and a hog on the other core (memory copies or small
  matmuls), to make the machine's speed change on purpose as well as by itself.

Run from the repository root::

    python -m benchmarks.reference_choice                    # ~10 min: 24 subnets, 8 passes
    python -m benchmarks.reference_choice --subnets 4 --passes 2 --no-write   # smoke
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._report import machine_line, write_section

HOGS = {"mem": "import numpy as np\na = np.ones(8 << 20); b = np.empty_like(a)\n"
               "while True: np.copyto(b, a)",
        "cpu": "import numpy as np\na = np.ones((256, 256), np.float32)\nwhile True: a @ a"}


def _export(space, arch, path: Path, seed: int) -> Path:
    import torch

    from hwnas.profilers.export import export_onnx

    torch.manual_seed(seed)
    return export_onnx(space.build_model(arch).eval(), space.input_shape(arch), path)


def measure(n_items: int, conditions: list[str], runs: int, seed: int) -> dict:
    from hwnas import api
    from hwnas.home import export_cache
    from hwnas.profilers.onnxrt import OrtProfiler, _OrtBench
    from hwnas.spaces.elasticvit.space import ElasticViTSpace

    ctx = api.context("local-cpu", resolutions=[160])
    space, rng = ctx.space, np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(n_items)]
    passes = len(conditions)
    with tempfile.TemporaryDirectory() as tmp, \
            OrtProfiler(ctx.cfg.with_overrides(reference=False), export_cache()) as prof:
        items = [_OrtBench(prof._session(_export(space, a, Path(tmp) / f"s{i}.onnx", i)),
                           space.input_shape(a)) for i, a in enumerate(archs)]
        refs = {}
        for res in (128, 224):
            sp = ElasticViTSpace(resolutions=(res,))
            a = sp.smallest(res)
            refs[f"smallest @{res} px"] = _OrtBench(
                prof._session(_export(sp, a, Path(tmp) / f"r{res}.onnx", 0)), sp.input_shape(a))
        sizes = np.array([np.median(b.time_calls(5)[1:]) for b in items])
        mid = int(np.argsort(sizes)[n_items // 2])
        refs["median-size item"] = items[mid]
        names = list(refs)
        item_ms = np.zeros((passes, n_items, runs))
        ref_ms = np.zeros((len(names), passes, n_items, runs + 1))
        for p, cond in enumerate(conditions):
            hog = None
            if cond != "quiet":
                hog = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", HOGS[cond]])
                time.sleep(3)
            try:
                for i in rng.permutation(n_items):
                    items[i].time_calls(10)
                    for r in refs.values():
                        r.time_calls(3)
                    for j in range(runs + 1):
                        for k in rng.permutation(len(names)):
                            ref_ms[k, p, i, j] = np.median(refs[names[k]].time_calls(2)[1:])
                        if j < runs:
                            item_ms[p, i, j] = items[i].time_calls(1)[0]
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            print(f"pass {p + 1}/{passes} ({cond}) done", file=sys.stderr)
    return {"names": names, "item_ms": item_ms, "ref_ms": ref_ms, "sizes": sizes,
            "conditions": conditions}


def noise(x: np.ndarray) -> tuple[float, float, float]:
    """passes x items -> median per-item CV, pass pairs within ±5%, spread of pass levels."""
    cv = x.std(0, ddof=1) / x.mean(0)
    pairs = np.concatenate([np.abs(x[a] / x[b] - 1) for a in range(len(x))
                            for b in range(a + 1, len(x))])
    levels = np.median(x / np.median(x, 0), axis=1)
    return float(np.median(cv)), float(np.mean(pairs <= 0.05)), float(levels.max() - levels.min())


def render(args, m: dict) -> str:
    item = m["item_ms"]
    rows = [("none (ms as timed)", np.median(item, 2), float(np.median(item)))]
    for k, name in enumerate(m["names"]):
        r = m["ref_ms"][k]
        local = 0.5 * (r[:, :, :-1] + r[:, :, 1:])  # before and after each item call
        rows.append((name, np.median(item / local, 2), float(np.median(r))))
    quiet = np.array([c == "quiet" for c in m["conditions"]])
    lines = ["## Reference choice: which reference cancels the machine's drift", "",
             machine_line(),
             f"Command: `python -m benchmarks.reference_choice --subnets {args.subnets} "
             f"--passes {args.passes} --runs {args.runs} --seed {args.seed}`. "
             f"{args.subnets} ElasticViT subnets at 160 px "
             f"({m['sizes'].min():.1f}-{m['sizes'].max():.1f} ms), {args.runs} calls per item "
             f"per pass, every call beside one call of each candidate; pass conditions "
             f"{', '.join(m['conditions'])} (a hog runs on the other core).", "",
             "| reference | its ms | CV, all passes | pairs within ±5% | pass-level spread "
             "| CV, quiet passes | pairs, quiet |",
             "|---|---|---|---|---|---|---|"]
    for name, x, ms in rows:
        cv, pairs, spread = noise(x)
        qcv, qpairs, _ = noise(x[quiet]) if quiet.sum() >= 2 else (np.nan, np.nan, np.nan)
        lines.append(f"| {name} | {ms:.2f} | {100 * cv:.1f}% | {100 * pairs:.0f}% | "
                     f"{100 * spread:.1f}% | {100 * qcv:.1f}% | {100 * qpairs:.0f}% |")
    lines += ["", "The median-size item is one of the items (its own ratio is 1 in every pass), "
              "a small bias in its favour. hwnas's reference is ElasticViT's smallest subnet at "
              "224 px since v2 (v1: at 128 px)."]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subnets", type=int, default=24)
    ap.add_argument("--passes", type=int, default=8)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = ap.parse_args(argv)
    cycle = ["quiet", "mem", "quiet", "cpu"]
    conditions = [cycle[p % len(cycle)] for p in range(args.passes)]
    md = render(args, measure(args.subnets, conditions, args.runs, args.seed))
    print(md)
    if not args.no_write:
        write_section("reference-choice", md)


if __name__ == "__main__":
    main()
