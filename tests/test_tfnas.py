"""The TF-NAS space: its keys are TF-NAS's table keys, its LUT sum is TF-NAS's own, elasticity
scaling lands just under the target, and the imported tables drive search directly."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.spaces.tfnas.arch import TFNAS_STAGES, TFNASArch
from hwnas.device_configs import load_device
from hwnas.errors import ArchError, HwnasError
from hwnas.latency.importers import TFNAS_ALLOWED, import_tf_nas
from hwnas.latency.safeio import safe_load
from hwnas.models import named_model
from hwnas.predictors.lut import LUTPredictor
from hwnas.spaces import get_space
from hwnas.spaces.elasticity import elasticity_scale
from hwnas.spaces.tfnas.space import mid_bounds

TABLES = {"titan-rtx": "latency_gpu.pkl", "xeon-gold-6130": "latency_cpu.pkl"}


@pytest.fixture(scope="module")
def space():
    return get_space("tfnas")


def tfnas_lookup_latency(raw: dict, arch: TFNASArch) -> float:
    """TF-NAS's get_lookup_latency, written out from its code: 'base' plus, per block, the
    table entry '{name}_{size}_{in}_{se}_{out}_k{k}_s{s}_{act}' at the block's mid width,
    where size is the block's input side (stem and second stem leave 112 at 224)."""
    lat, size = raw["base"], 112
    for stage_name, blocks in arch.to_tfnas_config().items():
        if not stage_name.startswith("stage"):
            continue
        for b in blocks:
            key = (f"MBInvertedResBlock_{size}_{b['in_channels']}_{b['se_channels']}_"
                   f"{b['out_channels']}_k{b['kernel_size']}_s{b['stride']}_{b['act_func']}")
            lat += raw[key][b["mid_channels"]]
            size = (size - 1) // b["stride"] + 1
    return lat


@pytest.mark.data
@pytest.mark.parametrize("device", sorted(TABLES))
def test_imported_tables_price_every_architecture_as_tf_nas_does(space, shared_data, device):
    path = shared_data / "tf-nas-luts" / TABLES[device]
    table = import_tf_nas(path, load_device(device))
    raw = safe_load(path, allowed=TFNAS_ALLOWED)
    assert not table.missing(op.key for op in space.enumerate_ops(224))
    pred = LUTPredictor(table, space, calibrate=False)
    rng = np.random.default_rng(0)
    archs = [space.smallest(224), space.largest(224)] + [space.sample(rng) for _ in range(20)]
    # every width elasticity may choose is in the table too
    archs += [space.with_widths(a, [lo for lo, _ in space.width_bounds(a)]) for a in archs[:5]]
    archs += [space.with_widths(a, [hi for _, hi in space.width_bounds(a)]) for a in archs[:5]]
    ours = pred.predict_raw(archs)
    theirs = [tfnas_lookup_latency(raw, a) for a in archs]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


@pytest.mark.data
def test_elasticity_on_the_gpu_table_lands_just_under_each_target(space, shared_data):
    table = import_tf_nas(shared_data / "tf-nas-luts" / TABLES["titan-rtx"],
                          load_device("titan-rtx"))
    pred = LUTPredictor(table, space, calibrate=False)
    arch = space.sample(np.random.default_rng(1))
    hits = 0
    for target in (8.0, 9.0, 11.0, 15.0):
        res = elasticity_scale(space, arch, pred.predict_one, target)
        at_max = all(m == hi for m, (_, hi) in zip(res.arch.mids, space.width_bounds(arch)))
        if res.feasible and not at_max:
            assert target * 0.97 <= res.latency_ms <= target
        assert res.latency_ms == pytest.approx(pred.predict_one(res.arch))
        space.validate(res.arch)
        assert res.arch.kernels == arch.kernels and res.arch.depths == arch.depths
        hits += res.feasible and not at_max
    assert hits >= 2


@pytest.mark.data
def test_hwnas_search_runs_on_the_imported_titan_rtx_table(shared_data, tmp_path):
    from hwnas import api
    from hwnas.search.evolution import EvolutionConfig

    api.import_table("tf-nas", shared_data / "tf-nas-luts" / TABLES["titan-rtx"], "titan-rtx",
                     home=tmp_path)
    out = api.search("titan-rtx", 15.0, seed=0, space="tfnas", progress=False, home=tmp_path,
                     cfg=EvolutionConfig(population=16, generations=4, parents=4))
    best = out.result.best
    assert best.latency_ms <= 15.0 and isinstance(best.arch, TFNASArch)
    assert out.measured is None  # an imported device cannot re-measure


def _linear_latency(arch: TFNASArch) -> float:
    """A synthetic latency: 1 ms plus 1 us per mid channel (no data needed)."""
    return 1.0 + 0.001 * sum(arch.mids)


def test_elasticity_shrinks_then_regrows_to_just_under_the_target(space):
    arch = space.sample(np.random.default_rng(3))
    lat = _linear_latency(arch)
    for target in (lat * 0.8, lat * 1.15):
        res = elasticity_scale(space, arch, _linear_latency, target)
        assert res.feasible and res.latency_ms <= target
        assert target - res.latency_ms < 0.001 * 8  # within one step of the finest stage
        for (lo, hi), mid in zip(space.width_bounds(arch), res.arch.mids):
            assert lo <= mid <= hi
        assert res.evaluations < 2000


def test_elasticity_reports_an_unreachable_target(space):
    arch = space.largest(224)
    floor = _linear_latency(space.with_widths(arch, [lo for lo, _ in space.width_bounds(arch)]))
    res = elasticity_scale(space, arch, _linear_latency, floor * 0.5)
    assert not res.feasible and res.latency_ms == pytest.approx(floor)
    with pytest.raises(HwnasError, match="positive"):
        elasticity_scale(space, arch, _linear_latency, 0.0)


def test_keys_are_tf_nas_table_keys_plus_the_width(space):
    arch = space.largest(224)
    keys = space.op_keys(arch)
    assert keys[0] == "base"
    assert keys[1] == "MBInvertedResBlock_112_16_32_24_k5_s2_relu_mid96"
    assert keys[-1] == "MBInvertedResBlock_7_192_384_320_k5_s1_swish_mid1152"
    assert len(space.enumerate_ops(224)) == 1 + 11 * 8


def test_mid_width_outside_tf_nas_bounds_is_named(space):
    arch = space.smallest(224)
    lo, hi = mid_bounds(16, 3)
    assert (lo, hi) == (32, 64)
    bad = arch.to_dict()
    bad["mids"][0] = hi + 1
    with pytest.raises(ArchError, match=r"mids\[0\]=65 not allowed .*allowed: 32\.\.64"):
        space.arch_from_obj(bad)


def test_tf_nas_model_config_round_trip(space):
    arch = space.sample(np.random.default_rng(4))
    cfg = arch.to_tfnas_config()
    assert [len(cfg[f"stage{i + 1}"]) for i in range(6)] == list(arch.depths)
    assert cfg["stage6"][0]["out_channels"] == 320 == TFNAS_STAGES[-1].cout
    assert space.arch_from_obj(cfg) == arch
    cfg["stage2"][0]["in_channels"] = 32
    with pytest.raises(ArchError, match=r"stage2\[0\]\.in_channels=32 not allowed; allowed: "
                                        r"\{24\}"):
        space.arch_from_obj(cfg)


def test_mobilenetv2_is_built_from_tf_nas_blocks():
    m = named_model("mobilenetv2")
    assert m.macs() == pytest.approx(300e6, rel=0.01)
    assert m.space.params(m.arch) == pytest.approx(3.5e6, rel=0.01)
    keys = m.op_keys()
    assert keys[1] == "MBInvertedResBlock_112_32_0_16_k3_s1_relu6_mid32"  # t = 1: no expansion
    assert m.space.sample(np.random.default_rng(0)) == m.arch
