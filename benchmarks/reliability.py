"""Reliability: how many generated inputs the CLI fuzzing tried, and which concurrency and
interruption scenarios run in CI (issue 11: "nothing lost, nothing crashes").

Counts, not timings: the script runs the property-based fuzzing (tests/test_fuzz_cli.py) with
HWNAS_FUZZ_REPORT set, so each test reports how many inputs it checked and how many of those
ran to exit 0, then collects (and, unless --quick, runs) the scenarios of
tests/test_concurrency.py and the case list of tests/test_issue11.py.

Run:   python benchmarks/reliability.py            (fuzzing at CI size, scenarios run)
       python benchmarks/reliability.py --quick    (fuzzing at CI size, scenarios only counted)
       python benchmarks/reliability.py --scale 10 (ten times the CI inputs, for a deeper look)
Writes the "reliability" section of BENCHMARKS.md (or --out FILE).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import BENCHMARKS, machine_line, write_section  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FUZZ, SCENARIOS, CASES = "tests/test_fuzz_cli.py", "tests/test_concurrency.py", \
    "tests/test_issue11.py"
PROFILE_INTERRUPT = "tests/test_cli.py"  # Ctrl-C mid-profile, then resume (slow: 670 ops)


def pytest(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=REPO, env=env, capture_output=True, text=True)


def collect(path: str) -> list[str]:
    out = pytest("--collect-only", "-q", path).stdout
    return [ln.split("::", 1)[1] for ln in out.splitlines() if "::" in ln]


def outcome(p: subprocess.CompletedProcess) -> str:
    tail = [ln for ln in p.stdout.splitlines() if re.search(r"\d+ (passed|failed)", ln)]
    # the counts only: timings in this file come from the timing benchmarks, run on a quiet box
    return re.sub(r" in [\d.]+s.*", "", tail[-1].strip("= ")) if tail else \
        f"pytest exit {p.returncode}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="count the scenarios, do not run them")
    ap.add_argument("--scale", type=float, default=1.0, help="fuzzing inputs x this (CI: 1)")
    ap.add_argument("--out", type=Path, default=BENCHMARKS)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "fuzz.json"
        env = dict(os.environ, HWNAS_FUZZ_REPORT=str(report), HWNAS_FUZZ_SCALE=str(args.scale),
                   HWNAS_HOME=str(Path(tmp) / "home"))
        fuzz = pytest("-q", FUZZ, env=env)
        counts = json.loads(report.read_text()) if report.exists() else {}
    scenarios = collect(SCENARIOS)
    concurrency = [s for s in scenarios if s.startswith("test_concurrent")]
    interruption = [s for s in scenarios if s.startswith("test_interrupted")]
    interruption += [s for s in collect(PROFILE_INTERRUPT) if s.startswith("test_interrupted")]
    ran = "counted, not run (--quick)"
    if not args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            # test_cli's interrupted profile (670 ops, minutes) is counted; CI runs it
            ran = outcome(pytest("-q", SCENARIOS, env=dict(os.environ, HWNAS_HOME=tmp))) + \
                f" ({SCENARIOS}; the profile scenario runs with the whole suite)"
    cases = collect(CASES)

    kinds = sorted(k for k in counts if not k.endswith(", exit 0"))
    total = sum(counts[k] for k in kinds)
    ok = sum(counts.get(f"{k}, exit 0", 0) for k in kinds)
    rows = "\n".join(f"| {k} | {counts[k]} | {counts.get(f'{k}, exit 0', 0)} |" for k in kinds)
    md = f"""## Reliability: fuzzing, concurrency and interruptions (`benchmarks/reliability.py`)

{machine_line()}

Property-based fuzzing of the command line (`{FUZZ}`, hypothesis through click's CliRunner,
derandomized: CI checks the same inputs every run) at {args.scale:g}x the CI size:
**{total} generated inputs** checked, {ok} of them ran to exit 0; result: {outcome(fuzz)}.
Every failing input had to give exactly one line on stderr (no traceback, not the
boundary's "bug" line) and leave every existing file byte-identical; every succeeding one had
to print only finite, positive latencies.

| generated input | tried | exit 0 |
|---|---|---|
{rows}

Real processes (`{SCENARIOS}`, and `{PROFILE_INTERRUPT}`'s interrupted profile), run in CI:
**{len(concurrency)} concurrency scenarios**
({", ".join(f"`{s}`" for s in concurrency)}) and **{len(interruption)} interruption
scenarios** ({", ".join(f"`{s}`" for s in interruption)}); this run: {ran}.
The case-by-case regression tests of issue 11 (`{CASES}`): {len(cases)} tests.
"""
    write_section("reliability", md, args.out)
    print(md)
    if fuzz.returncode != 0:
        print(fuzz.stdout[-3000:], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
