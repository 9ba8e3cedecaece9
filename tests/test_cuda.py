"""The cuda profiler: its rules without a GPU, and real profiling where a GPU is present."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from hwnas.device_configs import CUDA_BACKENDS, CUDA_PRECISIONS, load_device, parse_config
from hwnas.errors import DeviceError, MissingKeysError, ProfileError, TableError
from hwnas.latency.energy import Energy, calls_for_duration, energy_from_counter
from hwnas.latency.stats import Stats, per_image_ms
from hwnas.latency.table import LatencyTable
from hwnas.spaces.elasticvit.ops import FFN, MBConv
from hwnas.profilers import Measurement, make_profiler
from hwnas.profilers.cuda import CudaProfiler, GpuInfo
from hwnas.profilers.cuda.rules import (check_ort_providers, check_precision, is_oom_error,
                                        largest_fitting_batch, precision_detail, warm_up)

CUDA_DEVICES = ("a100", "h100", "h200", "l4", "titan-rtx", "cuda")
TURING, AMPERE, HOPPER = (7, 5), (8, 0), (9, 0)
FAKE_GPU = GpuInfo("fake GPU (cpu debug)", HOPPER, 80.0, True)
TINY = FFN(7, 64, 2)  # a block that takes well under a millisecond on a CPU


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _fast(cfg, **kw):
    return cfg.with_overrides(warmup=2, warmup_max=40, runs=5, **kw)


# --- precision, providers, errors ------------------------------------------------------------
@pytest.mark.parametrize("precision,backend,cap,bf16,word", [
    ("bf16", "torch", TURING, False, "bf16"),
    ("bf16", "torch", AMPERE, False, "bf16"),  # emulated bf16 does not count
    ("bf16", "ort-cuda", HOPPER, True, "backend torch"),
    ("bf16", "ort-trt", HOPPER, True, "backend torch"),
    ("tf32", "torch", TURING, False, "sm_80"),
    ("fp16", "torch", (5, 2), False, "fp16"),
    ("fp32", "ort-trt", AMPERE, True, "TF32"),
])
def test_unsupported_precision_is_a_clear_error(precision, backend, cap, bf16, word):
    with pytest.raises(DeviceError, match=word) as e:
        check_precision("gpu0", precision, backend, cap, bf16)
    assert str(e.value).startswith("gpu0: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize("precision", CUDA_PRECISIONS)
def test_supported_precisions_pass_and_are_described(backend, precision):
    unsupported = (precision == "bf16" and backend != "torch") or (
        backend == "ort-trt" and precision == "fp32")
    if unsupported:
        return
    check_precision("gpu0", precision, backend, HOPPER, True)
    assert precision_detail(precision, backend)
    if backend == "ort-trt" and precision == "fp32":  # fine before Ampere: no TF32 there
        check_precision("gpu0", precision, backend, TURING, False)


def test_missing_runtime_providers():
    with pytest.raises(DeviceError, match="no CUDA GPU visible to onnxruntime"):
        check_ort_providers("h100", "ort-cuda", ["CPUExecutionProvider"], "1.0")
    with pytest.raises(ProfileError, match="TensorrtExecutionProvider"):
        check_ort_providers("h100", "ort-trt", ["CUDAExecutionProvider", "CPUExecutionProvider"],
                            "1.0")
    check_ort_providers("h100", "ort-cuda", ["CUDAExecutionProvider"], "1.0")
    check_ort_providers("h100", "ort-trt", ["TensorrtExecutionProvider",
                                            "CUDAExecutionProvider"], "1.0")


def test_oom_errors_are_recognised():
    import torch

    assert is_oom_error(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert is_oom_error(RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to "
                                     "allocate memory for requested buffer of size 123"))
    assert is_oom_error(RuntimeError("CUDNN_STATUS_ALLOC_FAILED"))
    assert not is_oom_error(RuntimeError("shape mismatch"))


@pytest.mark.parametrize("batch,limit", [(32, 23), (32, 31), (32, 16), (32, 1), (32, 0),
                                         (1000, 617), (2, 1), (1, 0)])
def test_oom_back_off_finds_the_largest_batch_that_fits(batch, limit):
    tried = []

    def fits(b):
        tried.append(b)
        return b <= limit

    assert largest_fitting_batch(batch, fits) == limit
    assert all(b < batch for b in tried)
    assert len(tried) <= 2 * max(1, math.ceil(math.log2(batch)))


# --- warm-up ---------------------------------------------------------------------------------
def _feeder(seq):
    it = iter(seq)
    return lambda n: np.array([next(it) for _ in range(n)])


def test_warm_up_waits_for_a_decaying_sequence_to_settle():
    seq = 1.0 + 9.0 * np.exp(-np.arange(1000) / 30.0)  # 10 ms falling to 1 ms
    w = warm_up(_feeder(seq), min_calls=10, max_calls=1000, tolerance=0.02, window=20)
    assert w.stable and w.last_change < 0.02
    assert seq[w.calls - 1] < 1.1  # it stopped only once the values were near their floor
    assert w.calls > 60


def test_warm_up_is_bounded_and_says_it_did_not_settle():
    seq = np.tile([1.0] * 20 + [2.0] * 20, 100)  # window medians alternate 1, 2, 1, ...
    w = warm_up(_feeder(seq), min_calls=10, max_calls=200, tolerance=0.02, window=20)
    assert not w.stable and w.calls == 200 and w.last_change == pytest.approx(1.0)


def test_warm_up_runs_at_least_min_calls():
    w = warm_up(_feeder(np.ones(500)), min_calls=100, max_calls=500, tolerance=0.02, window=20)
    assert w.stable and w.calls == 100


# --- per image, energy bookkeeping, table ----------------------------------------------------
def test_per_image_conversion():
    s = Stats(32.0, 33.0, 1.0, 30.0, 36.0, 100)
    p = s.per_image(32)
    assert (p.median_ms, p.mean_ms, p.std_ms, p.p10_ms, p.p90_ms, p.n) == (
        1.0, 33 / 32, 1 / 32, 30 / 32, 36 / 32, 100)
    assert per_image_ms(np.array([64.0, 32.0]), 32).tolist() == [2.0, 1.0]
    with pytest.raises(ValueError):
        per_image_ms(1.0, 0)
    t = LatencyTable({"device": "g", "batch": 32}, {"a": s})
    assert t.lookup_per_image(["a"]).tolist() == [1.0]


def test_energy_from_counter_readings():
    e = energy_from_counter(1_000_000, 1_005_000, elapsed_s=2.0, calls=500)
    assert e == Energy(10.0, 2.5)  # 5000 mJ / 500 calls; 5 J / 2 s
    assert e.per_image_mj(32) == pytest.approx(10.0 / 32)
    assert energy_from_counter(7, 7, 1.0, 10) is None  # did not tick: no number, not zero
    assert energy_from_counter(9, 7, 1.0, 10) is None
    assert calls_for_duration(0.5, 1.0) == 2000
    assert calls_for_duration(5000.0, 1.0) == 1
    with pytest.raises(ValueError):
        Energy(0.0, 1.0)


def test_table_energy_round_trip_and_old_tables(tmp_path):
    t = LatencyTable({"device": "g", "batch": 32})
    t.put("a", Stats.single(2.0), Energy(10.0, 250.0))
    t.put("b", Stats.single(3.0), None, "warm-up did not settle")
    path = tmp_path / "t.pkl"
    t.save(path)
    back = LatencyTable.load(path)
    assert back.energy == {"a": Energy(10.0, 250.0)} and back.flags == t.flags
    assert back.lookup_energy(["a"]).tolist() == [10.0]
    with pytest.raises(MissingKeysError, match="no energy for 1 op key"):
        back.lookup_energy(["a", "b"])
    back.put("a", Stats.single(2.1))  # re-measured without energy: the old energy goes
    assert "a" not in back.energy and back.flags == {"b": "warm-up did not settle"}

    old = t.to_obj()
    del old["energy"]  # a table written before the energy column
    assert LatencyTable.from_obj(old).energy == {}
    bad = t.to_obj()
    bad["energy"]["zzz"] = [1.0, 1.0]
    with pytest.raises(TableError, match="energy without latency"):
        LatencyTable.from_obj(bad)
    bad["energy"] = {"a": [0.0, 1.0]}
    with pytest.raises(TableError, match="corrupt"):
        LatencyTable.from_obj(bad)
    assert pickle.loads(pickle.dumps(t.to_obj()))["schema"] == 1


# --- configs -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CUDA_DEVICES)
def test_cuda_configs_load_strictly(name):
    cfg = load_device(name)
    assert cfg.kind == "cuda" and cfg.context == "isolated"
    assert cfg.backend in CUDA_BACKENDS and cfg.precision in CUDA_PRECISIONS
    assert cfg.warmup <= cfg.warmup_max


def test_titan_rtx_lines_up_with_the_tfnas_table():
    cfg = load_device("titan-rtx")
    assert (cfg.batch, cfg.precision, cfg.warmup, cfg.runs) == (32, "fp32", 100, 1000)
    assert cfg.source.startswith("AberHu/TF-NAS")


def test_generic_cuda_takes_overrides_and_rejects_bad_ones():
    cfg = load_device("cuda").with_overrides(batch=8, precision="fp16", backend="ort-cuda")
    assert (cfg.batch, cfg.precision, cfg.backend) == (8, "fp16", "ort-cuda")
    for bad in ({"precision": "int8"}, {"backend": "tensorflow"}, {"batch": 0},
                {"energy_min_s": 0.0}, {"warmup_max": 1}):
        with pytest.raises(DeviceError):
            load_device("cuda").with_overrides(**bad)
    with pytest.raises(DeviceError, match="unknown key"):
        parse_config("x", "description: d\nprofiler: cuda\nbakend: torch\n")


# --- the profiler on this machine ------------------------------------------------------------
@pytest.mark.skipif(_has_cuda(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("name", ["h100", "cuda"])
def test_no_gpu_is_one_clear_line(name, tmp_path):
    with pytest.raises(DeviceError) as e:
        make_profiler(load_device(name), tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"{name}: no CUDA GPU visible (torch.cuda.is_available() is False")
    assert "\n" not in msg


def test_flush_context_is_refused(tmp_path):
    with pytest.raises(DeviceError, match="isolated"):
        CudaProfiler(load_device("cuda").with_overrides(context="flush"), tmp_path, gpu=FAKE_GPU)


@pytest.mark.parametrize("backend,precision", [("torch", "fp32"), ("ort-cuda", "fp32")])
def test_debug_mode_runs_the_whole_flow_on_the_cpu(backend, precision, tmp_path):
    """The profiler's own code, end to end, with host timers: no GPU numbers, only plumbing."""
    cfg = _fast(load_device("cuda"), backend=backend, precision=precision, batch=2)
    with CudaProfiler(cfg, tmp_path, gpu=FAKE_GPU, device="cpu") as prof:
        m = prof.measure_op_full(TINY)
        assert m.stats.n == 5 and m.stats.median_ms > 0 and m.energy is None
        meta, protocol = prof.meta(), prof.protocol()
    assert meta["batch"] == 2 and "not GPU numbers" in meta["debug"]
    assert meta["energy"].startswith("unavailable")
    assert protocol["runtime"].endswith("-cpu-debug") and protocol["device"] == "cpu"


def test_energy_and_flags_reach_the_table_through_the_driver(tmp_path):
    from hwnas.profilers.run import profile_ops

    counter = iter(range(0, 10**9, 1500))  # +1500 mJ between two readings
    cfg = _fast(load_device("cuda"), energy_min_s=0.001)
    ops = [TINY, FFN(7, 64, 3)]
    with CudaProfiler(cfg, tmp_path, gpu=FAKE_GPU, device="cpu") as prof:
        prof._read_energy = lambda: next(counter)  # an NVML counter, as readings
        table = profile_ops(prof, ops, tmp_path / "t.pkl", progress=False)
    back = LatencyTable.load(tmp_path / "t.pkl")
    assert set(back.energy) == {op.key for op in ops} == set(table.entries)
    assert all(e.mj_per_call > 0 and e.mean_power_w > 0 for e in back.energy.values())


def test_oom_reports_the_largest_batch_that_fit(tmp_path):
    cfg = load_device("cuda").with_overrides(batch=64)
    prof = CudaProfiler(cfg, tmp_path, gpu=FAKE_GPU, device="cpu")

    class Fits:  # a bench whose memory runs out above batch 20
        def __init__(self, batch):
            if batch > 20:
                raise RuntimeError("CUDA out of memory. Tried to allocate 9.00 GiB")

        time_calls = staticmethod(lambda n: np.ones(n))
        close = staticmethod(lambda: None)

    with pytest.raises(ProfileError, match="largest batch that fit was 20; profile with "
                                           "--batch 20") as e:
        prof._measure("conv_x", Fits)
    assert str(e.value).startswith("cuda: batch 64 of conv_x does not fit")
    with pytest.raises(ProfileError, match="not even batch 1"):
        prof._measure("conv_x", lambda b: Fits(10**9))


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_ort_fallback_to_another_provider_is_refused(tmp_path):
    import onnxruntime as ort

    from hwnas.profilers.cuda.ort_bench import OrtBench
    from hwnas.profilers.export import onnx_for_op

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    path = onnx_for_op(TINY, tmp_path)
    with pytest.raises(ProfileError, match="fell back"):
        OrtBench(ort, path, TINY.input_shape(), np_dtype="float32",
                 providers=[("CUDAExecutionProvider", {}), ("CPUExecutionProvider", {})],
                 include_copies=False)


# --- on a real GPU ---------------------------------------------------------------------------
def _ort_has(provider: str) -> bool:
    import onnxruntime as ort

    return provider in ort.get_available_providers()


@pytest.mark.parametrize("backend,precision", [
    ("torch", "fp32"), ("torch", "fp16"),
    pytest.param("ort-cuda", "fp32", marks=pytest.mark.skipif(
        not _ort_has("CUDAExecutionProvider"), reason="onnxruntime-gpu is not installed")),
    pytest.param("ort-cuda", "fp16", marks=pytest.mark.skipif(
        not _ort_has("CUDAExecutionProvider"), reason="onnxruntime-gpu is not installed")),
    pytest.param("ort-trt", "fp16", marks=pytest.mark.skipif(
        not _ort_has("TensorrtExecutionProvider"), reason="no TensorRT provider")),
])
@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda(), reason="no CUDA GPU")
def test_gpu_profiles_a_block_and_a_subnet(backend, precision, tmp_path):
    from hwnas.spaces import get_space

    space = get_space("elasticvit", [160])
    arch = space.smallest(160)
    block = MBConv(40, 24, 24, 4, 1, 5, 1)
    cfg = load_device("cuda").with_overrides(backend=backend, precision=precision, batch=4,
                                             energy_min_s=0.2)
    with make_profiler(cfg, tmp_path) as prof:
        op = prof.measure_op_full(block)
        net = prof.measure_model_full(space.build_model(arch), (1, 3, 160, 160))
        meta = prof.meta()
    assert 0 < op.stats.median_ms < net.stats.median_ms
    assert meta["gpu"] and meta["batch"] == 4 and meta["cuda_version"]
    if meta["energy"].startswith("NVML"):
        assert net.energy is not None and net.energy.mj_per_call > 0
    else:
        assert op.energy is None and net.energy is None


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda(), reason="no CUDA GPU")
def test_gpu_batch_too_big_names_the_largest_that_fits(tmp_path):
    cfg = load_device("cuda").with_overrides(batch=1 << 16, energy=False)
    with make_profiler(cfg, tmp_path) as prof:
        with pytest.raises(ProfileError, match=r"largest batch that fit was \d+"):
            prof.measure_op(MBConv(112, 24, 24, 6, 1, 5, 0))


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda(), reason="no CUDA GPU")
def test_gpu_measurement_type(tmp_path):
    with make_profiler(load_device("cuda").with_overrides(energy=False), tmp_path) as prof:
        assert isinstance(prof.measure_op_full(TINY), Measurement)


# --- benchmarks/gpu.py -----------------------------------------------------------------------
def _gpu_bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.py"
    spec = importlib.util.spec_from_file_location("gpu_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_scores_on_held_out_subnets():
    true = np.linspace(1, 2, 40)
    e = _gpu_bench().evaluate(raw=true / 1.15, calibrated=true * 1.01, macs=true ** 2,
                              true=true, n_calib=10)
    assert e["n_test"] == 30 and e["lut_within10"] == 0 and e["calibrated_within10"] == 1
    assert e["lut_tau"] == pytest.approx(1) and e["flops_tau"] == pytest.approx(1)
    assert e["flops_within10"] < 1  # a line in MACs cannot follow a square root
    assert e["lut_over_true_median"] == pytest.approx(1 / 1.15)


@pytest.mark.skipif(_has_cuda(), reason="this machine has a CUDA GPU")
def test_benchmark_without_gpu_writes_nothing(tmp_path, capsys):
    md = tmp_path / "BENCHMARKS.md"
    code = _gpu_bench().main(["--benchmarks", str(md), "--out", str(tmp_path / "out")])
    assert code == 2 and not md.exists() and not (tmp_path / "out").exists()
    assert "no CUDA GPU visible" in capsys.readouterr().err


@pytest.mark.skipif(_has_cuda(), reason="this machine has a CUDA GPU")
def test_cli_profile_without_gpu_is_one_line(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, HWNAS_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "hwnas.cli", "profile", "--device", "h100"],
                          capture_output=True, text=True, env=env, timeout=60)
    err = proc.stderr.strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1, err
    assert "h100: no CUDA GPU visible (torch.cuda.is_available() is False" in err
