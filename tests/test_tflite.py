"""TFLite export (litert-torch) checked against torch, and the local-tflite (LiteRT) profiler."""

import sys

import numpy as np
import pytest
import torch

from hwnas.device_configs import load_device
from hwnas.errors import ProfileError
from hwnas.latency.table import LatencyTable
from hwnas.spaces.elasticvit.ops import Attention, FFN, Head, MBConv, StemConv, TransDS
from hwnas.profilers import make_profiler
from hwnas.profilers.export import (channels_last_io, export_tflite, tflite_export_available,
                                    tflite_for_op)
from hwnas.profilers.litert import load_interpreter
from hwnas.profilers.run import profile_ops

needs_export = pytest.mark.skipif(not tflite_export_available(),
                                  reason="litert-torch is not installed (pip install "
                                         "'hwnas[tflite-export]'); TFLite export is untestable")
OPS = [StemConv(33, 16), MBConv(15, 16, 24, 4, 2, 5, 1), MBConv(16, 24, 24, 4, 1, 3, 1),
       TransDS(16, 32, 48, 2), Attention(8, 64, 2), FFN(8, 64, 3), Head(4, 160)]


@pytest.fixture
def cache(tflite_cache):
    return tflite_cache


def run_tflite(path, x_nchw: np.ndarray, channels_last: bool) -> np.ndarray:
    Interpreter, _, _ = load_interpreter()
    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    x = x_nchw.transpose(0, 2, 3, 1).copy() if channels_last else x_nchw
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])
    return y.transpose(0, 3, 1, 2) if channels_last and y.ndim == 4 else y


def assert_matches_torch(module, path, shape, channels_last):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        ref = module(torch.from_numpy(x)).numpy()
    got = run_tflite(path, x, channels_last)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


@needs_export
@pytest.mark.parametrize("op", OPS, ids=lambda op: op.key)
def test_every_op_kind_exports_and_matches_torch(op, cache, export_seeded):
    path = export_seeded(op)  # tflite_for_op under seed 0, once per session (shared cache)
    assert path == cache / "tflite" / f"{op.key}.tflite"
    torch.manual_seed(0)  # the same random weights again
    module, shape = op.build()
    assert_matches_torch(module, path, shape, channels_last_io(op))


@needs_export
def test_whole_network_export_matches_torch(tmp_path):
    """A chain of blocks with NHWC input, as a deployed network (the full subnet is slow)."""
    model = torch.nn.Sequential(OPS[0].module(), MBConv(16, 16, 24, 3, 1, 3, 0).module(),
                                Head(16, 24).module()).eval()
    path = export_tflite(model, OPS[0].input_shape(), tmp_path / "chain.tflite",
                         channels_last=True)
    assert_matches_torch(model, path, OPS[0].input_shape(), channels_last=True)


@needs_export
def test_cache_by_key_does_not_re_export(cache, monkeypatch):
    op = OPS[2]
    first = tflite_for_op(op, cache)
    stamp = first.stat().st_mtime_ns
    monkeypatch.setattr("hwnas.profilers.export.export_tflite",
                        lambda *a, **k: pytest.fail("re-exported a cached op"))
    assert tflite_for_op(op, cache).stat().st_mtime_ns == stamp


@needs_export
def test_conv_blocks_carry_no_layout_transposes(cache):
    Interpreter, _, _ = load_interpreter()
    it = Interpreter(model_path=str(tflite_for_op(OPS[0], cache)))
    ops = [d["op_name"] for d in it._get_ops_details()]
    assert "TRANSPOSE" not in ops and "CONV_2D" in ops


@needs_export
@pytest.mark.slow
def test_whole_subnet_exports_and_matches_torch(tmp_path):
    from hwnas.spaces import get_space

    space = get_space("elasticvit")
    arch = space.smallest(128)
    model = space.build_model(arch)
    path = export_tflite(model, space.input_shape(arch), tmp_path / "subnet.tflite",
                         channels_last=True)
    assert_matches_torch(model, path, space.input_shape(arch), channels_last=True)


@needs_export
@pytest.mark.parametrize("xnnpack", [True, False])
def test_local_tflite_profiler(cache, tmp_path, xnnpack):
    cfg = load_device("local-tflite").with_overrides(warmup=2, runs=7, use_xnnpack=xnnpack)
    with make_profiler(cfg, cache) as prof:
        s = prof.measure_op(OPS[2])
        assert s.n == 7 and 0 < s.p10_ms <= s.median_ms <= s.p90_ms
        assert 0 <= prof.call_overhead_ms < s.median_ms
        meta, protocol = prof.meta(), prof.protocol()
        assert meta["runtime"] == "litert" and meta["runtime_version"].startswith("ai-edge-litert")
        assert protocol["use_xnnpack"] is xnnpack and protocol["threads"] == 1
        if xnnpack:  # exporting a network takes seconds: once is enough
            model = torch.nn.Sequential(OPS[2].module(), TransDS(16, 24, 48, 2).module())
            whole = prof.measure_model_full(model.eval(), OPS[2].input_shape())
            # drift-free: batches of 7 runs beside the reference, until the ratio is precise
            assert whole.stats.n in (7, 14, 21, 28) and whole.stats.median_ms > 0
            assert whole.ratio.n == whole.stats.n and whole.reference_ms > 0


@needs_export
def test_local_tflite_table_through_the_driver(cache, tmp_path):
    cfg = load_device("local-tflite").with_overrides(warmup=1, runs=3, context="isolated")
    path = tmp_path / "table.pkl"
    with make_profiler(cfg, cache) as prof:
        table = profile_ops(prof, OPS[2:5], path, progress=False)
    assert set(table.entries) == {op.key for op in OPS[2:5]}
    assert LatencyTable.load(path).meta["runtime"] == "litert"


def test_missing_runtimes_say_what_to_install(monkeypatch, tmp_path):
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime",
                 "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ProfileError, match=r"pip install 'hwnas\[tflite\]'"):
        load_interpreter()
    monkeypatch.setitem(sys.modules, "litert_torch", None)
    with pytest.raises(ProfileError, match=r"hwnas\[tflite-export\]"):
        export_tflite(torch.nn.Identity(), (1, 3), tmp_path / "x.tflite")
