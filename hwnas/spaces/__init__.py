"""Registry of search spaces. Tests enumerate it, so a space is tested once it is registered.

Importing this package imports hwnas's own families (``hwnas/spaces/<family>/``), each of which
registers its spaces with ``@register_space``, then the spaces other packages declare in the
``hwnas.spaces`` entry-point group. ``get_space("module:Class")`` imports a user's own space on
demand. See hwnas.spaces.registry and docs/extending.md.
"""

from __future__ import annotations

from hwnas.spaces.base import SearchSpace
from hwnas.spaces.registry import (ENTRY_POINT_GROUP, SPACES, get_space, load_families,
                                   register_space, space_factory)

load_families()

__all__ = ["ENTRY_POINT_GROUP", "SPACES", "SearchSpace", "get_space", "load_families",
           "register_space", "space_factory"]
