"""One supernet, many devices: ElasticViT's deployment story.

``hwnas search --supernet CKPT --device pixel4,pixel6,xiaomi11 --target-latency 10,15,20
--out DIR`` searches the trained supernet once per (device, target) pair. A subnet's accuracy
does not depend on the device, only its latency does, so every search scores candidates through
one accuracy cache: a subnet scored while searching for pixel4 costs nothing when the pixel6
search meets it again, and each pair's pick is the best subnet *anyone* scored that fits its
target on its device (usually the search's own pick; sometimes a subnet another device's search
found).

Into DIR it writes, validating every input before it touches the disk:

* ``<device>-<target>ms.json`` per pair: the arch's own JSON (``arch.to_dict()``), exactly what
  ``space.arch_from_obj`` and so every ``--arch`` reads;
* ``summary.csv`` / ``summary.md`` / ``summary.json``: per pair the predicted latency, holdout
  and test top-1, MMACs, parameters and the file; ``summary.json`` also the Pareto fronts;
* ``accuracy_vs_latency.png``: per device, every scored subnet's holdout top-1 against its
  predicted latency on that device, the front, the targets and the picks;
* with ``--pareto``: ``<device>-pareto.json``, NSGA-II's front (one run per device, capped at
  the device's largest target) instead of one evolution per target;
* ``accuracy-cache.json``: the shared scores, rewritten atomically after every batch, so an
  interrupted search resumes without scoring anything twice. It is tied to the checkpoint's
  content and the evaluation settings; a cache from other ones is an error, never reused.

Targets: ``10,15,20`` applies to every device; ``20,30/10,15/12`` gives each device its own
(groups separated by ``/``, one per device, in order).

Each device's latency (and energy, for ``--pareto``) comes from callables the caller hands
down; ``hwnas.api.supernet.search_devices`` builds them from the devices' names (this package
sits below the API and resolves no device itself).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from hwnas.arch_key import arch_key
from hwnas.errors import HwnasError, InfeasibleTargetError
from hwnas.latency.safeio import atomic_write_text
from hwnas.search.nsga import NSGAConfig, ParetoPoint, ScoreCache, non_dominated
from hwnas.supernet.latency import EnergyFor, LatencyFor
from hwnas.supernet.search import AccuracySearchConfig

log = logging.getLogger(__name__)
CACHE_NAME = "accuracy-cache.json"
CACHE_FORMAT = "hwnas-accuracy-cache"
CACHE_SCHEMA = 1


@dataclass(frozen=True)
class Pair:
    device: str
    target_ms: float

    @property
    def filename(self) -> str:
        return f"{self.device}-{self.target_ms:g}ms.json"


MAX_TARGET_MS = 1e6  # an absurd-value limit (1000 s), as the CLI's POSITIVE_MS


def parse_pairs(devices: str | Sequence[str], targets: str | Sequence[float]) -> list[Pair]:
    """(device, target) pairs from the command line's lists; one clear error for bad ones."""
    from hwnas.home import _SAFE_NAME

    devs = [d.strip() for d in devices.split(",")] if isinstance(devices, str) else list(devices)
    bad = [d for d in devs if not _SAFE_NAME.fullmatch(d)]
    if not devs or bad:
        raise HwnasError(f"--device: bad device name {bad[0] if bad else ''!r} in {devices!r} "
                         f"(letters, digits, '.', '_' and '-', comma-separated)")
    if len(set(devs)) != len(devs):
        raise HwnasError(f"--device names a device twice: {devices!r}")
    if isinstance(targets, str):
        groups = [_floats(g, targets) for g in targets.split("/")]
    else:
        groups = [[float(t) for t in targets]]
    if len(groups) == 1:
        groups = groups * len(devs)
    elif len(groups) != len(devs):
        raise HwnasError(f"--target-latency has {len(groups)} '/'-separated groups but --device "
                         f"names {len(devs)} devices; give one group per device, or one list "
                         f"for all")
    pairs = []
    for dev, ts in zip(devs, groups):
        if len(set(ts)) != len(ts):
            raise HwnasError(f"--target-latency repeats a target for {dev}: {ts}")
        pairs += [Pair(dev, t) for t in ts]
    return pairs


def _floats(text: str, whole: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise HwnasError(f"--target-latency: expected comma-separated numbers (groups "
                         f"separated by '/'), got {whole!r}") from None
    bad = [v for v in values if not np.isfinite(v) or v <= 0 or v > MAX_TARGET_MS]
    if bad:
        raise HwnasError(f"--target-latency: targets must be positive milliseconds up to "
                         f"{MAX_TARGET_MS:g}, got {bad[0]:g}")
    return values


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class AccuracyCache(ScoreCache):
    """Holdout top-1 per architecture (and test top-1 of the picks), persisted in one JSON file
    that is rewritten atomically after every batch of new scores."""

    def __init__(self, path: Path, identity: dict, score_fn: Callable[[object], float]):
        self.path, self.identity = Path(path), identity
        self.test: dict[str, float] = {}
        holdout = {}
        if self.path.exists():
            obj = self._read()
            if obj.get("identity") != identity:
                raise HwnasError(
                    f"{self.path} holds scores of another checkpoint or other evaluation "
                    f"settings ({_identity_diff(identity, obj.get('identity'))}); use another "
                    f"--out, or delete it to start over")
            holdout = {str(k): float(v) for k, v in obj.get("holdout", {}).items()}
            self.test = {str(k): float(v) for k, v in obj.get("test", {}).items()}
            log.info("resuming: %d subnets already scored in %s", len(holdout), self.path)
        self.score_fn = score_fn
        super().__init__(lambda archs: [score_fn(a) for a in archs], preloaded=holdout)

    def _read(self) -> dict:
        try:
            obj = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HwnasError(f"{self.path} is not a readable accuracy cache ({e}); delete it "
                             f"to start over") from None
        if not isinstance(obj, dict) or obj.get("format") != CACHE_FORMAT or \
                obj.get("schema") != CACHE_SCHEMA:
            raise HwnasError(f"{self.path} is not an hwnas accuracy cache (schema "
                             f"{CACHE_SCHEMA})")
        return obj

    def __call__(self, archs) -> np.ndarray:
        """Scores, saving after every new one: an interruption loses at most one evaluation."""
        archs = list(archs)
        for a in archs:
            k = arch_key(a)
            if k not in self.scores:
                self.scores[k] = float(self.score_fn(a))
                self.scored += 1
                self.save()
        return np.array([self.scores[arch_key(a)] for a in archs], dtype=np.float64)

    def test_score(self, arch, fn: Callable[[object], float]) -> float:
        k = arch_key(arch)
        if k not in self.test:
            self.test[k] = float(fn(arch))
            self.save()
        return self.test[k]

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(
            {"format": CACHE_FORMAT, "schema": CACHE_SCHEMA, "identity": self.identity,
             "holdout": self.scores, "test": self.test}, indent=0))


def _identity_diff(mine: dict, theirs) -> str:
    if not isinstance(theirs, dict):
        return "no identity"
    diff = [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
    return "differs in " + ", ".join(diff)


@dataclass
class PairResult:
    pair: Pair
    arch: object
    latency_ms: float
    holdout_top1: float
    test_top1: float | None
    path: Path
    macs: int
    params: int
    found_by: str  # "this search" or "another device's search" (the shared cache)

    def row(self) -> dict:
        return {"device": self.pair.device, "target_ms": self.pair.target_ms,
                "predicted_ms": round(float(self.latency_ms), 4),
                "holdout_top1": round(self.holdout_top1, 4),
                "test_top1": None if self.test_top1 is None else round(self.test_top1, 4),
                "mmacs": round(self.macs / 1e6, 2), "params_m": round(self.params / 1e6, 3),
                "found_by": self.found_by, "file": self.path.name}


@dataclass
class MultiSearchResult:
    pairs: list[PairResult]
    scored: int  # subnets scored by this invocation (a resumed one scores fewer)
    cached: int  # subnets in the cache at the end
    fronts: dict = field(default_factory=dict)  # device -> ParetoResult (with --pareto)
    summary_path: Path | None = None
    plot_path: Path | None = None


def check_checkpoint(state: dict, path, space_name: str | None = None,
                     resolutions: Sequence[int] = ()) -> None:
    """A checkpoint searched with a --space or -r it was not trained on is an error."""
    from hwnas.supernet.spec import SpaceSpec

    spec = SpaceSpec.from_dict(state["space"])
    space = spec.build()
    if space_name is not None and space_name != space.name:
        raise HwnasError(f"{path} is a supernet over the {space.name} space (preset "
                         f"{spec.preset}), not {space_name}; drop --space, or give a "
                         f"checkpoint trained on {space_name}")
    stray = sorted(set(resolutions) - set(space.resolutions))
    if stray:
        raise HwnasError(f"{path} was trained at resolutions {list(space.resolutions)}; it "
                         f"cannot search at {stray}")


def search_devices(checkpoint: str | Path, pairs: Sequence[Pair], out_dir: str | Path, *,
                   latency_for: LatencyFor, energy_for: EnergyFor | None = None,
                   data: str | None = None,
                   cfg: AccuracySearchConfig = AccuracySearchConfig(),
                   pareto: NSGAConfig | None = None, space_name: str | None = None,
                   resolutions: Sequence[int] = (), run_on: str | None = None) -> MultiSearchResult:
    """Search ``checkpoint`` for every (device, target) pair, sharing one accuracy cache.

    ``latency_for(device, space)`` gives each device's latency callable for the checkpoint's
    space (``hwnas.api.supernet.search_devices`` passes the devices' own predictors, or the
    caller's stand-ins); it is asked once per device, before anything is written.
    ``pareto``: one NSGA-II run per device instead of one evolution per target, on energy too
    where ``energy_for(device, space)`` gives an energy callable.
    """
    import torch
    from filelock import FileLock, Timeout

    from hwnas.search.evolution import evolve, feasible_range
    from hwnas.supernet.evaluate import evaluate_subnet, load_checkpoint, load_supernet
    from hwnas.supernet.train import DataSpec

    if not pairs:
        raise HwnasError("no (device, target) pair to search")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise HwnasError(f"--out {out} exists and is not a folder")
    # --- validate everything before touching the disk --------------------------------------
    state = load_checkpoint(checkpoint)
    check_checkpoint(state, checkpoint, space_name, resolutions)
    use_cuda = torch.cuda.is_available() if run_on in (None, "auto") else run_on == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise HwnasError("--run-on cuda was asked for but CUDA is not available")
    dev = torch.device("cuda" if use_cuda else "cpu")
    supernet, state = load_supernet(checkpoint, map_location=dev)
    space = supernet.space
    devices = list(dict.fromkeys(p.device for p in pairs))
    fns = {}
    for d in devices:
        fns[d] = latency_for(d, space)
        lo, hi = feasible_range(space, fns[d])  # a table that misses the space's ops fails here
        for p in pairs:
            if p.device == d and p.target_ms < lo:
                raise InfeasibleTargetError(
                    f"target {p.target_ms:g} ms is below the fastest subnet on {d} "
                    f"({lo:.3g} ms predicted; the space spans {lo:.3g}-{hi:.3g} ms there); "
                    f"give {d} its own targets with '/'-separated groups")
    data_spec = DataSpec(**state["data"])
    if data is not None:
        data_spec = replace(data_spec, spec=str(data))
    splits = data_spec.load()
    identity = {"checkpoint_sha256": file_sha256(Path(checkpoint)), "data": asdict(data_spec),
                "batch_size": cfg.batch_size, "calib_batches": cfg.calib_batches,
                "max_eval_images": cfg.max_eval_images, "seed": cfg.seed}

    def holdout(arch) -> float:
        return evaluate_subnet(supernet, arch, splits.train, splits.holdout,
                               batch_size=cfg.batch_size, calib_batches=cfg.calib_batches,
                               max_images=cfg.max_eval_images, seed=cfg.seed, device=dev)

    def test(arch) -> float | None:
        if not len(splits.test):
            return None
        return evaluate_subnet(supernet, arch, splits.train, splits.test,
                               batch_size=cfg.batch_size, calib_batches=cfg.calib_batches,
                               seed=cfg.seed, device=dev)

    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / ".search.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise HwnasError(f"another search is writing into {out}; wait for it or use another "
                         f"--out") from None
    try:
        cache = AccuracyCache(out / CACHE_NAME, identity, holdout)
        start = cache.scored
        results, fronts, found = [], {}, {}
        for d in devices:
            mine = [p for p in pairs if p.device == d]
            if pareto is not None:
                from hwnas.search.nsga import nsga2

                efn = energy_for(d, space) if energy_for is not None else None
                fronts[d] = nsga2(space, fns[d], cache, pareto,
                                  max_latency_ms=max(p.target_ms for p in mine), energy_fn=efn,
                                  cache=cache)
                for p in mine:
                    b = fronts[d].best_under(p.target_ms)
                    found[p] = b.arch if b else None
            else:
                for p in mine:
                    r = evolve(space, fns[d], p.target_ms, np.random.default_rng([cfg.seed, 2]),
                               objective=cache, cfg=cfg.evolution)
                    found[p] = r.best.arch
        for p in pairs:
            results.append(_pick(p, found.get(p), cache, fns[p.device], space, out, test))
        res = MultiSearchResult(results, cache.scored - start, len(cache.scores), fronts)
        res.summary_path = _write_summary(res, out, cfg, pareto, space)
        res.plot_path = _plot(res, cache, fns, space, out)
        return res
    finally:
        lock.release()


def _pick(p: Pair, own, cache: AccuracyCache, fn, space, out: Path, test) -> PairResult:
    """The best subnet anyone scored that fits ``p`` (ties: the faster)."""
    from hwnas.arch import arch_from_obj

    archs = [arch_from_obj(json.loads(k)) for k in cache.scores]
    lat = np.asarray(fn(archs), dtype=np.float64)
    fits = [(cache.scores[arch_key(a)], -l, i) for i, (a, l) in enumerate(zip(archs, lat))
            if l <= p.target_ms]
    if not fits:
        raise InfeasibleTargetError(f"no scored subnet fits {p.target_ms:g} ms on {p.device}")
    score, neg_ms, i = max(fits)
    arch = archs[i]
    by = "this search" if own is not None and arch == own else "another search (shared cache)"
    path = out / p.filename
    atomic_write_text(path, json.dumps(arch.to_dict(), indent=1))
    return PairResult(p, arch, -neg_ms, score, cache.test_score(arch, test), path,
                      space.macs(arch), space.params(arch), by)


def _write_summary(res: MultiSearchResult, out: Path, cfg, pareto, space) -> Path:
    rows = [r.row() for r in res.pairs]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "summary.csv", buf.getvalue())
    how = (f"NSGA-II (pymoo), {pareto.budget} subnets scored per device" if pareto else
           f"evolution per target (population {cfg.evolution.population}, "
           f"{cfg.evolution.generations} generations)")
    md = [f"Search: {how}; {res.scored} subnets scored by this run, {res.cached} in the shared "
          f"cache. Top-1 after BN recalibration; holdout chose, test reports.", "",
          "| device | target ms | predicted ms | holdout top-1 | test top-1 | MMACs | found by "
          "| file |", "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        test = "-" if r["test_top1"] is None else f"{100 * r['test_top1']:.1f}%"
        md.append(f"| {r['device']} | {r['target_ms']:g} | {r['predicted_ms']:.3g} | "
                  f"{100 * r['holdout_top1']:.1f}% | {test} | {r['mmacs']:.1f} | "
                  f"{r['found_by']} | {r['file']} |")
    atomic_write_text(out / "summary.md", "\n".join(md) + "\n")
    doc = {"space": space.name, "scored": res.scored, "cached": res.cached, "pairs": rows,
           "pareto": {d: f.to_dict() for d, f in res.fronts.items()}}
    atomic_write_text(out / "summary.json", json.dumps(doc, indent=1))
    for d, f in res.fronts.items():
        atomic_write_text(out / f"{d}-pareto.json", json.dumps(f.to_dict(), indent=1))
    return out / "summary.csv"


def _plot(res: MultiSearchResult, cache: AccuracyCache, fns, space, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwnas.arch import arch_from_obj

    devices = list(fns)
    archs = [arch_from_obj(json.loads(k)) for k in cache.scores]
    acc = np.array([cache.scores[k] for k in cache.scores])
    fig, axes = plt.subplots(1, len(devices), figsize=(4.2 * len(devices), 3.6), squeeze=False)
    for ax, d in zip(axes[0], devices):
        lat = np.asarray(fns[d](archs), dtype=np.float64)
        ax.scatter(lat, 100 * acc, s=6, alpha=0.35, label="scored subnets")
        front = non_dominated([ParetoPoint(a, float(l), float(s))
                               for a, l, s in zip(archs, lat, acc)])
        ax.step([p.latency_ms for p in front], [100 * p.score for p in front], where="post",
                color="tab:red", lw=1, label="front")
        for r in res.pairs:
            if r.pair.device == d:
                ax.axvline(r.pair.target_ms, color="k", ls=":", lw=0.8)
                ax.scatter([r.latency_ms], [100 * r.holdout_top1], marker="*", s=120,
                           color="tab:orange", zorder=3)
        ax.set(title=d, xlabel="predicted latency (ms)", ylabel="holdout top-1 (%)")
    axes[0][0].legend(fontsize=7)
    path = out / "accuracy_vs_latency.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


__all__ = ["AccuracyCache", "MultiSearchResult", "Pair", "PairResult", "check_checkpoint",
           "parse_pairs", "search_devices"]
