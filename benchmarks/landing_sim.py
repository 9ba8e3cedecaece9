"""The landing's policy in a simulated device: the best few candidates against a ladder,
and what a landing whose rounds all fail keeps.

A SIMULATION, not a measurement: nothing is timed. It isolates one choice of the landing
(hwnas.search.landing), how step 2 picks the candidates it measures, from the machine's noise,
so that the choice can be compared over many more searches than the main-job benchmark can
afford (each real search costs 1-3 minutes of a quiet core).

The simulated device: the predictor is a LUT whose per-op costs are a noisy function of MACs;
the device's per-op costs are the same, each times its own lognormal factor (``--worlds``:
OP_SD), so the predictor errs differently from one subnet to the next (about 2.7% at 0.12; the
landing's candidates on local-cpu scatter by about 2% around their round's median), times a
bias drawn per search within [0.92, 1.08] (the predictor's shared error before the landing
corrects it), times a per-pass noise (``--worlds``: PASS_SD; lognormal; 1% is a pass-to-pass
SD of one process on local-cpu, BENCHMARKS.md "The main job"). A candidate is measured as the
median of 2 passes, as the search does. The same searches (seeds, targets, biases) run under
each policy, in random order.

Reported per policy: how often the pick lands (measured in the window), how often its *true*
latency (noise-free) is within [-3%, 0%] of the target, rounds and measurements used.

``python -m benchmarks.landing_sim`` writes the ``landing-sim`` section of BENCHMARKS.md: both
policies in two worlds, a quiet one (1% per pass) and a noisy one (2% per pass, 3.6% per
subnet), as this machine is on a busy hour.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np


def _table_predictors(space, op_sd: float):
    """(the predictor, the device): per-op costs a noisy function of MACs, and the device's
    the same costs each times its own lognormal factor of SD ``op_sd``."""
    from hwnas.latency.stats import Stats
    from hwnas.latency.table import LatencyTable
    from hwnas.predictors.lut import LUTPredictor

    rng = np.random.default_rng(0)
    ops = {op.key: op for r in space.resolutions for op in space.enumerate_ops(r)}
    pred = {k: 0.02 + op.macs() / 5e7 * rng.uniform(0.7, 1.3) for k, op in ops.items()}
    true = {k: v * float(np.exp(rng.normal(0, op_sd))) for k, v in pred.items()}
    return tuple(LUTPredictor(LatencyTable({"device": "simulated"},
                                           {k: Stats.single(v) for k, v in t.items()}),
                              space, calibrate=False) for t in (pred, true))


def subnet_sd(space, pred, truth, n: int = 300) -> float:
    """The simulated predictor's per-subnet error (SD of device / predicted, random subnets)."""
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(n)]
    r = truth.predict_raw(archs) / pred.predict_raw(archs)
    return float(np.std(r) / np.mean(r))


@dataclasses.dataclass(frozen=True)
class Outcome:
    policy: str
    landed: bool
    true_in_promise: bool
    true_gap: float
    rounds: int
    measurements: int


def one_search(space, pred, truth, target_ms: float, bias: float, seed: int, pass_sd: float,
               cfg) -> tuple[bool, float, int, int]:
    from hwnas.search.landing import land

    noise = np.random.default_rng(seed + 99)
    count = [0]

    def measure(archs):
        count[0] += len(archs)
        true = truth.predict_raw(archs) * bias
        passes = true[:, None] * np.exp(noise.normal(0, pass_sd, (len(archs), 2)))
        return np.median(passes, axis=1)

    _, landing = land(space, pred.predict, target_ms, seed, measure, cfg=cfg)
    true = float(truth.predict_raw([landing.best.candidate.arch])[0] * bias)
    return landing.landed, true / target_ms - 1, landing.rounds, count[0]


def _world(space, op_sd: float, pass_sd: float, searches: int, policies: dict,
           rng) -> tuple[float, list[Outcome]]:
    """(the predictor's per-subnet error, every search's outcome) in one simulated world."""
    from hwnas.search.evolution import feasible_range

    pred, truth = _table_predictors(space, op_sd)
    lo, hi = feasible_range(space, pred.predict)
    jobs = [(rng.uniform(0.1, 0.7), rng.uniform(0.92, 1.08), int(s)) for s in range(searches)]
    runs = [(name, j) for name in policies for j in jobs]
    out: list[Outcome] = []
    for i in rng.permutation(len(runs)):
        name, (where, bias, seed) = runs[i]
        target = (lo + where * (hi - lo)) * bias
        landed, gap, rounds, n = one_search(space, pred, truth, target, bias, seed, pass_sd,
                                            policies[name])
        out.append(Outcome(name, landed, -0.03 <= gap <= 0.0, gap, rounds, n))
    return subnet_sd(space, pred, truth), out


def main(argv=None) -> None:
    from benchmarks._report import write_section
    from hwnas.search.landing import LandingConfig
    from hwnas.spaces import get_space

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--searches", type=int, default=40)
    ap.add_argument("--worlds", default="0.01:0.12,0.02:0.16",
                    help="PASS_SD:OP_SD,...: per-pass noise (1%%: one process on local-cpu) "
                         "and the device's per-op deviation from the predictor (0.12: ~2.7%% "
                         "per subnet)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--policies", default="", help="policy names, separated by ';' (default: all)")
    args = ap.parse_args(argv)

    space = get_space("elasticvit", [160])
    rng = np.random.default_rng(2026)
    # the policies measured before 2026-12-07 13:00 UTC were 4 candidates a round, 4 rounds
    four = dict(per_round=4, rounds=4, correct_over=4)
    policies = {"2 a round, up to 8 (hwnas)": LandingConfig(),
                "4 a round, up to 4 (before)": LandingConfig(**four),
                "1 a round, up to 16": LandingConfig(per_round=1, rounds=16, correct_over=4),
                "4 a round as a ladder 0.75% apart": LandingConfig(ladder_step=0.0075, **four),
                "failed rounds keep the best under T": LandingConfig(prefer_promise=False)}
    if args.policies:
        policies = {k: v for k, v in policies.items() if k in args.policies.split(";")}
    rows = ["| per-pass noise | predictor's per-subnet error | policy | searches | landed "
            "(measured in the window) | true latency within [-3%, 0%] | true gap median "
            "(IQR) | rounds median (max) | measurements median (max) |",
            "|---|---|---|---|---|---|---|---|---|"]
    t0 = time.perf_counter()
    for world in args.worlds.split(","):
        pass_sd, op_sd = (float(v) for v in world.split(":"))
        sd, out = _world(space, op_sd, pass_sd, args.searches, policies, rng)
        for name in policies:
            o = [x for x in out if x.policy == name]
            g = np.array([x.true_gap for x in o]) * 100
            r = np.array([x.rounds for x in o])
            m = np.array([x.measurements for x in o])
            rows.append(
                f"| {100 * pass_sd:g}% | {100 * sd:.1f}% | {name} | {len(o)} | "
                f"{100 * np.mean([x.landed for x in o]):.0f}% | "
                f"{100 * np.mean([x.true_in_promise for x in o]):.0f}% | {np.median(g):+.1f}% "
                f"({np.percentile(g, 25):+.1f}% to {np.percentile(g, 75):+.1f}%) | "
                f"{np.median(r):.0f} ({r.max()}) | {np.median(m):.0f} ({m.max()}) |")
    wall = time.perf_counter() - t0
    md = "\n".join([
        "## The landing's candidates: how many a round, a ladder, and its fallback (simulated)",
        "",
        f"_`python -m benchmarks.landing_sim --searches {args.searches} --worlds "
        f"{args.worlds}`: a SIMULATION (nothing timed; {wall:.0f} s). In each world the same "
        f"{args.searches} searches under each policy, in random order: targets drawn over the "
        f"space's predicted range, the predictor's shared bias drawn in [0.92, 1.08], each "
        f"candidate the median of 2 passes. The device is the predictor's per-op costs each "
        f"off by its own factor, so the predictor errs from one random subnet to the next as "
        f"on a real device (see the script's docstring)._",
        "",
        *rows,
        "",
        "A landed pick's *measured* figure is in the window by construction; the column that "
        "matters to a user is the true one. hwnas measures 2 candidates a round since "
        "2026-12-07 (`LandingConfig`: up to 8 rounds, its correction over the 4 measured "
        "nearest the target): near-twin candidates hit or miss the window together, so a "
        "round of 4 measured about twice the subnets for a landing no better. One a round "
        "measured fewer still and landed as well here, in more rounds (on a device each is "
        "an evolution and a timing process per pass); it is not the default until a real "
        "run says so. The ladder was tried because a real 10 ms search measured 3 of its 4 "
        "rounds of near-twins all near -5%; it did no better, so `LandingConfig.ladder_step` "
        "stays 0. The last policy is the rule before `LandingConfig.prefer_promise`: when "
        "every round fails, the best-scoring candidate measured under T, not the best one "
        "measured within [-3%, 0%]; it differs only in the searches whose rounds all fail. A "
        "share over 40 searches carries about 7 points, and the second world's searches "
        "change with the set of policies run (they are drawn after the first world's "
        "order). Real searches: \"The main job\" above.",
    ])
    print(md)
    if not args.no_write:
        write_section("landing-sim", md)


if __name__ == "__main__":
    main()
