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
