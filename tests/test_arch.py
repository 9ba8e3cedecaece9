import json

import numpy as np
import pytest

from hwnas.arch import arch_from_obj, load_arch
from hwnas.spaces.elasticvit.arch import ElasticViTArch
from hwnas.errors import ArchError
from hwnas.spaces import SPACES, get_space
from hwnas.spaces.elasticvit.space import elasticvit_named

NAMED = elasticvit_named()


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_models_are_in_the_space_and_round_trip(name):
    space = get_space("elasticvit")
    arch = space.validate(NAMED[name])
    assert ElasticViTArch.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    assert ElasticViTArch.from_elasticvit_list(arch.to_elasticvit_list()) == arch
    assert arch_from_obj(arch.to_elasticvit_list()) == arch


def test_heads_must_match_width():
    lst = NAMED["elastic_T1"].to_elasticvit_list()
    lst[6] = [5, 6, 11, 17]
    with pytest.raises(ArchError, match="heads must equal width/16"):
        ElasticViTArch.from_elasticvit_list(lst)


def test_lengths_are_checked():
    lst = NAMED["elastic_T1"].to_elasticvit_list()
    lst[3] = lst[3][:-1]
    with pytest.raises(ArchError, match="conv_expand has 5 entries but the depths give 6"):
        ElasticViTArch.from_elasticvit_list(lst)


@pytest.mark.parametrize("field,index,value,message", [
    ("resolution", None, 200, r"resolution=200 not allowed; allowed: \{128, 160"),
    ("channels", 3, 50, r"channels\[3\]=50 not allowed; allowed: 48\.\.96 step 16"),
    ("conv_kernel", 2, 7, r"conv_kernel\[2\] \(stage 1\)=7 not allowed; allowed: \{3, 5\}"),
    ("v_scale", 0, 5, r"v_scale\[0\] \(stage 3\)=5 not allowed; allowed: \{2, 3, 4\}"),
])
def test_validation_names_field_and_allowed_values(field, index, value, message):
    d = NAMED["elastic_T1"].to_dict()
    if index is None:
        d[field] = value
    else:
        d[field][index] = value
    with pytest.raises(ArchError, match=message):
        get_space("elasticvit").validate(ElasticViTArch.from_dict(d))


def test_depth_outside_range_is_named():
    d = NAMED["elastic_T1"].to_dict()
    d["depths"][1] = 6  # stage 1 allows 2..5; give it 6 layers so the lengths still agree
    d["conv_expand"][1:1] = [3] * 4
    d["conv_kernel"][1:1] = [3] * 4
    with pytest.raises(ArchError, match=r"depths\[1\]=6 not allowed; allowed: 2\.\.5 step 1"):
        get_space("elasticvit").validate(ElasticViTArch.from_dict(d))


def test_unknown_fields_are_rejected(tmp_path):
    d = NAMED["elastic_T1"].to_dict()
    d["colour"] = "blue"
    p = tmp_path / "a.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ArchError, match="unknown \\['colour'\\]"):
        load_arch(p)
    p.write_text("{not json")
    with pytest.raises(ArchError, match="not valid JSON"):
        load_arch(p)


@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_sample_mutate_crossover_are_valid_and_seeded(space_name):
    space = get_space(space_name)

    def run(seed):
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(30):
            a, b = space.sample(rng), space.sample(rng)
            out += [a, space.mutate(a, rng, 0.3), space.crossover(a, b, rng)]
        return out

    first, again, other = run(1), run(1), run(2)
    assert first == again
    assert first != other
    for arch in first:
        space.validate(arch)
        assert space.arch_from_obj(arch.to_dict()) == arch


@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_smallest_and_largest_bound_the_macs(space_name):
    space = get_space(space_name)
    rng = np.random.default_rng(0)
    for r in space.resolutions[:2]:
        lo, hi = space.macs(space.smallest(r)), space.macs(space.largest(r))
        narrowed = space.with_resolutions([r])
        for _ in range(20):
            assert lo <= space.macs(narrowed.sample(rng)) <= hi
