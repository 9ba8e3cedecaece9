"""LUT prediction throughput: encoded batches, and ``hwnas predict --archs`` by phase.

Run: python benchmarks/throughput.py [--subnets 50000] [--rows 200000] [--repeats 5]
Writes the "throughput" section of BENCHMARKS.md. Needs no device: the table is priced from op
MACs (a prediction's cost does not depend on the values). Run it on a quiet machine: the figures
are single-core wall times and move with whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import machine_line, write_section  # noqa: E402
from hwnas.latency.stats import Stats  # noqa: E402
from hwnas.latency.table import LatencyTable  # noqa: E402
from hwnas.predictors.lut import LUTPredictor  # noqa: E402
from hwnas.spaces import get_space  # noqa: E402


def table_for(space, device: str) -> LatencyTable:
    entries = {op.key: Stats.single(0.01 + op.macs() / 3e7)
               for r in space.resolutions for op in space.enumerate_ops(r)}
    return LatencyTable({"device": device, "call_overhead_ms": 0.01}, entries)


def encoded(space, table, n: int, repeats: int) -> tuple[float, float]:
    """(best, median) subnets/s of the compiled LUT on one encoded batch of n subnets; the
    first call (page faults of fresh buffers) is not counted."""
    pred = LUTPredictor(table, space, calibrate=False)
    rng = np.random.default_rng(0)
    x = np.stack([space.encode(space.sample(rng)) for _ in range(n)])
    pred.predict_encoded(x)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pred.predict_encoded(x)
        rates.append(n / (time.perf_counter() - t0))
    return max(rates), float(np.median(rates))


def batch_cli(space, table, rows: int, home: Path) -> dict:
    """``hwnas predict --archs`` on a JSON-lines file of ``rows`` subnets, its phases."""
    from hwnas.api.batch import predict_file

    table.save(home / "devices/pixel6/table.pkl")
    rng = np.random.default_rng(1)
    pool = [json.dumps(space.sample(rng).to_dict()) for _ in range(5000)]
    path = home / "archs.jsonl"
    path.write_text("\n".join(pool[i % len(pool)] for i in range(rows)) + "\n")
    got = predict_file("pixel6", path, home / "out.csv", home=home)
    assert got.fast, "the batch did not take the compiled LUT's path"
    return got.seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subnets", type=int, default=50_000)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="Print only (a trial run).")
    args = ap.parse_args()
    space = get_space("elasticvit")
    table = table_for(space, "pixel6")
    best, med = encoded(space, table, args.subnets, args.repeats)
    with tempfile.TemporaryDirectory(prefix="hwnas-bench-tp-") as home:
        sec = batch_cli(space, table, args.rows, Path(home))
    md = ["## LUT throughput", "", machine_line(),
          f"Command: `python benchmarks/throughput.py --subnets {args.subnets} --rows "
          f"{args.rows} --repeats {args.repeats}`", "",
          f"**Encoded batches** (ElasticViT, all resolutions, {args.subnets:,} random subnets, "
          f"one core, {args.repeats} timed calls after a warm-up): median {med:,.0f} subnets/s, "
          f"best {best:,.0f}. Goal ≥ 1,000,000.", "",
          f"**`hwnas predict --archs FILE --csv OUT`** on {args.rows:,} JSON lines, by phase: " +
          ", ".join(f"{k} {v:.2f} s" for k, v in sec.items()) +
          f"; prediction {args.rows / sec['predict']:,.0f} subnets/s (setup: table load, "
          f"predictor choice and calibration, {sec['setup']:.2f} s, once per file)."]
    if not args.no_write:
        write_section("throughput", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
