"""The few-shot workflow from the command line, as a user runs it: whole networks measured
elsewhere come in (``import help``, ``records import``), ``fit --kind fewshot`` learns the
device from a few of them and the other devices' records, ``predict --archs`` prices a whole
space, ``search`` runs on it, and ``adapt`` measures the few networks itself on local-cpu.

HELP's files are stood in for by small ``torch.save``d lists over real nb201/fbnet indexes
(the format HELP ships), made from a known latency model, so every test can fail."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from cli_harness import assert_one_line, invoke
from hwnas.spaces import get_space

N_NB201 = 60  # networks in the stand-in index (HELP's has 15,625)


def _nb201_index(folder, n=N_NB201):
    sp = get_space("nb201")
    archs = sp.enumerate_archs()[:: len(sp.enumerate_archs()) // n][:n]
    idx = {a.native(): i for i, a in enumerate(archs)}
    (folder / "latency").mkdir(parents=True, exist_ok=True)
    torch.save(idx, folder / "str_arch2idx.pt")
    return sp, archs


def _device(folder, name, archs, sp, scale, power=1.0):
    """A device whose latency is a power of MACs (plus a floor): proxies and targets differ."""
    ms = [float(scale * (sp.macs(a) / 1e6 + 5) ** power) for a in archs]
    torch.save(ms, folder / "latency" / f"{name}.pt")
    return np.array(ms)


@pytest.fixture
def help_nb201(tmp_path):
    folder = tmp_path / "nasbench201"
    sp, archs = _nb201_index(folder)
    truth = {n: _device(folder, n, archs, sp, s, p) for n, s, p in
             (("gpu_a", 0.05, 0.9), ("cpu_b", 0.2, 1.0), ("target", 0.11, 0.95))}
    return folder, sp, archs, truth


def test_import_fit_predict_search_round_trip(help_nb201, hwnas_home, tmp_path):
    folder, sp, archs, truth = help_nb201
    for name in ("gpu_a", "cpu_b"):
        r = invoke(["import", "help", folder / "latency" / f"{name}.pt", "--device", name],
                   hwnas_home)
        assert r.exit_code == 0, r.stderr
        assert f"imported {N_NB201} nb201 networks" in r.stdout and "new imported device" in r.stdout
    listed = invoke(["devices"], hwnas_home).stdout
    assert "gpu_a" in listed and "imported" in listed
    # ten measurements of a lab's board, as a CSV (native strings)
    few = tmp_path / "board.csv"
    with few.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "latency_ms"])
        for i in range(0, N_NB201, N_NB201 // 10):
            w.writerow([archs[i].native(), truth["target"][i]])
    r = invoke(["records", "import", few, "--device", "board", "--space", "nb201"], hwnas_home)
    assert r.exit_code == 0, r.stderr
    fit = invoke(["fit", "--device", "board", "--space", "nb201", "--kind", "fewshot"],
                 hwnas_home)
    assert fit.exit_code == 0, fit.stderr
    assert "leave-one-out" in fit.stdout and "FLOPs-linear" in fit.stdout
    # every network, in order, through JSON lines
    lines = tmp_path / "all.jsonl"
    lines.write_text("".join(json.dumps(a.native()) + "\n" for a in archs))
    out = tmp_path / "pred.csv"
    r = invoke(["predict", "--device", "board", "--archs", lines, "--csv", out], hwnas_home)
    assert r.exit_code == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert [json.loads(r["arch"]) for r in rows] == [a.native() for a in archs]
    pred = np.array([float(r["predicted_ms"]) for r in rows])
    assert np.all(pred > 0) and {r["predictor"] for r in rows} == {"fewshot"}
    err = np.abs(pred / truth["target"] - 1)
    assert np.median(err) < 0.05, np.median(err)  # a power of MACs is learnable from proxies
    s = invoke(["search", "--device", "board", "--space", "nb201", "--target-latency",
                float(np.median(truth["target"])), "--json"], hwnas_home)
    assert s.exit_code == 0, s.stderr
    assert "fewshot" in s.stdout


def test_fbnet_records_import_and_batch_predict_round_trip(hwnas_home, tmp_path):
    sp = get_space("fbnet")
    rng = np.random.default_rng(0)
    archs = [sp.sample(rng) for _ in range(12)]
    data = tmp_path / "r.csv"
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "latency_ms", "std_ms", "runs"])
        for a in archs:
            w.writerow([json.dumps(a.native()), sp.macs(a) / 1e6, 0.1, 50])
    for dev in ("p1", "p2"):
        r = invoke(["records", "import", data, "--device", dev, "--space", "fbnet"], hwnas_home)
        assert r.exit_code == 0, r.stderr
    again = invoke(["records", "import", data, "--device", "p1", "--space", "fbnet"], hwnas_home)
    assert "--force" in assert_one_line(again)
    fit = invoke(["fit", "--device", "p2", "--space", "fbnet", "--kind", "fewshot",
                  "--proxies", "p1"], hwnas_home)
    assert fit.exit_code == 0, fit.stderr
    out = tmp_path / "o.csv"
    r = invoke(["predict", "--device", "p2", "--space", "fbnet", "--archs", data, "--csv", out],
               hwnas_home)
    assert r.exit_code == 0, r.stderr
    got = list(csv.DictReader(out.open()))
    assert [json.loads(g["arch"]) for g in got] == [a.native() for a in archs]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other-space", "length", "negative"])
def test_bad_help_files_are_one_line_and_write_nothing(help_nb201, hwnas_home, damage):
    folder, sp, archs, truth = help_nb201
    bad = folder / "latency" / "bad.pt"
    index = None
    if damage == "truncated":
        bad.write_bytes((folder / "latency" / "gpu_a.pt").read_bytes()[:200])
    elif damage == "garbage":
        bad.write_bytes(b"not a torch file at all")
    elif damage == "other-space":
        index = folder / "metainfo.pt"
        torch.save({"dataset": "cifar100", "arch": [{"arch_str": ["skip"] * 22,
                                                      "op_idx_list": [8] * 22}]}, index)
        torch.save([1.0], bad)
    elif damage == "length":
        torch.save(list(truth["gpu_a"][:-1]), bad)
    elif damage == "negative":
        torch.save([-1.0] + list(truth["gpu_a"][1:]), bad)
    args = ["import", "help", bad, "--device", "x1"] + (["--index", index] if index else [])
    assert_one_line(invoke(args, hwnas_home))
    assert not (hwnas_home / "devices").exists() or not any((hwnas_home / "devices").iterdir())


def test_fewshot_needs_five_records_and_a_proxy(help_nb201, hwnas_home, tmp_path):
    folder, sp, archs, truth = help_nb201
    few = tmp_path / "few.csv"
    few.write_text("arch,latency_ms\n" + "".join(f"{archs[i].native()},{truth['target'][i]}\n"
                                                 for i in range(4)))
    assert invoke(["records", "import", few, "--device", "b", "--space", "nb201"],
                  hwnas_home).exit_code == 0
    assert "at least 5" in assert_one_line(invoke(
        ["fit", "--device", "b", "--space", "nb201", "--kind", "fewshot"], hwnas_home))
    few.write_text("arch,latency_ms\n" + "".join(f"{archs[i].native()},{truth['target'][i]}\n"
                                                 for i in range(8)))
    assert invoke(["records", "import", few, "--device", "b", "--space", "nb201", "--force"],
                  hwnas_home).exit_code == 0
    assert "no other device" in assert_one_line(invoke(
        ["fit", "--device", "b", "--space", "nb201", "--kind", "fewshot"], hwnas_home))
    assert "nosuch" in assert_one_line(invoke(
        ["fit", "--device", "b", "--space", "nb201", "--kind", "fewshot", "--proxies",
         "nosuch"], hwnas_home))


@pytest.mark.slow
def test_adapt_measures_local_cpu_and_search_runs_on_it(help_nb201, hwnas_home):
    """adapt on the machine itself: 6 nb201 networks measured drift-free, then search."""
    folder, sp, archs, truth = help_nb201
    for name in ("gpu_a", "cpu_b"):
        invoke(["import", "help", folder / "latency" / f"{name}.pt", "--device", name],
               hwnas_home)
    (hwnas_home / "devices").mkdir(exist_ok=True)
    r = invoke(["devices", "add", "cpu-fast", "--extends", "local-cpu", "runs=5", "warmup=2",
                "reference_batches=1"], hwnas_home)
    assert r.exit_code == 0, r.stderr
    a = invoke(["adapt", "--device", "cpu-fast", "--space", "nb201", "--samples", 6],
               hwnas_home)
    assert a.exit_code == 0, a.stderr
    assert "measured 6 nb201 networks" in a.stdout and "leave-one-out" in a.stdout
    recs = json.loads((hwnas_home / "devices" / "cpu-fast" / "records.json").read_text())
    assert len(recs["records"]) == 6
    assert "adapt measures" in assert_one_line(invoke(
        ["adapt", "--device", "gpu_a", "--space", "nb201"], hwnas_home))


def test_help_numbers_never_become_a_live_device_s(help_nb201, hwnas_home):
    folder, *_ = help_nb201
    line = assert_one_line(invoke(["import", "help", folder / "latency" / "gpu_a.pt",
                                   "--device", "local-cpu"], hwnas_home))
    assert "other hardware" in line
    assert not (hwnas_home / "devices" / "local-cpu" / "records.json").exists()
