"""Kernel profiling: measure sampled kernels and calibration networks on a device (resumable).

``hwnas profile --device D --kernels [--budget N]`` fills the device's *kernel table*
(``devices/D/kernels.pkl``, a LatencyTable keyed by kernel signature) with N kernels:

1. **Broadly first.** Configurations of every template (anymodel/templates.py) are drawn
   from wide, generic ranges in proportion to the template's weight; each is exported, the
   runtime turns it into kernels (anymodel/graph.py), and every kernel not yet in the table
   is cut out as a model of its own and timed: drift-free (beside the reference network),
   one intra-op thread, with the per-call overhead subtracted.
2. **Then where the regressor is unsure.** In each later round, a random forest over each
   template's configurations (log of its kernels' total time) scores many fresh candidate
   configurations; those where its trees disagree most are measured, more of them for the
   templates whose forests are least sure (nn-Meter's adaptive sampling, with the forest's
   spread standing in for its validation error).
3. **Calibration networks** (random subnets of hwnas's own spaces, anymodel/calibration.py)
   are measured end to end, for the per-network overhead model (anymodel/predictor.py), a
   share after each round so that they are timed under the same conditions as the kernels.

Kernels are timed *hot*: each timed call right after an untimed call of the same kernel,
inputs and outputs bound to buffers allocated once (profilers/onnxrt.py ``_KernelBench``),
not in the cache-flushing context of the block tables. A kernel is a small part of a block,
and between one kernel and the next a network's working set stays in the caches: summed
over a zoo, hot kernels came within about ±10% of the whole network, flushed ones 4-44% over
it, and kernels timed cold after each reference call (the drift-free rounds) 2-3.5x over it
(README, "The latency of any model"). A fresh output buffer per call would time page faults
a network's planned arena never takes.

Auxiliary kinds (reorders, transposes, elementwise ops) come with nearly every block; each
may take at most ``CAP_SHARE`` of the budget, so that convolutions and matrix products, which
carry most of a network's time, get most of the samples.

The table is saved every few kernels and on interruption; a rerun with the same seed replays
the same configurations and skips what is measured.
"""

from __future__ import annotations

import datetime as dt
import logging
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwnas.anymodel import templates as tpl
from hwnas.anymodel.calibration import calibration_net
from hwnas.anymodel.graph import (Pack, components, detect, export_onnx_bytes,
                                  export_tflite_bytes)
from hwnas.anymodel.kernels import Kernel
from hwnas.anymodel.predictor import MIN_NETWORKS
from hwnas.errors import HwnasError, ModelError, ProfileError
from hwnas.latency.stats import RatioStats
from hwnas.latency.table import LatencyTable
from hwnas.profilers import CapabilityError, KernelJob

log = logging.getLogger(__name__)
SAVE_EVERY = 20
NET_PREFIX = "net:"
# the calibration networks' keys (calibration.py); a table profiled before them (2026-12-07)
# holds synthetic networks under NET_PREFIX + seed, which the fit uses until it has these
CALIBRATION_PREFIX = NET_PREFIX + "cal"
ROUND_SHARES = (0.5, 0.2, 0.15, 0.15)  # of the budget: broad, then three uncertainty rounds
TFLITE_PACK = 10  # blocks per litert-torch conversion


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def kernel_table_path(paths) -> Path:
    return paths.root / f"kernels{paths.variant}.pkl"


def default_nets(budget: int) -> int:
    """Calibration networks for the overhead model: enough for its four coefficients."""
    return int(min(24, max(6, budget // 60)))


# --- measuring one kernel or network on any runtime ------------------------------------------
def kernel_bytes(k: Kernel) -> int:
    """What timing the kernel alone holds at once: its inputs, outputs and weights, and a
    second copy of the inputs (the random feeds they are filled from)."""
    return sum(t.nbytes for t in k.outputs) + k.weight_bytes + \
        2 * sum(t.nbytes for t in k.dynamic_inputs)


def check_kernel_fits(k: Kernel, memory_bytes: int | None = None) -> None:
    """ProfileError before a kernel is cut out when it would not fit in half of the memory
    available now. A converter can make such kernels: litert-torch lowers EfficientNet's
    1280-wide average pool over a 7 x 7 map to a PAD whose output is 1280^3 floats (8 GiB);
    timed alone, with its copies, it took the machine down."""
    from hwnas.anymodel.model import available_memory_bytes

    need = kernel_bytes(k)
    have = available_memory_bytes() if memory_bytes is None else memory_bytes
    if have is not None and need > have // 2:
        raise ProfileError(f"kernel {k.op} {[t.shape for t in k.outputs]} needs "
                           f"{need / 2 ** 30:.1f} GiB to be timed alone; "
                           f"{have / 2 ** 30:.1f} GiB is available")


class KernelTimer:
    """The device's profiler, used for kernels (isolated, every input fed) and networks.

    A device whose kind times no kernels fails on the first kernel, in one line (the
    profiler's CapabilityError); ``graph.runtime_of`` refuses such devices before that."""

    def __init__(self, prof, runtime: str, context: str = "hot", evict_bytes: int | None = None):
        self.prof, self.runtime, self.context = prof, runtime, context
        self.evict_bytes = evict_bytes  # network context's read (KernelJob); None: the default
        self.fmt = "onnx" if runtime == "onnxruntime" else "tflite"

    def kernel(self, graph, k: Kernel):
        if not k.dynamic_inputs:  # an op on constants only (a converter's leftover)
            raise ProfileError(f"kernel {k.op} has no activation input: nothing to feed it "
                               f"when it is timed alone")
        check_kernel_fits(k)
        feeds = None
        if self.fmt == "onnx":  # LiteRT fills its inputs itself
            from hwnas.anymodel.ort import random_feeds

            feeds = random_feeds(k)
        return self.prof.measure_kernel_full(KernelJob(graph.extract(k), self.fmt,
                                                       k.signature, feeds, self.context,
                                                       self.evict_bytes))

    def network(self, data: bytes, input_shape):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"model.{self.fmt}"
            path.write_bytes(data)
            return self.prof.measure_file_full(path, self.fmt, input_shape)


def _units(m) -> RatioStats:
    """The kernel's ratio to the reference, floored at the timer's noise floor."""
    return m.ratio.floored()


# --- the kernel table ------------------------------------------------------------------------
def open_kernel_table(path: Path, prof, runtime: str, fresh: bool = False,
                      context: str = "hot") -> LatencyTable:
    protocol = dict(prof.protocol(), kernels=context, kernel_runtime=runtime)
    if context == "network":  # its read is part of what a ratio means: onnxruntime's went
        # from 24 MB to twice the L2 (2026-12-07), and a table is extended only alike
        from hwnas.profilers.base import network_flush_bytes

        protocol["kernel_read_bytes"] = network_flush_bytes()
    if path.exists() and not fresh:
        table = LatencyTable.load(path)
        if table.meta.get("protocol") != protocol:
            raise ProfileError(f"{path} was measured with {table.meta.get('protocol')}, not "
                               f"{protocol}; pass --fresh to start a new kernel table")
        if "anymodel" not in table.meta:
            raise ProfileError(f"{path} is not a kernel table")
        return table
    if prof.plan is None:
        raise ProfileError("kernel profiling needs the drift-free protocol (reference: true in "
                           "the device config): kernels and networks are compared as ratios")
    meta = dict(prof.meta(), protocol=protocol, created=_now(), updated=_now(),
                anymodel={"runtime": runtime, "kernels": {}, "nets": {}, "samples": [],
                          "skipped": {}, "seconds": 0.0})
    return LatencyTable(meta)


def kernel_entries(table: LatencyTable) -> tuple[list[Kernel], np.ndarray]:
    """The measured kernels and their times in reference units."""
    meta = table.meta["anymodel"]["kernels"]
    keys = [k for k in table.ratios if not k.startswith(NET_PREFIX) and k in meta]
    return [Kernel.from_obj(meta[k]) for k in keys], \
        np.array([table.ratios[k].median for k in keys])


def fit_net_keys(keys) -> list[str]:
    """Of a table's measured networks, those the overhead model is fitted on: the calibration
    networks once there are enough of them to fit, else every network (a table profiled
    before them keeps its synthetic ones, which ran at 0.86-1.32 of their kernels where real
    networks run at 0.95-1.09, until ``hwnas profile --kernels`` measures the calibration
    networks beside them; the two kinds are not mixed once it has)."""
    keys = list(keys)
    cal = [k for k in keys if k.startswith(CALIBRATION_PREFIX)]
    return cal if len(cal) >= MIN_NETWORKS else keys


def _fitted_nets(table: LatencyTable) -> list[str]:
    return fit_net_keys(k for k in table.meta["anymodel"]["nets"] if k in table.ratios)


def nets_kind(table: LatencyTable) -> str:
    """What the overhead model is fitted on, in words: "calibration", or "synthetic" for a
    table profiled before the calibration networks and not profiled since."""
    return ("synthetic" if any(not k.startswith(CALIBRATION_PREFIX) for k in _fitted_nets(table))
            else "calibration")


def net_entries(table: LatencyTable) -> list[tuple[list[Kernel], float]]:
    """The networks the overhead model is fitted on (``fit_net_keys``): (their kernels,
    measured reference units)."""
    meta = table.meta["anymodel"]
    pool = meta["kernels"]
    return [([Kernel.from_obj(pool[s]) for s in meta["nets"][k]["kernels"]],
             table.ratios[k].median) for k in _fitted_nets(table)]


@dataclass
class ProfileReport:
    table: LatencyTable
    path: Path
    measured_now: int
    kernels: int
    nets: int
    seconds: float


# --- the sampler -----------------------------------------------------------------------------
class Sampler:
    """Template configurations: broad in round 0, then where a forest over each template's
    configurations is least sure. Seeded: a rerun replays the same configurations."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.names = list(tpl.TEMPLATES)
        self.weights = np.array([tpl.TEMPLATES[n].weight for n in self.names])
        self.weights = self.weights / self.weights.sum()

    def broad(self, n: int, part: int = 0) -> list[tuple[str, dict]]:
        """One configuration of every template first (so that even a small budget covers
        every kind of block), then ``n`` more in proportion to the templates' weights; each
        part in a seeded random order."""
        rng = np.random.default_rng([self.seed, 0, part])
        first = [(name, tpl.TEMPLATES[name].draw(rng)) for name in self.names] if part == 0 \
            else []
        counts = np.round(self.weights * n).astype(int)
        rest = [(name, tpl.TEMPLATES[name].draw(rng)) for name, c in zip(self.names, counts)
                for _ in range(c)]
        return [first[i] for i in rng.permutation(len(first))] + \
            [rest[i] for i in rng.permutation(len(rest))]

    def unsure(self, n: int, samples: list[dict], round_: int, part: int = 0,
               candidates: int = 40) -> list[tuple[str, dict]]:
        """``n`` configurations where each template's forest disagrees most."""
        from sklearn.ensemble import RandomForestRegressor

        rng = np.random.default_rng([self.seed, round_, part])
        scores, picks = {}, {}
        for name in self.names:
            t = tpl.TEMPLATES[name]
            # a table resumed after its template gained a parameter holds samples without it:
            # they cannot be encoded as the template is now (they stay in the table)
            names = [p.name for p in t.params]
            rows = [s for s in samples if s["template"] == name and s["units"] > 0
                    and all(n in s["config"] for n in names)]
            cands = [t.draw(rng) for _ in range(candidates)]
            if len(rows) < 4:
                scores[name], picks[name] = 1.0, cands
                continue
            x = np.array([t.encode(r["config"]) for r in rows])
            y = np.log([r["units"] for r in rows])
            rf = RandomForestRegressor(n_estimators=60, min_samples_leaf=1, random_state=0,
                                       n_jobs=1).fit(x, y)
            xc = np.array([t.encode(c) for c in cands])
            spread = np.stack([tr.predict(xc) for tr in rf.estimators_]).std(0)
            order = np.argsort(-spread)
            scores[name] = float(np.mean(spread[order[:max(1, len(order) // 4)]]))
            picks[name] = [cands[i] for i in order]
        w = np.array([self.weights[i] * scores[nm] for i, nm in enumerate(self.names)])
        w = w / w.sum() if w.sum() > 0 else self.weights
        counts = np.maximum(1, np.round(w * n)).astype(int)
        out = [(nm, picks[nm][j]) for nm, c in zip(self.names, counts)
               for j in range(min(c, len(picks[nm])))]
        return [out[i] for i in rng.permutation(len(out))]


# --- the driver ------------------------------------------------------------------------------
def profile_kernels(prof, runtime: str, path: Path, cache_dir: Path, budget: int,
                    nets: int | None = None, seed: int = 0, fresh: bool = False,
                    progress: bool = True, threads: int = 1,
                    context: str = "hot") -> ProfileReport:
    """Measure kernels until the table holds ``budget`` of them, and ``nets`` calibration
    networks spread over the rounds; returns the saved table. Resumable (see the module
    docstring)."""
    from tqdm import tqdm

    if budget < 1:
        raise ProfileError(f"--budget must be a positive number of kernels, not {budget}")
    path = Path(path)
    table = open_kernel_table(path, prof, runtime, fresh, context)
    timer = KernelTimer(prof, runtime, context)
    meta = table.meta["anymodel"]
    sampler = Sampler(seed)
    t0, before = time.perf_counter(), _n_kernels(table)
    bar = tqdm(total=budget, initial=min(before, budget), desc=f"kernels on {table.device}",
               unit="kernel", disable=not progress, leave=False)
    n_nets = default_nets(budget) if nets is None else nets
    try:
        for round_, share in enumerate(ROUND_SHARES):
            cumulative = sum(ROUND_SHARES[:round_ + 1])
            target = int(round(budget * cumulative))
            for part in range(4):  # more configurations while the round falls short
                if _n_kernels(table) >= target:
                    break
                want = target - _n_kernels(table)
                configs = (sampler.broad(max(1, want // 3), part) if round_ == 0 else
                           sampler.unsure(max(1, want // 3), meta["samples"], round_, part))
                _measure_configs(table, path, timer, runtime, configs, target, bar, threads,
                                 budget)
            # the calibration networks are spread over the rounds, not timed after them: the
            # overhead model's scale is the ratio of networks to kernels *as they were timed*,
            # and on a shared machine hot kernels' ratios to the reference moved by -42..+34%
            # (p10..p90; -14..+20% against reference v2) within minutes while whole networks'
            # held within a few percent (our reading: the reference, a network, feels a
            # neighbour's cache pressure; a hot kernel in L2 does not). Timed beside the
            # kernels, the networks see the same mix.
            _measure_nets(table, path, timer, runtime, int(round(n_nets * cumulative)),
                          progress, threads)
    except (KeyboardInterrupt, HwnasError):
        _save(table, path, t0)
        raise
    finally:
        bar.close()
    _save(table, path, t0)
    return ProfileReport(table, path, _n_kernels(table) - before, _n_kernels(table),
                         len(meta["nets"]), time.perf_counter() - t0)


def _n_kernels(table: LatencyTable) -> int:
    return sum(1 for k in table.entries if not k.startswith(NET_PREFIX))


def _save(table: LatencyTable, path: Path, t0: float | None = None) -> None:
    meta = table.meta["anymodel"]
    if t0 is not None:
        meta["seconds"] = float(meta.get("seconds", 0.0)) + time.perf_counter() - t0
    table.meta["updated"] = _now()
    table.save(path)


def _store(table: LatencyTable, key: str, m) -> None:
    from hwnas.profilers.reference import REFERENCE_KEY

    if m.ratio is None:
        raise ProfileError("kernel profiling needs the drift-free protocol")
    ratio = _units(m)
    flag = "" if ratio is m.ratio else "at the timer's noise floor"
    table.put(key, m.stats if m.stats.median_ms > 0 else ratio.to_ms(m.reference_ms),
              flag=flag, ratio=ratio, reference=(REFERENCE_KEY, m.reference_ms))


def _graphs(runtime: str, configs, threads: int):
    """(template, config, graph, kernels-per-config) for each configuration, exporting
    TFLite blocks in packs (one conversion for many)."""
    if runtime == "onnxruntime":
        for name, cfg in configs:
            module, shape = tpl.build(name, cfg)
            try:
                g = detect(runtime, export_onnx_bytes(module, [shape]), shape, threads)
            except (ModelError, RuntimeError) as e:
                log.info("template %s %s: %s", name, cfg, e)
                continue
            yield [(name, cfg, g, list(g.kernels))]
        return
    for start in range(0, len(configs), TFLITE_PACK):
        chunk = configs[start:start + TFLITE_PACK]
        built = [tpl.build(n, c) for n, c in chunk]
        pack = Pack([m for m, _ in built], [s for _, s in built])
        try:
            g = detect(runtime, export_tflite_bytes(pack.module, pack.shapes), None)
        except (ModelError, RuntimeError) as e:
            log.info("template pack: %s", e)
            continue
        inputs = [str(i) for i in g.model.subgraphs[0].inputs]
        owner = components(g.kernels, len(chunk), inputs)
        yield [(n, c, g, [k for k, o in zip(g.kernels, owner) if o == i])
               for i, (n, c) in enumerate(chunk)]


# kinds that carry most of a network's time get as many samples as the templates make;
# the others (reorders, transposes, elementwise, ...) come with every template and would
# fill the budget: at most CAP_SHARE of it each
MAIN_KINDS = ("Conv", "Gemm", "MatMul", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
              "BATCH_MATMUL")
CAP_SHARE = 0.06


def _full(table, kind: str, counts: dict, budget: int) -> bool:
    if any(m in kind for m in MAIN_KINDS):
        return False
    return counts.get(kind, 0) >= max(20, int(CAP_SHARE * budget))


def _kind_counts(table) -> dict:
    counts: dict[str, int] = {}
    for sig in table.entries:
        if not sig.startswith(NET_PREFIX):
            kind = sig.split(":", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def _measure_configs(table, path, timer, runtime, configs, target, bar, threads,
                     budget) -> None:
    meta = table.meta["anymodel"]
    since_save = 0
    kind_counts = _kind_counts(table)
    for group in _graphs(runtime, configs, threads):
        for name, cfg, g, kernels in group:
            units = 0.0
            sigs = []
            for k in kernels:
                if k.view:
                    continue
                sigs.append(k.signature)
                if k.signature in table.entries:
                    units += table.ratios[k.signature].median
                    continue
                if k.signature in meta["skipped"] or _n_kernels(table) >= target \
                        or _full(table, k.kind, kind_counts, budget):
                    continue
                try:
                    m = timer.kernel(g, k)
                except CapabilityError:  # the device, not this kernel: skipping would hide it
                    raise
                except (ProfileError, ModelError, RuntimeError, ValueError) as e:
                    meta["skipped"][k.signature] = str(e).splitlines()[0][:200] if str(e) \
                        else type(e).__name__
                    continue
                _store(table, k.signature, m)
                meta["kernels"][k.signature] = k.to_obj()
                kind_counts[k.kind] = kind_counts.get(k.kind, 0) + 1
                units += table.ratios[k.signature].median
                bar.update(1)
                since_save += 1
                if since_save >= SAVE_EVERY:
                    _save(table, path)
                    since_save = 0
            if sigs and all(s in table.entries or _full(table, s.split(":", 1)[0],
                                                        kind_counts, budget) for s in sigs):
                meta["samples"].append({"template": name, "config": cfg, "units": units})
        if _n_kernels(table) >= target:
            break
    _save(table, path)


def _measure_nets(table, path, timer, runtime, n: int, progress: bool, threads: int) -> None:
    from tqdm import tqdm

    meta = table.meta["anymodel"]
    for seed in tqdm(range(n), desc="calibration networks", unit="net", disable=not progress,
                     leave=False):
        key = f"{CALIBRATION_PREFIX}{seed}"
        if key in table.entries:
            continue
        module, shape, what = calibration_net(seed)
        data = (export_onnx_bytes(module, [shape]) if runtime == "onnxruntime"
                else export_tflite_bytes(module, [shape]))
        net_shape = shape if runtime == "onnxruntime" else None
        g = detect(runtime, data, net_shape, threads)
        m = timer.network(data, shape)
        for k in g.kernels:
            meta["kernels"].setdefault(k.signature, k.to_obj())
        meta["nets"][key] = {"what": what, "kernels": [k.signature for k in g.kernels],
                             "flops": float(sum(k.flops for k in g.kernels))}
        _store(table, key, m)
        _save(table, path)


def table_summary(table: LatencyTable) -> dict:
    meta = table.meta["anymodel"]
    kinds: dict[str, int] = {}
    for k, obj in meta["kernels"].items():
        if k in table.entries:
            kinds[Kernel.from_obj(obj).kind] = kinds.get(Kernel.from_obj(obj).kind, 0) + 1
    return {"kernels": _n_kernels(table), "nets": len(_fitted_nets(table)),
            "nets_kind": nets_kind(table),
            "kinds": kinds,
            "minutes": round(float(meta.get("seconds", 0.0)) / 60, 2),
            "reference_ms": table.reference_ms, "host": platform.node()}
