"""Kernel kinds a device's kernel table lacks (issue 24, item 6): timed on a live device when a
prediction meets them, refused as before on an imported or unreachable one; and the templates
that make the kinds common exporters emit.

Timings here are real but tiny (1 warm-up, 3 runs): they test the plumbing, not the numbers."""

import shutil

import numpy as np
import pytest
import torch

from hwnas.anymodel import api, missing
from hwnas.anymodel import templates as tpl
from hwnas.anymodel.graph import detect, export_onnx_bytes
from hwnas.errors import ModelError, PredictorError
from hwnas.latency.table import LatencyTable

FAST = dict(warmup=1, runs=3)
REFUSAL = (r"of the model's \d+ kernels are of 1 kind\(s\) never measured on this device: "
           r"Slice; profile more kernels")


class Cropped(torch.nn.Module):
    """A convolution whose map is cropped, as a Swin's padded windows are: a Slice kernel."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, 1, 1)

    def forward(self, x):
        return torch.relu(self.conv(x))[:, :, :-2, :-2]


def _ort_kinds(module, shape) -> set[str]:
    g = detect("onnxruntime", export_onnx_bytes(module, [shape]), shape, 1)
    return {k.kind for k in g.kernels if not k.view}


def _drop_kind(path, kind: str) -> None:
    """The kernel table without ``kind``: a profile that never sampled it."""
    table = LatencyTable.load(path)
    meta = table.meta["anymodel"]
    for sig in [s for s in table.entries if s.split(":", 1)[0] == kind]:
        for d in (table.entries, table.ratios, table.timed, table.flags, meta["kernels"]):
            d.pop(sig, None)
    table.save(path)


@pytest.fixture(scope="module")
def cropped_onnx(tmp_path_factory):
    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("models") / "cropped.onnx"
    p.write_bytes(export_onnx_bytes(Cropped().eval(), [(1, 3, 24, 24)]))
    return p


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory, cropped_onnx):
    """A real local-cpu kernel table of a few kernels, every kind of the cropped model among
    them but Slice (a profile of 6 kernels, completed by a prediction of the model, then its
    Slice kernels taken out)."""
    home = tmp_path_factory.mktemp("tiny") / "hwnas-home"
    mp = pytest.MonkeyPatch()
    mp.setenv("HWNAS_HOME", str(home))
    mp.setattr(missing, "SAMPLES", 2)
    try:
        rep = api.profile_kernels("local-cpu", budget=6, nets=0, progress=False, **FAST)
        api.predict("local-cpu", onnx=cropped_onnx, **FAST)
    finally:
        mp.undo()
    _drop_kind(rep.path, "Slice")
    return rep.path


def _home_with(tiny_table, hwnas_home, device="local-cpu"):
    dest = hwnas_home / "devices" / device / "kernels.pkl"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_table, dest)
    return dest


# --- a live device: the missing kind is timed and added ---------------------------------------
def test_predict_times_a_missing_kind_on_a_live_device(tiny_table, cropped_onnx, hwnas_home,
                                                       monkeypatch, capsys):
    path = _home_with(tiny_table, hwnas_home)
    monkeypatch.setattr(missing, "SAMPLES", 3)
    before = LatencyTable.load(path)
    assert not any(s.startswith("Slice:") for s in before.entries)
    got = api.predict("local-cpu", onnx=cropped_onnx, **FAST)
    added = got.added
    assert added is not None and "Slice" in added.kinds and not added.untimed
    assert added.model_kernels["Slice"] >= 1 and added.timed_own >= 1
    assert 1 <= added.timed_samples and added.seconds > 0
    line = added.line()
    assert line.startswith("timed ") and "Slice" in line and "kernels of the model" in line \
        and line.endswith("and added them to local-cpu's kernel table"), line
    p = got.prediction
    assert p.complete and p.latency_ms > 0
    # the model's own Slice is predicted from its measurement, not from a regressor
    rows = [r for r in p.rows if r.kind == "Slice"]
    assert rows and all(r.source == "measured" and r.latency_ms > 0 for r in rows)
    after = LatencyTable.load(path)
    new = set(after.entries) - set(before.entries)
    assert {s.split(":", 1)[0] for s in new} >= {"Slice"}
    assert all(after.ratios[s].median > 0 and s in after.meta["anymodel"]["kernels"]
               for s in new)
    rec = after.meta["anymodel"]["added"][-1]
    assert rec["model"] == "cropped.onnx" and rec["sha256"] == got.model.sha256
    assert set(rec["kernels"]) | set(rec["samples"]) == new and rec["samples"]
    # the reference timings taken beside them joined the table's
    assert len(after.reference["observations_ms"]) > len(before.reference["observations_ms"])
    # nothing is missing now: the next prediction times nothing and agrees
    again = api.predict("local-cpu", onnx=cropped_onnx, **FAST)
    assert again.added is None
    assert again.prediction.latency_ms == pytest.approx(p.latency_ms, rel=1e-9)
    assert len(LatencyTable.load(path).entries) == len(after.entries)
    # the incremental refit is what a full refit of the table gives
    from hwnas import api as core

    full = api.fit_predictor(core.context("local-cpu"), after)
    ks = [k for k in detect("onnxruntime", cropped_onnx.read_bytes(), (1, 3, 24, 24)).kernels]
    assert full.predict(ks, 1.0).latency_ms == pytest.approx(
        again.prediction.latency_ms / again.prediction.scale_ms, rel=1e-9)


def test_the_cli_says_what_it_timed_in_one_line(tiny_table, cropped_onnx, hwnas_home,
                                                monkeypatch, capsys):
    from hwnas.cli import main

    _home_with(tiny_table, hwnas_home)
    monkeypatch.setattr(missing, "SAMPLES", 2)
    with pytest.raises(SystemExit) as e:
        main(["predict", "-d", "local-cpu", "--onnx", str(cropped_onnx), "--json"])
    assert e.value.code in (0, None)
    out = capsys.readouterr()
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("timed ") \
        and "Slice" in lines[0] and "added them to local-cpu's kernel table" in lines[0]
    import json

    doc = json.loads(out.out)
    assert doc["missing_kinds"] == [] and doc["timed_now"]["kinds"] == ["Slice"]
    assert 1 <= doc["timed_now"]["template_samples"] <= 2 and doc["timed_now"]["seconds"] > 0


def test_allow_missing_times_nothing(tiny_table, cropped_onnx, hwnas_home):
    path = _home_with(tiny_table, hwnas_home)
    n = len(LatencyTable.load(path).entries)
    got = api.predict("local-cpu", onnx=cropped_onnx, allow_missing=True)
    assert got.added is None and "Slice" in got.prediction.missing_kinds
    assert len(LatencyTable.load(path).entries) == n


# --- imported, unreachable, or another machine's table: the refusal, unchanged ----------------
def test_imported_unreachable_or_foreign_tables_keep_the_refusal(tiny_table, cropped_onnx,
                                                                 hwnas_home):
    folder = hwnas_home / "devices"
    folder.mkdir(parents=True, exist_ok=True)
    # a board that cannot be reached now (nothing listens on port 9 here)
    (folder / "board.yaml").write_text("kind: ssh\nhost: 127.0.0.1\nport: 9\n"
                                       "runtime: onnxruntime\n")
    board = _home_with(tiny_table, hwnas_home, "board")
    n = len(LatencyTable.load(board).entries)
    with pytest.raises(PredictorError, match=REFUSAL):
        api.predict("board", onnx=cropped_onnx)
    assert len(LatencyTable.load(board).entries) == n
    # a device measured elsewhere: hwnas does not predict it from kernels at all, as before
    (folder / "elsewhere.yaml").write_text("kind: imported\n")
    _home_with(tiny_table, hwnas_home, "elsewhere")
    with pytest.raises(ModelError, match="kernel-level prediction is for onnxruntime CPU"):
        api.predict("elsewhere", onnx=cropped_onnx)
    # local-cpu, but its kernel table came from another machine: not extended with this one's
    path = _home_with(tiny_table, hwnas_home)
    table = LatencyTable.load(path)
    table.meta["cpu"] = "Some Other CPU @ 1.0GHz"
    table.save(path)
    with pytest.raises(PredictorError, match=REFUSAL):
        api.predict("local-cpu", onnx=cropped_onnx)
    assert len(LatencyTable.load(path).entries) == len(table.entries)


# --- the templates: which make the kinds exporters emit ----------------------------------------
def _small(template: str, fixed: dict) -> dict:
    cfg = tpl.draw_fixed(template, fixed, np.random.default_rng(0)) or {}
    for key, small in (("hw", 12), ("n", 20), ("c", 16)):
        if key in cfg:
            cfg[key] = small
    return tpl._fix(template, dict(cfg, **fixed))


@pytest.mark.parametrize("kind", sorted(k for k in tpl.SOURCES if not k.isupper()))
def test_every_onnx_source_makes_its_kind(kind):
    for template, fixed in tpl.SOURCES[kind]:
        module, shape = tpl.build(template, _small(template, fixed))
        assert kind in _ort_kinds(module, shape), (kind, template, fixed)


def test_near_brackets_the_sizes_it_is_given():
    picks = tpl.near("Slice", [2000, 30000], 6)
    assert len(picks) == 6 and all(t == "movement" for t, _ in picks)
    sizes = sorted(tpl.TEMPLATES[t].cost(c)[1] for t, c in picks)
    assert sizes[0] < 2000 and sizes[-1] > 30000 and sizes[0] >= 2000 / 8
    assert tpl.near("NoSuchKind", [100], 4) == []


# --- the kinds exporters emit, against what the templates make ---------------------------------
def _exporter_kinds():
    """benchmarks/exporter_kinds.py: the survey's own functions (kinds only, nothing timed)."""
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks import exporter_kinds

    return exporter_kinds


@pytest.fixture(scope="module")
def made_by_templates():
    """runtime -> kind -> templates, computed once per runtime."""
    ek, cache = _exporter_kinds(), {}

    def get(runtime):
        if runtime not in cache:  # two sets of sizes (the survey adds drawn ones): faster
            cache[runtime] = ek.template_kinds(runtime, (ek.SMALL, ek.ODD))
        return cache[runtime]

    return get


def _small_swin():
    """A Hugging Face Swin whose 32 x 32 and 16 x 16 maps are padded to windows of 7 and
    cropped back (the issue's Slice kernels), with its shifted windows (Split, Concat) and
    patch merging (strided slices)."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.SwinConfig(image_size=128, patch_size=4, embed_dim=24, depths=[2, 2, 2],
                                  num_heads=[2, 2, 4], window_size=7, num_labels=10)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.SwinForImageClassification(cfg).eval()

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(pixel_values=x).logits

    return Logits().eval(), (1, 3, 128, 128)


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["ts", "dynamo"])
def test_the_templates_make_every_kind_onnx_exporters_give_a_swin(exporter,
                                                                    made_by_templates):
    """Templates are exported as the profiler exports them (TorchScript), whichever exporter
    wrote the user's model: dynamo's GELU is Erf, Div and Mul (onnxruntime does not fuse it),
    which only the activation template's 'erf' makes."""
    ek = _exporter_kinds()
    module, shape = _small_swin()
    have = ek.kinds(exporter, module, shape)
    made = made_by_templates("onnxruntime")
    assert not set(have) - set(made), (exporter, sorted(set(have) - set(made)), dict(have))
    assert {"Slice", "Pad", "Concat", "Split"} <= set(have)  # what the issue met


@pytest.mark.slow
def test_the_tflite_sources_make_their_kinds_and_a_swins_data_movement():
    """litert-torch: every TFLite kind of SOURCES comes out of its configurations (one
    conversion for all), and they make every data-movement kind of a Swin. (The survey,
    benchmarks/exporter_kinds.py, checks every template against the zoo; too slow here.)"""
    pytest.importorskip("litert_torch")
    from hwnas.anymodel.graph import Pack, components, export_tflite_bytes
    from hwnas.anymodel.kernels import DATA_MOVE_OPS, TRANSPOSE_OPS

    ek = _exporter_kinds()
    wanted = [(kind, t, f) for kind in sorted(tpl.SOURCES) if kind.isupper()
              for t, f in tpl.SOURCES[kind]]
    built = [tpl.build(t, _small(t, f)) for _, t, f in wanted]
    g = detect("tflite", export_tflite_bytes(Pack([m for m, _ in built],
                                                  [s for _, s in built]).module,
                                             [s for _, s in built]), None)
    owner = components(g.kernels, len(wanted), [str(i) for i in g.model.subgraphs[0].inputs])
    made: dict[int, set] = {}
    for k, o in zip(g.kernels, owner):
        made.setdefault(o, set()).add(k.kind)
    for i, (kind, t, f) in enumerate(wanted):
        assert kind in made.get(i, set()), (kind, t, f, made.get(i))
    module, shape = _small_swin()
    have = set(ek.kinds("litert", module, shape))
    moving = {k for k in have if k in DATA_MOVE_OPS | TRANSPOSE_OPS | {"SELECT_V2", "GREATER"}}
    assert {"SLICE", "STRIDED_SLICE", "PAD", "CONCATENATION"} <= moving, have
    assert moving <= set().union(*made.values()), sorted(moving - set().union(*made.values()))


def test_a_table_resumed_after_a_template_gained_a_parameter():
    """A kernel table's samples of a template as it was before a parameter was added (the
    stem template's 'pool') must not stop a resumed profile ('unexpected KeyError: pool')."""
    from hwnas.anymodel.profile import Sampler

    rng = np.random.default_rng(0)
    samples = []
    for name in ("stem", "conv"):
        for _ in range(5):
            cfg = tpl.TEMPLATES[name].draw(rng)
            if name == "stem":
                cfg.pop("pool", None)
            samples.append({"template": name, "config": cfg, "units": float(rng.random()) + .1})
    picks = Sampler(0).unsure(30, samples, 1)
    assert picks and {n for n, _ in picks} <= set(tpl.TEMPLATES)


def test_a_table_of_another_protocol_is_not_extended(tiny_table, cropped_onnx, hwnas_home):
    """Timings under another protocol (here: another thread count) are not comparable with the
    table's: one line saying why, and the table as it was."""
    path = _home_with(tiny_table, hwnas_home)
    table = LatencyTable.load(path)
    table.meta["protocol"] = dict(table.meta["protocol"], threads=7)
    table.save(path)
    with pytest.raises(PredictorError, match=r"kind\(s\) never measured on local-cpu \(Slice\), "
                                             r"and they cannot be added to its kernel table"):
        api.predict("local-cpu", onnx=cropped_onnx, **FAST)
    assert len(LatencyTable.load(path).entries) == len(table.entries)
