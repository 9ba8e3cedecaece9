"""Registry of search spaces. Tests enumerate it, so a space is tested once it is registered."""

from __future__ import annotations

from typing import Callable

from hwnas.errors import SpaceError
from hwnas.spaces.base import SearchSpace
from hwnas.spaces.edgevit.space import edgevit_space
from hwnas.spaces.elasticvit.space import ElasticViTSpace
from hwnas.spaces.tfnas.space import tfnas_space
from hwnas.spaces.vit.space import autoformer_b, autoformer_s, autoformer_t, vit_space
from hwnas.spaces.vitres.space import vit_res_space

SPACES: dict[str, Callable[[], SearchSpace]] = {
    "elasticvit": ElasticViTSpace,
    "vit": vit_space,
    "vit-autoformer-t": autoformer_t,
    "vit-autoformer-s": autoformer_s,
    "vit-autoformer-b": autoformer_b,
    "vit-res": vit_res_space,
    "tfnas": tfnas_space,
    "edgevit": edgevit_space,
}


def get_space(name: str, resolutions=None) -> SearchSpace:
    """A registered space by name, optionally narrowed to some resolutions."""
    if name not in SPACES:
        raise SpaceError(f"unknown search space {name!r}; known: {', '.join(sorted(SPACES))}")
    space = SPACES[name]()
    return space.with_resolutions(resolutions) if resolutions else space


__all__ = ["SPACES", "SearchSpace", "get_space"]
