import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwnas.ops import OP_KINDS, parse_key
from hwnas.spaces import SPACES, get_space
from hwnas.spaces.elasticvit.space import elasticvit_named


def _torch_counts(module, shape):
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        y = module(torch.randn(*shape))
    return fc.get_total_flops() // 2, sum(p.numel() for p in module.parameters()), y


@pytest.mark.parametrize("name,arch", sorted(elasticvit_named().items()))
def test_analytic_macs_and_params_equal_torch_counts(name, arch):
    space = get_space("elasticvit")
    macs, params, y = _torch_counts(space.build_model(arch), space.input_shape(arch))
    assert space.macs(arch) == macs
    assert space.params(arch) == params
    assert y.shape == (1, 1000)


@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_every_op_key_parses_back_and_builds_at_its_shape(space_name):
    space = get_space(space_name)
    r = space.resolutions[0]
    ops = space.enumerate_ops(r)
    assert len({op.key for op in ops}) == len(ops)
    for op in ops:
        assert parse_key(op.key) == op
    rng = np.random.default_rng(0)
    for op in [ops[i] for i in rng.choice(len(ops), 12, replace=False)]:
        module, shape = op.build()
        macs, params, y = _torch_counts(module, shape)
        assert (op.macs(), op.params()) == (macs, params), op.key
        if y.dim() == 4:
            assert y.shape[-1] == op.out_hw


@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_enumerated_ops_cover_every_sampled_architecture(space_name):
    space = get_space(space_name)
    rng = np.random.default_rng(3)
    by_res = {r: {op.key for op in space.enumerate_ops(r)} for r in space.resolutions}
    for _ in range(200):
        arch = space.sample(rng)
        assert set(space.op_keys(arch)) <= by_res[arch.resolution]


def test_one_walk_static_model_is_the_ops_modules_in_order():
    space = get_space("elasticvit")
    arch = elasticvit_named()["elastic_T2"]
    model = space.build_model(arch)
    ops = space.ops(arch)
    assert len(model) == len(ops)
    assert [type(m).__name__ for m in model] == [type(op.module()).__name__ for op in ops]
    x = torch.randn(*space.input_shape(arch))
    with torch.no_grad():
        for op, m in zip(ops, model):
            assert tuple(x.shape) == op.input_shape()
            x = m(x)


def test_unknown_key_kind_is_an_error():
    from hwnas.errors import HwnasError

    with pytest.raises(HwnasError, match="unknown op key"):
        parse_key("warpdrive_3_4")
    assert set(OP_KINDS) >= {"firstconv", "conv", "transds", "transattn", "transffn", "mbpool"}


def test_static_model_exports_to_onnx_and_runs_in_onnxruntime(tmp_path):
    import onnxruntime as ort

    from hwnas.profilers.export import export_onnx

    space = get_space("elasticvit")
    arch = elasticvit_named()["elastic_T1"]
    model = space.build_model(arch)
    x = torch.randn(*space.input_shape(arch))
    path = export_onnx(model, x.shape, tmp_path / "t1.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y_ort,) = sess.run(None, {"input": x.numpy()})
    with torch.no_grad():
        y = model(x).numpy()
    np.testing.assert_allclose(y_ort, y, rtol=1e-3, atol=1e-4)
