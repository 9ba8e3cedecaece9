"""A vectorised LUT sum for the ElasticViT space: thousands of subnets per numpy call.

The per-arch walk (``space.ops``) builds ~30 OpSpecs and key strings per subnet, ~50 µs. Search
and pool building score hundreds of thousands of subnets, so the table is compiled once into
dense arrays indexed by (resolution, widths, per-layer choices), and a batch of encoded subnets
(``space.encode``) is priced with fancy indexing. The arrays are filled through the same
``OpSpec`` constructors the walk uses, so both paths read the same keys (tested to agree).
A key the table lacks becomes NaN, and a NaN prediction is answered by the slow path, which
raises MissingKeysError naming the keys.
"""

from __future__ import annotations

import numpy as np

from hwnas.latency.table import LatencyTable
from hwnas.spaces.elasticvit.ops import Attention, FFN, Head, MBConv, StemConv, TransDS
from hwnas.spaces.elasticvit.space import ElasticViTSpace


CHUNK = 8192  # rows per pass of predict_encoded (see there)


def _index(choices) -> dict[int, int]:
    return {v: i for i, v in enumerate(choices)}


class CompiledElasticViTLUT:
    def __init__(self, space: ElasticViTSpace, table: LatencyTable):
        self.space = space
        self.overhead = float(table.meta.get("call_overhead_ms", 0.0))
        med = {k: s.median_ms for k, s in table.entries.items()}
        self._get = lambda op: med.get(op.key, np.nan)
        self.res_idx = _index(space.resolutions)
        self._maps: dict[tuple, np.ndarray] = {}  # choices -> dense value -> index
        self._cap = self._dense_cap()
        self.stage_tables = [self._compile_stage(i) for i in range(len(space.stages))]
        st0, st_last = space.stages[0], space.stages[-1]
        self.stem = np.array([[self._get(StemConv(r, c)) for c in st0.widths]
                              for r in space.resolutions])
        self.head = np.array([[self._get(Head(space.stage_hw(r)[-1][1], c, classes=space.classes))
                               for c in st_last.widths] for r in space.resolutions])
        # column layout of space.encode: res, 7 widths, 7 depths, then (a, b) pairs per layer
        n = len(space.stages)
        self.depth_col = 1 + n
        starts, col = [], 1 + 2 * n
        for st in space.stages:
            starts.append(col)
            col += 2 * max(st.depths)
        self.pair_start = starts

    def _compile_stage(self, i: int) -> dict:
        sp, st = self.space, self.space.stages[i]
        cins = sp.stages[i - 1].widths if i else st.widths
        R = len(sp.resolutions)
        shape_first = (R, len(cins), len(st.widths))
        out = {"cins": cins}
        if st.kind == "conv":
            first = np.full(shape_first + (len(st.choice_a), len(st.choice_b)), np.nan)
            rest = np.full((R, len(st.widths), len(st.choice_a), len(st.choice_b)), np.nan)
            for ri, r in enumerate(sp.resolutions):
                hw_in, hw_out = sp.stage_hw(r)[i]
                for ci, cin in enumerate(cins):
                    for oi, cout in enumerate(st.widths):
                        for ai, a in enumerate(st.choice_a):
                            for bi, b in enumerate(st.choice_b):
                                first[ri, ci, oi, ai, bi] = self._get(
                                    MBConv(hw_in, cin, cout, a, st.stride, b, int(st.se)))
                                if ci == 0:
                                    rest[ri, oi, ai, bi] = self._get(
                                        MBConv(hw_out, cout, cout, a, 1, b, int(st.se)))
            out.update(first=first, rest=rest)
        else:
            ds = np.full(shape_first, np.nan)
            ffn = np.full((R, len(st.widths), len(st.choice_a)), np.nan)
            att = np.full((R, len(st.widths), len(st.choice_b)), np.nan)
            for ri, r in enumerate(sp.resolutions):
                hw_in, hw_out = sp.stage_hw(r)[i]
                for oi, cout in enumerate(st.widths):
                    for ci, cin in enumerate(cins):
                        ds[ri, ci, oi] = self._get(TransDS(hw_in, cin, cout, st.stride))
                    for ai, a in enumerate(st.choice_a):
                        ffn[ri, oi, ai] = self._get(FFN(hw_out, cout, a))
                    for bi, b in enumerate(st.choice_b):
                        att[ri, oi, bi] = self._get(Attention(hw_out, cout, b))
            out.update(ds=ds, ffn=ffn, att=att)
        return out

    def _dense_cap(self) -> int | None:
        """The largest choice of the space when every choice is a small non-negative integer
        (widths, ratios, kernel sizes, resolutions): then a choice's index is read from a
        dense value -> index array, one gather, where a binary search per value took most of
        a batch's time. None: some choice is not, and the search is used."""
        sp = self.space
        values = [*sp.resolutions, *(v for st in sp.stages
                                     for v in (*st.widths, *st.choice_a, *st.choice_b))]
        ok = all(float(v) == int(v) and 0 <= v < 100_000 for v in values)
        return int(max(values)) if ok else None

    def _lookup(self, values: np.ndarray, choices) -> np.ndarray:
        """Index of each value in choices (values of padded layers map to 0; masked later);
        ``values`` are integers clipped to [0, cap] when the space is dense, else any."""
        ch = np.asarray(choices)
        if self._cap is None:
            return np.clip(np.searchsorted(ch, values), 0, len(ch) - 1)
        key = tuple(choices)
        if key not in self._maps:
            self._maps[key] = np.clip(np.searchsorted(ch, np.arange(self._cap + 1)), 0,
                                      len(ch) - 1)
        return self._maps[key][values]

    def predict_encoded(self, X: np.ndarray) -> np.ndarray:
        """Raw LUT sums (ms) for a batch of ``space.encode`` rows (validated subnets).

        Each layer's cost is one ``np.take`` from a flattened table at an index computed from
        the row's choice indices (one gather, instead of numpy's general fancy indexing over
        four or five index arrays); an absent layer (padding past its stage's depth) adds zero,
        even where the table lacks the padding's key (NaN there must not leak into the sum)."""
        X = np.asarray(X)
        if len(X) <= CHUNK:
            return self._predict_chunk(X)
        # Chunks whose columns and per-layer temporaries stay in the CPU's cache: one pass over
        # a 50,000-row batch spent most of its time moving the transposed copy through memory.
        out = np.empty(len(X))
        for s in range(0, len(X), CHUNK):
            out[s:s + CHUNK] = self._predict_chunk(X[s:s + CHUNK])
        return out

    def _predict_chunk(self, X: np.ndarray) -> np.ndarray:
        if self._cap is not None:
            # transpose and convert in one copy (C[c] = column c, contiguous: a row's stride is
            # ~90), then clip the small integers in place: every gather below indexes with them
            C = np.empty((X.shape[1], X.shape[0]), np.int32)
            np.copyto(C, X.T, casting="unsafe")
            np.clip(C, 0, self._cap, out=C)
        else:
            C = np.ascontiguousarray(X.T)
        sp = self.space
        ri = self._lookup(C[0], sp.resolutions)
        widx = [self._lookup(C[1 + i], st.widths) for i, st in enumerate(sp.stages)]
        total = self.stem[ri, widx[0]] + self.head[ri, widx[-1]] + self.overhead
        for i, st in enumerate(sp.stages):
            t = self.stage_tables[i]
            cin_idx = widx[i - 1] if i else widx[0]
            depth = C[self.depth_col + i]
            c0 = self.pair_start[i]
            W, A, B = len(st.widths), len(st.choice_a), len(st.choice_b)
            rw = ri * W + widx[i]  # (resolution, width) of every layer of the stage
            rcw = (ri * len(t["cins"]) + cin_idx) * W + widx[i]  # its first layer's input too
            for j in range(max(st.depths)):
                a = self._lookup(C[c0 + 2 * j], st.choice_a)
                b = self._lookup(C[c0 + 2 * j + 1], st.choice_b)
                if st.kind == "conv":
                    cost = (np.take(t["first"], (rcw * A + a) * B + b) if j == 0
                            else np.take(t["rest"], (rw * A + a) * B + b))
                else:
                    cost = np.take(t["ffn"], rw * A + a) + np.take(t["att"], rw * B + b)
                    if j == 0:
                        cost += np.take(t["ds"], rcw)
                total += np.where(depth > j, cost, 0.0)
        return total
