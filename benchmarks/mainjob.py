"""The main job on a fresh home, as a new user runs it: the first search against ``--full``.

Run (it measures: under the timing lock on a shared box):

    flock /tmp/hwnas-timing.lock .venv/bin/python -m benchmarks.mainjob

Each run is ``hwnas search --device local-cpu --target-latency T --json`` (``--full`` for
today's path before issue 24: every op profiled, 12 calibration subnets) started as a
subprocess on a new, empty HWNAS_HOME, timed from outside from process start to exit, as a new
user waits for it. Both paths, every target, ``--homes`` fresh homes each, in one random order (shuffled within
each round of homes, so an early stop leaves every cell with as many runs, give or take one).
The phases come from the run's JSON (``phases_s``: profile, calibration, fit, search, landing,
remeasure); "other" is the rest of the wall time (starting Python, imports, the plot).

Each run's result is appended to ``--results`` as it finishes, so an interrupted benchmark keeps
its numbers; rerun the same command to resume (runs already there are skipped). Writes the
"mainjob" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import machine_line, write_section  # noqa: E402

# what each path adds to `hwnas search`. "landing-1" / "landing-2": the landing's candidates
# measured in 1 / 2 passes each. The runs in mainjob_runs_landing_passes.json were made at
# commit 55e7938, whose default was 1 pass; 2 is the default again since, as before that commit
PATH_ARGS = {"default": [], "full": ["--full"], "landing-1": ["--landing-passes", "1"],
             "landing-2": ["--landing-passes", "2"], "before": []}
# "before": the default path run by another hwnas, on PYTHONPATH=--before DIR (a snapshot of
# an earlier commit); the check stays this run's own, so that both paths' picks are checked
# alike
OTHERS = ("full", "landing-1", "landing-2", "before")
PATHS = tuple(PATH_ARGS)
PHASES = ("profile", "calibration", "fit", "search", "landing", "remeasure")
GOAL_S = 120.0
# The pick measured again after the run, by processes of their own. A subnet's drift-free
# figure moves little between passes of one process (~0.5%) but by ~2% (SD) between processes
# on this box (the reference network's speed is part of each process's draw, and the host's
# load moves it over minutes), so the check pools CHECK_PROCESSES processes of CHECK_PASSES
# passes each, and its own noise floor is the spread of their medians (the search's figure
# pools the passes its landing chose the pick by, so it is no check)
CHECK_PROCESSES = 3
CHECK_PASSES = 3


def hwnas_bin() -> str:
    here = Path(sys.executable).parent / "hwnas"
    return str(here) if here.exists() else "hwnas"


def one_run(path: str, target_ms: float, device: str, before: str | None = None) -> dict:
    home = Path(tempfile.mkdtemp(prefix="hwnas-mainjob-"))
    cmd = [hwnas_bin(), "search", "--device", device, "--target-latency", f"{target_ms:g}",
           "--json"] + PATH_ARGS[path]
    env = dict(os.environ, HWNAS_HOME=str(home))
    # PYTHONPATH comes before the installed hwnas: the search runs the snapshot's
    run_env = dict(env, PYTHONPATH=before) if path == "before" else env
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=run_env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        check = _check_pick(home, p.stdout, env) if p.returncode == 0 else None
    finally:
        shutil.rmtree(home, ignore_errors=True)
    row = {"path": path, "target_ms": target_ms, "wall_s": wall, "rc": p.returncode,
           "load_before": load0, "load_after": os.getloadavg()[0],
           "when": time.strftime("%H:%M:%S", time.gmtime())}
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.replace("\r", "\n").splitlines()
                 if ln.strip() and ln.startswith(("hwnas:", "WARNING", "Error"))]
        row["error"] = lines[-1] if lines else p.stderr[-300:]
        return row
    doc = json.loads(p.stdout)
    land = doc.get("landing") or {}
    row.update(measured_ms=doc["measured_ms"], predicted_ms=doc["predicted_ms"],
               vs_target=(doc["measured_ms"] / target_ms - 1) if doc["measured_ms"] else None,
               landed=land.get("landed"), rounds=land.get("rounds"),
               checked=len(land.get("checked", [])), predictor=doc["predictor"],
               predictor_detail=doc["predictor_detail"], table=doc.get("table"),
               phases_s=doc.get("phases_s") or {}, measured_passes=doc.get("measured_passes"),
               remeasured_ms=doc.get("remeasured_ms"), landing_ms=land.get("measured_ms"))
    if check is not None:
        row.update(check_ms=check["median_ms"], check_passes_ms=check["passes_ms"],
                   check_vs_target=check["median_ms"] / target_ms - 1)
    return row


def _check_pick(home: Path, stdout: str, env: dict) -> dict | None:
    """The pick measured again after the search exited, in CHECK_PROCESSES processes of
    CHECK_PASSES fresh passes each (see benchmarks/_pick_check.py); None when the search's
    output holds no pick."""
    import numpy as np

    try:
        doc = json.loads(stdout)
    except ValueError:
        return None
    if not doc.get("measured_ms"):
        return None
    pick = home / "pick.json"
    pick.write_text(json.dumps(doc))
    per_process = []
    for _ in range(CHECK_PROCESSES):
        # a script, not -m: hwnas then comes from PYTHONPATH (the snapshot the runs measure)
        # before the working tree
        p = subprocess.run([sys.executable, str(Path(__file__).with_name("_pick_check.py")),
                            str(home), str(pick), str(CHECK_PASSES)], env=env,
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"the pick's check failed: {p.stderr[-500:]}")
        per_process.append(json.loads(p.stdout)["passes_ms"])
    every = [ms for passes in per_process for ms in passes]
    return {"median_ms": float(np.median(every)), "passes_ms": per_process}


def load_rows(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def save_rows(path: Path, rows: list[dict]) -> None:
    from hwnas.latency.safeio import atomic_write_text

    atomic_write_text(path, json.dumps(rows, indent=1))


def median(xs):
    import numpy as np

    xs = [x for x in xs if x is not None]
    return float(np.median(xs)) if xs else float("nan")


def report(rows: list[dict], targets: list[float], homes: int, cmd: str) -> str:
    import numpy as np

    def pct(x):
        return "-" if x is None else f"{100 * x:+.1f}%"

    loads = [r["load_before"] for r in rows] + [r["load_after"] for r in rows] or [float("nan")]
    lines = [machine_line(), "",
             f"`{cmd}`: `hwnas search --device local-cpu --target-latency T --json` on a fresh, "
             f"empty HWNAS_HOME each run, as a subprocess timed from start to exit. "
             f"**default** is the first search today (20% of the ops profiled, kernel "
             f"regressors predict the rest, 4 calibration subnets); **full** adds `--full`, "
             f"the path before (every op profiled, 12 calibration subnets)"
             + "".join(f"; **{p}** adds `--landing-passes {p[-1]}`, the landing's candidates "
                       f"measured in {p[-1]} pass(es) each" for p in ("landing-1", "landing-2")
                       if any(r["path"] == p for r in rows))
             + ("; **before** is the default path run by an earlier hwnas (a snapshot on "
                "PYTHONPATH, named below), its pick checked by this one"
                if any(r["path"] == "before" for r in rows) else "")
             + f". {homes} fresh homes "
             f"per path and target, all {len(rows)} runs in one random order (shuffled within each "
             f"round of homes). Phases are the "
             f"run's own `phases_s`; other = wall less the phases (Python start, imports, the "
             f"plot). Pick = the search's own figure for its choice (the median of every pass made "
             f"of it: the landing's and 3 fresh ones) / an independent check: the pick "
             f"measured again after the search exited (not in the wall time) in "
             f"{CHECK_PROCESSES} new processes of {CHECK_PASSES} drift-free passes each, at the "
             f"home's reference scale, median of all; both against the target; landed = "
             f"the search's own verdict (its JSON's landing.landed: the pick's figure over "
             f"all its passes within [-3%, 0%]; in runs before 2026-12-07 04:30 UTC, its "
             f"landing passes' figure). 1-minute "
             f"load average over the runs: {min(loads):.1f}-{max(loads):.1f}.", "",
             "| target | path | runs | wall s median (range) | profile | calibration | fit | "
             "search | landing | remeasure | other | pick vs target: search / check (each run) | "
             "landed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ratios = []
    for t in targets:
        walls = {}
        for path in PATHS:
            got = [r for r in rows if r["path"] == path and r["target_ms"] == t]
            if not got:
                continue
            ok = [r for r in got if r["rc"] == 0]
            w = [r["wall_s"] for r in got]
            walls[path] = median(w)
            ph = [median([r["phases_s"].get(k, 0.0) for r in ok]) for k in PHASES]
            other = median([r["wall_s"] - sum(r["phases_s"].values()) for r in ok])
            picks = ", ".join(f"{pct(r.get('vs_target'))} / {pct(r.get('check_vs_target'))}"
                              if r["rc"] == 0 else "refused" for r in got)
            landed = sum(1 for r in ok if r.get("landed"))
            cells = " | ".join(f"{x:.0f}" if x == x else "-" for x in ph + [other])
            lines.append(f"| {t:g} ms | {path} | {len(got)} | {median(w):.0f} "
                         f"({min(w):.0f}-{max(w):.0f}) | {cells} | {picks} | {landed}/{len(got)} |")
        for other in OTHERS:
            if "default" in walls and other in walls:
                ratios.append((other, t, walls["default"] / walls[other]))
    for other in OTHERS:
        if any(o == other for o, _, _ in ratios):
            lines += ["", f"Wall-time ratio default / {other} (medians): " + ", ".join(
                f"{t:g} ms {r:.2f}" for o, t, r in ratios if o == other) + "."]
    for path in PATHS:
        got = [r for r in rows if r["path"] == path]
        if not got:
            continue
        under = sum(1 for r in got if r["wall_s"] <= GOAL_S)
        def within(key):
            return sum(1 for r in got if r["rc"] == 0 and r.get(key) is not None
                       and -0.03 <= r[key] <= 0)

        checked = [r for r in got if r.get("check_vs_target") is not None]
        lines += [f"{path}: {under}/{len(got)} runs within {GOAL_S:.0f} s (median "
                  f"{median([r['wall_s'] for r in got]):.0f} s over all targets, max "
                  f"{max(r['wall_s'] for r in got):.0f} s); picks within [-3%, 0%] of the "
                  f"target: {within('vs_target')}/{len(got)} by the search's figure, "
                  f"{within('check_vs_target')}/{len(checked)} by the independent check."]
        between = [float(np.std(np.log([np.median(p) for p in r["check_passes_ms"]]), ddof=1))
                   for r in checked if isinstance(r["check_passes_ms"][0], list)]
        in_process = [float(np.median([np.std(np.log(p), ddof=1) for p in r["check_passes_ms"]]))
                  for r in checked if isinstance(r["check_passes_ms"][0], list)]
        gaps = [r["vs_target"] - r["check_vs_target"] for r in checked
                if r.get("vs_target") is not None]
        if gaps:
            lines += [f"The search's figure less the check's ({path}): median "
                      f"{100 * median(gaps):+.1f} points ({100 * min(gaps):+.1f} to "
                      f"{100 * max(gaps):+.1f})."]
        if between:
            lines += [f"Noise floor of the check ({path}): the {CHECK_PROCESSES} check runs' "
                      f"medians of a pick differ by {100 * median(between):.1f}% (median SD), "
                      f"passes within a run by {100 * median(in_process):.1f}% (each pass in "
                      f"a timing process of its own since commit e27842b); the check's "
                      f"pooled figure carries about "
                      f"{100 * median(between) / CHECK_PROCESSES ** 0.5:.1f}%."]
    dflt = [r for r in rows if r["path"] == "default"]
    tables = [r["table"] for r in dflt if r.get("table")]
    if tables:
        t = tables[0]
        lines += [f"What the default path measured and predicted: {t['measured_ops']} of "
                  f"{t['ops']} ops profiled, {t['predicted_ops']} predicted by kernel "
                  f"regressors (`{t['complete_with']}` completes the table)."]
    errors = sorted({r["error"] for r in rows if r["rc"] != 0})
    if errors:
        lines += ["", "Runs that stopped with an error:", ""] + [f"- `{e}`" for e in errors]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="6,10,15,25")
    ap.add_argument("--homes", type=int, default=3)
    ap.add_argument("--device", default="local-cpu")
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "mainjob_runs.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="Do not write BENCHMARKS.md.")
    ap.add_argument("--section", default="mainjob",
                    help="BENCHMARKS.md section to write (a run of other paths than "
                         "default,full: its own section, e.g. mainjob-landing-passes)")
    ap.add_argument("--report-only", action="store_true",
                    help="Write the section from the runs saved in --results, running none "
                         "(an interrupted benchmark: says how many runs it has).")
    ap.add_argument("--before", default=None,
                    help="PYTHONPATH of the hwnas that the 'before' path runs (a snapshot of an "
                         "earlier commit)")
    ap.add_argument("--code", default=None,
                    help="What hwnas the runs ran, for the report (e.g. 'commit abc1234, a "
                         "snapshot on PYTHONPATH'): the runs import hwnas as the subprocess "
                         "finds it, so PYTHONPATH=SNAPSHOT keeps edits made meanwhile out.")
    args = ap.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    paths = args.paths.split(",")
    if not set(paths) <= set(PATHS):
        ap.error(f"--paths: {', '.join(sorted(set(paths) - set(PATHS)))} is not one of "
                 f"{', '.join(PATHS)}")
    if "before" in paths and not args.before and not args.report_only:
        ap.error("the 'before' path needs --before DIR (a snapshot of the earlier hwnas)")
    # random order within each round of homes (every path and target once per round), so
    # that a benchmark stopped early has the same number of runs in every cell, give or take 1
    jobs, rng = [], random.Random(args.seed)
    for h in range(args.homes):
        block = [(p, t, h) for p in paths for t in targets]
        rng.shuffle(block)
        jobs += block
    rows = load_rows(args.results)
    done = {(r["path"], r["target_ms"], r["home"]) for r in rows}
    for i, (path, t, h) in enumerate(jobs):
        if (path, t, h) in done or args.report_only:
            continue
        row = dict(one_run(path, t, args.device, args.before), home=h, order=i)
        rows.append(row)
        save_rows(args.results, rows)  # kept as it goes: an interrupted run resumes here
        print(json.dumps({k: row.get(k) for k in ("order", "path", "target_ms", "wall_s",
                                                  "vs_target", "landed", "error")}),
              flush=True)
    mine = [r for r in rows if r["path"] in paths and r["target_ms"] in targets]
    cmd = " ".join(["flock /tmp/hwnas-timing.lock .venv/bin/python -m benchmarks.mainjob",
                    shlex.join(sys.argv[1:])]).strip()
    text = report(mine, targets, args.homes, cmd)
    if len(mine) < len(jobs):
        text += (f"\n\n**Incomplete:** {len(mine)} of the {len(jobs)} planned runs were made "
                 f"(the benchmark was stopped; rerunning it resumes).")
    if args.code:
        text += f"\n\nCode measured: {args.code}."
    print(text)
    if not args.no_write:
        title = ("The main job on a fresh home" if args.section == "mainjob" else
                 f"The main job on a fresh home: {', '.join(paths)}")
        write_section(args.section, f"## {title} (`benchmarks/mainjob.py`)\n\n" + text)


if __name__ == "__main__":
    main()
