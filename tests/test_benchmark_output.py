"""The benchmark_model output parser, on recorded outputs of both generations (tests/data,
recorded from the LiteRT stand-in; see tests/data/README.md) and on structure-only strings."""

import math
from pathlib import Path

import pytest

from hwnas.errors import ProfileError
from hwnas.profilers.benchmark_output import parse_benchmark_output, parse_run_stats

DATA = Path(__file__).parent / "data"


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_new_generation_recording():
    out = parse_benchmark_output(read("benchmark_model_new_standin.txt"))
    assert out.generation == "new"
    assert (out.init_us, out.first_us, out.warmup_avg_us, out.inference_avg_us) == (
        32133, 181, 515, 239.2)
    assert out.warmup.count == 10 and out.warmup.median_us == 93
    r = out.inference
    assert (r.count, r.first_us, r.curr_us, r.min_us, r.max_us, r.avg_us, r.std_us) == (
        50, 88, 84, 70, 8213, 239.2, 1139)
    assert (r.p5_us, r.median_us, r.p95_us) == (71, 76, 88)
    s = out.stats()  # the printed median, not the outlier-pulled mean
    assert s.median_ms == pytest.approx(0.076) and s.mean_ms == pytest.approx(0.2392)
    assert s.std_ms == pytest.approx(1.139) and s.n == 50
    assert math.isnan(s.p10_ms) and math.isnan(s.p90_ms)  # benchmark_model prints no p10/p90
    prof = out.op_profile
    assert prof.title == "Operator-wise Profiling Info for Regular Benchmark Runs"
    assert len(prof.run_order) == 1 and prof.run_order[0].node_type == "STANDIN_WHOLE_GRAPH"
    assert prof.run_order[0].avg_ms == 0.239 and prof.run_order[0].percent == 100.0
    assert prof.run_order[0].name == "[whole graph, timed by the stand-in]:0"
    assert prof.by_type[0].count == 1 and prof.by_type[0].times_called == 1
    assert prof.timings.count == 50 and prof.timings.avg_us == 239.2


def test_old_generation_recording():
    out = parse_benchmark_output(read("benchmark_model_old_standin.txt"))
    assert out.generation == "old"
    assert (out.warmup_avg_us, out.init_us, out.inference_avg_us) == (490.2, 24927, 150.08)
    assert math.isnan(out.first_us)  # the old summary has no "First inference"
    assert not out.has_median
    s = out.stats()  # no median printed: the mean stands in, and has_median says so
    assert s.median_ms == pytest.approx(0.15008) and s.n == 50
    row = out.op_profile.run_order[0]  # tab-separated, with the old [start] column
    assert (row.node_type, row.first_ms, row.avg_ms, row.times_called) == (
        "STANDIN_WHOLE_GRAPH", 0.074, 0.150, 1)
    assert out.op_profile.timings.max_us == 4170


def test_old_generation_without_profiling():
    out = parse_benchmark_output(read("benchmark_model_old_noprofile_standin.txt"))
    assert out.generation == "old" and out.profiles == () and out.op_profile is None
    # recorded without --min_secs=0: "at least 30 runs and at least 1 s" ran 2832 times
    assert out.inference.count == 2832 and out.warmup.count == 1424
    assert out.stats().mean_ms == pytest.approx(0.351825)


# --- structure-only strings: the values are arbitrary round numbers, not measurements ---------
NEWEST_TABLES = """\
INFO: Inference timings in us: Init: 1000, First inference: 300, Warmup (avg): 250, Inference (avg): 200
INFO: Profiling Info for Benchmark Initialization:
============================== Run Order ==============================
                             [node type]          [first]        [avg ms]            [%]          [cdf%]          [mem KB]        [times called]  [Name]
                 ModifyGraphWithDelegate            1.000           1.000        50.000%         50.000%          100.000                1       ModifyGraphWithDelegate/0
                         AllocateTensors            1.000           1.000        50.000%        100.000%            0.000                1       AllocateTensors/0

Timings (microseconds): count=1 curr=2000
Memory (bytes): count=0
2 nodes observed

INFO: Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
                             [node type]          [first]        [avg ms]            [%]          [cdf%]          [mem KB]        [times called]  [Name]
           Convolution (NHWC, F32) IGEMM            0.100           0.100        50.000%         50.000%            0.000                1       Delegate/Convolution (NHWC, F32) IGEMM:0
          Convolution (NHWC, F32) DWConv            0.050           0.025        25.000%         75.000%            0.000                2       Delegate/Convolution (NHWC, F32) DWConv:1
                           Add (ND, F32)            0.050           0.050        25.000%        100.000%            0.000                1       Delegate/Add (ND, F32):2

============================== Top by Computation Time ==============================
                             [node type]          [first]        [avg ms]            [%]          [cdf%]          [mem KB]        [times called]  [Name]
           Convolution (NHWC, F32) IGEMM            0.100           0.100        50.000%         50.000%            0.000                1       Delegate/Convolution (NHWC, F32) IGEMM:0

Number of nodes executed: 3
============================== Summary by node type ==============================
                             [Node type]          [count]         [avg ms]          [avg %]         [cdf %]       [mem KB]        [times called]
           Convolution (NHWC, F32) IGEMM                1            0.100          50.000%         50.000%          0.000                     1
          Convolution (NHWC, F32) DWConv                1            0.050          25.000%         75.000%          0.000                     2
                           Add (ND, F32)                1            0.050          25.000%        100.000%          0.000                     1

Timings (microseconds): count=20 first=200 curr=200 min=200 max=200 avg=200 std=0
Memory (bytes): count=0
3 nodes observed
"""

LOGCAT_OLD = """\
11-22 10:00:00.000  4242  4242 I tflite  : count=10 first=110 curr=100 min=100 max=110 avg=101 std=3
11-22 10:00:00.000  4242  4242 I tflite  : count=50 curr=100(all same)
11-22 10:00:01.000  4242  4242 I tflite  : Average inference timings in us: Warmup: 101, Init: 2000, no stats: 100
"""


def test_newest_layout_tables_with_spaces_in_names():
    out = parse_benchmark_output(NEWEST_TABLES)
    assert [p.title for p in out.profiles] == [
        "Profiling Info for Benchmark Initialization",
        "Operator-wise Profiling Info for Regular Benchmark Runs"]
    init, regular = out.profiles
    assert [r.node_type for r in init.run_order] == ["ModifyGraphWithDelegate", "AllocateTensors"]
    assert init.timings.count == 1 and init.timings.curr_us == 2000
    names = [(r.node_type, r.name, r.times_called) for r in regular.run_order]
    assert names[1] == ("Convolution (NHWC, F32) DWConv",
                        "Delegate/Convolution (NHWC, F32) DWConv:1", 2)
    assert len(regular.run_order) == 3  # the Top-by-time table does not add rows
    assert sum(t.percent for t in regular.by_type) == pytest.approx(100.0)
    assert out.inference is None  # no count= line after "Running benchmark": summary only
    assert out.stats().median_ms == pytest.approx(0.2) and out.stats().n == 0


def test_logcat_prefixes_all_same_and_no_stats_wording():
    out = parse_benchmark_output(LOGCAT_OLD)
    assert out.generation == "old" and out.inference_avg_us == 100
    assert out.inference.count == 50 and out.inference.avg_us == 100 and out.inference.std_us == 0
    assert out.warmup.first_us == 110


def test_run_stats_line_forms():
    assert parse_run_stats("count=0").count == 0
    r = parse_run_stats("count=3 first=5 curr=4 min=4 max=5 avg=4.33333 std=0")
    assert r.avg_us == pytest.approx(4.33333) and math.isnan(r.median_us)
    with pytest.raises(ValueError):
        parse_run_stats("Memory footprint")


def test_failed_run_is_a_profile_error_quoting_the_tool():
    text = "INFO: STARTING!\nERROR: Could not open '/data/local/tmp/x.tflite'.\n" \
           "ERROR: Benchmarking failed.\n"
    with pytest.raises(ProfileError, match="Could not open"):
        parse_benchmark_output(text)
