"""The any-model overhead model's terms: arithmetic on known data, and old saved states."""

import numpy as np
import pytest

from hwnas.anymodel.kernels import Kernel, TensorSpec
from hwnas.anymodel.predictor import Overhead, weights_mb


def test_the_fit_recovers_a_weights_term_and_the_kernel_count_does_not_absorb_it():
    rng = np.random.default_rng(0)
    sums = rng.uniform(1, 20, 30)
    counts = rng.integers(20, 300, 30)
    wmb = rng.uniform(0.5, 60, 30)  # independent of the count, as in the zoo
    measured = 1.03 * sums + 1e-4 * counts + 0.012 * wmb + 0.01
    ov = Overhead.fit(sums, counts, measured, 0.0, wmb)
    assert ov.per_weight_mb == pytest.approx(0.012, rel=1e-3)
    assert ov.scale == pytest.approx(1.03, rel=1e-3)
    assert ov.per_kernel == pytest.approx(1e-4, rel=1e-2)
    assert ov.apply(10.0, 100, 20.0) == pytest.approx(1.03 * 10 + 1e-2 + 0.24 + 0.01, rel=1e-3)
    without = Overhead.fit(sums, counts, measured, 0.0)  # no weights: the term is missed
    err = np.abs([without.apply(s, n) / m - 1 for s, n, m in zip(sums, counts, measured)])
    assert err.max() > 0.05


def test_a_predictor_saved_before_the_weights_term_loads_as_fitted():
    old = {"scale": 1.05, "per_kernel": 2e-4, "per_call": 0.01, "n_networks": 24}
    ov = Overhead.from_obj(old)
    assert ov.per_weight_mb == 0.0 and ov.apply(1.0, 10, 99.0) == pytest.approx(1.062)
    assert Overhead.from_obj(ov.to_obj()) == ov


def test_a_fit_that_gives_the_kernels_no_weight_refits_the_rest_with_them_as_they_are():
    """Networks whose kernel sums say nothing about them (a tiny kernel table's regressors):
    NNLS gives the sum no weight and puts the time in the other terms. The scale is then
    held at 1 and the other terms fitted on what the sums leave; keeping them as they were
    added every network's time twice over."""
    sums = np.array([3.0, 2.5, 2.0, 0.5, 0.3])  # falling where the networks' time rises
    counts = np.array([20, 30, 40, 50, 60])
    wmb = np.array([5.0, 9.0, 3.0, 12.0, 6.0])
    measured = 0.02 * counts
    ov = Overhead.fit(sums, counts, measured, 0.0, wmb, n_own=1)
    assert ov.scale == 1.0 and ov.n_networks == 5 and ov.n_own == 1
    from scipy.optimize import nnls

    w = 1.0 / measured
    a = np.column_stack([counts, wmb, np.ones_like(sums)]) * w[:, None]
    rest, _ = nnls(a, (measured - sums) * w)
    assert (ov.per_kernel, ov.per_weight_mb, ov.per_call) == pytest.approx(tuple(rest))
    assert "and 1 model measured on this device" in ov.fitted_on()
    assert Overhead.from_obj(ov.to_obj()) == ov
    assert Overhead.fit(sums[:3], counts[:3], measured[:3]).fitted_on().startswith("not fitted")


def test_weight_bytes_count_constant_inputs_by_their_dtype():
    k = Kernel("onnxruntime", "conv", "Conv", (("group", 1),),
               (TensorSpec("x", "float32", (1, 8, 16, 16), False),
                TensorSpec("w", "float32", (16, 8, 3, 3), True),
                TensorSpec("b", "float16", (16,), True)),
               (TensorSpec("y", "float32", (1, 16, 16, 16), False),))
    assert k.weight_bytes == 16 * 8 * 9 * 4 + 16 * 2
    assert weights_mb([k, k]) == pytest.approx(2 * k.weight_bytes / 1e6)


def test_a_kernel_too_big_to_time_alone_is_refused_before_it_is_cut_out():
    """litert-torch lowers EfficientNet's 1280-wide pool over 7 x 7 to a PAD with a 1280^3
    output (8 GiB): timed alone with its copies it took the machine down. The timer refuses
    it with one line, and lets an ordinary kernel through."""
    from hwnas.anymodel.profile import check_kernel_fits, kernel_bytes
    from hwnas.errors import ProfileError

    pad = Kernel("tflite", "7", "PAD", (),
                 (TensorSpec("0", "float32", (1, 7, 7, 1280), False),
                  TensorSpec("1", "int32", (4, 2), True)),
                 (TensorSpec("2", "float32", (1, 1280, 1280, 1280), False),))
    assert kernel_bytes(pad) == 1280 ** 3 * 4 + 4 * 2 * 4 + 2 * 7 * 7 * 1280 * 4
    with pytest.raises(ProfileError, match=r"PAD .* needs 7\.8 GiB to be timed alone"):
        check_kernel_fits(pad, memory_bytes=12 * 2 ** 30)
    conv = Kernel("onnxruntime", "conv", "Conv", (("group", 1),),
                  (TensorSpec("x", "float32", (1, 8, 16, 16), False),
                   TensorSpec("w", "float32", (16, 8, 3, 3), True)),
                  (TensorSpec("y", "float32", (1, 16, 16, 16), False),))
    check_kernel_fits(conv, memory_bytes=12 * 2 ** 30)
    check_kernel_fits(pad, memory_bytes=None)  # unknown memory: allowed, as models are


def _t(name, shape, const=False, dtype="float32"):
    return TensorSpec(name, dtype, shape, const)


def _pad(src, dst):
    return Kernel("tflite", "0", "PAD", (), (_t("0", src), _t("1", (4, 2), True, "int32")),
                  (_t("2", dst),))


def _conv(src, padding=1, op="CONV_2D"):
    return Kernel("tflite", "1", op, (("padding", padding), ("stride_h", 2), ("stride_w", 2)),
                  (_t("2", src), _t("3", (8, 3, 3, src[3]), True), _t("4", (8,), True)),
                  (_t("5", (1, (src[1] - 3) // 2 + 1, (src[2] - 3) // 2 + 1, 8)),))


def test_a_spatial_zero_pad_before_a_valid_convolution_is_fused_and_nothing_else_is():
    """XNNPACK folds it into the convolution: the rule reads the operator order and shapes."""
    from hwnas.anymodel.kernels import fused_mask

    src, dst = (1, 32, 32, 3), (1, 34, 34, 3)
    assert fused_mask([_pad(src, dst), _conv(dst)]) == [True, False]
    assert fused_mask([_pad(src, dst), _conv(dst, op="DEPTHWISE_CONV_2D")]) == [True, False]
    assert fused_mask([_pad(src, dst), _conv(dst, padding=0)]) == [False, False]  # SAME
    assert fused_mask([_pad(src, (1, 34, 34, 5)), _conv((1, 34, 34, 5))]) == [False, False]
    assert fused_mask([_conv(dst), _pad(src, dst)]) == [False, False]  # last: no consumer
    other = Kernel("tflite", "1", "ADD", (), (_t("2", dst), _t("6", dst)), (_t("7", dst),))
    assert fused_mask([_pad(src, dst), other]) == [False, False]
    ort = Kernel("onnxruntime", "p", "PAD", (), (_t("0", src),), (_t("2", dst),))
    assert fused_mask([ort, _conv(dst)]) == [False, False]


def test_a_fused_pad_costs_no_time_no_dispatch_and_no_weights():
    from hwnas.anymodel.predictor import AnyModelPredictor, KindRegressors

    src, dst = (1, 32, 32, 3), (1, 34, 34, 3)
    pad, conv = _pad(src, dst), _conv(dst)
    regs = KindRegressors().fit([pad, conv], [0.5, 2.0])
    ov = Overhead(1.1, 0.01, 0.05, 20, 0.2)
    pred = AnyModelPredictor(regs, {pad.signature: 0.5, conv.signature: 2.0}, ov, "tflite")
    p = pred.predict([pad, conv], 3.0)
    assert [r.source for r in p.rows] == ["fused", "measured"]
    assert p.rows[0].latency_ms == 0.0 and p.dispatched_kernels == 1
    assert p.covered_kernels == 2 and p.kernels_ms == pytest.approx(2.0 * 3.0)
    assert p.latency_ms == pytest.approx(ov.apply(2.0, 1, conv.weight_bytes / 1e6) * 3.0)
    alone = pred.predict([pad], 3.0)  # no convolution after it: it runs and costs its time
    assert alone.rows[0].source == "measured" and alone.kernels_ms == pytest.approx(1.5)


def test_a_fused_kernel_needs_no_regressor_of_its_kind():
    """A table that never measured PAD still predicts a model whose PADs are all folded."""
    from hwnas.anymodel.missing import missing_kinds
    from hwnas.anymodel.predictor import AnyModelPredictor, KindRegressors

    src, dst = (1, 32, 32, 3), (1, 34, 34, 3)
    pad, conv = _pad(src, dst), _conv(dst)
    regs = KindRegressors().fit([conv], [2.0])
    pred = AnyModelPredictor(regs, {conv.signature: 2.0}, Overhead(), "tflite")
    assert missing_kinds(pred, [pad, conv]) == []
    p = pred.predict([pad, conv], 1.0)
    assert [r.source for r in p.rows] == ["fused", "measured"] and p.complete
    assert missing_kinds(pred, [pad]) == ["PAD"]  # a PAD that runs needs one


def test_a_grouped_tflite_convolution_reads_its_groups_from_the_filter():
    """[cout, kh, kw, cin / groups]: RegNet's 16-wide groups over 64 channels are 4 groups."""
    dense = _conv((1, 16, 16, 64))
    grouped = Kernel("tflite", "1", "CONV_2D", dense.attrs,
                     (_t("2", (1, 16, 16, 64)), _t("3", (64, 3, 3, 16), True)),
                     (_t("5", (1, 7, 7, 64)),))
    assert dense.features()["cin_per_group"] == 64
    assert grouped.features()["cin_per_group"] == 16
    assert grouped.flops == 2 * 7 * 7 * 64 * 3 * 3 * 16


def test_a_tflite_depthwise_convolution_of_more_than_25_taps_is_its_own_kind():
    """LiteRT runs 7x7 depthwise convolutions ~10x slower per MAC than 3x3 and 5x5 ones (another
    code path); one regressor over both overpredicted the 5x5 ones 2.4x. The kind says which."""
    from hwnas.anymodel import templates as tpl

    def dw(k):
        return Kernel("tflite", "1", "DEPTHWISE_CONV_2D", (("padding", 0),),
                      (_t("0", (1, 16, 16, 32)), _t("1", (1, k, k, 32), True)),
                      (_t("2", (1, 16, 16, 32)),))

    assert [dw(k).kind for k in (3, 5, 7, 9)] == ["DEPTHWISE_CONV_2D"] * 2 + \
        ["DEPTHWISE_CONV_2D/LARGE"] * 2
    assert dw(7).signature.split(":")[1] != dw(5).signature.split(":")[1]
    assert dw(7).signature.startswith("DEPTHWISE_CONV_2D/LARGE:")
    # a missing kind is timed from templates that make it (anymodel/missing.py)
    assert tpl.SOURCES["DEPTHWISE_CONV_2D/LARGE"] == (("dwconv", {"k": 7}),)


def test_the_overhead_model_says_which_networks_it_was_fitted_on():
    """Saved and read back, it keeps the kind of its networks; one saved before the
    calibration networks (no such field) was fitted on synthetic ones, and says so."""
    ov = Overhead(1.0, 0.01, 0.05, 26, 0.2, n_own=2, nets_kind="calibration")
    back = Overhead.from_obj(ov.to_obj())
    assert back == ov
    assert back.fitted_on() == ("fitted on 24 calibration networks and 2 models measured on "
                                "this device")
    old = {k: v for k, v in ov.to_obj().items() if k != "nets_kind"}
    assert Overhead.from_obj(old).fitted_on().startswith("fitted on 24 synthetic networks")
