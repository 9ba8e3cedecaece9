"""The same checks for every registered search space (hwnas.spaces.SPACES).

A space is tested here the moment it is registered. Kept fast: the smallest resolution, a few
samples, and FLOP counting on the meta device (shapes only, no arithmetic) except for one real
forward pass per space.
"""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwnas.arch import load_arch
from hwnas.errors import ArchError
from hwnas.ops import OP_KINDS, kind_of, parse_key
from hwnas.spaces import SPACES, get_space

NAMES = sorted(SPACES)


def _meta_counts(space, arch) -> tuple[int, int]:
    """(MACs, parameters) torch counts for the static model, without doing the arithmetic."""
    with torch.device("meta"):
        model = space.build_model(arch)
        x = torch.randn(*space.input_shape(arch))
        with FlopCounterMode(display=False) as fc:
            model(x)
    return fc.get_total_flops() // 2, sum(p.numel() for p in model.parameters())


def _few(space, seed: int = 0, n: int = 3):
    rng = np.random.default_rng(seed)
    r = min(space.resolutions)
    return [space.smallest(r), space.largest(r)] + [space.sample(rng) for _ in range(n)]


@pytest.mark.parametrize("name", NAMES)
def test_space_is_named_as_registered(name):
    space = get_space(name)
    assert space.name == name
    assert space.resolutions and all(isinstance(r, int) for r in space.resolutions)


@pytest.mark.parametrize("name", NAMES)
def test_json_file_round_trip(name, tmp_path):
    space = get_space(name)
    for i, arch in enumerate(_few(space, seed=1)):
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps(arch.to_dict()))
        assert space.validate(load_arch(path)) == arch
        assert space.arch_from_obj(json.loads(path.read_text())) == arch


@pytest.mark.parametrize("name", NAMES)
def test_mutation_changes_something_and_stays_valid(name):
    space = get_space(name)
    rng = np.random.default_rng(5)
    a = space.sample(rng)
    children = [space.mutate(a, rng, 0.5) for _ in range(20)]
    for c in children:
        space.validate(c)
    assert any(c != a for c in children)
    assert space.mutate(a, rng, 0.0) == a


@pytest.mark.parametrize("name", NAMES)
def test_bad_resolution_error_names_field_and_allowed_values(name):
    space = get_space(name)
    d = space.sample(np.random.default_rng(0)).to_dict()
    d["resolution"] = 7
    with pytest.raises(ArchError, match=r"resolution=7 not allowed; allowed: .*\d"):
        space.arch_from_obj(d)
    with pytest.raises(ArchError, match="resolution"):
        space.smallest(7)


@pytest.mark.parametrize("name", NAMES)
def test_bad_per_layer_value_error_names_its_field(name):
    """Set one per-layer (tuple) entry to an absurd value: the error names that field."""
    space = get_space(name)
    arch = space.sample(np.random.default_rng(2))
    d = arch.to_dict()
    tuples = [f.name for f in fields(arch) if isinstance(getattr(arch, f.name), tuple)]
    field = tuples[-1]
    d[field] = list(d[field])
    d[field][0] = 99991
    with pytest.raises(ArchError, match=rf"{field}\[0\][^=]*=99991 not allowed.*allowed"):
        space.arch_from_obj(d)


@pytest.mark.parametrize("name", NAMES)
def test_ops_keys_parse_back_to_the_same_ops(name):
    space = get_space(name)
    for arch in _few(space):
        for op in space.ops(arch):
            assert kind_of(op.key) in OP_KINDS
            assert parse_key(op.key) == op


@pytest.mark.parametrize("name", NAMES)
def test_static_model_counts_equal_the_analytic_ones(name):
    space = get_space(name)
    for arch in _few(space, seed=4, n=2):
        assert _meta_counts(space, arch) == (space.macs(arch), space.params(arch))


@pytest.mark.parametrize("name", NAMES)
def test_static_model_runs(name):
    space = get_space(name)
    arch = space.smallest(min(space.resolutions))
    model = space.build_model(arch)
    assert not model.training
    with torch.no_grad():
        y = model(torch.randn(*space.input_shape(arch)))
    assert y.shape == (1, getattr(space, "classes", 1000))  # nb201, fbnet: CIFAR-100
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_enumerated_ops_cover_extremes_and_samples_at_every_resolution(name):
    space = get_space(name)
    rng = np.random.default_rng(7)
    for r in space.resolutions:
        keys = {op.key for op in space.enumerate_ops(r)}
        narrowed = space.with_resolutions([r])
        archs = [narrowed.smallest(r), narrowed.largest(r)] + [narrowed.sample(rng)
                                                               for _ in range(20)]
        for arch in archs:
            assert set(space.op_keys(arch)) <= keys


@pytest.mark.parametrize("name", NAMES)
def test_encoding_has_a_fixed_length(name):
    space = get_space(name)
    lengths = {space.encode(a).shape for a in _few(space, n=10)}
    assert len(lengths) == 1
