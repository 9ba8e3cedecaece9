"""The main job with one measuring session against one profiler per measuring call.

Run: python -m benchmarks.sessions [--repeats 2] [--target 15]

Each run is the README's main job (``api.search("local-cpu", target)`` at the device's
resolution) on a fresh HWNAS_HOME. "per call" is hwnas before the Session: every measuring call
(the profile, the calibration subnets, each landing round, the final check) opened its own
profiler (the measuring lock, the call overhead timed again, the reference network loaded
again). "one session" is the current code. Both variants run in one process, in a random
order, ``--repeats`` times each; the script counts the profilers actually opened and times the
phases. Writes the "sessions" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import machine_line, write_section  # noqa: E402


def one_run(variant: str, target_ms: float, seed: int) -> dict:
    import hwnas.api.device as device
    import hwnas.api.workflows as workflows
    from hwnas import api

    opened = [0]
    real_open = device._open_profiler

    @contextlib.contextmanager
    def counting(ctx, serials=()):
        opened[0] += 1
        with real_open(ctx, serials) as p:
            yield p

    @contextlib.contextmanager
    def no_session(ctx, serials=()):  # hwnas before the Session: every call opens its own
        yield ctx

    device._open_profiler = counting
    real_session = workflows.session
    if variant == "per call":
        workflows.session = no_session
    try:
        with tempfile.TemporaryDirectory() as home:
            t0 = time.perf_counter()
            out = api.search("local-cpu", target_ms, seed=seed, home=Path(home), progress=False)
            wall = time.perf_counter() - t0
    finally:
        device._open_profiler = real_open
        workflows.session = real_session
    measured = out.measured.median_ms if out.measured else float("nan")
    return {"variant": variant, "wall_s": wall, "profilers": opened[0],
            "measured_ms": measured, "vs_target": measured / target_ms - 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--target", type=float, default=15.0)
    args = ap.parse_args()
    jobs = [(v, r) for v in ("per call", "one session") for r in range(args.repeats)]
    random.Random(0).shuffle(jobs)
    rows = []
    for variant, r in jobs:
        row = one_run(variant, args.target, seed=r)
        print(row, flush=True)
        rows.append(row)
    import numpy as np

    lines = [machine_line(), "",
             f"The main job (`hwnas search --device local-cpu --target-latency {args.target:g}`, "
             f"fresh home each run), {args.repeats} runs per variant in random order. "
             f"`python -m benchmarks.sessions`.", "",
             "| variant | profilers opened (median) | wall s (median, range) | pick vs target |",
             "|---|---|---|---|"]
    for v in ("per call", "one session"):
        got = [r for r in rows if r["variant"] == v]
        walls = [r["wall_s"] for r in got]
        lines.append(f"| {v} | {int(np.median([r['profilers'] for r in got]))} | "
                     f"{np.median(walls):.0f} ({min(walls):.0f}-{max(walls):.0f}) | "
                     + ", ".join(f"{100 * r['vs_target']:+.1f}%" for r in got) + " |")
    per = np.median([r["wall_s"] for r in rows if r["variant"] == "per call"])
    one = np.median([r["wall_s"] for r in rows if r["variant"] == "one session"])
    lines += ["", f"Wall-time ratio one session / per call: {one / per:.2f} (medians)."]
    write_section("sessions", "## Profiler sessions of the main job\n\n" + "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
