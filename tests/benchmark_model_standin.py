"""A stand-in for TFLite's benchmark_model, for tests. It is NOT the real tool, and runs on the
host, not on a phone.

It really runs the ``--graph`` .tflite with the LiteRT Python interpreter (threads and XNNPACK
as the flags say), times each ``invoke()``, and prints the results in the format of one of the
two generations of benchmark_model's output (``--standin_generation new|old``): the ``count=``
lines, the summary line and, with ``--enable_op_profiling``, the profiling tables. The Python
interpreter cannot time single nodes, so the op-profiling tables have one honest row: the whole
graph, node type ``STANDIN_WHOLE_GRAPH``. Every number it prints was measured.

The tests install it on the stand-in phone as the user's ``benchmark_bin`` (a two-line sh
wrapper that runs this file with the test's Python).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def _flag(value: str) -> bool:
    return value.lower() in ("1", "true", "yes")


def parse(argv):
    ap = argparse.ArgumentParser(prefix_chars="-")
    ap.add_argument("--graph", required=True)
    ap.add_argument("--num_threads", type=int, default=1)
    ap.add_argument("--warmup_runs", type=int, default=1)
    ap.add_argument("--num_runs", type=int, default=50)
    ap.add_argument("--use_xnnpack", type=_flag, default=False)
    ap.add_argument("--enable_op_profiling", type=_flag, default=False)
    ap.add_argument("--min_secs", type=float, default=1.0)
    ap.add_argument("--warmup_min_secs", type=float, default=0.5)
    ap.add_argument("--max_secs", type=float, default=150.0)
    ap.add_argument("--standin_generation", choices=("new", "old"), default="new")
    return ap.parse_args(argv)


def stat_line(us: np.ndarray, new: bool) -> str:
    """TFLite's Stat<int64_t> output: integer µs, avg as %g, std as an integer."""
    us = np.asarray(us, dtype=np.int64)
    if us.size == 0:
        return "count=0"
    if us.size == 1 or (us == us[0]).all():
        return f"count={us.size} curr={us[-1]}" + ("(all same)" if us.size > 1 else "")
    line = (f"count={us.size} first={us[0]} curr={us[-1]} min={us.min()} max={us.max()} "
            f"avg={us.mean():g} std={int(round(us.std()))}")
    if new:
        p5, med, p95 = (int(v) for v in np.percentile(us, [5, 50, 95], method="lower"))
        line += f" p5={p5} median={med} p95={p95}"
    return line


def timed(it, n: int, min_s: float, max_s: float) -> np.ndarray:
    """benchmark_model's loop: at least n runs and at least min_s seconds, at most max_s."""
    out, t_start = [], time.perf_counter()
    while (len(out) < n or time.perf_counter() - t_start < min_s) and \
            time.perf_counter() - t_start <= max_s:
        t0 = time.perf_counter_ns()
        it.invoke()
        out.append((time.perf_counter_ns() - t0) // 1000)
    return np.array(out, dtype=np.int64)


def profile_tables(runs_us: np.ndarray, new: bool) -> list[str]:
    """The op-profiling section with its one honest row (the whole graph)."""
    avg_ms, first_ms = runs_us.mean() / 1e3, runs_us[0] / 1e3
    if new:
        head = (f"{'[node type]':>40}{'[first]':>17}{'[avg ms]':>16}{'[%]':>15}{'[cdf%]':>16}"
                f"{'[mem KB]':>18}{'[times called]':>22}  [Name]")
        row = (f"{'STANDIN_WHOLE_GRAPH':>40}{first_ms:>17.3f}{avg_ms:>16.3f}{'100.000%':>15}"
               f"{'100.000%':>16}{0:>18.3f}{1:>17}       [whole graph, timed by the stand-in]:0")
        trow = (f"{'STANDIN_WHOLE_GRAPH':>40}{1:>17}{avg_ms:>17.3f}{'100.000%':>17}"
                f"{'100.000%':>16}{0:>15.3f}{1:>22}")
        thead = (f"{'[Node type]':>40}{'[count]':>17}{'[avg ms]':>17}{'[avg %]':>17}"
                 f"{'[cdf %]':>16}{'[mem KB]':>15}{'[times called]':>22}")
    else:
        head = ("\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t"
                "  [cdf%]\t  [mem KB]\t[times called]\t[Name]")
        row = (f"\t     STANDIN_WHOLE_GRAPH\t{0:>17.3f}\t{first_ms:>9.3f}\t{avg_ms:>9.3f}\t"
               f"100.000%\t100.000%\t{0:>10.3f}\t{1:>9}\t[whole graph, timed by the stand-in]")
        thead = ("\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t"
                 "  [mem KB]\t[times called]")
        trow = (f"\t     STANDIN_WHOLE_GRAPH\t{1:>9}\t{avg_ms:>10.3f}\t   100.000%\t   100.000%\t"
                f"{0:>10.3f}\t{1:>9}")
    bar = "=" * 30
    timings = stat_line(runs_us, new=False)  # the summarizer's Stat has no percentiles
    return [("INFO: " if new else "") + "Operator-wise Profiling Info for Regular Benchmark Runs:",
            f"{bar} Run Order {bar}", head, row, "",
            f"{bar} Top by Computation Time {bar}", head, row, "",
            "Number of nodes executed: 1", f"{bar} Summary by node type {bar}", thead, trow, "",
            f"Timings (microseconds): {timings}", "Memory (bytes): count=0", "1 nodes observed",
            "", ""]


def main(argv=None) -> int:
    a = parse(sys.argv[1:] if argv is None else argv)
    new = a.standin_generation == "new"
    p = "INFO: " if new else ""
    out = [f"{p}STARTING!", f"{p}Min num runs: [{a.num_runs}]",
           f"{p}Min runs duration (seconds): [{a.min_secs:g}]",
           f"{p}Min warmup runs: [{a.warmup_runs}]", f"{p}Num threads: [{a.num_threads}]",
           f"{p}Graph: [{a.graph}]", f"{p}Enable op profiling: [{int(a.enable_op_profiling)}]",
           f"{p}Use xnnpack: [{int(a.use_xnnpack)}]",
           f"{p}hwnas benchmark_model stand-in: LiteRT Python interpreter on the host, not a phone"]
    if not os.path.isfile(a.graph):
        print("\n".join(out + [f"{'ERROR: ' if new else ''}Could not open '{a.graph}'.",
                               f"{'ERROR: ' if new else ''}Benchmarking failed."]), flush=True)
        return 1
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    t0 = time.perf_counter_ns()
    resolver = OpResolverType.AUTO if a.use_xnnpack else \
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_path=a.graph, num_threads=a.num_threads,
                     experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.random.default_rng(0).standard_normal(
        inp["shape"]).astype(np.float32))
    init_us = (time.perf_counter_ns() - t0) // 1000
    out += [f"{p}Loaded model {a.graph}",
            f"{p}The input model file size (MB): {os.path.getsize(a.graph) / 1e6:g}",
            f"{p}Initialized session in {init_us / 1e3:g}ms."]
    limits = f"but terminate if exceeding {a.max_secs:g} seconds."
    out.append(f"{p}Running benchmark for at least {a.warmup_runs} iterations and at least "
               f"{a.warmup_min_secs:g} seconds {limits}")
    warm = timed(it, a.warmup_runs, a.warmup_min_secs, a.max_secs)
    out += [f"{p}{stat_line(warm, new)}", ""]
    out.append(f"{p}Running benchmark for at least {a.num_runs} iterations and at least "
               f"{a.min_secs:g} seconds {limits}")
    runs = timed(it, a.num_runs, a.min_secs, a.max_secs)
    out += [f"{p}{stat_line(runs, new)}", ""]
    warm_avg = f"{warm.mean():g}" if warm.size else "0"
    if new:
        first = warm[0] if warm.size else runs[0]
        out.append(f"INFO: Inference timings in us: Init: {init_us}, First inference: {first}, "
                   f"Warmup (avg): {warm_avg}, Inference (avg): {runs.mean():g}")
        out += profile_tables(runs, new) if a.enable_op_profiling else []
    else:
        out += profile_tables(runs, new) if a.enable_op_profiling else []
        out.append(f"Average inference timings in us: Warmup: {warm_avg}, Init: {init_us}, "
                   f"Inference: {runs.mean():g}")
    print("\n".join(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
