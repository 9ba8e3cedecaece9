"""Data-parallel training and search with 2 CPU processes on gloo (loopback)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hwnas.supernet.latency import flops_standin_latency_fn
from hwnas.supernet.pools import build_pools
from hwnas.supernet.spec import SpaceSpec

SPEC = SpaceSpec("tiny", (64,), classes=10)
ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def test_torchrun_two_cpu_processes(tmp_path):
    pools = build_pools(SPEC, flops_standin_latency_fn(SPEC.build()), [0.3, 0.6],
                        metric="latency", per_level=4, seed=0, device="stand-in")
    pools.save(tmp_path / "pools.json")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node",
           "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m",
           "hwnas.supernet", "train-supernet", "--pools", str(tmp_path / "pools.json"),
           "--out", str(tmp_path / "run"), "--epochs", "1", "--steps-per-epoch", "2",
           "--batch-size", "4", "--run-on", "cpu"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from hwnas.supernet.evaluate import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["step"] == 2 and ckpt["history"][0]["images_per_s"] > 0


WORKER = r"""
import json, os, sys, torch
torch.set_num_threads(1)
from hwnas.supernet.latency import flops_standin_latency_fn
from hwnas.supernet.sampling import SamplerConfig
from hwnas.search.evolution import EvolutionConfig
from hwnas.supernet.search import AccuracySearchConfig, search_by_accuracy
from hwnas.supernet.spec import SpaceSpec
from hwnas.supernet.train import DataSpec, TrainConfig, train_supernet
from hwnas.supernet.distributed import init_distributed, shutdown

out = sys.argv[1]
spec = SpaceSpec("tiny", (64,), classes=10)
cfg = TrainConfig(epochs=1, batch_size=4, steps_per_epoch=2)
ctx = init_distributed(False)  # owned here, so train_supernet leaves the group open
res = train_supernet(spec, DataSpec(), cfg, SamplerConfig(method="sandwich", subnets_per_step=1),
                     out + "/run", device="cpu")
digest = float(sum(p.double().sum() * (i + 1) for i, p in enumerate(res.model.parameters())))
data = DataSpec().load()
scfg = AccuracySearchConfig(EvolutionConfig(population=4, generations=1, parents=2),
                            batch_size=32, calib_batches=1, max_eval_images=32)
space = spec.build()
found = search_by_accuracy(space, res.model, data, flops_standin_latency_fn(space), 0.6, scfg,
                           ctx=ctx)
ranked = [[c.arch.to_dict(), c.score] for c in found.search.feasible]
with open(f"{out}/rank{ctx.rank}.json", "w") as f:
    json.dump({"digest": digest, "ranked": ranked}, f)
shutdown(ctx)
"""


def test_ranks_agree_and_spread_search_matches_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node",
           "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script),
           str(tmp_path)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["digest"] == r1["digest"]  # same weights on both ranks after training
    assert r0["ranked"] == r1["ranked"]

    from hwnas.data import load_data
    from hwnas.supernet.evaluate import load_supernet
    from hwnas.search.evolution import EvolutionConfig
    from hwnas.supernet.search import AccuracySearchConfig, search_by_accuracy

    model, _ = load_supernet(tmp_path / "run" / "checkpoint.pt")
    scfg = AccuracySearchConfig(EvolutionConfig(population=4, generations=1, parents=2),
                                batch_size=32, calib_batches=1, max_eval_images=32)
    space = SPEC.build()
    alone = search_by_accuracy(space, model, load_data("digits"), flops_standin_latency_fn(space),
                               0.6, scfg)
    assert [[c.arch.to_dict(), c.score] for c in alone.search.feasible] == r0["ranked"]


SEARCH_WORKER = r"""
import sys, torch
torch.set_num_threads(1)
from hwnas.api.supernet import search_from_checkpoint
from hwnas.search.evolution import EvolutionConfig
from hwnas.supernet.latency import flops_standin_latency_fn
from hwnas.supernet.search import AccuracySearchConfig
from hwnas.supernet.spec import SpaceSpec

ckpt, out = sys.argv[1], sys.argv[2]
scfg = AccuracySearchConfig(EvolutionConfig(population=4, generations=1, parents=2),
                            batch_size=32, calib_batches=1, max_eval_images=32)
res = search_from_checkpoint(ckpt, device="local-cpu", target_ms=0.6, out_dir=out, cfg=scfg,
                             latency_fn=flops_standin_latency_fn(SpaceSpec("tiny", (64,), classes=10).build()),
                             measure=True, run_on="cpu")
print("measured_ms", res.measured_ms)
"""


def test_torchrun_search_times_the_pick_on_rank_0_only(tmp_path):
    """Every rank used to open the measurer, and with it the machine's measuring lock: rank 1
    waited for the lock rank 0 held (with HWNAS_LOCK_TIMEOUT=0 it is refused at once) while
    rank 0 waited for rank 1 in the search's collectives. Only rank 0 times the pick now."""
    pools = build_pools(SPEC, flops_standin_latency_fn(SPEC.build()), [0.3, 0.6],
                        metric="latency", per_level=4, seed=0, device="stand-in")
    pools.save(tmp_path / "pools.json")
    env = dict(_env(), HWNAS_HOME=str(tmp_path / "home"), HWNAS_LOCK_TIMEOUT="0")
    base = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node",
            "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    train = subprocess.run(base + ["-m", "hwnas.supernet", "train-supernet", "--pools",
                                   str(tmp_path / "pools.json"), "--out", str(tmp_path / "run"),
                                   "--epochs", "1", "--steps-per-epoch", "2", "--batch-size",
                                   "4", "--run-on", "cpu"],
                           env=env, capture_output=True, text=True, timeout=240)
    assert train.returncode == 0, train.stderr[-3000:]
    script = tmp_path / "search_worker.py"
    script.write_text(SEARCH_WORKER)
    base[base.index("--master_port") + 1] = str(_free_port())
    proc = subprocess.run(base + [str(script), str(tmp_path / "run" / "checkpoint.pt"),
                                  str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    measured = [float(line.split()[1]) for line in proc.stdout.splitlines()
                if line.startswith("measured_ms") and line.split()[1] != "None"]
    assert len(measured) == 1 and measured[0] > 0, proc.stdout  # rank 0 timed it, once
    assert (tmp_path / "out" / "arch.json").exists()
