"""Accuracy search under a latency target (latency is a FLOPs STAND-IN here)."""

import json

import numpy as np
import pytest
import torch

from hwnas.errors import InfeasibleTargetError
from hwnas.supernet.latency import flops_standin_latency_fn
from hwnas.spaces.elasticvit.supernet import ElasticViTSupernet
from hwnas.search.evolution import EvolutionConfig
from hwnas.supernet.search import AccuracySearchConfig, SupernetAccuracy, search_by_accuracy
from hwnas.supernet.spec import SpaceSpec

torch.set_num_threads(1)
SPEC = SpaceSpec("tiny", (64,), classes=10)


@pytest.fixture(scope="module")
def space():
    return SPEC.build()


def test_objective_scores_in_order(space):
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(3)]
    obj = SupernetAccuracy(lambda a: float(a.channels[-1]))
    assert obj(archs).tolist() == [float(a.channels[-1]) for a in archs]


def test_infeasible_target_gives_the_range(space):
    net = ElasticViTSupernet(space)
    with pytest.raises(InfeasibleTargetError, match="feasible range"):
        search_by_accuracy(space, net, None, flops_standin_latency_fn(space), 0.01)


def test_search_writes_arch_and_loadable_weights(space, tmp_path):
    from hwnas.data import load_data

    torch.manual_seed(0)
    net = ElasticViTSupernet(space)
    data = load_data("digits")
    measured = []

    def measure(module, shape):
        measured.append(shape)
        return 1.25

    cfg = AccuracySearchConfig(EvolutionConfig(population=3, generations=1, parents=2),
                               batch_size=32, calib_batches=1, max_eval_images=32)
    res = search_by_accuracy(space, net, data, flops_standin_latency_fn(space), 0.6, cfg,
                             measure_fn=measure, out_dir=tmp_path)
    assert res.best.latency_ms <= 0.6 and res.measured_ms == 1.25
    assert all(c.latency_ms <= 0.6 for c in res.search.feasible)
    assert res.best.score == max(c.score for c in res.search.feasible)
    assert measured == [space.input_shape(res.best.arch)]
    doc = json.loads(res.arch_path.read_text())
    arch = space.arch_from_obj(doc["arch"])
    assert arch == res.best.arch and doc["target_ms"] == 0.6 and doc["measured_ms"] == 1.25
    static = space.build_model(arch)
    static.load_state_dict(torch.load(res.weights_path, weights_only=True))
    x = torch.randn(2, 3, 64, 64)
    net.set_active(arch)
    with torch.no_grad():
        assert torch.allclose(static(x), net.eval()(x), atol=1e-5)
    assert 0.0 <= res.test_top1 <= 1.0 and doc["top1_holdout"] == res.best.score


def test_search_from_checkpoint_measures_on_the_local_cpu(tmp_path):
    """End to end: train a few steps, then search the checkpoint for local-cpu, measuring the
    chosen subnet with the onnxruntime profiler (latency prediction is the stand-in)."""
    from hwnas.supernet.sampling import SamplerConfig
    from hwnas.supernet.train import DataSpec, TrainConfig, train_supernet
    from hwnas.api.supernet import search_from_checkpoint

    space = SPEC.build()
    cfg = TrainConfig(epochs=1, batch_size=8, steps_per_epoch=1)
    ckpt = train_supernet(SPEC, DataSpec(), cfg, SamplerConfig(method="sandwich",
                                                               subnets_per_step=1),
                          tmp_path / "run").checkpoint
    scfg = AccuracySearchConfig(EvolutionConfig(population=2, generations=0, parents=1),
                                batch_size=32, calib_batches=1, max_eval_images=32)
    res = search_from_checkpoint(ckpt, device="local-cpu", target_ms=0.5, out_dir=tmp_path / "s",
                                 cfg=scfg, latency_fn=flops_standin_latency_fn(space))
    assert res.measured_ms is not None and 0 < res.measured_ms < 1000
    assert (tmp_path / "s" / "subnet.pt").exists()
    assert np.isfinite(json.loads((tmp_path / "s" / "arch.json").read_text())["measured_ms"])


def test_search_checkpoint_takes_its_device_as_callables(tmp_path):
    """hwnas.supernet resolves no device: the latency comes from ``latency_for(space)`` (the
    checkpoint's space), the pick is timed by what ``measurer`` yields, entered once around the
    search and left after it."""
    from contextlib import contextmanager

    from hwnas.supernet.sampling import SamplerConfig
    from hwnas.supernet.train import DataSpec, TrainConfig, train_supernet
    from hwnas.supernet.workflows import search_checkpoint

    ckpt = train_supernet(SPEC, DataSpec(), TrainConfig(epochs=1, batch_size=8, steps_per_epoch=1),
                          SamplerConfig(method="sandwich", subnets_per_step=1),
                          tmp_path / "run").checkpoint
    seen, events = [], []

    def latency_for(space):
        seen.append(space.name)
        return flops_standin_latency_fn(space)

    @contextmanager
    def measurer():
        events.append("open")
        yield lambda module, shape: 1.25
        events.append("closed")

    scfg = AccuracySearchConfig(EvolutionConfig(population=2, generations=0, parents=1),
                                batch_size=32, calib_batches=1, max_eval_images=32)
    res = search_checkpoint(ckpt, latency_for=latency_for, target_ms=0.5,
                            out_dir=tmp_path / "s", cfg=scfg, measurer=measurer)
    assert seen == [SPEC.build().name] and events == ["open", "closed"]
    assert res.measured_ms == 1.25
    res = search_checkpoint(ckpt, latency_for=latency_for, target_ms=0.5,
                            out_dir=tmp_path / "t", cfg=scfg)  # no measurer: nothing timed
    assert res.measured_ms is None


def test_device_predictor_drives_pools_and_search(shared_data, tmp_path):
    """pixel4's real nn-Meter table, imported into HWNAS_HOME, is what --device pixel4 uses."""
    from click.testing import CliRunner

    from hwnas import api
    from hwnas.cli.supernet import build_pools
    from hwnas.spaces.elasticvit.space import elasticvit_named
    from hwnas.api.supernet import load_latency_fn
    from hwnas.supernet.pools import Pools

    lut = shared_data / "nn-meter-vit-luts" / "pixel4_lut_ln_v3.json"
    api.import_table("nn-meter", lut, "pixel4")
    space = SpaceSpec("full", (128,), 10, max_depth=3).build()
    t1 = elasticvit_named()["elastic_T1"]
    table = json.loads(lut.read_text())
    assert load_latency_fn("pixel4", space)([t1])[0] == pytest.approx(
        sum(table[k] for k in space.op_keys(t1)))
    r = CliRunner().invoke(build_pools, ["--device", "pixel4", "--levels", "10,20",
                                         "--resolutions", "128", "--max-depth", "3",
                                         "--per-level", "4", "--out", str(tmp_path / "p.json")])
    assert r.exit_code == 0, r.output
    pools = Pools.load(tmp_path / "p.json")
    assert pools.device == "pixel4" and pools.metric == "latency" and len(pools.members[1]) == 4


def test_device_without_table_is_a_clear_error():
    from hwnas.errors import HwnasError
    from hwnas.api.supernet import load_latency_fn

    with pytest.raises(HwnasError, match="hwnas import"):
        load_latency_fn("pixel6", SpaceSpec("full", (128,)).build())
