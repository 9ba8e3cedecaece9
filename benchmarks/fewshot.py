"""Few-shot adaptation: a device's latency predictor from a few measured networks (issue 22).

Run: python benchmarks/fewshot.py [--draws 20] [--ns 5,10,20,50] [--skip-local]
Writes the "fewshot" section of BENCHMARKS.md.

HELP's protocol on its own data (../shared/data/help): its 9 knowledge devices are the
proxies; its validation devices (titanx_*, gold_6240) are the unseen targets. From each target
draw n networks (20 random draws per n), fit on them, score over every network of the space
(15,625 NAS-Bench-201, 5,000 FBNet): Spearman's rho, within ±10%, within ±5%. Side by side on
the same draws: FLOPs-linear, the best single proxy device fitted linearly in ms (chosen on
the draw by leave-one-out), hwnas's few-shot predictor (and its pick-the-lowest-LOO variant),
HELP's published figures; and adapt's choice of networks (choose_networks) vs random ones.

The local-cpu part (measure 10 nb201 networks drift-free, predict 200 others, measure those)
times things: run it only on a quiet machine, never beside another timing run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import machine_line, write_section  # noqa: E402
from hwnas.latency.help import load_help  # noqa: E402
from hwnas.predictors import metrics  # noqa: E402
from hwnas.predictors.fewshot import choose_networks, fit_fewshot  # noqa: E402
from hwnas.predictors.fewshot_proxies import ProxyBank  # noqa: E402
from hwnas.spaces import get_space  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "help"
KNOWLEDGE = ("1080ti_1,1080ti_32,1080ti_256,silver_4114,silver_4210r,samsung_a50,pixel3,"
             "essential_ph_1,samsung_s7").split(",")
SPACES = {"nasbench201": ("NAS-Bench-201", 0.932, 0.787, 0.97),
          "fbnet": ("FBNet", 0.910, None, 0.95)}  # name, HELP rho, HELP's FLOPs rho, our goal
PHONES = "samsung_a50, samsung_s7, essential_ph_1"
METHODS = ("flops-linear", "best single proxy", "hwnas few-shot (lowest LOO)",
           "hwnas few-shot", "hwnas few-shot, adapt's choice")


def devices(folder: str) -> tuple[list[str], list[str]]:
    names = sorted(p.stem for p in (SHARED / folder / "latency").glob("*.pt"))
    know = [k.replace("256", "64") if folder == "fbnet" else k for k in KNOWLEDGE]
    return know, [n for n in names if n not in know]


def scores(pred: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    return (metrics.spearman(pred, y), metrics.within(pred, y, 0.10),
            metrics.within(pred, y, 0.05))


def loo_linear_ms(x: np.ndarray, y: np.ndarray) -> float:
    """LOO RMSPE of y = a x + b (ms), for picking the single proxy on a draw."""
    a = np.column_stack([x, np.ones(len(x))])
    h = np.einsum("ij,ji->i", a, np.linalg.pinv(a.T @ a) @ a.T)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    e = (y - a @ coef) / np.maximum(1 - h, 1e-9)
    return float(np.sqrt(np.mean((e / y) ** 2)))


def linear_ms(x: np.ndarray, y: np.ndarray, x_all: np.ndarray) -> np.ndarray:
    coef, *_ = np.linalg.lstsq(np.column_stack([x, np.ones(len(x))]), y, rcond=None)
    return coef[0] * x_all + coef[1]


def run_space(folder: str, ns: list[int], draws: int) -> dict:
    know, unseen = devices(folder)
    space_name, first, _ = load_help(SHARED / folder / "latency" / f"{know[0]}.pt")
    sp = get_space(space_name)
    archs = [sp.arch_from_obj(a) for a, _ in first]
    lat = {}
    for d in know + unseen:  # one index: the i-th value of every file is the same network
        _, pairs, _ = load_help(SHARED / folder / "latency" / f"{d}.pt")
        lat[d] = np.array([ms for _, ms in pairs])
    bank = ProxyBank.build(sp, {d: list(zip(archs, lat[d])) for d in know})
    x_all, macs = bank.lookup(sp, archs)
    raw = np.column_stack([lat[d] for d in know])  # the proxies as measured (for the baseline)
    col = {n: i for i, n in enumerate(bank.names)}
    enc = np.array([sp.encode(a) for a in archs])
    out = {"space": space_name, "unseen": unseen, "n_networks": len(archs),
           "cleaned": dict(bank.cleaned), "res": {}, "ceiling": {}, "inputs": {}}

    def fewshot(idx, y, select="weighted"):
        p = fit_fewshot(sp, [(archs[i], y[i]) for i in idx], bank, select=select)
        cols = [col[n] for n in p.bank.names]
        return p.predict_from(x_all[:, cols], macs), p.report()

    for t in unseen:
        y = lat[t]
        # what a fit on every network over the proxies and the encoding reaches: the ceiling
        # of these inputs (noise of the target and the proxies included)
        a = np.column_stack([np.log(x_all), enc, np.ones(len(y))])
        c, *_ = np.linalg.lstsq(a, np.log(y), rcond=None)
        out["ceiling"][t] = scores(np.exp(a @ c), y)
        for n in ns:
            for d in range(draws):
                rng = np.random.default_rng([d, n, sum(map(ord, t))])
                idx = rng.choice(len(y), n, replace=False)
                r = out["res"].setdefault((t, n), {m: [] for m in METHODS})
                f = np.clip(linear_ms(macs[idx], y[idx], macs), 1e-6, None)
                r["flops-linear"].append(scores(f, y))
                j = min(range(len(know)), key=lambda k: loo_linear_ms(raw[idx, k], y[idx]))
                r["best single proxy"].append(
                    scores(np.clip(linear_ms(raw[idx, j], y[idx], raw[:, j]), 1e-6, None), y))
                r["hwnas few-shot (lowest LOO)"].append(scores(fewshot(idx, y, "loo")[0], y))
                pred, rep = fewshot(idx, y)
                r["hwnas few-shot"].append(scores(pred, y))
                if n == 10:
                    out["inputs"].setdefault(t, []).append(rep)
                picks = choose_networks(sp, bank, n, seed=d)
                pi = bank.rows(picks)
                r["hwnas few-shot, adapt's choice"].append(scores(fewshot(pi, y)[0], y))
        print(f"{folder} {t} done", flush=True)
    return out


def fmt(vals: list, k: int, pct: bool) -> str:
    v = np.array([x[k] for x in vals])
    if pct:
        return f"{100 * np.median(v):.0f}% ({100 * v.min():.0f}–{100 * v.max():.0f})"
    return f"{np.median(v):.3f} ({v.min():.3f}–{v.max():.3f})"


def section(results: list[dict], ns: list[int], draws: int, local: list[str]) -> str:
    lines = [
        "## Few-shot adaptation: a device from a few measured networks (`benchmarks/fewshot.py`)",
        "", machine_line(), "",
        "HELP's protocol on HELP's own data (`../shared/data/help`, HayeonLee/HELP 45f70eb): "
        "the 9 knowledge devices (`" + ",".join(KNOWLEDGE) + "`; on FBNet `*_64` for `*_256`) "
        "are the proxies, HELP's validation devices are the unseen targets. From each target, "
        f"{draws} random draws of n networks; every method is fitted on the same draw and scored "
        "over **every** network of the space. Cells: median over draws (min–max). Phones' "
        f"values ({PHONES}) are whole milliseconds (a 9 ms network is 9 ± 0.5 ms, so ±10% "
        "cannot be judged below ~5 ms on them); none is among the unseen devices, all of which "
        "are float ms.", "",
        "Methods: *flops-linear*: ms = a·MACs + b. *best single proxy*: ms = a·(proxy ms) + b, "
        "the proxy chosen on the draw by leave-one-out (LOO) RMSPE. *hwnas few-shot*: "
        "`hwnas.predictors.fewshot.fit_fewshot` — per proxy a scale and a power-law fit, plus "
        "FLOPs-linear, averaged in log space with weights 1/LOO-MSE²; *(lowest LOO)* keeps "
        "the single candidate with the lowest LOO error instead. *adapt's choice*: the same "
        "predictor on the n networks `choose_networks` picks (one per stratum of the proxies' "
        "first principal component, seed = draw) instead of random ones.", ""]
    for res in results:
        name, help_rho, help_flops, goal = SPACES[res["folder"]]
        lines += [f"### {name} ({res['n_networks']:,} networks; unseen: "
                  f"{', '.join(res['unseen'])})", ""]
        if res["cleaned"]:
            lines.append("Proxy values replaced by their op model as outliers (more than 2x and "
                         "6 robust sigmas off it): " + ", ".join(
                             f"{k} {v}" for k, v in res["cleaned"].items()) + ".")
            lines.append("")
        # the headline: mean rho over the unseen devices, HELP's way
        lines += ["| n | " + " | ".join(METHODS) + " | HELP (published, n=10) |",
                  "|---|" + "---|" * (len(METHODS) + 1)]
        for n in ns:
            cells = []
            for m in METHODS:
                means = [np.mean([x[0] for x in res["res"][(t, n)][m]]) for t in res["unseen"]]
                cells.append(f"{np.mean(means):.3f}")
            helpc = (f"{help_rho:.3f} (FLOPs {help_flops:.3f})" if help_flops else
                     f"{help_rho:.3f}") if n == 10 else ""
            lines.append(f"| {n} | " + " | ".join(cells) + f" | {helpc} |")
        lines += ["", f"_Mean over the unseen devices of the mean Spearman ρ over draws (HELP "
                      f"reports this mean). Goal at n=10: ≥ {goal}._", ""]
        for n in ns:
            lines += [f"**n = {n}**", "",
                      "| device | method | Spearman ρ | within ±10% | within ±5% |",
                      "|---|---|---|---|---|"]
            for t in res["unseen"]:
                for m in METHODS:
                    v = res["res"][(t, n)][m]
                    lines.append(f"| {t} | {m} | {fmt(v, 0, False)} | {fmt(v, 1, True)} | "
                                 f"{fmt(v, 2, True)} |")
                c = res["ceiling"][t]
                lines.append(f"| {t} | ceiling: least squares on all networks (proxies + "
                             f"encoding) | {c[0]:.3f} | {100 * c[1]:.0f}% | {100 * c[2]:.0f}% |")
            lines.append("")
        lines += ["What the few-shot predictor used at n = 10 (share of the weighted average, "
                  "mean over draws; LOO RMSPE median):", ""]
        for t, reps in res["inputs"].items():
            tot: dict = {}
            for r in reps:
                for k, w in r.inputs.items():
                    tot[k] = tot.get(k, 0.0) + w / len(reps)
            top = ", ".join(f"{k} {100 * w:.0f}%" for k, w in
                            sorted(tot.items(), key=lambda kv: -kv[1])[:4])
            lines.append(f"- {t}: {top}; LOO RMSPE {np.median([r.loo_rmspe for r in reps]):.1f}%"
                         f" (FLOPs-linear {np.median([r.flops_loo_rmspe for r in reps]):.1f}%)")
        lines.append("")
    lines += ["### local-cpu", ""] + local
    return "\n".join(lines)


def local_part(n: int = 10, others: int = 200) -> list[str]:
    """Measure ``n`` nb201 networks drift-free on local-cpu, fit on them with the HELP devices
    as proxies, predict ``others`` networks and measure those too. Times things."""
    from hwnas import api

    know, _ = devices("nasbench201")
    space_name, first, _ = load_help(SHARED / "nasbench201" / "latency" / f"{know[0]}.pt")
    ctx = api.context("local-cpu", space="nb201")
    sp = ctx.space
    archs = [sp.arch_from_obj(a) for a, _ in first]
    proxies = {d: list(zip(archs, [ms for _, ms in load_help(
        SHARED / "nasbench201" / "latency" / f"{d}.pt")[1]])) for d in know}
    bank = ProxyBank.build(sp, proxies)
    train = choose_networks(sp, bank, n, seed=0)
    y_train = np.array([s.median_ms for s in api.measure_archs(ctx, train, passes=1)])
    p = fit_fewshot(sp, list(zip(train, y_train)), bank)
    rng = np.random.default_rng(1)
    test = [archs[i] for i in rng.choice(len(archs), others, replace=False)]
    y = np.array([s.median_ms for s in api.measure_archs(ctx, test, passes=1)])
    pred = p.predict(test)
    s = metrics.score(pred, y)
    return [f"{n} networks measured drift-free on local-cpu (chosen by `choose_networks`), "
            f"{others} others predicted and measured: Spearman ρ {s['spearman']:.3f}, within "
            f"±10% {100 * s['within10']:.0f}%, within ±5% {100 * s['within5']:.0f}%. "
            f"{p.report().describe()}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--ns", default="5,10,20,50")
    ap.add_argument("--spaces", default="nasbench201,fbnet")
    ap.add_argument("--skip-local", action="store_true",
                    help="leave out the local-cpu part (it times networks)")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"HELP's data is not at {SHARED}")
    ns = [int(x) for x in args.ns.split(",")]
    results = []
    for folder in args.spaces.split(","):
        r = run_space(folder, ns, args.draws)
        r["folder"] = folder
        results.append(r)
    local = (["Not run (`--skip-local`): it measures networks on this machine and must not "
              "run beside another timing run."] if args.skip_local else local_part())
    write_section("fewshot", section(results, ns, args.draws, local))
    print("wrote the fewshot section of BENCHMARKS.md")


if __name__ == "__main__":
    main()
