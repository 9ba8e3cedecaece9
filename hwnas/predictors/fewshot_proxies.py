"""What hwnas already knows in a space, as one matrix: the proxies of the few-shot predictor.

A proxy is another device's whole-network latencies in the space (its records), or the space's
LUT on some device (its sum over the network's op keys). The bank keeps, per network any proxy
measured, every proxy's latency; a network a proxy did not measure gets that proxy's *op model*:
non-negative least squares of its latency on the network's per-op-key counts (a LUT learned
from whole networks), so the bank can price any network of the space, not only measured ones
(a search proposes new ones).

The op model also cleans the proxies: a stored value more than 2x and more than 6 robust sigmas
away from its proxy's op model is a unit slip or a broken run, not a network, and is replaced by
the model (HELP's pixel3 file holds 262 NAS-Bench-201 values near 0.004, seconds among ms).

Everything the bank holds is arrays and strings, so a fitted predictor stores it whole and
does not change when the proxies' records files do.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from hwnas.errors import PredictorError

MIN_PROXY_RECORDS = 10  # fewer networks than this cannot teach a proxy's op model
OP_MODEL_ROWS = 3000    # an op model of ~20-100 op keys needs no more networks than this
OUTLIER_FACTOR = 2.0    # a value this far (x or /) from the op model and ...
OUTLIER_SIGMAS = 6.0    # ... this many robust sigmas of the model's log residuals is replaced
TABLE_PROXY = "table"


def arch_key(arch) -> str:
    """The one key of an architecture (an Arch, or its JSON dict)."""
    d = arch if isinstance(arch, dict) else arch.to_dict()
    return json.dumps(d, sort_keys=True)


class Walks:
    """Each network's features for the op models, computed once per network: the space's
    encoding (one-hot choices), then its per-op-key counts from the space's walk, and MACs.

    Both, because a walk prices what the space's model runs, while a proxy measured someone
    else's model of the network: HELP's NAS-Bench-201 networks run every edge, dead ones
    included, which the nb201 walk leaves out; on 1080ti_1 an op model of the counts alone
    is within ±10% on 58% of held-out networks, of the encoding 99.9%."""

    def __init__(self, space, vocab: list[str] = ()):
        self.space = space
        self.vocab: dict[str, int] = {k: i for i, k in enumerate(vocab)}
        self.enc_dims: int | None = None
        self._rows: dict[str, tuple[np.ndarray, dict[int, int], float]] = {}

    def _walk(self, key: str, arch):
        got = self._rows.get(key)
        if got is None:
            a = arch if arch is not None else self.space.arch_from_obj(json.loads(key))
            counts: dict[int, int] = {}
            macs = 0
            for op in self.space.ops(a):
                j = self.vocab.setdefault(op.key, len(self.vocab))
                counts[j] = counts.get(j, 0) + 1
                macs += op.macs()
            enc = np.asarray(self.space.encode(a), dtype=float).ravel()
            if self.enc_dims is None:
                self.enc_dims = len(enc)
            got = self._rows[key] = (enc, counts, float(macs))
        return got

    def features(self, keys, archs=None) -> np.ndarray:
        """(networks, encoding dims + op keys so far)."""
        rows = [self._walk(k, a) for k, a in zip(keys, archs or [None] * len(keys))]
        e = self.enc_dims or 0
        out = np.zeros((len(rows), e + len(self.vocab)))
        for i, (enc, counts, _) in enumerate(rows):
            out[i, :e] = enc
            for j, c in counts.items():
                out[i, e + j] = c
        return out

    def macs(self, keys, archs=None) -> np.ndarray:
        return np.array([self._walk(k, a)[2]
                         for k, a in zip(keys, archs or [None] * len(keys))])


def fit_op_model(features: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """Non-negative ms per feature and a non-negative constant (the last coefficient)."""
    from scipy.optimize import nnls

    a = np.column_stack([features, np.ones(len(ms))])
    scale = np.maximum(np.abs(a).max(axis=0), 1.0)  # NNLS converges faster on columns of one size
    coef, _ = nnls(a / scale, ms, maxiter=50 * a.shape[1])
    return coef / scale


def op_model_ms(coef: np.ndarray, features: np.ndarray) -> np.ndarray:
    v = len(coef) - 1
    f = features[:, :v] if features.shape[1] >= v else np.pad(
        features, ((0, 0), (0, v - features.shape[1])))  # op keys no proxy has priced: 0
    # a floor: a network made only of ops a proxy never saw still gets a positive ms
    return np.maximum(f @ coef[:v] + coef[v], 1e-3)


@dataclass
class ProxyBank:
    """Per stored network, every proxy's ms (measured, or its op model where not / cleaned)."""

    space_name: str
    names: list[str]               # proxy names (devices; "table" for the LUT column)
    keys: list[str]                # stored networks' keys
    values_ms: np.ndarray          # (networks, proxies): measured or filled by the op model
    measured: np.ndarray           # (networks, proxies) bool: measured and kept
    macs: np.ndarray               # (networks,)
    vocab: list[str]               # op keys, the op models' columns after the encoding's
    enc_dims: int                  # the encoding's length, the op models' first columns
    coef: np.ndarray               # (proxies, enc_dims + len(vocab) + 1) op models
    cleaned: dict                  # proxy -> how many stored values the op model replaced

    def __post_init__(self):
        self._index = {k: i for i, k in enumerate(self.keys)}
        self._walks = None

    # --- building ------------------------------------------------------------------------
    @classmethod
    def build(cls, space, proxies: dict, table=None, seed: int = 0) -> "ProxyBank":
        """``proxies``: name -> [(arch, ms)] or {arch key or JSON: ms} or Records."""
        walks = Walks(space)
        pairs_by = {n: _pairs(space, p) for n, p in proxies.items()}
        pairs_by = {n: p for n, p in pairs_by.items() if len(p) >= MIN_PROXY_RECORDS}
        if not pairs_by and table is None:
            raise PredictorError(f"no proxy in the {space.name} space: the few-shot predictor "
                                 f"needs other devices' records of {space.name} networks (at "
                                 f"least {MIN_PROXY_RECORDS} each) or a latency table")
        keys: dict[str, int] = {}
        archs: list = []
        for pairs in pairs_by.values():
            for k, a, _ in pairs:
                if k not in keys:
                    keys[k] = len(keys)
                    archs.append(a)
        key_list = list(keys)
        counts = walks.features(key_list, archs)
        macs = walks.macs(key_list, archs)
        names = list(pairs_by)
        values = np.full((len(key_list), len(names)), np.nan)
        for j, n in enumerate(names):
            for k, _, ms in pairs_by[n]:
                values[keys[k], j] = ms
        rng = np.random.default_rng(seed)
        coefs, cleaned = [], {}
        measured = np.isfinite(values)
        for j, n in enumerate(names):
            rows = np.flatnonzero(measured[:, j])
            fit_rows = rows if len(rows) <= OP_MODEL_ROWS else np.sort(
                rng.choice(rows, OP_MODEL_ROWS, replace=False))
            coef = fit_op_model(counts[fit_rows], values[fit_rows, j])
            model = op_model_ms(coef, counts)
            resid = np.log(values[rows, j]) - np.log(model[rows])
            mad = 1.4826 * np.median(np.abs(resid - np.median(resid)))
            bad = rows[np.abs(resid - np.median(resid)) >
                       max(OUTLIER_SIGMAS * mad, math.log(OUTLIER_FACTOR))]
            if len(bad):
                cleaned[n] = int(len(bad))
                measured[bad, j] = False
                keep = np.setdiff1d(fit_rows, bad)
                coef = fit_op_model(counts[keep], values[keep, j])  # refit without them
                model = op_model_ms(coef, counts)
            values[~measured[:, j], j] = model[~measured[:, j]]
            coefs.append(coef)
        vocab, e = list(walks.vocab), walks.enc_dims or 0
        coef = np.array(coefs).reshape(len(names), e + len(vocab) + 1)
        if table is not None:
            tvec = table_vector(table, vocab, e)
            if tvec is not None:
                names.append(TABLE_PROXY)
                values = np.column_stack([values, op_model_ms(tvec, counts)])
                measured = np.column_stack([measured, np.ones(len(key_list), bool)])
                coef = np.vstack([coef, tvec])
        bank = cls(space.name, names, key_list, values, measured, macs, vocab, e, coef, cleaned)
        bank._walks = walks
        return bank

    # --- using ---------------------------------------------------------------------------
    def rows(self, archs) -> np.ndarray:
        """Each network's row among the stored ones (-1: not stored)."""
        return np.array([self._index.get(arch_key(a), -1) for a in archs], dtype=np.int64)

    def lookup(self, space, archs) -> tuple[np.ndarray, np.ndarray]:
        """(ms per network and proxy, MACs per network) for any networks of the space."""
        keys = [arch_key(a) for a in archs]
        rows = np.array([self._index.get(k, -1) for k in keys], dtype=np.int64)
        out = np.empty((len(keys), len(self.names)))
        macs = np.empty(len(keys))
        known = rows >= 0
        out[known] = self.values_ms[rows[known]]
        macs[known] = self.macs[rows[known]]
        if not known.all():  # new networks: walk them, price them with the op models
            if self._walks is None or self._walks.space is not space:
                self._walks = Walks(space, self.vocab)
            new = np.flatnonzero(~known)
            nk = [keys[i] for i in new]
            na = [a if not isinstance(a, (dict, str, list)) else None for a in
                  (archs[i] for i in new)]
            counts = self._walks.features(nk, na)
            if self._walks.enc_dims != self.enc_dims:
                raise PredictorError(f"the {space.name} space encodes a network in "
                                     f"{self._walks.enc_dims} numbers, the saved proxies in "
                                     f"{self.enc_dims}; refit the few-shot predictor")
            out[new] = np.column_stack([op_model_ms(c, counts) for c in self.coef])
            macs[new] = self._walks.macs(nk, na)
        return out, macs

    def state(self) -> dict:
        return {"space": self.space_name, "names": list(self.names), "keys": list(self.keys),
                "values_ms": self.values_ms, "measured": self.measured, "macs": self.macs,
                "vocab": list(self.vocab), "enc_dims": self.enc_dims, "coef": self.coef,
                "cleaned": dict(self.cleaned)}

    @classmethod
    def from_state(cls, s: dict) -> "ProxyBank":
        return cls(s["space"], list(s["names"]), list(s["keys"]), np.asarray(s["values_ms"]),
                   np.asarray(s["measured"], bool), np.asarray(s["macs"]), list(s["vocab"]),
                   int(s["enc_dims"]), np.asarray(s["coef"]), dict(s["cleaned"]))

    def subset(self, names: list[str]) -> "ProxyBank":
        """The same networks with only some proxies (what a fitted predictor keeps)."""
        j = [self.names.index(n) for n in names]
        b = ProxyBank(self.space_name, list(names), self.keys, self.values_ms[:, j],
                      self.measured[:, j], self.macs, self.vocab, self.enc_dims, self.coef[j],
                      {n: c for n, c in self.cleaned.items() if n in names})
        b._walks = self._walks
        return b


def table_vector(table, vocab: list[str], enc_dims: int) -> np.ndarray | None:
    """The table as an op model: 0 per encoding column, its ms per op key of ``vocab``, a zero
    constant; None when the table lacks any of them (a LUT sum with holes would rank networks
    by what it happens to know)."""
    if table.missing(vocab):
        return None
    return np.concatenate([np.zeros(enc_dims), np.asarray(table.lookup(vocab), dtype=float),
                           [0.0]])


def _pairs(space, proxy) -> list[tuple[str, object, float]]:
    """(key, arch, ms) of one proxy's networks in the space; other spaces' are skipped."""
    from hwnas.errors import HwnasError
    from hwnas.latency.records import Records

    if isinstance(proxy, Records):
        items = [(r.arch, r.pooled_ms) for r in proxy.records]
    elif isinstance(proxy, dict):
        items = list(proxy.items())
    else:
        items = list(proxy)
    out = []
    seen: dict[int, str | None] = {}  # one arch object is often every proxy's: key it once
    for arch, ms in items:
        try:
            ms = float(ms)
        except (TypeError, ValueError):
            continue
        if not (math.isfinite(ms) and ms > 0):
            continue
        parsed = isinstance(arch, (dict, str, list))
        if isinstance(arch, str):  # a key (JSON text) or a native string
            try:
                arch = json.loads(arch)
            except json.JSONDecodeError:
                pass
        if isinstance(arch, (dict, str, list)):
            if isinstance(arch, dict) and arch.get("space") not in (None, space.name):
                continue
            try:
                arch = space.arch_from_obj(arch)
            except HwnasError:
                continue
        if parsed:  # a new object: its id may be reused once it is freed, so never cache it
            key = _space_key(arch, space)
        else:  # the caller's object, alive in ``items`` for the whole loop
            if id(arch) not in seen:
                seen[id(arch)] = _space_key(arch, space)
            key = seen[id(arch)]
        if key is not None:
            out.append((key, arch, ms))
    return out


def _space_key(arch, space) -> str | None:
    d = arch.to_dict()
    return json.dumps(d, sort_keys=True) if d.get("space") == space.name else None
