"""JSON round trip shared by the flat architecture dataclasses (ints and tuples of ints)."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, ClassVar

from hwnas.errors import ArchError


def int_value(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArchError(f"{name} must be an integer, got {value!r}")
    return value


def int_tuple(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise ArchError(f"{name} must be a list of integers, got {value!r}")
    return tuple(int_value(f"{name}[{i}]", v) for i, v in enumerate(value))


class FlatArch:
    """Mixin for frozen dataclasses whose fields are ints or tuples of ints.

    ``_normalise`` (call it first in ``__post_init__``) turns lists into tuples and rejects
    anything else, so two equal architectures compare and hash equal however they were built.
    """

    space: ClassVar[str] = ""

    def _normalise(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            fixed = int_tuple(f.name, value) if isinstance(value, (list, tuple)) else \
                int_value(f.name, value)
            object.__setattr__(self, f.name, fixed)

    def _check_lengths(self, n: int, names: tuple[str, ...], what: str) -> None:
        for name in names:
            if len(getattr(self, name)) != n:
                raise ArchError(f"{name} has {len(getattr(self, name))} entries but {what} "
                                f"give {n}")

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"space": self.space}
        for f in fields(self):
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    @classmethod
    def from_dict(cls, d: dict):
        if not isinstance(d, dict):
            raise ArchError(f"a {cls.space} architecture is a JSON object, got {type(d).__name__}")
        d = dict(d)
        if d.pop("space", cls.space) != cls.space:
            raise ArchError(f"architecture is not of space {cls.space!r}")
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls)
                    if f.default is MISSING and f.default_factory is MISSING}
        unknown, missing = set(d) - names, required - set(d)
        if unknown or missing:
            raise ArchError(f"bad {cls.space} architecture fields: unknown {sorted(unknown)}, "
                            f"missing {sorted(missing)}")
        return cls(**d)
