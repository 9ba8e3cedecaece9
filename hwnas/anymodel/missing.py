"""Kernels of kinds a device's kernel table lacks, timed when a prediction meets them.

A model can hold kernels of a kind the kernel table never measured: a Swin exported with the
TorchScript exporter has Slice kernels where its windows are padded and cropped, and a profile
with a small budget leaves rarer kinds out. On a device hwnas measures itself, ``hwnas
predict`` times them instead of refusing, then predicts:

* **the model's own kernels of each missing kind**, each distinct signature once (at most
  ``MAX_OWN`` per kind, spread over their sizes): the prediction then uses their
  measurements, as it does for every kernel whose signature the table holds;
* **a few template samples of the kind** (``templates.near``: ``SAMPLES`` configurations of
  the templates that make it, sized from a quarter of the model's smallest kernel of the kind
  to four times its largest). The kind's regressor is fitted on the table for every later
  model; fitted on one model's few kernels alone it would be a power law through one cluster
  of sizes. Beside them, its slope is fitted over a sixteen-fold range around them.

Both are cut out and timed exactly as the kernel profiler times them (``profile.KernelTimer``,
in the kernel context the table was profiled in, drift-free, with the device's measuring lock
held), and added to the kernel table under its folder's lock as a read-merge-write, so that
what another process saved meanwhile is kept. The table's meta records each such addition
(``anymodel.added``: the model's name and hash, its kernels and the samples): a benchmark that
scores the predictor on a zoo can see whether a zoo model's kernels are in its table.

Nothing is timed where the table or the device is not this machine's to extend: a device of a
kind hwnas does not measure, an imported one, one that cannot be reached now, or a kernel
table measured on another CPU. There the prediction refuses as it always did (``why_not``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwnas.anymodel.kernels import Kernel
from hwnas.errors import ModelError, PredictorError, ProfileError
from hwnas.profilers import CapabilityError

log = logging.getLogger(__name__)
MAX_OWN = 24  # distinct kernels of one kind cut from the model; the rest are predicted
SAMPLES = 8  # template samples per missing kind


@dataclass(frozen=True)
class Added:
    """What a prediction timed and added to the kernel table."""

    device: str
    kinds: tuple[str, ...]  # the kinds that were missing and now have measurements
    model_kernels: dict = field(default_factory=dict)  # kind -> the model's kernels of it
    timed_own: int = 0  # distinct kernels of the model timed
    timed_samples: int = 0  # template samples timed
    seconds: float = 0.0
    untimed: dict = field(default_factory=dict)  # kind -> why none of it could be timed
    base_stamp: list | None = None  # the table's stamp on disk just before they were added

    def line(self) -> str:
        """One line for stderr: what was timed, how long it took, where it went."""
        counts = [f"{self.model_kernels.get(k, 0)} {k}" for k in self.kinds] or ["no"]
        kinds = " and ".join([", ".join(counts[:-1]), counts[-1]] if len(counts) > 1
                             else counts)
        n = sum(self.model_kernels.get(k, 0) for k in self.kinds)
        distinct = f" ({self.timed_own} distinct)" if self.timed_own != n else ""
        what = "that kind" if len(self.kinds) == 1 else "those kinds"
        samples = f" and {self.timed_samples} template samples of {what}" \
            if self.timed_samples else ""
        return (f"timed {kinds} kernels of the model{distinct}{samples} ({self.seconds:.1f} s) "
                f"and added them to {self.device}'s kernel table")


def _timed(timer, graph, k):
    """(the kernel's measurement, None), or (None, the first line of why it could not be
    timed). A device that cannot time kernels at all is not one kernel's failure: it raises."""
    try:
        return timer.kernel(graph, k), None
    except CapabilityError:
        raise
    except (ProfileError, ModelError, RuntimeError, ValueError) as e:
        return None, (str(e).splitlines()[0][:200] if str(e) else type(e).__name__)


def missing_kinds(pred, kernels) -> list[str]:
    """Kinds of the model's kernels that the predictor has no regressor for (see
    ``AnyModelPredictor.missing_kinds``)."""
    return pred.missing_kinds(list(kernels))


def why_not(ctx, table) -> str | None:
    """None when hwnas may time kernels into this device's kernel table now; else why not."""
    from hwnas.devices import kind_of

    kind = kind_of(ctx.cfg)
    if not kind.live or not kind.capabilities(ctx.cfg).kernels:
        return f"hwnas does not time kernels on {ctx.cfg.name} ({kind.name})"
    if not ctx.live:
        return f"{ctx.cfg.name}'s tables were imported"
    unreachable = kind.reachable(ctx.cfg)
    if unreachable:
        return f"{ctx.cfg.name} cannot be reached ({unreachable})"
    here, there = kind.host_cpu(ctx.cfg), table.meta.get("cpu")
    if here and there and here != there:
        return f"its kernel table was measured on a {there}, not on this machine's {here}"
    return None


def _pick(kernels: list[Kernel], n: int) -> list[Kernel]:
    """At most ``n`` of ``kernels``, spread over their sizes (smallest to largest)."""
    if len(kernels) <= n:
        return kernels
    order = sorted(kernels, key=_size)
    idx = np.unique(np.round(np.linspace(0, len(order) - 1, n)).astype(int))
    return [order[i] for i in idx]


def _size(k: Kernel) -> int:
    """Elements of the kernel's largest tensor: what templates.near sizes samples by."""
    return max([t.size for t in k.inputs if not t.const] + [t.size for t in k.outputs] or [1])


def time_missing(ctx, graph, kernels, kinds, runtime: str, table_path: Path,
                 model_name: str, model_sha256: str, context: str = "hot",
                 progress: bool = False, seed: int = 0) -> Added:
    """Time the model's kernels of ``kinds`` and template samples of them on the device, with
    its measuring lock held, in the kernel ``context`` the table was profiled in, and add them
    to the kernel table at ``table_path``."""
    from tqdm import tqdm

    from hwnas import api as core
    from hwnas.anymodel import templates as tpl
    from hwnas.anymodel.profile import (KernelTimer, _graphs, _store, open_kernel_table)

    t0 = time.perf_counter()
    own = {kind: {} for kind in kinds}  # kind -> signature -> the model's kernel
    counts = {kind: 0 for kind in kinds}
    for k in kernels:
        if k.kind in own and not k.view:
            own[k.kind].setdefault(k.signature, k)
            counts[k.kind] += 1
    new: dict[str, tuple[Kernel, str]] = {}  # signature -> (kernel, "model" or "template")
    untimed: dict[str, str] = {}
    with core._profiler(ctx) as prof:
        try:
            work = open_kernel_table(table_path, prof, runtime, context=context)
        except ProfileError as e:  # another protocol: these timings would not be comparable
            raise PredictorError(
                f"{sum(counts.values())} of the model's {len(kernels)} kernels are of kind(s) "
                f"never measured on {ctx.cfg.name} ({', '.join(kinds)}), and they cannot be "
                f"added to its kernel table: {e}") from None
        observed = len((work.reference or {}).get("observations_ms", []))
        timer = KernelTimer(prof, runtime, context)
        todo = {kind: _pick(list(own[kind].values()), MAX_OWN) for kind in kinds}
        bar = tqdm(total=sum(len(v) for v in todo.values()) + SAMPLES * len(kinds),
                   desc=f"missing kinds on {ctx.cfg.name}", unit="kernel",
                   disable=not progress, leave=False)
        try:
            for kind in kinds:
                errors = []
                for k in todo[kind]:
                    bar.update(1)
                    if k.signature in work.entries:
                        continue
                    m, error = _timed(timer, graph, k)
                    if m is None:
                        errors.append(error)
                        continue
                    _store(work, k.signature, m)
                    new[k.signature] = (k, "model")
                if not any(k.signature in work.entries for k in todo[kind]):
                    untimed[kind] = errors[0] if errors else "no kernel could be timed"
                    bar.update(SAMPLES)
                    continue  # samples alone would stand in for kernels that cannot be timed
                sizes = [_size(k) for k in todo[kind]]
                configs = tpl.near(kind, sizes, SAMPLES, seed)
                for group in _graphs(runtime, configs, ctx.cfg.threads):
                    for _, _, g, ks in group:
                        for k in ks:
                            if k.view or k.kind != kind or k.signature in work.entries:
                                continue
                            m, error = _timed(timer, g, k)
                            if m is None:
                                log.info("template sample of %s not timed: %s", kind, error)
                                continue
                            _store(work, k.signature, m)
                            new[k.signature] = (k, "template")
                            break  # one sample per configuration: spread over the sizes
                        bar.update(1)
                bar.update(max(0, SAMPLES - len(configs)))
        finally:
            bar.close()
    seconds = time.perf_counter() - t0
    fresh_obs = list((work.reference or {}).get("observations_ms", []))[observed:]
    timed = tuple(k for k in kinds if k not in untimed)
    base = _add(table_path, work, new, fresh_obs, seconds, model_name, model_sha256) \
        if new else None
    return Added(ctx.cfg.name, timed, {k: counts[k] for k in kinds},
                 sum(1 for _, src in new.values() if src == "model"),
                 sum(1 for _, src in new.values() if src == "template"), seconds, untimed,
                 base)


def _add(path: Path, work, new: dict, fresh_obs: list, seconds: float, model_name: str,
         model_sha256: str) -> list:
    """Read-merge-write of the kernel table under its folder's lock: the new kernels, their
    ratios, the reference timings taken beside them, and a record of where they came from.
    Returns the stamp of the table as it was on disk before (api._stamp)."""
    from hwnas.anymodel.profile import _now
    from hwnas.latency.safeio import dump_pickle
    from hwnas.latency.table import LatencyTable
    from hwnas.locks import folder_lock
    from hwnas.profilers.reference import REFERENCE_KEY

    with folder_lock(path.parent):
        disk = LatencyTable.load(path)
        base = [len(disk.entries), disk.meta.get("updated")]
        meta = disk.meta["anymodel"]
        for sig, (k, _src) in new.items():
            if sig in disk.entries:  # measured by another process meanwhile: keep its
                continue
            disk.entries[sig] = work.entries[sig]
            for mine, theirs in ((disk.flags, work.flags), (disk.ratios, work.ratios),
                                 (disk.timed, work.timed)):
                if sig in theirs:
                    mine[sig] = theirs[sig]
            meta["kernels"][sig] = k.to_obj()
        for ms in fresh_obs:
            disk._observe(REFERENCE_KEY, ms)
        meta["seconds"] = float(meta.get("seconds", 0.0)) + seconds
        meta.setdefault("added", []).append({
            "when": _now(), "model": model_name, "sha256": model_sha256,
            "kernels": sorted(s for s, (_, src) in new.items() if src == "model"),
            "samples": sorted(s for s, (_, src) in new.items() if src == "template")})
        disk.meta["updated"] = _now()
        disk.sync_reference()
        dump_pickle(path, disk.to_obj())
    return base


__all__ = ["Added", "MAX_OWN", "SAMPLES", "missing_kinds", "time_missing", "why_not"]
