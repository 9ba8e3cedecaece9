"""The nb201 (NAS-Bench-201) and fbnet (HW-NAS-Bench's FBNet) spaces: their native forms go
everywhere an architecture goes, dead NAS-Bench-201 edges are neither timed nor exported, and the
models convert to ONNX and TFLite. The registry-driven tests (test_spaces_registry, test_ops,
test_arch, test_arch_roundtrip) cover the rest of the SearchSpace contract for both."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwnas.arch import arch_from_obj
from hwnas.archfile import load_arch_file
from hwnas.errors import ArchError
from hwnas.latency.records import Records
from hwnas.latency.stats import Stats
from hwnas.ops import parse_key
from hwnas.spaces import get_space
from hwnas.spaces.fbnet.arch import FBNET_OPS, FBNetArch
from hwnas.spaces.nb201.arch import NB201Arch

# NAS-Bench-201's index 1 (HELP's str_arch2idx)
CELL = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
        "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
# HELP's fbnet metainfo, network 0
FBNET = ["k5_e6", "skip", "k3_e1_g2", "skip", "k5_e1", "skip", "skip", "skip", "k5_e6", "k5_e1",
         "k3_e1_g2", "k5_e1", "k5_e6", "k3_e6", "k3_e3", "k5_e6", "k3_e6", "k3_e3", "k5_e1",
         "k3_e3", "k5_e1", "k5_e1_g2"]
FBNET_IDX = [7, 8, 1, 8, 4, 8, 8, 8, 7, 4, 1, 4, 7, 3, 2, 7, 3, 2, 4, 2, 4, 5]


@pytest.fixture(scope="module")
def nb201():
    return get_space("nb201")


@pytest.fixture(scope="module")
def fbnet():
    return get_space("fbnet")


def _counts(model, shape):
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        y = model(torch.randn(*shape))
    return fc.get_total_flops() // 2, sum(p.numel() for p in model.parameters()), y


# --- native forms everywhere ---------------------------------------------------------------------
def _through_records_and_files(space, arch, native, tmp_path):
    """arch -> JSON -> records file -> --arch file, and the native form as an --arch file."""
    d = arch.to_dict()
    assert space.arch_from_obj(json.loads(json.dumps(d))) == arch
    assert arch_from_obj(d) == arch
    recs = Records("local-cpu")
    recs.add(d, Stats.single(1.0))
    path = tmp_path / "records.json"
    recs.save(path)
    assert [r.arch for r in Records.load(path).records] == [d]
    assert load_arch_file(path).archs == (arch,)
    assert load_arch_file(path, space.name).archs == (arch,)
    arch_json = tmp_path / "arch.json"
    arch_json.write_text(json.dumps(d))
    assert load_arch_file(arch_json).archs == (arch,)
    native_json = tmp_path / "native.json"
    native_json.write_text(json.dumps(native))
    for sp in (None, space.name):  # the native form names its space unmistakably
        got = load_arch_file(native_json, sp)
        assert got.archs == (arch,) and got.space.name == space.name


def test_nb201_native_string_round_trips_everywhere(nb201, tmp_path):
    arch = nb201.arch_from_obj(CELL)
    assert arch == NB201Arch(32, ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect",
                                  "nor_conv_3x3", "skip_connect"))
    assert arch.native() == CELL
    assert arch.to_dict() == {"space": "nb201", "resolution": 32, "edges": list(arch.edges)}
    assert arch_from_obj(CELL) == arch  # the core reader knows the native form too
    assert nb201.arch_from_obj({"space": "nb201", "cell": CELL}) == arch
    _through_records_and_files(nb201, arch, CELL, tmp_path)
    raw = tmp_path / "cell.txt"  # raw text, not JSON, with a trailing newline
    raw.write_text(CELL + "\n")
    assert load_arch_file(raw).archs == (arch,)
    assert load_arch_file(raw, "nb201").archs == (arch,)


def test_fbnet_native_list_and_indices_round_trip_everywhere(fbnet, tmp_path):
    arch = fbnet.arch_from_obj(FBNET)
    assert arch == FBNetArch(32, tuple(FBNET))
    assert arch.native() == FBNET and arch.op_idx_list() == FBNET_IDX
    assert fbnet.arch_from_obj(FBNET_IDX) == arch
    assert fbnet.arch_from_obj({"op_idx_list": FBNET_IDX, "arch_str": FBNET}) == arch
    assert arch_from_obj(FBNET) == arch
    assert arch.to_dict() == {"space": "fbnet", "resolution": 32, "blocks": FBNET}
    _through_records_and_files(fbnet, arch, FBNET, tmp_path)
    idx = tmp_path / "idx.json"  # 22 ints are fbnet's only when the space is named
    idx.write_text(json.dumps(FBNET_IDX))
    assert load_arch_file(idx, "fbnet").archs == (arch,)


def test_elasticvit_list_is_still_the_default_list_form(tmp_path):
    ev = get_space("elasticvit")
    arch = ev.sample(np.random.default_rng(0))
    path = tmp_path / "list.json"
    path.write_text(json.dumps(arch.to_elasticvit_list()))
    assert load_arch_file(path).archs == (arch,)


@pytest.mark.parametrize("obj,message", [
    (CELL.replace("avg_pool_3x3", "max_pool_3x3"), r"edges\[2\]=max_pool_3x3 not allowed; "
                                                   r"allowed: \{none, skip_connect"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|none~0|none~1|none~2|", "node 2 has 1 edges"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~1|none~0|+|none~0|none~1|none~2|", "node 2 edge 0"),
    ("|nor_conv_3x3~0|+|none~0|none~1|", "2 nodes"),
    ({"space": "nb201", "edges": ["none"] * 5}, "edges has 5 entries"),
    ({"space": "nb201", "cell": CELL, "edges": ["none"] * 6}, "bad nb201 architecture fields"),
])
def test_nb201_bad_input_names_the_field(nb201, obj, message):
    with pytest.raises(ArchError, match=message):
        nb201.arch_from_obj(obj)


@pytest.mark.parametrize("obj,message", [
    (FBNET[:-1] + ["k7_e6"], r"blocks\[21\]=k7_e6 not allowed; allowed: \{k3_e1, k3_e1_g2"),
    (FBNET[:-1], "blocks has 21 entries"),
    (FBNET_IDX[:-1] + [9], r"op_idx_list\[21\]=9 not allowed; allowed: 0..8"),
    ({"op_idx_list": FBNET_IDX, "arch_str": FBNET[::-1]}, "name different blocks"),
])
def test_fbnet_bad_input_names_the_field(fbnet, obj, message):
    with pytest.raises(ArchError, match=message):
        fbnet.arch_from_obj(obj)


# --- the 15,625 cells ----------------------------------------------------------------------------
def test_nb201_lists_all_15625_distinct_cells(nb201):
    archs = nb201.enumerate_archs()
    assert len(archs) == 15625 and len(set(archs)) == 15625
    natives = {a.native() for a in archs}
    assert len(natives) == 15625
    assert all(nb201.arch_from_obj(a.native()) == a for a in archs[::97])
    assert archs[0] == nb201.smallest(32)
    encoded = np.stack([nb201.encode(a) for a in archs[::61]])
    assert encoded.shape[1] == 30 and (encoded.sum(1) == 6).all()


# --- dead edges ----------------------------------------------------------------------------------
# edge order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
DEAD_CASES = {
    # node 1 feeds only 'none' edges: its conv is dead; node 3 adds a 1x1 conv and node 2's skip
    "no_way_out": ("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|none~1|skip_connect~2|",
                   ["nb201conv_{hw}_{c}_k3", "nb201conv_{hw}_{c}_k1", "nb201sum_{hw}_{c}_n2"]),
    # node 1 receives nothing (zeros): the conv out of it and node 2 are dead; the cell is a skip
    "no_way_in": ("|none~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|", []),
    # nothing reaches the output: the cell outputs zeros
    "zero_cell": ("|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|none~1|none~2|",
                  ["nb201zero_{hw}_{c}"]),
    # every edge live: three node sums of 1, 2 and 3 inputs
    "all_live": ("|nor_conv_1x1~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+"
                 "|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|",
                 ["nb201conv_{hw}_{c}_k1", "nb201pool_{hw}_{c}", "nb201conv_{hw}_{c}_k3",
                  "nb201sum_{hw}_{c}_n2", "nb201conv_{hw}_{c}_k3", "nb201pool_{hw}_{c}",
                  "nb201sum_{hw}_{c}_n3"]),
}


@pytest.mark.parametrize("case", sorted(DEAD_CASES))
def test_nb201_walk_prices_only_live_edges(nb201, case):
    cell, per_cell = DEAD_CASES[case]
    arch = nb201.arch_from_obj(cell)
    expected = ["nb201stem_32_16"]
    for s, (hw, c) in enumerate([(32, 16), (16, 32), (8, 64)]):
        if s:
            expected.append(f"nb201resblock_{2 * hw}_{c // 2}_{c}")
        expected += [k.format(hw=hw, c=c) for k in per_cell] * 5
    expected.append("nb201head_8_64_100")
    assert nb201.op_keys(arch) == expected
    assert all(parse_key(op.key) == op for op in nb201.ops(arch))
    macs, params, y = _counts(nb201.build_model(arch), nb201.input_shape(arch))
    assert (macs, params) == (nb201.macs(arch), nb201.params(arch))
    assert y.shape == (1, 100) and torch.isfinite(y).all()


def _onnx_ops(space, arch, tmp_path) -> dict[str, int]:
    import onnx

    from hwnas.profilers.export import export_onnx

    path = export_onnx(space.build_model(arch), space.input_shape(arch), tmp_path / "m.onnx")
    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@pytest.mark.parametrize("case", sorted(DEAD_CASES))
def test_nb201_onnx_holds_exactly_the_live_ops(nb201, case, tmp_path):
    cell, _ = DEAD_CASES[case]
    arch = nb201.arch_from_obj(cell)
    ops = nb201.ops(arch)
    n_conv = sum(op.kind == "nb201conv" for op in ops)
    n_pool = sum(op.kind == "nb201pool" for op in ops)
    n_add = sum(op.n - 1 for op in ops if op.kind == "nb201sum")
    counts = _onnx_ops(nb201, arch, tmp_path)
    # the skeleton: the stem conv, and per reduction block two 3x3 convs, a 1x1 shortcut conv,
    # its 2x2 average pool and the residual add
    assert counts.get("Conv", 0) == n_conv + 1 + 2 * 3
    assert counts.get("AveragePool", 0) == n_pool + 2
    assert counts.get("Add", 0) == n_add + 2
    assert counts.get("Mul", 0) == (15 if case == "zero_cell" else 0)


def test_nb201_counts_match_nas_bench_201(nb201):
    """NAS-Bench-201's largest CIFAR-10 network: 220.12 M FLOPs (MACs), 1.5315 M parameters."""
    from hwnas.spaces.nb201.space import NB201Space

    cifar10 = NB201Space(classes=10)
    arch = cifar10.largest(32)
    assert cifar10.macs(arch) == 220_119_680 and cifar10.params(arch) == 1_531_546
    assert nb201.macs(arch) - cifar10.macs(arch) == 64 * 90


def test_fbnet_walk_follows_hw_nas_bench(fbnet):
    arch = fbnet.arch_from_obj(FBNET)
    keys = fbnet.op_keys(arch)
    # layer 1 ('skip', 16 -> 24) and layer 5 ('skip', stride 2) project; the skips of layers 3,
    # 6 and 7 are identities and have no op
    assert keys[:4] == ["fbnetstem_32_16", "fbnetblock_32_16_16_k5_e6_g1_s1",
                        "fbnetskip_32_16_24_s1", "fbnetblock_32_24_24_k3_e1_g2_s1"]
    assert len(keys) == 1 + 22 - 3 + 1 and keys[-1] == "fbnethead_4_352_1504_100"
    assert keys[5] == "fbnetskip_32_24_32_s2"
    assert "fbnetblock_8_64_112_k3_e6_g1_s1" in keys  # stage 5 keeps the side (stride 1)
    macs, params, y = _counts(fbnet.build_model(arch), fbnet.input_shape(arch))
    assert (macs, params) == (fbnet.macs(arch), fbnet.params(arch))
    assert y.shape == (1, 100) and torch.isfinite(y).all()
    smallest = fbnet.ops(fbnet.smallest(32))  # the projecting skips, stem and head
    assert [op.kind for op in smallest] == ["fbnetstem"] + ["fbnetskip"] * 6 + ["fbnethead"]


def test_fbnet_onnx_has_the_blocks_convs(fbnet, tmp_path):
    arch = fbnet.arch_from_obj(FBNET)
    ops = fbnet.ops(arch)
    expected = sum({"fbnetstem": 1, "fbnetblock": 3, "fbnetskip": 1, "fbnethead": 1}[op.kind]
                   for op in ops)
    assert _onnx_ops(fbnet, arch, tmp_path)["Conv"] == expected


# --- search operators ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["nb201", "fbnet"])
def test_mutate_and_crossover_stay_valid_and_seeded(name):
    space = get_space(name)
    rng = np.random.default_rng(1)
    pop = [space.sample(rng) for _ in range(20)]
    for a, b in zip(pop, pop[1:]):
        child = space.crossover(a, b, rng)
        space.validate(child)
        field = "edges" if name == "nb201" else "blocks"
        assert all(x in (p, q) for x, p, q in zip(getattr(child, field), getattr(a, field),
                                                  getattr(b, field)))
        m = space.mutate(child, rng, 0.3)
        space.validate(m)
        assert space.encode(m).shape == space.encode(a).shape
    again = np.random.default_rng(1)
    assert [space.sample(again) for _ in range(20)] == pop
    assert space.mutate(pop[0], rng, 1.0).to_dict() != pop[0].to_dict()


# --- HELP's data ---------------------------------------------------------------------------------
@pytest.mark.data
def test_every_help_nb201_string_parses_and_is_listed(nb201, shared_data):
    """Every key of HELP's str_arch2idx parses and writes back as itself, and the 15,625 listed
    cells are exactly its keys. The listing's order is not NAS-Bench-201's index (that is its
    benchmark file's order): HELP's index is looked up by ``arch.native()``."""
    idx = torch.load(shared_data / "help" / "nasbench201" / "str_arch2idx.pt",
                     weights_only=True)
    assert sorted(idx.values()) == list(range(15625))
    for s in idx:
        assert nb201.arch_from_obj(s).native() == s
    listed = [a.native() for a in nb201.enumerate_archs()]
    assert set(listed) == set(idx)
    assert listed != sorted(idx, key=idx.get)  # documented: not the benchmark's order


@pytest.mark.data
def test_every_help_fbnet_arch_parses_and_round_trips(fbnet, shared_data):
    meta = torch.load(shared_data / "help" / "fbnet" / "metainfo.pt", weights_only=True)
    assert meta["num_classes"] == fbnet.classes and meta["dataset"] == "cifar100"
    for entry in meta["arch"]:
        arch = fbnet.arch_from_obj(entry["arch_str"])
        assert arch.native() == list(entry["arch_str"])
        assert arch.op_idx_list() == list(entry["op_idx_list"])
        assert fbnet.arch_from_obj(entry) == arch
        assert fbnet.arch_from_obj(arch.to_dict()) == arch
    assert set(FBNET_OPS) == {b for e in meta["arch"] for b in e["arch_str"]}


# --- TFLite --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name,native", [("nb201", DEAD_CASES["no_way_out"][0]),
                                         ("fbnet", FBNET)], ids=["nb201", "fbnet"])
def test_models_convert_to_tflite_and_run_in_litert(name, native, tmp_path):
    from hwnas.profilers.export import export_tflite, tflite_export_available

    if not tflite_export_available():
        pytest.skip("litert-torch is not installed (requirements-tflite-export.txt)")
    interpreter = pytest.importorskip("ai_edge_litert.interpreter",
                                      reason="ai-edge-litert (LiteRT) is not installed")
    space = get_space(name)
    arch = space.arch_from_obj(native)
    model = space.build_model(arch)
    path = export_tflite(model, space.input_shape(arch), tmp_path / f"{name}.tflite")
    it = interpreter.Interpreter(model_path=str(path))
    it.allocate_tensors()
    x = np.random.default_rng(0).standard_normal(space.input_shape(arch)).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert y.shape == ref.shape == (1, 100)
    np.testing.assert_allclose(y, ref, rtol=1e-3, atol=1e-3)
