"""Supernet training: schedule, checkpoints, exact resume, the CLI.

Tiny space at 64 px, a few steps of batch 8: these check mechanics, not accuracy (the benchmark
measures accuracy).
"""

import math

import pytest
import torch
from click.testing import CliRunner

from hwnas.errors import HwnasError
from hwnas.supernet.evaluate import load_checkpoint, load_supernet
from hwnas.supernet.latency import flops_standin_latency_fn
from hwnas.supernet.pools import build_pools
from hwnas.supernet.sampling import SamplerConfig
from hwnas.supernet.spec import SpaceSpec
from hwnas.supernet.train import DataSpec, TrainConfig, lr_at, train_supernet

torch.set_num_threads(1)
SPEC = SpaceSpec("tiny", (64,), classes=10)
CFG = TrainConfig(epochs=2, batch_size=8, steps_per_epoch=2, warmup_epochs=0.5, log_every=0)
# the full recipe: its banks and min subnet are the state a resume must restore
SCFG = SamplerConfig.recipe("elasticvit", bank_size=2, rescore_every=3)


@pytest.fixture(scope="module")
def pools():
    return build_pools(SPEC, flops_standin_latency_fn(SPEC.build()), [0.3, 0.6],
                       metric="latency", per_level=6, seed=0, device="stand-in")


def test_lr_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(lr=1.0, warmup_epochs=1, min_lr_ratio=0.1)
    lrs = [lr_at(s, 40, cfg, 10) for s in range(40)]
    assert lrs[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] > 0.1 and lrs[-1] < 0.11
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lr_at(25, 40, cfg, 10) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_continues_exactly(tmp_path, pools):
    straight = train_supernet(SPEC, DataSpec(), CFG, SCFG, tmp_path / "a", pools=pools)
    assert len(straight.history) == 2
    half = TrainConfig(**{**CFG.__dict__, "epochs": 1})
    train_supernet(SPEC, DataSpec(), half, SCFG, tmp_path / "b", pools=pools)
    resumed = train_supernet(SPEC, DataSpec(), CFG, SCFG, tmp_path / "b", resume=True)
    assert _same_weights(straight.model, resumed.model)  # interrupted + resumed == straight
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert ckpt["epoch"] == 2 and ckpt["finished"] and ckpt["pools"]["metric"] == "latency"
    model, _ = load_supernet(tmp_path / "b" / "checkpoint.pt")
    assert _same_weights(model, resumed.model)


def test_refuses_to_overwrite_or_resume_differently(tmp_path, pools):
    train_supernet(SPEC, DataSpec(), TrainConfig(epochs=1, batch_size=8, steps_per_epoch=1),
                   SCFG, tmp_path, pools=pools)
    with pytest.raises(HwnasError, match="--resume"):
        train_supernet(SPEC, DataSpec(), CFG, SCFG, tmp_path, pools=pools)
    with pytest.raises(HwnasError, match="batch_size"):
        train_supernet(SPEC, DataSpec(), TrainConfig(epochs=2, batch_size=4, steps_per_epoch=1),
                       SCFG, tmp_path, pools=pools, resume=True)


def test_space_mismatch_is_an_error(tmp_path, pools):
    other = SpaceSpec("tiny", (96,), classes=10)
    with pytest.raises(HwnasError, match="pools were built for"):
        train_supernet(other, DataSpec(), CFG, SCFG, tmp_path, pools=pools)
    with pytest.raises(HwnasError, match="classes"):
        train_supernet(SpaceSpec("tiny", (64,), classes=5), DataSpec(), CFG, SCFG, tmp_path)


def test_sandwich_training_runs(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=8, steps_per_epoch=1, distill=False)
    result = train_supernet(SPEC, DataSpec(), cfg, SamplerConfig(method="sandwich",
                                                                 subnets_per_step=1), tmp_path)
    assert result.history[0]["steps"] == 1 and result.history[0]["images_per_s"] > 0


def test_checkpoint_loader_refuses_other_files(tmp_path):
    bad = tmp_path / "x.pt"
    torch.save({"format": "something else"}, bad)
    with pytest.raises(HwnasError, match="not an hwnas supernet checkpoint"):
        load_checkpoint(bad)
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(HwnasError, match="not a loadable"):
        load_checkpoint(tmp_path / "junk.pt")


def test_cli_build_pools_and_train(tmp_path):
    from hwnas.cli.supernet import COMMANDS, build_pools as build_cmd, train_supernet as train_cmd

    assert {c.name for c in COMMANDS} == {"train-supernet", "build-pools"}
    runner = CliRunner()
    pools_path = tmp_path / "pools.json"
    r = runner.invoke(build_cmd, ["--metric", "flops", "--levels", "5,8", "--preset", "tiny",
                                  "--resolutions", "64", "--per-level", "4", "--out",
                                  str(pools_path)])
    assert r.exit_code == 0, r.output
    assert "level 5 MMACs: 4 archs" in r.output
    r = runner.invoke(train_cmd, ["--pools", str(pools_path), "--out", str(tmp_path / "run"),
                                  "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["space"]["classes"] == 10 and ckpt["space"]["resolutions"] == [64]
    # the recipe's switches reach the sampler (the ablation the benchmark runs, from the CLI)
    r = runner.invoke(train_cmd, ["--pools", str(pools_path), "--out", str(tmp_path / "run2"),
                                  "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8",
                                  "--walk", "uniform", "--min-subnet", "--banks",
                                  "--largest"])
    assert r.exit_code == 0, r.output
    sampler = load_checkpoint(tmp_path / "run2" / "checkpoint.pt")["sampler"]
    assert (sampler["walk"], sampler["min_subnet"], sampler["banks"], sampler["largest"]) == \
        ("uniform", True, True, True)  # each differs from its default
    r = runner.invoke(train_cmd, ["--sampling", "sandwich", "--out", str(tmp_path / "run3"),
                                  "--preset", "tiny", "--resolutions", "64", "--no-banks"])
    assert r.exit_code == 2 and "apply to --sampling pools only" in r.output
    assert not (tmp_path / "run3").exists()


@pytest.mark.slow
def test_training_steps_fit_a_batch():
    """Gradients reach every subnet: ElasticViT steps on one fixed batch drive its loss down."""
    from hwnas.data import load_data
    from hwnas.supernet.distributed import DistContext
    from hwnas.supernet.evaluate import batch_losses
    from hwnas.supernet.train import DataSpec as DS, _Run, train_step

    one_level = build_pools(SPEC, flops_standin_latency_fn(SPEC.build()), [0.4],
                            metric="latency", per_level=6, seed=0, device="stand-in")
    cfg = TrainConfig(batch_size=16, lr=1e-3, label_smoothing=0.0)
    run = _Run(SPEC, DS(), cfg, SCFG, one_level, DistContext(), torch.device("cpu"))
    data = load_data("digits")
    x, y = data.holdout.images[:16], data.holdout.labels[:16]
    probe = [one_level.min_arch(0), max(one_level.members[0], key=lambda m: m[1])[0]]
    before = batch_losses(run.model, probe, x, y)
    run.model.train()
    for step in range(20):
        train_step(run, run.sampler.next_step(step / 20), x, y)
    after = batch_losses(run.model, probe, x, y)
    assert all(b > 2.0 for b in before) and all(a < 0.5 * b for a, b in zip(after, before))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (AMP runs only on a GPU)")
def test_amp_training_on_gpu(tmp_path, pools):
    cfg = TrainConfig(epochs=1, batch_size=8, steps_per_epoch=2, amp=True)
    result = train_supernet(SPEC, DataSpec(), cfg, SCFG, tmp_path, pools=pools, device="cuda")
    assert result.history[0]["steps"] == 2
    assert next(result.model.parameters()).is_cuda
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def test_subnet_loss_roles():
    """'label' learns from the labels and joins the teacher; 'distill' learns from the mean of
    the teachers so far (ElasticViT's min subnet learns from its level's subnets)."""
    import torch.nn.functional as F

    from hwnas.supernet.train import subnet_loss

    torch.manual_seed(0)
    y = torch.tensor([0, 1, 2])
    a, b, c = (torch.randn(3, 4) for _ in range(3))
    cfg = TrainConfig(label_smoothing=0.1)
    taught = []
    assert torch.allclose(subnet_loss(a, "label", taught, y, cfg),
                          F.cross_entropy(a, y, label_smoothing=0.1))
    subnet_loss(b, "label", taught, y, cfg)
    assert len(taught) == 2
    mean = (F.softmax(a, -1) + F.softmax(b, -1)) / 2
    expected = -(mean * F.log_softmax(c, -1)).sum(-1).mean()
    assert torch.allclose(subnet_loss(c, "distill", taught, y, cfg), expected)
    assert len(taught) == 2  # a student does not teach
    # without distillation everything learns from the labels
    plain = TrainConfig(distill=False, label_smoothing=0.0)
    assert torch.allclose(subnet_loss(c, "distill", [mean], y, plain), F.cross_entropy(c, y))


def test_cli_pools_for_another_space_or_device(tmp_path):
    from hwnas.cli.supernet import train_supernet as train_cmd

    pools_path = tmp_path / "p.json"
    build_pools(SPEC, flops_standin_latency_fn(SPEC.build()), [0.3, 0.6], metric="latency",
                per_level=4, seed=0, device="pixel4").save(pools_path)
    runner = CliRunner()
    base = ["--pools", str(pools_path), "--out", str(tmp_path / "run"), "--epochs", "1",
            "--steps-per-epoch", "1", "--batch-size", "8"]
    for extra, message in ((["--resolutions", "96"], r"resolutions \[64\] \(pools\) vs \[96\]"),
                           (["--preset", "full"], "preset 'tiny' \\(pools\\) vs 'full'"),
                           (["--device", "pixel6"], "latency on pixel4, not pixel6")):
        r = runner.invoke(train_cmd, base + extra)
        assert r.exit_code != 0 and isinstance(r.exception, HwnasError), r.output
        assert __import__("re").search(message, str(r.exception)), str(r.exception)
        assert not (tmp_path / "run").exists()  # validated before touching the disk
    r = runner.invoke(train_cmd, base + ["--device", "pixel4", "--teacher", "level"])
    assert r.exit_code == 0, r.output
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["sampler"]["teacher"] == "level"


def test_resume_from_another_preset_is_an_error(tmp_path):
    train_supernet(SPEC, DataSpec(), TrainConfig(epochs=1, batch_size=8, steps_per_epoch=1),
                   SamplerConfig(method="sandwich", subnets_per_step=1), tmp_path)
    other = SpaceSpec("tiny", (96,), classes=10)
    with pytest.raises(HwnasError, match="cannot resume.*space.resolutions"):
        train_supernet(other, DataSpec(), TrainConfig(epochs=2, batch_size=8, steps_per_epoch=1),
                       SamplerConfig(method="sandwich", subnets_per_step=1), tmp_path,
                       resume=True)
