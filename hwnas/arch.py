"""Frozen architecture types, their JSON form, and codecs for the seeds' own formats.

Structure (lengths, field names) is checked here; whether values are allowed is the search
space's job (``SearchSpace.validate``), because the same Arch type can live in narrowed spaces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from hwnas.errors import ArchError

# Every family's Arch types, by the "space" field of their JSON. Families add theirs when
# imported (``register_arch``).
ARCH_TYPES: dict[str, type] = {}
# The seeds' bare-list format is ElasticViT's 10-element list; its family owns the codec.
LIST_FORM = "elasticvit"


# Seeds' native forms that are not hwnas JSON objects (NAS-Bench-201's cell string, FBNet's list
# of block names), by space: a predicate that recognises one unmistakably. The space's Arch type
# reads it with ``from_native``.
NATIVE_FORMS: dict[str, Callable[[Any], bool]] = {}


def register_native_form(space: str, recognises: Callable[[Any], bool]) -> None:
    NATIVE_FORMS[space] = recognises


def native_space(obj: Any) -> str | None:
    """The one space whose native form ``obj`` is, or None (none, or more than one)."""
    from hwnas.spaces.registry import load_families

    load_families()
    names = [name for name, recognises in NATIVE_FORMS.items() if recognises(obj)]
    return names[0] if len(names) == 1 else None


def register_arch(cls: type) -> type:
    """Class decorator: ``arch_from_obj`` reads JSON whose "space" is ``cls.space`` as ``cls``
    (which has ``from_dict``; ``hwnas.arch_base.FlatArch`` gives one)."""
    ARCH_TYPES[cls.space] = cls
    return cls


def arch_from_obj(obj: Any):
    """An Arch from hwnas's JSON form (a dict with "space") or ElasticViT's 10-element list."""
    # Families add their Arch types to ARCH_TYPES when imported; loaded on first use, by name
    # (each family imports this module, so importing them here at module level is a cycle).
    from hwnas.spaces.registry import load_families

    load_families()
    if isinstance(obj, dict):
        space = obj.get("space")
        if not isinstance(space, str) or space not in ARCH_TYPES:
            raise ArchError(f"unknown architecture space {space!r}; known: {sorted(ARCH_TYPES)}")
        return ARCH_TYPES[space].from_dict(obj)
    native = native_space(obj)
    if native is not None:
        return ARCH_TYPES[native].from_native(obj)
    if isinstance(obj, (list, tuple)):
        return ARCH_TYPES[LIST_FORM].from_elasticvit_list(obj)
    raise ArchError("an architecture is a JSON object with a 'space' field, ElasticViT's "
                    "10-element list, or a native form (NAS-Bench-201's cell string, FBNet's "
                    "22 block names)")


def load_arch(path: str | Path):
    """Read an architecture file (JSON in either form): a regular file under the cap or ``-``."""
    from hwnas.archfile import parse_arch_json, read_arch_text

    if str(path) != "-" and not Path(path).exists():
        raise ArchError(f"architecture file not found: {path}")
    try:
        obj = parse_arch_json(read_arch_text(path), path)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArchError(f"architecture file {path} is not valid JSON: {e}") from None
    return arch_from_obj(obj)

