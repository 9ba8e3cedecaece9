"""Where a whole network is timed: the search's own process or a fresh timing process.

``python -m benchmarks.process_protocol`` (under the timing lock) exports SUBNETS ElasticViT
subnets spread over the space's MACs once, then times each file drift-free in ROUNDS rounds,
the three ways in a random order within each round:

* **shared arena**: in hwnas's own process (torch loaded, the profiler open), in a session that
  draws from onnxruntime's shared arena (``session.use_env_allocators``), as whole networks were
  timed before 2026-12-07;
* **own arena**: in hwnas's own process, in a session with an arena of its own;
* **fresh process**: in a new onnxruntime-only timing process per round
  (``Profiler.fresh_process``), as every pass of a whole subnet is timed now.

Reported: each way's median ratio to the reference against the fresh process's, per subnet, and
the noise floor (the SD of one way's per-round ratios). Writes the ``process-protocol`` section.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

WAYS = ("shared arena", "own arena", "fresh process")


def main(argv=None) -> None:
    from benchmarks._report import machine_line, write_section
    from hwnas.api.device import context, session
    from benchmarks._networks import own_arena_bench, spread_subnets
    from hwnas.profilers.export import export_onnx

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subnets", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="hwnas-protocol-") as tmp:
        ctx = context("local-cpu", "elasticvit", home=Path(tmp) / "home")
        space = ctx.space
        picks = spread_subnets(space, args.subnets, args.seed, pool=200, first=60, last=180)
        files = []
        for i, arch in enumerate(picks):
            path = Path(tmp) / f"net{i}.onnx"
            export_onnx(space.build_model(arch).eval(), space.input_shape(arch), path)
            files.append((path, space.input_shape(arch), space.macs(arch) / 1e6))
        got = {w: [[] for _ in files] for w in WAYS}
        with session(ctx) as ctx:
            prof = ctx.session.profiler()

            def own_arena(path, shape):
                return prof._run(own_arena_bench(prof, path), 0.0, network=True)

            for r in range(args.rounds):
                for w in np.random.default_rng([args.seed, r]).permutation(WAYS):
                    if w == "fresh process":
                        with prof.fresh_process() as timer:
                            ms = [timer.measure_file_full(p, "onnx", s) for p, s, _ in files]
                    elif w == "shared arena":
                        ms = [prof.measure_file_full(p, "onnx", s) for p, s, _ in files]
                    else:
                        ms = [own_arena(p, s) for p, s, _ in files]
                    for i, m in enumerate(ms):
                        got[w][i].append(m.ratio.median)
    rows = ["| subnet | MMACs | " + " | ".join(f"{w}: vs fresh process (SD per round)"
                                              for w in WAYS) + " |",
            "|---|---|" + "---|" * len(WAYS)]
    for i, (_, _, mmacs) in enumerate(files):
        base = np.median(got["fresh process"][i])
        cells = [f"{100 * (np.median(got[w][i]) / base - 1):+.1f}% "
                 f"({100 * np.std(np.log(got[w][i]), ddof=1):.1f}%)" for w in WAYS]
        rows.append(f"| {i} | {mmacs:.0f} | " + " | ".join(cells) + " |")
    md = "\n".join([
        "## Where a whole network is timed: the search's process or a fresh one "
        "(`benchmarks/process_protocol.py`)", "", machine_line(), "",
        f"`flock /tmp/hwnas-timing.lock .venv/bin/python -m benchmarks.process_protocol "
        f"--subnets {args.subnets} --rounds {args.rounds} --seed {args.seed}`: {args.subnets} "
        f"ElasticViT subnets exported once, each timed drift-free (its median ratio to the "
        f"reference network) {args.rounds} times each way, the three ways in a random order "
        f"in every round: in hwnas's own process in onnxruntime's shared arena (how whole "
        f"networks were timed before 2026-12-07), in hwnas's own process in an arena of its "
        f"own, and in a fresh onnxruntime-only timing process per round (how they are timed "
        f"now). Each way's median against the fresh process's; in brackets the way's own "
        f"round-to-round SD, its noise floor.", "", *rows])
    print(md)
    if not args.no_write:
        write_section("process-protocol", md)


if __name__ == "__main__":
    main()
