"""NAS-Bench-201 architectures: one cell (4 nodes, 6 edges, 5 ops) repeated 15 times.

The native form is NAS-Bench-201's cell string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``: node i
(1..3) sums one op per earlier node j (``op~j``). The JSON form lists the same 6 ops in the
string's order, so each edge is a field entry an error can name::

    {"space": "nb201", "resolution": 32, "edges": ["nor_conv_3x3", ...6 ops]}

``{"space": "nb201", "cell": "|...|"}`` is read too (resolution 32 unless given).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from hwnas.arch import register_arch, register_native_form
from hwnas.arch_base import int_value
from hwnas.errors import ArchError

# NAS-Bench-201's op names, in its own order (the order of its search space list)
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (to, from) of each edge, in the cell string's order
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NODES = 4
NB201_RESOLUTION = 32  # CIFAR-10/100 (HELP's data); ImageNet16-120 would be 16
_TOKEN = re.compile(r"(?P<op>[A-Za-z0-9_]+)~(?P<src>\d+)")


def looks_native(obj: Any) -> bool:
    """True for text that can only be a NAS-Bench-201 cell string (what --arch files hold)."""
    return isinstance(obj, str) and obj.strip().startswith("|") and "~" in obj \
        and "+" in obj


@register_arch
@dataclass(frozen=True)
class NB201Arch:
    space: ClassVar[str] = "nb201"
    resolution: int
    edges: tuple[str, ...]

    def __post_init__(self) -> None:
        int_value("resolution", self.resolution)
        if not isinstance(self.edges, (list, tuple)):
            raise ArchError(f"edges must be a list of {len(EDGES)} op names, got {self.edges!r}")
        object.__setattr__(self, "edges", tuple(self.edges))
        if len(self.edges) != len(EDGES):
            raise ArchError(f"edges has {len(self.edges)} entries; a NAS-Bench-201 cell has "
                            f"{len(EDGES)} (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2)")
        # values are the space's to check (it names edges[i] and the allowed ops); here only
        # what keeps the dataclass hashable
        for i, op in enumerate(self.edges):
            if not isinstance(op, (str, int)) or isinstance(op, bool):
                raise ArchError(f"edges[{i}]={op!r} not allowed; allowed: "
                                f"{{{', '.join(NB201_OPS)}}}")

    # --- NAS-Bench-201's cell string -------------------------------------------------------
    def native(self) -> str:
        """NAS-Bench-201's cell string, the key of its benchmark (and of HELP's data)."""
        parts, k = [], 0
        for node in range(1, NODES):
            parts.append("|" + "|".join(f"{self.edges[k + j]}~{j}" for j in range(node)) + "|")
            k += node
        return "+".join(parts)

    @classmethod
    def from_native(cls, text: str, resolution: int = NB201_RESOLUTION) -> "NB201Arch":
        if not isinstance(text, str):
            raise ArchError(f"a NAS-Bench-201 cell string is text, got {type(text).__name__}")
        nodes = text.strip().split("+")
        if len(nodes) != NODES - 1:
            raise ArchError(f"cell string {text.strip()!r}: {len(nodes)} nodes separated by '+'; "
                            f"expected {NODES - 1} (|op~0|+|op~0|op~1|+|op~0|op~1|op~2|)")
        edges = []
        for node, part in enumerate(nodes, start=1):
            tokens = part.strip()
            if not (tokens.startswith("|") and tokens.endswith("|")):
                raise ArchError(f"cell string node {node} {part!r} must be enclosed in '|'")
            tokens = tokens[1:-1].split("|")
            if len(tokens) != node:
                raise ArchError(f"cell string node {node} has {len(tokens)} edges {part!r}; "
                                f"expected {node} (op~0 .. op~{node - 1})")
            for j, tok in enumerate(tokens):
                m = _TOKEN.fullmatch(tok)
                if not m or int(m["src"]) != j:
                    raise ArchError(f"cell string node {node} edge {j} {tok!r}: expected "
                                    f"op~{j} with op one of {{{', '.join(NB201_OPS)}}}")
                edges.append(m["op"])
        return cls(resolution, tuple(edges))

    # --- hwnas JSON ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"space": self.space, "resolution": self.resolution, "edges": list(self.edges)}

    @classmethod
    def from_dict(cls, d: dict) -> "NB201Arch":
        if not isinstance(d, dict):
            raise ArchError(f"an nb201 architecture is a JSON object, got {type(d).__name__}")
        d = dict(d)
        if d.pop("space", cls.space) != cls.space:
            raise ArchError(f"architecture is not of space {cls.space!r}")
        resolution = d.pop("resolution", NB201_RESOLUTION)
        if set(d) == {"cell"}:
            return cls.from_native(d["cell"], resolution)
        if set(d) != {"edges"}:
            return cls._bad(d)
        return cls(resolution, d["edges"])

    @classmethod
    def _bad(cls, d: dict):
        raise ArchError(f"bad nb201 architecture fields {sorted(d)}; expected 'edges' (6 op "
                        f"names) or 'cell' (the cell string), and optionally 'resolution'")

    # --- which edges run -------------------------------------------------------------------
    def live_edges(self) -> tuple[bool, ...]:
        """Per edge, whether it computes anything the cell's output uses.

        An edge is dead when it is ``none``, when nothing reaches its source from the cell's
        input (the source is all zeros: a node fed only by ``none`` edges; a conv on it would
        give BN's constant shift, which a deployed network folds away), or when its target never
        reaches the output node. Dead edges are neither in the walk nor in the model."""
        on = [op != "none" for op in self.edges]
        fwd = [True] + [False] * (NODES - 1)
        for k, (to, src) in enumerate(EDGES):  # EDGES is in topological order
            fwd[to] = fwd[to] or (on[k] and fwd[src])
        bwd = [False] * (NODES - 1) + [True]
        for k, (to, src) in reversed(list(enumerate(EDGES))):
            bwd[src] = bwd[src] or (on[k] and bwd[to])
        return tuple(on[k] and fwd[src] and bwd[to] for k, (to, src) in enumerate(EDGES))

    def output_is_zero(self) -> bool:
        """No path of non-``none`` edges from input to output: the cell outputs zeros."""
        return not any(self.live_edges())


register_native_form(NB201Arch.space, looks_native)
