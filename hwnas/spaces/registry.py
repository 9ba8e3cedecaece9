"""Loading the search-space families.

Core modules (hwnas.arch, hwnas.ops) hold registries that families fill when they are imported
(ARCH_TYPES, OP_KINDS). They call ``load_families`` on first use instead of importing the
families at module level, which would be an import cycle: every family imports the core.
"""

from __future__ import annotations


def load_families() -> None:
    """Import every family (idempotent and cheap after the first call)."""
    import hwnas.spaces  # noqa: F401  (the package imports each built-in family)
