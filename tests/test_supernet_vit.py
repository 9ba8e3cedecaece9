"""The single-stage ViT supernet: extraction, ONNX export, pools, training and search."""

import json

import numpy as np
import pytest
import torch

from hwnas.supernet.model import make_supernet
from hwnas.spaces.vit.supernet import ViTSupernet
from hwnas.supernet.spec import SpaceSpec

torch.set_num_threads(1)
SPEC = SpaceSpec("vit-tiny", classes=10)


def _randomised(net):
    """Every parameter random: zero-initialised ones (class token, biases) would hide a
    wrong slice."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.2)
    return net.eval()


@pytest.fixture(scope="module")
def tiny():
    space = SPEC.build()
    return space, _randomised(make_supernet(space))


def _archs(space, n=8, seed=0):
    rng = np.random.default_rng(seed)
    lo, hi = min(space.resolutions), max(space.resolutions)
    return [space.smallest(lo), space.largest(hi)] + [space.sample(rng) for _ in range(n)]


def _same_outputs(net, space, arch):
    net.set_active(arch)
    static = net.extract(arch)
    x = torch.randn(2, *space.input_shape(arch)[1:])
    with torch.no_grad():
        torch.testing.assert_close(static(x), net(x), rtol=0, atol=1e-5)
    return static


def test_archs_cover_patches_depths_and_head_dims(tiny):
    space, _ = tiny
    archs = _archs(space)
    assert {a.patch for a in archs} == set(space.choices.patches)
    assert len({a.depth for a in archs}) >= 2 and len({a.resolution for a in archs}) == 2
    assert {d for a in archs for d in a.head_dim} == set(space.choices.head_dims)


def test_extract_is_the_static_model_with_equal_outputs(tiny):
    space, net = tiny
    assert isinstance(net, ViTSupernet)
    for arch in _archs(space):
        static = _same_outputs(net, space, arch)
        ref = space.build_model(arch)
        assert [type(m) for m in static.modules()] == [type(m) for m in ref.modules()]
        assert {k: v.shape for k, v in static.state_dict().items()} == \
            {k: v.shape for k, v in ref.state_dict().items()}
        assert len(static.blocks) == arch.depth and not static.training


def test_skipped_blocks_do_not_touch_a_shallow_subnet(tiny):
    space, net = tiny
    arch = space.smallest(min(space.resolutions))  # depth 1
    net.set_active(arch)
    x = torch.randn(2, *space.input_shape(arch)[1:])
    with torch.no_grad():
        before = net(x)
        saved = [p.clone() for p in net.blocks[1].parameters()]
        for p in net.blocks[1].parameters():
            p.add_(1.0)
        after = net(x)
        for p, s in zip(net.blocks[1].parameters(), saved):
            p.copy_(s)
    assert torch.equal(before, after)


def test_the_real_vit_space_extracts(tmp_path):
    """The registered ``vit`` choices (patch 14/16/32 at 224), at its cheap end."""
    space = SpaceSpec("vit", classes=10, max_depth=10).build()
    net = _randomised(make_supernet(space))
    small = space.smallest(224)
    wide = space._assemble(224, 32, 384, [(6, 64, 4.0), (3, 64, 3.0)] * 5)
    for arch in (small, wide):
        _same_outputs(net, space, arch)


def test_extracted_subnet_runs_in_onnxruntime(tiny, tmp_path):
    import onnxruntime as ort

    from hwnas.profilers.export import export_onnx

    space, net = tiny
    arch = _archs(space)[-1]
    static = net.extract(arch)
    shape = space.input_shape(arch)
    path = export_onnx(static, shape, tmp_path / "subnet.onnx")
    x = torch.randn(*shape)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, static(x).numpy(), rtol=1e-4, atol=1e-4)


def test_presets_and_the_cli_agree_and_elasticvit_specs_are_unchanged():
    from hwnas.cli.supernet import PRESETS as CLI_PRESETS
    from hwnas.errors import HwnasError
    from hwnas.supernet.spec import PRESETS

    assert CLI_PRESETS == PRESETS
    assert SpaceSpec("tiny").to_dict() == {"preset": "tiny", "resolutions": [], "classes": 1000,
                                           "max_depth": None}
    assert SpaceSpec.from_dict(SPEC.to_dict()) == SPEC
    space = SpaceSpec("vit-tiny", (40,), 10, max_depth=2).build()
    assert space.resolutions == (40,) and max(space.choices.depths) == 2
    with pytest.raises(HwnasError, match="largest patch"):
        SpaceSpec("vit-tiny", (6,)).build()


def test_pools_and_sampler_work_on_the_vit_space(tmp_path):
    from hwnas.supernet.pools import Pools, build_pools, flops_cost_fn
    from hwnas.supernet.sampling import PoolSampler, SamplerConfig

    space = SPEC.build()
    pools = build_pools(SPEC, flops_cost_fn(space), (0.5, 2.0), metric="flops", per_level=6,
                        max_draws=2000)
    pools.save(tmp_path / "p.json")
    assert Pools.load(tmp_path / "p.json").members == pools.members
    cfg = SamplerConfig.recipe("elasticvit", bank_size=2, compare=3)
    sampler = PoolSampler(pools, space, cfg, seed=0)
    for _ in range(6):
        plan = sampler.next_step(0.9)
        sampler.observe(plan, [1.0] * len(plan.archs))
    assert all(space.validate(a) for a in plan.archs)
    state = json.loads(json.dumps(sampler.state_dict()))
    sampler.load_state_dict(state)
    assert sampler.banks[plan.level][0][0] in pools.archs(plan.level)


def test_cli_trains_two_steps_then_search_picks_a_loadable_subnet(tmp_path):
    from click.testing import CliRunner

    from hwnas.cli.supernet import build_pools, train_supernet
    from hwnas.search.evolution import EvolutionConfig
    from hwnas.supernet.latency import flops_standin_latency_fn
    from hwnas.supernet.search import AccuracySearchConfig
    from hwnas.api.supernet import search_from_checkpoint

    pools_path, run = tmp_path / "p.json", tmp_path / "run"
    r = CliRunner().invoke(build_pools, ["--metric", "flops", "--levels", "0.5,2",
                                         "--per-level", "4", "--classes", "10",
                                         "--preset", "vit-tiny", "--out", str(pools_path)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(train_supernet, ["--pools", str(pools_path), "--out", str(run),
                                            "--epochs", "1", "--steps-per-epoch", "2",
                                            "--batch-size", "8", "--subnets-per-step", "1",
                                            "--run-on", "cpu"])
    assert r.exit_code == 0, r.output
    from hwnas.supernet.evaluate import load_supernet

    net, state = load_supernet(run / "checkpoint.pt")
    assert state["space"]["preset"] == "vit-tiny" and state["history"][0]["steps"] == 2
    assert np.isfinite(state["history"][0]["loss_largest"])
    space = SPEC.build()
    cfg = AccuracySearchConfig(EvolutionConfig(population=3, generations=1, parents=2),
                               batch_size=32, calib_batches=1, max_eval_images=32)
    res = search_from_checkpoint(run / "checkpoint.pt", device="local-cpu", target_ms=0.2,
                                 out_dir=tmp_path / "s", cfg=cfg, measure=False,
                                 latency_fn=flops_standin_latency_fn(space))
    assert res.best.latency_ms <= 0.2 and 0.0 <= res.best.score <= 1.0
    doc = json.loads(res.arch_path.read_text())
    arch = space.arch_from_obj(doc["arch"])
    assert arch == res.best.arch and "elasticvit_list" not in doc
    static = space.build_model(arch)
    static.load_state_dict(torch.load(res.weights_path, weights_only=True))
    net.set_active(arch)
    x = torch.randn(2, *space.input_shape(arch)[1:])
    with torch.no_grad():
        torch.testing.assert_close(static(x), net(x), rtol=0, atol=1e-5)
