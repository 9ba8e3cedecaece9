"""A pure parser for the text TFLite's ``benchmark_model`` prints (no I/O, no device).

Two generations of the summary are in use on phones:

* newer (TF >= 2.4, LiteRT): ``Inference timings in us: Init: I, First inference: F,
  Warmup (avg): W, Inference (avg): A``, after one ``count=.. first=.. curr=.. min=.. max=..
  avg=.. std=..`` line per phase (warm-up, then the timed runs); recent builds add
  ``p5=.. median=.. p95=..``.
* older (TF 1.x - 2.3): ``Average inference timings in us: Warmup: W, Init: I, Inference: A``
  (some builds say ``no stats:`` for ``Inference:``), with the same ``count=`` lines.

With ``--enable_op_profiling`` it also prints one section per phase (``Profiling Info for
Benchmark Initialization:``, ``Operator-wise Profiling Info for Regular Benchmark Runs:``), each
with a ``Run Order`` table, a ``Top by Computation Time`` table (ignored: it repeats rows), a
``Summary by node type`` table and a ``Timings (microseconds): count=..`` line. Columns are
tab-separated in older builds and space-aligned in newer ones; older Run Order tables have a
``[start]`` column; names may contain single spaces. Columns are found by their header, so a
build that adds or drops one still parses.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from hwnas.errors import ProfileError
from hwnas.latency.stats import Stats

_NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_NEW_SUMMARY = re.compile(
    rf"Inference timings in us: Init: (?P<init>{_NUM}), First inference: (?P<first>{_NUM}), "
    rf"Warmup \(avg\): (?P<warmup>{_NUM}), Inference \(avg\): (?P<inference>{_NUM})")
_OLD_SUMMARY = re.compile(
    rf"Average inference timings in us: Warmup: (?P<warmup>{_NUM}), Init: (?P<init>{_NUM}), "
    rf"(?:Inference|no stats): (?P<inference>{_NUM})")
_STAT_LINE = re.compile(r"(?:^|\s)count=\d+")
_PAIR = re.compile(rf"(\w+)=({_NUM})")
_SECTION = re.compile(r"((?:Operator-wise )?Profiling Info for [^:]+):\s*$")
_TABLE = re.compile(r"=+ (.+?) =+\s*$")


@dataclass(frozen=True)
class RunStats:
    """One ``count= first= curr= min= max= avg= std= [p5= median= p95=]`` line, in µs."""

    count: int
    first_us: float
    curr_us: float
    min_us: float
    max_us: float
    avg_us: float
    std_us: float
    median_us: float = math.nan  # only recent builds print p5 / median / p95
    p5_us: float = math.nan
    p95_us: float = math.nan


@dataclass(frozen=True)
class NodeRow:
    """A row of a ``Run Order`` table (times in ms, as printed)."""

    node_type: str
    name: str
    first_ms: float
    avg_ms: float
    percent: float
    times_called: int


@dataclass(frozen=True)
class TypeRow:
    """A row of a ``Summary by node type`` table."""

    node_type: str
    count: int
    avg_ms: float
    percent: float
    times_called: int


@dataclass(frozen=True)
class OpProfile:
    title: str  # e.g. "Operator-wise Profiling Info for Regular Benchmark Runs"
    run_order: tuple[NodeRow, ...]
    by_type: tuple[TypeRow, ...]
    timings: RunStats | None


@dataclass(frozen=True)
class BenchmarkOutput:
    generation: str  # "new" or "old" summary line
    init_us: float
    first_us: float  # NaN for the old generation, which does not print it
    warmup_avg_us: float
    inference_avg_us: float
    warmup: RunStats | None
    inference: RunStats | None
    profiles: tuple[OpProfile, ...] = ()

    @property
    def op_profile(self) -> OpProfile | None:
        """The per-operator profile of the timed runs, when ``--enable_op_profiling`` was on."""
        return next((p for p in self.profiles if "Regular" in p.title), None)

    @property
    def has_median(self) -> bool:
        return self.inference is not None and not math.isnan(self.inference.median_us)

    def stats(self) -> Stats:
        """The timed runs as Stats in ms. benchmark_model prints no per-run samples, so p10/p90
        are unknown (NaN); the median is the printed one, or the mean where the build prints
        none (``has_median`` says which)."""
        r = self.inference
        if r is None:
            return Stats.single(self.inference_avg_us / 1e3)
        median = r.median_us if self.has_median else r.avg_us
        std = r.std_us if r.count > 1 else 0.0
        return Stats(median / 1e3, r.avg_us / 1e3, std / 1e3, math.nan, math.nan, r.count)


def _strip(line: str) -> str:
    """Drop the log prefix: ``INFO: `` (LiteRT) or a logcat tag like ``... tflite  : ``."""
    line = line.rstrip("\r\n")
    m = re.match(r"^(?:INFO|WARNING|ERROR|I|W|E)\s*:\s?", line)
    return line[m.end():] if m else line


def parse_run_stats(line: str) -> RunStats:
    """A ``count=..`` line (``count=1 curr=X`` and ``curr=X(all same)`` forms included)."""
    kv = {k: float(v) for k, v in _PAIR.findall(line)}
    if "count" not in kv:
        raise ValueError(f"not a stats line: {line!r}")
    curr = kv.get("curr", kv.get("avg", math.nan))
    return RunStats(
        count=int(kv["count"]), first_us=kv.get("first", curr), curr_us=curr,
        min_us=kv.get("min", curr), max_us=kv.get("max", curr), avg_us=kv.get("avg", curr),
        std_us=kv.get("std", 0.0), median_us=kv.get("median", math.nan),
        p5_us=kv.get("p5", math.nan), p95_us=kv.get("p95", math.nan))


def _fields(line: str) -> list[str]:
    parts = line.strip().split("\t") if "\t" in line else re.split(r"\s{2,}", line.strip())
    return [p.strip() for p in parts if p.strip()]


def _number(text: str) -> float:
    return float(text.rstrip("%"))


def _table(lines: list[str], i: int) -> tuple[list[dict[str, str]], int]:
    """Rows of the table whose bracketed header is at ``lines[i]``, as {column: text}."""
    cols = [c.strip().lower() for c in re.findall(r"\[([^\]]+)\]", lines[i])]
    rows, i = [], i + 1
    while i < len(lines) and lines[i].strip():
        f = _fields(lines[i])
        if len(f) > len(cols):  # a name with a run of spaces: glue the tail back on
            f = f[:len(cols) - 1] + ["  ".join(f[len(cols) - 1:])]
        if len(f) == len(cols):
            rows.append(dict(zip(cols, f)))
        i += 1
    return rows, i


def _node_row(r: dict[str, str]) -> NodeRow:
    return NodeRow(r["node type"], r.get("name", ""), _number(r.get("first", "nan")),
                   _number(r["avg ms"]), _number(r.get("%", "nan")),
                   int(_number(r.get("times called", "0"))))


def _type_row(r: dict[str, str]) -> TypeRow:
    return TypeRow(r["node type"], int(_number(r["count"])), _number(r["avg ms"]),
                   _number(r.get("avg %", "nan")), int(_number(r.get("times called", "0"))))


def _profile(title: str, lines: list[str], i: int) -> tuple[OpProfile, int]:
    """One profiling section, from its first line after the title to its Timings line."""
    run_order: list[NodeRow] = []
    by_type: list[TypeRow] = []
    timings = None
    while i < len(lines):
        line = lines[i]
        table = _TABLE.match(line.strip())
        if table and i + 1 < len(lines):
            rows, i = _table(lines, i + 1)
            name = table.group(1).lower()
            if name == "run order":
                run_order = [_node_row(r) for r in rows]
            elif name == "summary by node type":
                by_type = [_type_row(r) for r in rows]
            continue
        if line.startswith("Timings (microseconds):"):
            timings = parse_run_stats(line)
            i += 1
            break
        if _SECTION.match(line.strip()) or _NEW_SUMMARY.search(line) or _OLD_SUMMARY.search(line):
            break
        i += 1
    return OpProfile(title, tuple(run_order), tuple(by_type), timings), i


def parse_benchmark_output(text: str) -> BenchmarkOutput:
    """Parse everything ``benchmark_model`` printed (stdout and stderr together).

    Raises ProfileError, quoting the tool's last lines, when no summary line is present: the
    run failed (a missing model, an unsupported op, a killed process).
    """
    lines = [_strip(line) for line in text.splitlines()]
    summary, generation = None, ""
    phases: list[RunStats] = []  # the count= lines after "Running benchmark ...": warm-up, runs
    profiles: list[OpProfile] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        section = _SECTION.match(line.strip())
        if section:
            profile, i = _profile(section.group(1), lines, i + 1)
            profiles.append(profile)
            continue
        if _STAT_LINE.search(line) and "Timings (" not in line and "Memory (" not in line:
            phases.append(parse_run_stats(line))
        for pattern, gen in ((_NEW_SUMMARY, "new"), (_OLD_SUMMARY, "old")):
            m = pattern.search(line)
            if m:
                summary, generation = m.groupdict(), gen
        i += 1
    if summary is None:
        tail = " | ".join(line.strip() for line in lines if line.strip())[-300:]
        raise ProfileError(f"benchmark_model printed no timing summary; its output ends: {tail}")
    return BenchmarkOutput(
        generation=generation, init_us=float(summary["init"]),
        first_us=float(summary.get("first") or math.nan),
        warmup_avg_us=float(summary["warmup"]), inference_avg_us=float(summary["inference"]),
        warmup=phases[0] if len(phases) >= 2 else None,
        inference=phases[-1] if phases else None, profiles=tuple(profiles))
