"""One supernet, many devices: `hwnas search --supernet CKPT --device a,b --target-latency ...`.

Latency is a FLOPs-proportional STAND-IN per device (two "devices" of different speed) except in
the tests marked ``data``, which import nn-Meter's real phone tables, and the CLI round trip,
which builds small synthetic tables for two phones (imported devices: nothing to measure).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from hwnas.arch import load_arch
from hwnas.errors import HwnasError, InfeasibleTargetError
from hwnas.search.evolution import EvolutionConfig
from hwnas.api.supernet import search_devices  # the devices' names resolved (hwnas.api)
from hwnas.supernet.latency import flops_standin_latency_fn
from hwnas.supernet.multidevice import CACHE_NAME, Pair, parse_pairs
from hwnas.supernet.sampling import SamplerConfig
from hwnas.supernet.search import AccuracySearchConfig
from hwnas.supernet.spec import SpaceSpec
from hwnas.supernet.train import DataSpec, TrainConfig, train_supernet

torch.set_num_threads(1)
SPEC = SpaceSpec("tiny", (64,), classes=10)
TINY_DATA = "shapes:classes=10,per_class=8,size=32"  # 80 images: evaluations cost little
CFG = AccuracySearchConfig(EvolutionConfig(population=4, generations=1, parents=2),
                           batch_size=32, calib_batches=1, max_eval_images=32)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    return train_supernet(SPEC, DataSpec(TINY_DATA), TrainConfig(epochs=1, batch_size=8,
                                                                 steps_per_epoch=1),
                          SamplerConfig(method="sandwich", subnets_per_step=1),
                          out).checkpoint


@pytest.fixture(scope="module")
def fns():
    space = SPEC.build()  # dev-b is twice as fast as dev-a
    return {"dev-a": flops_standin_latency_fn(space, 0.1),
            "dev-b": flops_standin_latency_fn(space, 0.05)}


def test_parse_pairs():
    assert parse_pairs("a,b", "10,15") == [Pair("a", 10), Pair("a", 15), Pair("b", 10),
                                          Pair("b", 15)]
    assert parse_pairs("a,b", "20,30/10") == [Pair("a", 20), Pair("a", 30), Pair("b", 10)]
    assert Pair("pixel4", 10.0).filename == "pixel4-10ms.json"
    assert Pair("pixel4", 12.5).filename == "pixel4-12.5ms.json"
    for devices, targets, message in (
            ("a,b,c", "1/2", "2 '/'-separated groups but --device names 3 devices"),
            ("a,a", "1", "twice"), ("a,", "1", "bad device name"),
            ("../x", "1", "bad device name"), ("a", "1,x", "comma-separated numbers"),
            ("a", "-1", "positive"), ("a", "nan", "positive"), ("a", "1,1", "repeats")):
        with pytest.raises(HwnasError, match=message):
            parse_pairs(devices, targets)


@pytest.mark.slow
def test_search_many_devices_writes_loadable_files(checkpoint, fns, tmp_path):
    pairs = parse_pairs("dev-a,dev-b", "0.3,0.45/0.2")
    res = search_devices(checkpoint, pairs, tmp_path, cfg=CFG, latency_fns=fns)
    space = SPEC.build()
    assert [r.pair for r in res.pairs] == pairs
    for r in res.pairs:
        assert r.latency_ms <= r.pair.target_ms
        assert float(fns[r.pair.device]([r.arch])[0]) == pytest.approx(r.latency_ms)
        obj = json.loads(r.path.read_text())
        assert obj == r.arch.to_dict() and obj["space"] == "elasticvit"
        assert space.arch_from_obj(obj) == r.arch == load_arch(r.path)  # what --arch reads
        assert 0 <= r.holdout_top1 <= 1 and 0 <= r.test_top1 <= 1
    # the best anything scored that fits: no cached subnet under a target does better
    cache = json.loads((tmp_path / CACHE_NAME).read_text())
    assert len(cache["holdout"]) == res.cached == res.scored > 0
    rows = (tmp_path / "summary.csv").read_text().splitlines()
    assert rows[0].startswith("device,target_ms,predicted_ms,holdout_top1,test_top1")
    assert len(rows) == 1 + len(pairs)
    assert "| dev-b | 0.2 |" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "accuracy_vs_latency.png").stat().st_size > 10_000
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert [p["file"] for p in doc["pairs"]] == [p.filename for p in pairs]
    # a second run scores nothing new and picks the same subnets
    again = search_devices(checkpoint, pairs, tmp_path, cfg=CFG, latency_fns=fns)
    assert again.scored == 0 and [r.arch for r in again.pairs] == [r.arch for r in res.pairs]


@pytest.mark.slow
def test_an_interrupted_search_resumes_without_rescoring(checkpoint, fns, tmp_path,
                                                         monkeypatch):
    import hwnas.supernet.evaluate as ev

    pairs = parse_pairs("dev-a,dev-b", "0.35")
    whole = search_devices(checkpoint, pairs, tmp_path / "whole", cfg=CFG, latency_fns=fns)
    real, calls = ev.evaluate_subnet, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the search
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "evaluate_subnet", flaky)
    with pytest.raises(KeyboardInterrupt):
        search_devices(checkpoint, pairs, tmp_path / "cut", cfg=CFG, latency_fns=fns)
    monkeypatch.setattr(ev, "evaluate_subnet", real)
    saved = json.loads((tmp_path / "cut" / CACHE_NAME).read_text())["holdout"]
    assert len(saved) == 3  # every evaluation before the interruption was kept
    resumed = search_devices(checkpoint, pairs, tmp_path / "cut", cfg=CFG, latency_fns=fns)
    assert resumed.scored == whole.scored - 3
    assert [r.arch for r in resumed.pairs] == [r.arch for r in whole.pairs]


def test_a_cache_of_other_settings_is_refused(checkpoint, fns, tmp_path):
    pairs = [Pair("dev-a", 0.4)]
    search_devices(checkpoint, pairs, tmp_path, cfg=CFG, latency_fns=fns)
    other = AccuracySearchConfig(CFG.evolution, batch_size=32, calib_batches=2,
                                 max_eval_images=32)
    with pytest.raises(HwnasError, match="another checkpoint or other evaluation settings.*"
                                         "calib_batches"):
        search_devices(checkpoint, pairs, tmp_path, cfg=other, latency_fns=fns)


def test_bad_inputs_fail_before_touching_the_disk(checkpoint, fns, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(HwnasError, match="no latency table for pixel7"):
        search_devices(checkpoint, [Pair("dev-a", 0.4), Pair("pixel7", 5)], out, cfg=CFG,
                       latency_fns=fns)
    with pytest.raises(InfeasibleTargetError, match="below the fastest subnet on dev-a"):
        search_devices(checkpoint, [Pair("dev-a", 0.01)], out, cfg=CFG, latency_fns=fns)
    with pytest.raises(HwnasError, match="over the elasticvit space .*not vit"):
        search_devices(checkpoint, [Pair("dev-a", 0.4)], out, cfg=CFG, latency_fns=fns,
                       space_name="vit")
    with pytest.raises(HwnasError, match=r"trained at resolutions \[64\]; it cannot search at "
                                         r"\[96\]"):
        search_devices(checkpoint, [Pair("dev-a", 0.4)], out, cfg=CFG, latency_fns=fns,
                       resolutions=(96,))
    assert not out.exists()


def test_pareto_per_device(checkpoint, fns, tmp_path):
    pytest.importorskip("pymoo", reason="pymoo (the 'pareto' extra) is not installed")
    from hwnas.search.nsga import NSGAConfig

    pairs = parse_pairs("dev-a,dev-b", "0.3,0.5")
    res = search_devices(checkpoint, pairs, tmp_path, cfg=CFG, latency_fns=fns,
                         pareto=NSGAConfig(budget=8, population=4, offspring=4))
    assert set(res.fronts) == {"dev-a", "dev-b"}
    assert res.fronts["dev-a"].scored == 8 and res.fronts["dev-a"].max_latency_ms == 0.5
    assert res.fronts["dev-b"].scored <= 8  # the shared cache makes some of its subnets free
    front = json.loads((tmp_path / "dev-a-pareto.json").read_text())["front"]
    assert front and all(p["latency_ms"] <= 0.5 for p in front)
    for r in res.pairs:
        assert r.latency_ms <= r.pair.target_ms and load_arch(r.path) == r.arch


# --- the command line --------------------------------------------------------------------------
def hwnas(*args, home, timeout=600):
    env = dict(os.environ, HWNAS_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "hwnas.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(proc, pattern):
    import re

    err = proc.stderr.strip()
    assert proc.returncode == 1 and "Traceback" not in err, (proc.stdout, err)
    assert len(err.splitlines()) == 1 and re.search(pattern, err), err


def in_process(capsys, *args, stdout: bool = False):
    """hwnas's own main() in this process (no torch import per call): (exit code, stderr),
    and stdout as well when asked."""
    from hwnas.cli import main

    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return (code, cap.err.strip(), cap.out) if stdout else (code, cap.err.strip())


def test_cli_bad_input(checkpoint, hwnas_home, capsys):
    import re

    ck = str(checkpoint)
    cases = [
        (("--supernet", ck, "--device", "pixel4,pixel6,xiaomi11", "--target-latency", "10/20",
          "--out", "o"), "2 '/'-separated groups but --device names 3 devices"),
        (("--device", "pixel4", "--target-latency", "10", "--pareto"),
         "--pareto needs an accuracy source"),
        (("--device", "pixel4,pixel6", "--target-latency", "10"), "need --supernet"),
        (("--supernet", ck, "--device", "pixel4,pixel6", "--target-latency", "10", "--out",
          "o"), "no latency table for pixel4.*import"),
        (("--supernet", ck, "--space", "vit", "--device", "pixel4", "--target-latency", "10"),
         "not vit"),
        (("--supernet", ck, "-r", "96", "--device", "pixel4", "--target-latency", "10"),
         r"cannot search at \[96\]"),
        (("--supernet", ck, "--device", "pixel4,pixel6", "--target-latency", "10"),
         "--out DIR is needed")]
    for args, pattern in cases:
        code, err = in_process(capsys, "search", *args)
        assert code == 1 and len(err.splitlines()) == 1, err
        assert err.startswith("hwnas: error: ") and re.search(pattern, err), err
    # and once as a user meets it: a fresh process, one line on stderr, exit 1
    one_line_error(hwnas("search", "--supernet", ck, "--device", "pixel4,pixel6",
                         "--target-latency", "10/20/30", "--out", "o", home=hwnas_home),
                   "3 '/'-separated groups but --device names 2 devices")
    assert not (hwnas_home.parent / "o").exists()


def _synthetic_phone_tables(home, devices):
    """Tables for phones (imported devices) from op MACs, covering the full space at 128 px."""
    from hwnas.latency.stats import Stats
    from hwnas.latency.table import LatencyTable
    from hwnas.spaces import get_space

    space = get_space("elasticvit", (128,))
    for speed, device in enumerate(devices, start=1):
        entries = {op.key: Stats.single((0.01 + op.macs() / 3e7) / speed)
                   for op in space.enumerate_ops(128)}
        LatencyTable({"device": device}, entries).save(home / f"devices/{device}/table.pkl")


@pytest.mark.slow
def test_cli_many_devices_round_trip(hwnas_home, tmp_path, capsys):
    """Train a (depth-capped) full-space supernet for one step, search it for two phones and
    two targets from the CLI, then feed the arch files to predict, export and measure."""
    spec = SpaceSpec("full", (128,), classes=10, max_depth=1)
    ckpt = train_supernet(spec, DataSpec(TINY_DATA), TrainConfig(epochs=1, batch_size=4,
                                                                 steps_per_epoch=1),
                          SamplerConfig(method="sandwich", subnets_per_step=1),
                          tmp_path / "run").checkpoint
    _synthetic_phone_tables(hwnas_home, ["pixel4", "pixel6"])
    out = tmp_path / "search"
    p = hwnas("search", "--supernet", ckpt, "--device", "pixel4,pixel6", "--target-latency",
              "30,40", "--out", out, "--population", 2, "--generations", 0, "--calib-batches", 1,
              "--max-eval-images", 8, "--eval-batch-size", 8, home=hwnas_home, timeout=900)
    assert p.returncode == 0, p.stderr
    assert "| pixel6 | 40 |" in p.stdout
    files = sorted(out.glob("pixel*-*ms.json"))
    assert [f.name for f in files] == ["pixel4-30ms.json", "pixel4-40ms.json",
                                       "pixel6-30ms.json", "pixel6-40ms.json"]
    summary = json.loads((out / "summary.json").read_text())["pairs"]
    for f, row in zip(files, summary):
        assert row["file"] == f.name
        code, err, out_ = in_process(capsys, "predict", "--device", row["device"], "--arch", f,
                                     "--json", stdout=True)
        assert code == 0, err
        assert json.loads(out_)["predicted_ms"] == pytest.approx(row["predicted_ms"], rel=1e-3)
    code, err = in_process(capsys, "export", "--arch", files[0], "--out", tmp_path / "a.onnx")
    assert code == 0 and (tmp_path / "a.onnx").stat().st_size > 1000, err
    code, err = in_process(capsys, "measure", "--device", "local-cpu", "-r", 128, "--arch",
                           files[0], "--passes", 1)
    assert code == 0, err


@pytest.mark.slow
@pytest.mark.data
def test_real_phone_tables(shared_data, hwnas_home, tmp_path):
    """nn-Meter's measured Pixel 4, Pixel 6 and Xiaomi 11 tables drive one search each."""
    from hwnas import api
    from hwnas.api.supernet import load_latency_fn

    for d in ("pixel4", "pixel6", "xiaomi11"):
        api.import_table("nn-meter", shared_data / "nn-meter-vit-luts" / f"{d}_lut_ln_v3.json",
                         d)
    spec = SpaceSpec("full", (128,), classes=10, max_depth=1)
    ckpt = train_supernet(spec, DataSpec(), TrainConfig(epochs=1, batch_size=4,
                                                        steps_per_epoch=1),
                          SamplerConfig(method="sandwich", subnets_per_step=1),
                          tmp_path / "run").checkpoint
    space = spec.build()
    fastest = {d: float(load_latency_fn(d, space)([space.smallest(128)])[0])
               for d in ("pixel4", "pixel6", "xiaomi11")}
    targets = "/".join(f"{1.2 * fastest[d]:.3g}" for d in fastest)
    cfg = AccuracySearchConfig(EvolutionConfig(population=2, generations=0, parents=1),
                               batch_size=8, calib_batches=1, max_eval_images=8)
    res = search_devices(ckpt, parse_pairs("pixel4,pixel6,xiaomi11", targets), tmp_path / "s",
                         cfg=cfg)
    assert len(res.pairs) == 3 and res.scored <= 2 * 3 + 3
    for r in res.pairs:
        assert r.latency_ms <= r.pair.target_ms
        assert np.isfinite(r.latency_ms) and r.latency_ms > 0


def test_cli_one_device_one_target(checkpoint, hwnas_home, tmp_path, capsys):
    """``hwnas search --supernet CKPT --device D --target-latency T --out DIR``: one pair, the
    arch file and the subnet's weights in DIR, the device's own predictor (its table)."""
    from hwnas.api.supernet import load_latency_fn
    from hwnas.latency.stats import Stats
    from hwnas.latency.table import LatencyTable

    space = SPEC.build()  # the checkpoint's: a table for pixel4 that covers it at 64 px
    entries = {op.key: Stats.single(0.01 + op.macs() / 3e7) for op in space.enumerate_ops(64)}
    LatencyTable({"device": "pixel4"}, entries).save(hwnas_home / "devices/pixel4/table.pkl")
    fastest = float(load_latency_fn("pixel4", space)([space.smallest(64)])[0])
    out = tmp_path / "pick"
    code, err, stdout = in_process(
        capsys, "search", "--supernet", checkpoint, "--device", "pixel4", "-r", 64,
        "--target-latency", f"{1.5 * fastest:.4g}", "--out", out, "--population", 2,
        "--generations", 0, "--calib-batches", 1, "--max-eval-images", 8,
        "--eval-batch-size", 8, "--no-remeasure", "--json", stdout=True)
    if "ImportError" in err:  # the error boundary's bug line: what the mark expects
        raise ImportError(err)
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc == json.loads((out / "arch.json").read_text())
    space.validate(space.arch_from_obj(doc["arch"]))
    assert doc["predicted_ms"] <= 1.5 * fastest and doc["measured_ms"] is None
    assert (out / "subnet.pt").exists()
