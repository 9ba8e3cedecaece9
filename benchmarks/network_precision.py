"""How repeatable a whole network's drift-free figure is, per way of timing it beside the reference.

``python -m benchmarks.network_precision`` (under the timing lock) exports NETS ElasticViT
subnets spread over the space's MACs and times each one REPEATS times per way, the ways in a
random order within each repeat, in one onnxruntime process (the process-to-process spread,
docs/ARCHITECTURE.md "A process per pass", comes on top of this):

* **one call a round**: one network call beside every reference call (hwnas's protocol until
  2026-12-07; ``ReferencePlan.for_networks`` now first calls a network under 8 ms untimed
  until 8 ms of it ran, which these subnets of 5-20 ms mostly are not: see
  ``benchmarks/network_protocol.py``);
* **settled rounds**: rounds of ``SETTLED_ROUND`` network calls, the first ``SETTLED_SKIP``
  untimed, between reference runs of one untimed and one timed call
  (``ReferencePlan.settled``); and two variants: 3 timed reference calls a run, and no extra
  batches.

Every way uses the device config's runs and its extra batches while the ratio is imprecise.
Reported per way: the SD of a subnet's median ratio over the repeats (the median over subnets),
its median ratio against one call a round's, and the seconds one measurement took.
Writes the ``network-precision`` section.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def _ways(plan, cfg) -> dict:
    settled = plan.settled(cfg.runs, cfg.reference_batches)
    one = replace(plan, rounds=cfg.runs, max_batches=cfg.reference_batches)
    return {"one call a round (hwnas)": one,
            "settled rounds": settled,
            "settled rounds, 3 reference calls": replace(settled, reference_runs=3),
            "settled rounds, one batch": replace(settled, max_batches=1)}


def main(argv=None) -> None:
    from benchmarks._report import machine_line, write_section
    from hwnas.api.device import context, session
    from hwnas.profilers.drift import SETTLED_ROUND, SETTLED_SKIP, interleave
    from benchmarks._networks import own_arena_bench, spread_subnets
    from hwnas.profilers.export import export_onnx

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="hwnas-netprec-") as tmp:
        ctx = context("local-cpu", "elasticvit", home=Path(tmp) / "home")
        space = ctx.space
        picks = spread_subnets(space, args.nets, args.seed)
        files = []
        for i, arch in enumerate(picks):
            path = export_onnx(space.build_model(arch).eval(), space.input_shape(arch),
                               Path(tmp) / f"net{i}.onnx")
            files.append((path, space.macs(arch) / 1e6))
        with session(ctx) as ctx:
            prof = ctx.session.profiler()
            ways = _ways(prof.plan, prof.cfg)
            got = {w: [[] for _ in files] for w in ways}
            secs = {w: [] for w in ways}
            benches = [own_arena_bench(prof, p) for p, _ in files]
            for r in range(args.repeats):
                for i in np.random.default_rng([args.seed, r]).permutation(len(files)):
                    for w in np.random.default_rng([args.seed, r, i]).permutation(list(ways)):
                        t0 = time.perf_counter()
                        t = interleave(benches[i], prof._reference, prof.cfg.runs,
                                       prof.cfg.warmup, ways[w])
                        secs[w].append(time.perf_counter() - t0)
                        got[w][i].append(t.ratio().median)
    base = "one call a round (hwnas)"
    lines = ["| way | SD of a subnet's figure over repeats (median; max) | vs one call a round "
             "(median over subnets) | s per measurement |", "|---|---|---|---|"]
    for w in ways:
        sds = [100 * np.std(np.log(x), ddof=1) for x in got[w]]
        rel = [100 * (np.median(x) / np.median(b) - 1) for x, b in zip(got[w], got[base])]
        lines.append(f"| {w} | {np.median(sds):.2f}%; {max(sds):.2f}% | {np.median(rel):+.1f}% "
                     f"| {np.median(secs[w]):.2f} |")
    md = "\n".join([
        "## How repeatable a whole network's figure is (`benchmarks/network_precision.py`)", "",
        machine_line(), "",
        f"`flock /tmp/hwnas-timing.lock .venv/bin/python -m benchmarks.network_precision --nets "
        f"{args.nets} --repeats {args.repeats} --seed {args.seed}`: {args.nets} ElasticViT "
        f"subnets ({', '.join(f'{m:.0f}' for _, m in files)} MMACs), each timed drift-free "
        f"{args.repeats} times per way in one onnxruntime process, the ways in a random order "
        f"within each repeat; every way with the config's {prof.cfg.runs} runs and up to "
        f"{prof.cfg.reference_batches} batches while the ratio is imprecise. Settled rounds: "
        f"{SETTLED_ROUND} network calls between reference runs, the first {SETTLED_SKIP} "
        f"untimed. The SD of a subnet's median ratio over its repeats is the way's noise floor "
        f"within one process.", "", *lines])
    print(md)
    if not args.no_write:
        write_section("network-precision", md)


if __name__ == "__main__":
    main()
