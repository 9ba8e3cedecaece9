"""Accuracy search under a latency target (latency is a FLOPs STAND-IN here)."""

import json

import numpy as np
import pytest
import torch

from hwnas.errors import InfeasibleTargetError
from hwnas.supernet.latency import flops_standin_latency_fn
from hwnas.supernet.model import ElasticViTSupernet
from hwnas.supernet.search import AccuracySearchConfig, evolve, search_by_accuracy
from hwnas.supernet.spec import SpaceSpec

torch.set_num_threads(1)
SPEC = SpaceSpec("tiny", (64,), classes=10)


@pytest.fixture(scope="module")
def space():
    return SPEC.build()


def test_evolution_respects_the_target_and_finds_the_best(space):
    lat = flops_standin_latency_fn(space)
    target = 0.5
    # A made-up fitness that prefers wide last stages: the search must climb it.
    score = lambda a: a.channels[-1] / 64 + a.channels[-2] / 480  # noqa: E731
    cfg = AccuracySearchConfig(population=8, generations=3, parents=3, seed=0)
    ranked = evolve(space, score, lat, target, cfg)
    assert all(c.predicted_ms <= target for c in ranked)
    assert ranked[0].top1 == max(c.top1 for c in ranked)
    assert ranked == evolve(space, score, lat, target, cfg)  # seeded
    assert ranked[0].arch.channels[-1] == max(space.stages[-1].widths)


def test_infeasible_target_gives_the_range(space):
    lat = flops_standin_latency_fn(space)
    with pytest.raises(InfeasibleTargetError, match="runs from"):
        evolve(space, lambda a: 0.0, lat, 0.01, AccuracySearchConfig(population=4, max_tries=256))


def test_search_writes_arch_and_loadable_weights(space, tmp_path):
    from hwnas.data import load_data

    torch.manual_seed(0)
    net = ElasticViTSupernet(space)
    data = load_data("digits")
    measured = []

    def measure(module, shape):
        measured.append(shape)
        return 1.25

    cfg = AccuracySearchConfig(population=3, generations=1, parents=2, batch_size=32,
                               calib_batches=1, max_eval_images=32)
    res = search_by_accuracy(space, net, data, flops_standin_latency_fn(space), 0.6, cfg,
                             measure_fn=measure, out_dir=tmp_path)
    assert res.best.predicted_ms <= 0.6 and res.measured_ms == 1.25
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
    assert 0.0 <= res.test_top1 <= 1.0 and len(res.evaluated) >= 3


def test_search_from_checkpoint_measures_on_the_local_cpu(tmp_path, monkeypatch):
    """End to end: train a few steps, then search the checkpoint for local-cpu, measuring the
    chosen subnet with the onnxruntime profiler (latency prediction is the stand-in)."""
    from hwnas.supernet.sampling import SamplerConfig
    from hwnas.supernet.train import DataSpec, TrainConfig, train_supernet
    from hwnas.supernet.workflows import search_from_checkpoint

    monkeypatch.setenv("HWNAS_HOME", str(tmp_path / "home"))
    space = SPEC.build()
    cfg = TrainConfig(epochs=1, batch_size=8, steps_per_epoch=1)
    ckpt = train_supernet(SPEC, DataSpec(), cfg, SamplerConfig(method="sandwich",
                                                               subnets_per_step=1),
                          tmp_path / "run").checkpoint
    scfg = AccuracySearchConfig(population=2, generations=0, parents=1, batch_size=32,
                                calib_batches=1, max_eval_images=32)
    res = search_from_checkpoint(ckpt, device="local-cpu", target_ms=0.5, out_dir=tmp_path / "s",
                                 cfg=scfg, latency_fn=flops_standin_latency_fn(space))
    assert res.measured_ms is not None and 0 < res.measured_ms < 1000
    assert (tmp_path / "s" / "subnet.pt").exists()
    assert np.isfinite(json.loads((tmp_path / "s" / "arch.json").read_text())["measured_ms"])
