"""Importers keep the source's numbers exactly; the LUT walk matches nn-Meter's own sum."""

import json

import numpy as np
import pytest

from hwnas.device_configs import load_device
from hwnas.errors import TableError, UnsafePickleError
from hwnas.latency.importers import import_nn_meter, import_tf_nas
from hwnas.predictors.lut import LUTPredictor
from hwnas.spaces import get_space
from hwnas.spaces.elasticvit.space import elasticvit_named

pytestmark = pytest.mark.data
PHONES = ["pixel1", "pixel4", "pixel6", "xiaomi11"]


def nn_meter_blockwise(lut: dict, cfg: list) -> float:
    """nn-Meter's BlockLatencyPredictor.get_latency in "blockwise" mode, written out from its
    algorithm (stage strides of the v3 tables: 1, 2, 2, 2, 1, 2, 2). nn-Meter starts stage 0
    at 16 input channels whatever the stem width; the published models all use a 16 stem."""
    res, channels, depths, exp, ks, mlp, _, _, _, vs = cfg
    strides, use_se, act = (1, 2, 2, 2, 1, 2, 2), (False, False, True), "hard_swish"
    total = lut[f"firstconv_{res}_3_{channels[0]}_2_3"]
    hw, cout, conv_i, trans_i = res // 2, 16, 0, 0
    for stage, width in enumerate(channels):
        hw_in, hw_out = hw, hw // strides[stage]
        hw, cin, cout = hw_out, cout, width
        for i in range(depths[stage]):
            s = strides[stage] if i == 0 else 1
            c_in = cin if i == 0 else cout
            if stage <= 2:
                se = "se" if use_se[stage] else "nose"
                layer_hw = hw_in if i == 0 else hw_out
                total += lut[f"conv_{layer_hw}_{c_in}_{cout}_{exp[conv_i]}_{s}_{act}_{ks[conv_i]}_{se}"]
                conv_i += 1
            else:
                if i == 0:
                    total += lut[f"transds_{hw_in}_{c_in}_{cout}_{s}_6"]
                total += lut[f"transattn_{hw_out}_{cout}_{act}_{vs[trans_i]}_ln"]
                total += lut[f"transffn_{hw_out}_{cout}_{mlp[trans_i]}_{act}_ln"]
                trans_i += 1
    return total + lut[f"mbpool_{hw}_{channels[-1]}_1984_6_{act}"]


@pytest.mark.parametrize("phone", PHONES)
def test_nn_meter_import_keeps_numbers_and_matches_nn_meters_sum(shared_data, phone):
    path = shared_data / "nn-meter-vit-luts" / f"{phone}_lut_ln_v3.json"
    raw = json.loads(path.read_text())
    table = import_nn_meter(path, load_device(phone))
    assert len(table) == len(raw)
    assert all(table.entries[k].median_ms == v for k, v in raw.items())
    space = get_space("elasticvit")
    pred = LUTPredictor(table, space, calibrate=False)
    rng = np.random.default_rng(0)
    archs = list(elasticvit_named().values())
    while len(archs) < 60:  # nn-Meter's walk assumes a 16-channel stem (see above)
        a = space.sample(rng)
        if a.channels[0] == 16:
            archs.append(a)
    ours = pred.predict(archs)
    theirs = [nn_meter_blockwise(raw, a.to_elasticvit_list()) for a in archs]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_nn_meter_file_for_another_phone_is_refused(shared_data):
    path = shared_data / "nn-meter-vit-luts" / "pixel4_lut_ln_v3.json"
    with pytest.raises(TableError, match="is the table of pixel4 .*recognised by its sha256"):
        import_nn_meter(path, load_device("pixel6"))


def test_tf_nas_import_keeps_negative_entries_and_flags_them(shared_data):
    from hwnas.latency.safeio import safe_load

    path = shared_data / "tf-nas-luts" / "latency_gpu.pkl"
    raw = safe_load(path, allowed=frozenset({("collections", "OrderedDict")}))
    table = import_tf_nas(path, load_device("titan-rtx"))
    assert table.entries["base"].median_ms == raw["base"] == pytest.approx(1.9858, abs=1e-4)
    block = "MBInvertedResBlock_112_16_0_24_k3_s2_relu"
    assert table.entries[f"{block}_mid1"].median_ms == raw[block][1] < 0
    assert f"{block}_mid1" in table.flags
    n_neg = sum(1 for b, d in raw.items() if b != "base" for v in d.values() if v < 0)
    assert len(table.flags) == n_neg > 0
    assert table.meta["batch"] == 32


def test_corrupt_and_malicious_imports(tmp_path):
    bad_json = tmp_path / "pixel6_lut.json"
    bad_json.write_text('{"conv_1": 0.5, ')
    with pytest.raises(TableError, match="not valid JSON"):
        import_nn_meter(bad_json, load_device("pixel6"))
    bad_json.write_text('{"conv_1": "fast"}')
    with pytest.raises(TableError, match="not a finite number"):
        import_nn_meter(bad_json, load_device("pixel6"))
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "latency_gpu.pkl"
    evil.write_bytes(pickle.dumps({"base": Evil()}))
    with pytest.raises(UnsafePickleError):
        import_tf_nas(evil, load_device("titan-rtx"))
