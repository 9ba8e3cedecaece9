"""Any model end to end: kernel profiling, measuring a model file into the records, the CLI's
bad-input contract, and the other runtimes (TFLite, adb stand-in, CUDA debug mode).

Timings here are real but tiny (1 warm-up, 3 runs): they test the plumbing, not the numbers.
benchmarks/anymodel.py measures the numbers."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest
import torch

from hwnas.anymodel import api, zoo
from hwnas.anymodel.graph import export_onnx_bytes
from hwnas.anymodel.model import RECORD_SPACE
from hwnas.anymodel.profile import CALIBRATION_PREFIX
from hwnas.errors import ModelError, ProfileError
from hwnas.latency.records import Records
from hwnas.latency.table import LatencyTable

FAST = dict(warmup=1, runs=3)


def hwnas(*args, home, timeout=600):
    env = dict(os.environ, HWNAS_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "hwnas.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(proc, pattern):
    import re

    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("hwnas: error: ") and re.search(pattern, err), err


class Small(torch.nn.Module):
    """A conv net with a token mixer: convolution, depthwise, GELU, a linear layer."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 16, 3, 2, 1)
        self.dw = torch.nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        y = torch.nn.functional.gelu(self.dw(torch.relu(self.stem(x))))
        return self.fc(y.mean((2, 3)))


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("models") / "small.onnx"
    p.write_bytes(export_onnx_bytes(Small().eval(), [(1, 3, 32, 32)]))
    return p


# --- measuring a model file ------------------------------------------------------------------
def test_measure_a_model_file_into_the_records(small_onnx, hwnas_home, tmp_path):
    got = api.measure("local-cpu", onnx=small_onnx, passes=2, **FAST)
    assert got.latency_ms > 0 and got.drift_free and len(got.passes) == 2
    recs = Records.load(got.records_path, "local-cpu")
    rec = recs.find(got.model.record_arch())
    assert rec is not None and len(rec.passes) == 2
    assert rec.arch["space"] == RECORD_SPACE and rec.arch["sha256"] == got.model.sha256
    assert recs.meta["models"][got.model.sha256]["name"] == "small.onnx"
    # the same bytes under another name are the same model: one record, a third pass
    other = tmp_path / "renamed.onnx"
    other.write_bytes(small_onnx.read_bytes())
    api.measure("local-cpu", onnx=other, **FAST)
    recs = Records.load(got.records_path, "local-cpu")
    assert len(recs) == 1 and len(recs.records[0].passes) == 3
    # model-file records do not disturb the subnets' readers
    from hwnas.archfile import load_arch_file
    from hwnas.predictors.fitting import load_dataset
    from hwnas.spaces import get_space

    space = get_space("elasticvit")
    arch = space.smallest(160)
    from hwnas.latency.records import Pass

    recs.add(arch.to_dict(), Pass(recs.records[0].passes[0].timed))
    recs.save(got.records_path)
    assert len(load_dataset(space, recs).archs) == 1
    found = load_arch_file(got.records_path)
    assert found.space.name == "elasticvit" and list(found.archs) == [arch]
    assert len(recs.to_frame()) == 2


def test_measure_and_predict_bad_input_is_one_line(small_onnx, hwnas_home, tmp_path, capsys):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(small_onnx.read_bytes()[:300])
    # one through a real process: the contract is about what a shell sees
    one_line_error(hwnas("measure", "-d", "local-cpu", "--onnx", cut, home=hwnas_home),
                   "not a valid ONNX model")
    cases = [
        (("measure", "-d", "local-cpu", "--onnx", small_onnx, "--model", "resnet-18"),
         "exactly one of --onnx"),
        (("measure", "-d", "local-cpu", "--model", "resnet-9000"),
         "unknown model 'resnet-9000'; the zoo has"),
        (("measure", "-d", "local-tflite", "--onnx", small_onnx),
         "runs TFLite models; give --tflite"),
        (("measure", "-d", "local-cpu", "--tflite", small_onnx), "give --onnx FILE"),
        (("measure", "-d", "local-cpu", "--onnx", small_onnx, "--input-shape", "1,3,64"),
         "--input-shape 1,3,64 has 3 dimensions"),
        (("predict", "-d", "local-cpu", "--onnx", small_onnx),
         "no kernel table for local-cpu .*'hwnas profile --device local-cpu --kernels'"),
        (("profile", "-d", "local-cpu", "--kernels", "--budget", "0.5"), "number of kernels"),
        (("predict", "-d", "cuda", "--onnx", small_onnx),
         "kernel-level prediction is for onnxruntime CPU and TFLite devices"),
    ]
    from hwnas.cli import main

    for args, pattern in cases:  # the rest in this process: no interpreter start-up each
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in args])
        err = capsys.readouterr().err
        one_line_error(subprocess.CompletedProcess(args, e.value.code, "", err), pattern)
    assert not (hwnas_home / "devices" / "local-cpu" / "records.json").exists()  # nothing made


def test_zoo_names_and_the_missing_extra(monkeypatch, hwnas_home):
    names = zoo.entries()
    assert {"resnet-18", "mobilenet-v2-1.0", "efficientnet-b0", "regnet-y-400mf",
            "convnext-atto", "deit-small-distilled", "levit-128s", "mobilevit-xs",
            "deit-tiny", "mobilenetv2"} <= set(names)
    assert {e.family for e in names.values()} == {"convnet", "vit", "hybrid"}
    with pytest.raises(ModelError, match="unknown model"):
        zoo.get("nope")
    monkeypatch.setattr(zoo, "zoo_available", lambda: False)
    with pytest.raises(ModelError, match=r"pip install 'hwnas\[zoo\]'"):
        zoo.export("resnet-18", "onnx", hwnas_home / "cache")
    # hwnas's own named models need no extra
    assert zoo.export("deit-tiny", "onnx", hwnas_home / "cache").exists()


needs_zoo = pytest.mark.skipif(not zoo.zoo_available(),
                               reason="the zoo needs Hugging Face transformers (pip install "
                                      "'hwnas[zoo]')")


@needs_zoo
@pytest.mark.slow
def test_zoo_models_build_offline_at_their_published_sizes(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    expected = {"mobilenet-v2-0.5-160": 1.97e6, "mobilevit-xxs": 1.27e6, "levit-128s": 7.8e6}
    for name, params in expected.items():
        module, shape = zoo.build(name)
        n = sum(p.numel() for p in module.parameters())
        assert abs(n / params - 1) < 0.05, (name, n)
        with torch.no_grad():
            y = module(torch.randn(shape))
        assert y.shape == (1, 1000) and torch.isfinite(y).all()
    assert zoo.cache_key("mobilevit-xxs", "onnx") == zoo.cache_key("mobilevit-xxs", "onnx")
    assert zoo.cache_key("mobilevit-xxs", "onnx") != zoo.cache_key("mobilevit-xxs", "tflite")


# --- kernel profiling and prediction ---------------------------------------------------------
@pytest.mark.slow
def test_profile_kernels_then_predict_any_model(small_onnx, hwnas_home):
    rep = api.profile_kernels("local-cpu", budget=30, nets=3, progress=False, **FAST)
    assert rep.kernels == 30 and rep.nets == 3 and rep.measured_now == 30
    table = LatencyTable.load(rep.path)
    # the first three calibration networks of the schedule, under their own keys
    nets = table.meta["anymodel"]["nets"]
    assert all(k.startswith(CALIBRATION_PREFIX) for k in nets), list(nets)
    assert [v["what"].split()[0] for v in nets.values()] == ["elasticvit", "tfnas", "vit"]
    assert table.reference_ms > 0 and len(table.meta["anymodel"]["samples"]) > 0
    assert all(r.median > 0 for r in table.ratios.values())
    # the calibration networks are timed between the kernel rounds, not after them all, so that
    # the overhead model's scale sees the conditions the kernels saw
    order = list(table.entries)
    first_net = min(i for i, k in enumerate(order) if k.startswith("net:"))
    assert any(not k.startswith("net:") for k in order[first_net:]), order
    # resumable: the same budget again measures nothing new
    again = api.profile_kernels("local-cpu", budget=30, nets=3, progress=False, **FAST)
    assert again.measured_now == 0
    # a CLI prediction with the breakdown as CSV and as JSON
    p = hwnas("predict", "-d", "local-cpu", "--onnx", small_onnx, "--allow-missing",
              "--breakdown", "csv", home=hwnas_home)
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert rows and {"kind", "latency_ms", "source"} <= set(rows[0])
    assert all(float(r["latency_ms"]) > 0 for r in rows if r["latency_ms"])
    p = hwnas("predict", "-d", "local-cpu", "--onnx", small_onnx, "--allow-missing", "--json",
              home=hwnas_home)
    doc = json.loads(p.stdout)
    assert doc["predicted_ms"] > 0 and doc["total_kernels"] >= 4
    assert doc["covered_kernels"] <= doc["total_kernels"]
    p = hwnas("predict", "-d", "local-cpu", "--onnx", small_onnx, "--allow-missing",
              "--breakdown", home=hwnas_home)
    assert p.returncode == 0 and "per-call overhead" in p.stdout and "ms on local-cpu" in p.stdout
    # a model the user measures on the device joins the overhead fit: the records that
    # `measure` writes are read back by `predict` (the saved predictor is stale: refitted)
    from hwnas import api as core
    from hwnas.predictors.persist import load_predictor_file

    before = load_predictor_file(rep.path.parent / "predictors" / "anymodel.pkl",
                                 "local-cpu", api.PREDICTOR_SPACE)
    assert before["holdout"]["own_models"] == []
    got = api.measure("local-cpu", onnx=small_onnx, **FAST)
    p = hwnas("predict", "-d", "local-cpu", "--onnx", small_onnx, "--allow-missing", "--json",
              home=hwnas_home)
    assert p.returncode == 0, p.stderr
    after = load_predictor_file(rep.path.parent / "predictors" / "anymodel.pkl", "local-cpu",
                                api.PREDICTOR_SPACE)
    assert after["holdout"]["own_models"] == ["small.onnx"]
    ctx = core.context("local-cpu")
    own = api.own_networks(ctx, LatencyTable.load(rep.path))
    assert [(name, units) for name, _, units in own] == \
        [("small.onnx", got.passes[0].ratio.median)]
    over = api.load_predictor(ctx)[0].overhead
    fit = json.loads(p.stdout)["overhead_fit"]
    assert (over.n_own == 1 and "and 1 model measured on this device" in fit) or \
        (over.n_networks == 0 and fit.startswith("not fitted")), (over, fit)
    # records timed under another protocol (here: two threads) do not share its units
    recs = Records.load(got.records_path, "local-cpu")
    # how its whole networks were timed: small ones settled to 8 ms (drift.for_networks)
    assert recs.meta["network_settle_ms"] == 8.0
    recs.meta["protocol"] = dict(recs.meta["protocol"], threads=2)
    recs.save(got.records_path)
    assert api.own_networks(ctx, LatencyTable.load(rep.path)) == []
    # a corrupt records file is the records commands' error to report, not the prediction's
    got.records_path.write_text("{not json")
    assert api.own_networks(ctx, LatencyTable.load(rep.path)) == []
    p = hwnas("predict", "-d", "local-cpu", "--onnx", small_onnx, "--allow-missing",
              home=hwnas_home)
    assert p.returncode == 0 and ("calibration networks" in p.stdout
                                  or "not fitted" in p.stdout), (p.stdout, p.stderr)
    # a fresh profile starts over
    fresh = api.profile_kernels("local-cpu", budget=5, nets=0, fresh=True, progress=False,
                                **FAST)
    assert fresh.kernels == 5


def test_kernel_table_protocol_guard(hwnas_home):
    from hwnas.anymodel.profile import open_kernel_table
    from hwnas.device_configs import load_device
    from hwnas.profilers import make_profiler

    cfg = load_device("local-cpu").with_overrides(reference=False, **FAST)
    with make_profiler(cfg, hwnas_home / "cache") as prof:
        with pytest.raises(ProfileError, match="needs the drift-free protocol"):
            open_kernel_table(hwnas_home / "k.pkl", prof, "onnxruntime")


def test_a_network_context_table_names_its_read_and_is_extended_only_alike(hwnas_home):
    """The network context's read is part of what its ratios mean (onnxruntime's went from
    24 MB to twice the L2): a network-context table records it, and a table is extended only
    under the same protocol, the read included."""
    from hwnas.anymodel.profile import _save, open_kernel_table
    from hwnas.device_configs import load_device
    from hwnas.profilers import make_profiler
    from hwnas.profilers.base import network_flush_bytes

    path = hwnas_home / "k.pkl"
    cfg = load_device("local-cpu").with_overrides(**FAST)
    with make_profiler(cfg, hwnas_home / "cache") as prof:
        net = open_kernel_table(path, prof, "onnxruntime", context="network")
        assert net.meta["protocol"]["kernel_read_bytes"] == network_flush_bytes()
        hot = open_kernel_table(hwnas_home / "h.pkl", prof, "onnxruntime")
        assert "kernel_read_bytes" not in hot.meta["protocol"]
        _save(net, path)
        assert open_kernel_table(path, prof, "onnxruntime", context="network").meta[
            "protocol"] == net.meta["protocol"]
        with pytest.raises(ProfileError, match="pass --fresh"):
            open_kernel_table(path, prof, "onnxruntime")  # hot: another protocol
        net.meta["protocol"]["kernel_read_bytes"] = 24 << 20  # as onnxruntime's read was
        _save(net, path)
        with pytest.raises(ProfileError, match="pass --fresh"):
            open_kernel_table(path, prof, "onnxruntime", context="network")


# --- CUDA: ONNX files through onnxruntime's backends (CPU debug mode here) -------------------
def test_cuda_measures_onnx_files_with_its_ort_backends(small_onnx, tmp_path):
    from hwnas.device_configs import load_device
    from hwnas.profilers.cuda import CudaProfiler, GpuInfo

    gpu = GpuInfo("fake GPU (cpu debug)", (9, 0), 80.0, True)
    cfg = load_device("cuda").with_overrides(backend="ort-cuda", warmup=2, warmup_max=4,
                                             runs=3, energy=False)
    with CudaProfiler(cfg, tmp_path, gpu=gpu, device="cpu") as prof:
        m = prof.measure_file_full(small_onnx, "onnx", (1, 3, 32, 32))
        assert m.stats.median_ms > 0 and m.ratio is not None and m.reference_ms > 0
        with pytest.raises(ProfileError, match="fixed at batch 1"):
            CudaProfiler(cfg.with_overrides(batch=8), tmp_path, gpu=gpu, device="cpu") \
                .measure_file_full(small_onnx, "onnx", (1, 3, 32, 32))
    torch_cfg = load_device("cuda").with_overrides(backend="torch", energy=False)
    with CudaProfiler(torch_cfg, tmp_path, gpu=gpu, device="cpu") as prof:
        with pytest.raises(ProfileError, match="ort-cuda or ort-trt"):
            prof.measure_file_full(small_onnx, "onnx", (1, 3, 32, 32))


def _linear_kernel(n_in: int, n_out: int):
    """(graph, its weight-carrying kernel) of one linear layer on one token, on onnxruntime."""
    from hwnas.anymodel.graph import detect

    torch.manual_seed(0)
    fc = torch.nn.Linear(n_in, n_out).eval()
    g = detect("onnxruntime", export_onnx_bytes(fc, [(1, n_in)]), (1, n_in))
    return g, max((k for k in g.kernels if not k.view), key=lambda k: k.weight_bytes)


def test_a_kernel_in_network_context_reads_its_weights_from_memory(tmp_path):
    """A linear layer with 16 MB of weights and one token is bound by reading them: hot, they
    sit in the cache; in network context they were evicted (by the read of twice the L2 and by
    the twin's own 16 MB), so it must take longer (here 0.64 vs 1.18 ms); the twin, the read
    and the touches stay outside the timed call."""
    import numpy as np

    from hwnas.anymodel.ort import random_feeds
    from hwnas.device_configs import load_device
    from hwnas.profilers import KernelJob, make_profiler

    g, k = _linear_kernel(2048, 2048)  # 16 MB of float32 weights
    cfg = load_device("local-cpu").with_overrides(reference=False, warmup=3, runs=15)
    with make_profiler(cfg, tmp_path) as prof:
        ms = {c: prof.measure_kernel_full(KernelJob(g.extract(k), "onnx", k.signature,
                                                    random_feeds(k), c)).stats.median_ms
              for c in ("hot", "network")}
    assert 0 < ms["hot"] < ms["network"], ms
    assert np.isfinite(ms["network"]) and ms["network"] < 1000 * ms["hot"] + 100


def test_a_network_context_read_of_its_own_size_is_honoured(tmp_path):
    """A 2 MB linear layer with one token in network context: with no eviction read (only its
    twin runs, whose 2 MB pass through the last-level cache beside the kernel's own), its
    weights come from that cache; after a read of 64 MB, from memory, so it must take longer.
    The read is the job's evict_bytes (benchmarks/kernel_context.py studies it per kind)."""
    from hwnas.anymodel.ort import random_feeds
    from hwnas.device_configs import load_device
    from hwnas.profilers import KernelJob, make_profiler

    g, k = _linear_kernel(1024, 512)  # 2 MB of float32 weights
    cfg = load_device("local-cpu").with_overrides(reference=False, warmup=3, runs=21)
    with make_profiler(cfg, tmp_path) as prof:
        ms = {size: prof.measure_kernel_full(KernelJob(
            g.extract(k), "onnx", k.signature, random_feeds(k), "network", size)).stats.median_ms
            for size in (0, 64 << 20)}
    assert 0 < ms[0] < ms[64 << 20], ms
