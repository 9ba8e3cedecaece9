"""Registry of search spaces. Tests enumerate it, so a space is tested once it is registered."""

from __future__ import annotations

from typing import Callable

from hwnas.errors import SpaceError
from hwnas.spaces.base import SearchSpace
from hwnas.spaces.elasticvit import ElasticViTSpace

SPACES: dict[str, Callable[[], SearchSpace]] = {
    "elasticvit": ElasticViTSpace,
}


def get_space(name: str, resolutions=None) -> SearchSpace:
    """A registered space by name, optionally narrowed to some resolutions."""
    if name not in SPACES:
        raise SpaceError(f"unknown search space {name!r}; known: {', '.join(sorted(SPACES))}")
    space = SPACES[name]()
    return space.with_resolutions(resolutions) if resolutions else space


__all__ = ["SPACES", "SearchSpace", "get_space"]
