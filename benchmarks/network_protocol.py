"""How a whole network is timed beside the reference: settled by its own time, one call a round,
or settled rounds.

``python -m benchmarks.network_protocol`` (under the timing lock) exports NETS ElasticViT
subnets spread from the space's smallest to its largest MACs once, for each runtime at hand
(onnxruntime always; LiteRT when ``ai-edge-litert`` and ``litert-torch`` are installed), then
times each file ROUNDS times three ways, in a random order within each round:

* **back to back**: warm-up, then the timed calls one after another, no reference: how
  ``benchmark_model`` and ``onnxruntime_perf_test`` time a model, and how a deployed model runs;
* **settled to 8 ms**: the drift-free protocol as hwnas runs it for whole networks
  (``ReferencePlan.for_networks``, since 2026-12-07): one timed call of the network beside every
  reference call, after untimed calls until ``NETWORK_SETTLE_MS`` of it ran (none from 8 ms);
* **one call a round**: how hwnas timed them before: one call beside every reference call;
* **settled rounds** (``ReferencePlan.settled``): rounds of ``SETTLED_ROUND`` calls between
  reference runs, the first ``SETTLED_SKIP`` untimed.

Each way's median ms of one round is divided by back to back's in the same round (the machine's
speed of that minute cancels), and the table gives the median over rounds and, in brackets,
the SD of that ratio over rounds: the comparison's noise floor. The last column compares what a
table or records file keeps, the drift-free ratio to the reference, settled to 8 ms against
one call a round: where it moves, the unit moves. Writes ``network-protocol``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

WAYS = ("back to back", "settled to 8 ms", "one call a round", "settled rounds")


def _files(space, picks, tmp: Path, runtimes, zoo_names, cache: Path) -> list[dict]:
    from hwnas.profilers.export import export_onnx, export_tflite

    out = []
    for i, arch in enumerate(picks):
        model, shape = space.build_model(arch).eval(), space.input_shape(arch)
        row = {"i": i, "name": f"subnet {i}", "mmacs": space.macs(arch) / 1e6}
        if "onnxruntime" in runtimes:
            row["onnxruntime"] = export_onnx(model, shape, tmp / f"net{i}.onnx")
        if "litert" in runtimes:
            row["litert"] = export_tflite(model, shape, tmp / f"net{i}.tflite",
                                          channels_last=True)
        out.append(row)
    for name in zoo_names:  # a zoo model as hwnas's any-model benchmark exports it
        from hwnas.anymodel import zoo

        row = {"i": len(out), "name": name, "mmacs": None}
        for runtime in runtimes:
            row[runtime] = zoo.export(name, "onnx" if runtime == "onnxruntime" else "tflite",
                                      cache)
        out.append(row)
    return out


def _benches(runtime: str, prof, row):
    """A fresh bench of the file, as its profiler times a whole network (own arena)."""
    if runtime == "onnxruntime":
        from benchmarks._networks import own_arena_bench

        return own_arena_bench(prof, row[runtime])
    from hwnas.profilers.litert import _LiteBench

    return _LiteBench(prof._interpreter(row[runtime]))


def _time(way: str, bench, prof) -> tuple[float, float]:
    """One way's (median ms, median ratio to the reference; nan back to back) over the
    config's runs (the network warmed up first)."""
    from hwnas.profilers.drift import ReferencePlan, interleave

    cfg = prof.cfg
    if way == "back to back":
        bench.time_calls(cfg.warmup)
        return float(np.median(bench.time_calls(cfg.runs))), float("nan")
    base = ReferencePlan(reference_runs=prof.plan.reference_runs)
    plan = {"settled rounds": base.settled(cfg.runs, 1),
            "settled to 8 ms": base.for_networks(cfg.runs, 1),
            "one call a round": ReferencePlan(rounds=cfg.runs,
                                              reference_runs=prof.plan.reference_runs)}[way]
    got = interleave(bench, prof._reference, cfg.runs, cfg.warmup, plan)
    return got.stats().median_ms, got.ratio().median


def runtimes_at_hand() -> list[str]:
    import importlib.util

    have = ["onnxruntime"]
    if all(importlib.util.find_spec(m) for m in ("ai_edge_litert", "litert_torch")):
        have.append("litert")
    return have


def main(argv=None) -> None:
    from benchmarks._networks import spread_subnets
    from benchmarks._report import machine_line, write_section
    from hwnas.api.device import context, session
    from hwnas.profilers.drift import NETWORK_SETTLE_MS, SETTLED_ROUND, SETTLED_SKIP

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--runtimes", default=",".join(runtimes_at_hand()))
    ap.add_argument("--zoo", default="", help="zoo models to add, comma-separated (needs "
                    "hwnas[zoo])")
    ap.add_argument("--cache", default=None, help="the zoo's export cache (default: a "
                    "temporary one)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    runtimes = args.runtimes.split(",")
    devices = {"onnxruntime": "local-cpu", "litert": "local-tflite"}

    got: dict[tuple, list] = {}
    with tempfile.TemporaryDirectory(prefix="hwnas-netproto-") as tmp:
        ctx = context("local-cpu", "elasticvit", home=Path(tmp) / "home")
        space = ctx.space
        picks = spread_subnets(space, args.nets, args.seed)
        rows = _files(space, picks, Path(tmp), runtimes,
                      [z for z in args.zoo.split(",") if z], Path(args.cache or tmp))
        for runtime in runtimes:
            rctx = context(devices[runtime], "elasticvit", home=Path(tmp) / "home")
            with session(rctx) as rctx:
                prof = rctx.session.profiler()
                for r in range(args.rounds):
                    for row in rows:
                        bench = _benches(runtime, prof, row)
                        ms = {}
                        for w in np.random.default_rng([args.seed, r, row["i"]]).permutation(
                                WAYS):
                            ms[w] = _time(str(w), bench, prof)
                        for w in WAYS:
                            got.setdefault((runtime, row["i"]), []).append(
                                (ms["back to back"][0], ms[w][0] / ms["back to back"][0],
                                 ms["settled to 8 ms"][1] / ms["one call a round"][1]))
    lines = ["| runtime | network | MMACs | back to back, ms | "
             + " | ".join(f"{w} / back to back (SD)" for w in WAYS[1:])
             + " | ratio to the reference: settled to 8 ms / one call a round (SD) |",
             "|---|---|---|---|" + "---|" * len(WAYS)]
    for runtime in runtimes:
        for row in rows:
            vals = got[(runtime, row["i"])]
            b2b = float(np.median([v[0] for v in vals[::len(WAYS)]]))
            cells = []
            for j, w in enumerate(WAYS[1:], start=1):
                ratios = [v[1] for v in vals[j::len(WAYS)]]
                cells.append(f"{100 * (np.median(ratios) - 1):+.1f}% "
                             f"({100 * np.std(ratios, ddof=1):.1f}%)")
            units = [v[2] for v in vals[::len(WAYS)]]
            cells.append(f"{100 * (np.median(units) - 1):+.1f}% "
                         f"({100 * np.std(units, ddof=1):.1f}%)")
            mmacs = "-" if row["mmacs"] is None else f"{row['mmacs']:.0f}"
            lines.append(f"| {runtime} | {row['name']} | {mmacs} | {b2b:.2f} | "
                         + " | ".join(cells) + " |")
    md = "\n".join([
        "## How a whole network is timed beside the reference (`benchmarks/network_protocol.py`)",
        "", machine_line(), "",
        f"`flock /tmp/hwnas-timing.lock .venv/bin/python -m benchmarks.network_protocol "
        f"--nets {args.nets} --rounds {args.rounds} --seed {args.seed} --runtimes "
        f"{args.runtimes}" + (f" --zoo {args.zoo}" if args.zoo else "") + "`: "
        f"{args.nets} ElasticViT subnets from the space's smallest to its largest MACs"
        + (f" and {len(rows) - args.nets} zoo models (random weights)" if args.zoo else "")
        + f", each exported once per runtime and timed {args.rounds} times four "
        f"ways, in a random order within each round: back to back (no reference; how "
        f"benchmark_model and onnxruntime_perf_test time a model), settled to "
        f"{NETWORK_SETTLE_MS:g} ms (hwnas's protocol for whole networks: one timed call beside "
        f"every reference call, after untimed calls until {NETWORK_SETTLE_MS:g} ms of the "
        f"network ran; none from {NETWORK_SETTLE_MS:g} ms), one call a round (the protocol "
        f"before, no untimed calls), and settled rounds ({SETTLED_ROUND} calls between "
        f"reference runs, the first {SETTLED_SKIP} untimed; tried and not adopted). Each "
        f"way's median ms over back to back's in the same round, the median over rounds; in "
        f"brackets that ratio's SD over rounds, the comparison's noise floor. Last column: "
        f"the drift-free ratio (what tables and records keep), settled to "
        f"{NETWORK_SETTLE_MS:g} ms over one call a round in the same round.", "", *lines])
    print(md)
    if not args.no_write:
        write_section("network-protocol", md)


if __name__ == "__main__":
    main()
