"""Measuring on a device: per-op profiles (resumable), whole subnets end to end (drift-free,
into the device's records), a named model's blocks, and exports."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from hwnas.arch_key import arch_key
from hwnas.errors import (HwnasError, Interrupted, MissingKeysError)
from hwnas.home import check_folder, device_paths
from hwnas.interrupts import sigint_deferred
from hwnas.latency.records import Pass, Records
from hwnas.latency.sampling import stratified_sample
from hwnas.latency.stats import Stats
from hwnas.latency.table import LatencyTable
from hwnas.predictors.lut import LUTPredictor
from hwnas.profilers.drift import network_meta
from hwnas.profilers.reference import REFERENCE_KEY, check_records_reference
from hwnas.spaces import SearchSpace

from hwnas.api.device import (Context, load_table, _profiler, reference_scale_ms,
                              model_context)

log = logging.getLogger(__name__)


def _check_budget(budget) -> None:
    if budget is not None and not (isinstance(budget, (int, float)) and 0 < budget <= 1):
        raise HwnasError(f"budget must be a fraction in (0, 1], got {budget}")


def profile(ctx: Context, fresh: bool = False, progress: bool = True,
            serials: tuple[str, ...] = (), budget: float | None = None) -> LatencyTable:
    """Measure the ops of the space at its resolutions that the table lacks (resumable).

    With ``budget`` (a fraction), only that share of the ops is measured, chosen for coverage
    and then where kernel regressors are least sure; ``hwnas fit --kind kernel`` fills the rest.
    """
    from hwnas.predictors.kernel import select_ops
    from hwnas.profilers.run import profile_ops

    # everything is checked before anything on disk is touched; --fresh moves the old table
    # aside (a timestamped backup) only when the new one is first saved
    _check_budget(budget)
    check_folder(ctx.paths.root, write=True)
    if not fresh and ctx.paths.table.exists():
        load_table(ctx)  # unreadable, another device's, or another CPU's
    ops = [op for r in ctx.space.resolutions for op in ctx.space.enumerate_ops(r)]
    n_ops = len({o.key for o in ops})
    rounds = [0]  # profile_ops calls finished (the budget path makes several)
    # a budgeted run marks the table unfinished from its first save: stopped anywhere, the
    # next search resumes the budget instead of taking the partial table for an interrupted
    # full profile (and profiling all of it)
    mark = ({} if budget is None else
            {"budget": {"fraction": budget, "measured": 0, "of": n_ops, "unfinished": True}})
    try:
        with _profiler(ctx, serials) as prof:
            def run(subset):
                table = profile_ops(prof, subset, ctx.paths.table, fresh=fresh and not rounds[0],
                                    sentinel_every=ctx.cfg.sentinel_every,
                                    drift_tolerance=ctx.cfg.drift_tolerance, progress=progress,
                                    meta=mark)
                rounds[0] += 1
                return table

            if budget is None:
                table = run(ops)
                table.meta.pop("budget", None)  # every op measured now: nothing left to predict
            else:
                select_ops(ops, budget, lambda subset: run(subset).medians())
                table = LatencyTable.load(ctx.paths.table)
                table.meta["budget"] = {"fraction": budget, "measured": len(table),
                                        "of": n_ops}
    except Interrupted:
        raise  # the driver says what it saved
    except KeyboardInterrupt:  # waiting for the CPU, opening the profiler, between rounds
        raise Interrupted(f"what this run measured is saved in {ctx.paths.table}; rerun to "
                          f"resume" if rounds[0] else "nothing was measured by this run") from None
    done = set(table.meta.get("resolutions", [])) | set(ctx.space.resolutions)
    table.meta["resolutions"] = sorted(done)
    table.save_merged(ctx.paths.table)
    return table


def _measure_pass(prof, space: SearchSpace, arch) -> Pass:
    """One end-to-end measurement of a subnet, drift-free when the profiler can."""
    m = prof.measure_model_full(space.build_model(arch), space.input_shape(arch))
    return Pass(m.stats, m.ratio, m.reference_ms)


@contextlib.contextmanager
def _exported_once(ctx: Context, prof, passes: int):
    """``(timer, arch) -> Pass``, exporting each subnet once for all its passes where the
    profiler times an ONNX file exactly as it times the module it would export (onnxruntime on
    this CPU). The export, not the timing, is most of a pass there (2-3 s of torch.onnx.export
    for a 15 ms ElasticViT subnet on 2 cores), and the landing and the final check measure
    every subnet 2 or 3 times: in a session (``api.session``) once for the whole command, else
    once for this call. ``timer`` is the profiler or the pass's fresh process
    (``Profiler.fresh_process``); each pass still opens its own session."""
    from hwnas.profilers.onnxrt import OrtProfiler

    space = ctx.space
    if type(prof) is not OrtProfiler or (passes < 2 and ctx.session is None):
        yield lambda timer, arch: _measure_pass(timer, space, arch)
        return
    with contextlib.ExitStack() as stack:
        if ctx.session is not None:
            path_of = ctx.session.export_path
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hwnas-subnets-")))
            files: dict[str, Path] = {}
            path_of = lambda key: files.setdefault(key, tmp / f"{len(files)}.onnx")  # noqa: E731
        yield lambda timer, arch: _measure_pass(_FromFile(timer, path_of(arch_key(arch))),
                                                space, arch)


class _FromFile:
    """A timer (the profiler, or its fresh process), timing a module from ``path``: exported
    there by its first pass."""

    def __init__(self, timer, path: Path):
        self.timer, self.path = timer, path

    def measure_model_full(self, module, input_shape):
        from hwnas.profilers.export import export_onnx

        if not self.path.exists():
            export_onnx(module, input_shape, self.path)
        return self.timer.measure_file_full(self.path, "onnx", input_shape)


def measure(ctx: Context, archs: Sequence | None = None, sample: int = 0, passes: int = 1,
            seed: int = 0, progress: bool = True) -> Records:
    """Measure whole subnets end to end into the device's records file (resumable).

    With ``sample``, picks that many subnets stratified over the latency range (the LUT sum if
    the table covers the space, else MACs). Each pass over all subnets is a separate set of
    sessions, so passes give independent measurements (the noise floor).

    Every pass visits the subnets in its own random order: measured smallest to largest, the
    machine's drift over the run would look like a size effect, and a calibration would learn
    it. Each subnet is timed beside the reference network (drift-free) where the profiler can.
    """
    from tqdm import tqdm

    for name, value, low in (("passes", passes, 1), ("sample", sample, 0), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise HwnasError(f"{name} must be an integer >= {low}, got {value!r}")
    check_folder(ctx.paths.root, write=True)  # measurements that cannot be saved are lost
    # a corrupt file, or one timed against another reference, fails now, not later
    check_records_reference(Records.load_or_new(ctx.paths.records, ctx.cfg.name),
                            ctx.paths.records)
    todo = list(archs or [])
    if sample:
        todo += stratified_sample(ctx.space, sample, np.random.default_rng(seed),
                                  _cheap_estimate(ctx))
    rng = np.random.default_rng([seed, 7919])  # the order: its own stream, not the sample's
    jobs = [(p, todo[i]) for p in range(passes) for i in rng.permutation(len(todo))]
    done = 0
    try:
        with _profiler(ctx) as prof:
            # read now, under the measuring lock: what a process that held it before measured
            records = Records.load_or_new(ctx.paths.records, ctx.cfg.name)
            check_records_reference(records, ctx.paths.records)
            records.meta.update(prof.meta(), protocol=prof.protocol(),
                                **network_meta(prof.plan))
            with contextlib.ExitStack() as stack:
                opened, timer = -1, prof
                for p, arch in tqdm(jobs, desc=f"measuring on {ctx.cfg.name}", unit="net",
                                    disable=not progress, leave=False):
                    rec = records.find(arch.to_dict())
                    if rec is not None and len(rec.passes) > p:
                        continue  # measured by an earlier, interrupted run
                    if p != opened:  # each pass in a process of its own (fresh_process)
                        stack.close()
                        timer, opened = stack.enter_context(prof.fresh_process()), p
                    records.add(arch.to_dict(), _measure_pass(timer, ctx.space, arch))
                    with sigint_deferred():  # a Ctrl-C after the file is written is counted
                        records.save(ctx.paths.records)  # merges what others saved meanwhile
                        done += 1
    except KeyboardInterrupt:  # also while waiting for the CPU, or opening the profiler
        raise Interrupted(
            f"the {done} subnet measurement(s) made by this run are saved in "
            f"{ctx.paths.records}; rerun to resume" if done else
            "nothing was measured by this run") from None
    return records.rescale(reference_scale_ms(ctx))


def _cheap_estimate(ctx: Context):
    if ctx.paths.table.exists():
        pred = LUTPredictor(load_table(ctx), ctx.space, calibrate=False)
        try:
            pred.predict_raw([ctx.space.smallest(r) for r in ctx.space.resolutions])
            return pred.predict_raw
        except MissingKeysError:
            pass
    return lambda archs: np.array([ctx.space.macs(a) for a in archs], dtype=float)


def measure_arch(ctx: Context, arch, passes: int = 3, record: bool = True) -> Stats:
    """Pooled end-to-end latency of one subnet over ``passes`` independent passes.

    Its median is the median of the per-pass medians, drift-free at the device's scale where
    the profiler times beside the reference. The passes go into the records (``record``), so
    nothing measured is thrown away."""
    recs = measure_archs(ctx, [arch], passes, record)
    return recs[0]


def measure_archs(ctx: Context, archs: Sequence, passes: int = 2,
                  record: bool = True) -> list[Stats]:
    """``measure_arch`` for several subnets, interleaved: pass 1 of every subnet (in a random
    order), then pass 2, so that a slow minute does not fall on one subnet's passes."""
    return [pooled for _, pooled in _measure_passes(ctx, archs, passes, record)]


def measure_passes(ctx: Context, archs: Sequence, passes: int = 2,
                   record: bool = True) -> list[list[float]]:
    """As ``measure_archs``, but each subnet's per-pass medians (ms, drift-free at the
    device's scale): for callers that pool passes made at different times (the landing)."""
    return [ms for ms, _ in _measure_passes(ctx, archs, passes, record)]


def _measure_passes(ctx: Context, archs: Sequence, passes: int,
                    record: bool) -> list[tuple[list[float], Stats]]:
    """(per-pass ms, the pooled Stats) per subnet."""
    scale = reference_scale_ms(ctx)
    rng = np.random.default_rng(len(archs) * 1000 + passes)
    got: list[list[Pass]] = [[] for _ in archs]
    if record:  # a corrupt file, or one timed against another reference, fails now
        check_records_reference(Records.load_or_new(ctx.paths.records, ctx.cfg.name),
                                ctx.paths.records)

    def keep() -> int:
        """Record every pass made so far (merged with what others saved meanwhile)."""
        n = sum(len(ps) for ps in got)
        if record and n:
            records = Records.load_or_new(ctx.paths.records, ctx.cfg.name)
            for arch, ps in zip(archs, got):
                for p in ps:
                    records.add(arch.to_dict(), p)
            records.meta.setdefault("device", ctx.cfg.name)
            if any(p.ratio is not None for ps in got for p in ps):  # name the passes' unit
                records.meta.setdefault("protocol", {}).setdefault("reference", REFERENCE_KEY)
            records.save(ctx.paths.records)
        return n if record else 0

    kept: int | None = None  # passes saved by the last keep(): a second would add them twice
    try:
        with _profiler(ctx) as prof, _exported_once(ctx, prof, passes) as one_pass:
            for _ in range(passes):
                with prof.fresh_process() as timer:  # each pass its own process's draw
                    for i in rng.permutation(len(archs)):
                        got[i].append(one_pass(timer, archs[i]))
        with sigint_deferred():  # a Ctrl-C during the save comes after it, and is counted
            kept = keep()
    except KeyboardInterrupt:  # the passes finished before Ctrl-C are not thrown away
        n = keep() if kept is None else kept
        raise Interrupted(f"the {n} subnet measurement(s) made by this run are saved in "
                          f"{ctx.paths.records}" if n else
                          "nothing measured by this run was saved") from None
    if scale is None:  # no table yet: the passes' own reference speed
        refs = [p.reference_ms for ps in got for p in ps if p.reference_ms]
        scale = float(np.median(refs)) if refs else None
    return [([p.ms(scale) for p in ps], _pooled(ps, scale)) for ps in got]


def _pooled(passes: list[Pass], scale_ms: float | None) -> Stats:
    """One pass: its per-call spread; several: the spread of their medians."""
    if len(passes) == 1:
        p = passes[0]
        return p.ratio.to_ms(scale_ms) if p.ratio is not None and scale_ms else p.timed
    return Stats.from_samples([p.ms(scale_ms) for p in passes])


def profile_model(device: str, model: str, home: Path | None = None,
                  progress: bool = True, **overrides) -> LatencyTable:
    """Measure the blocks of one named model that the device's table lacks (``overrides``:
    the device config's warmup, runs, ... as for ``context``)."""
    from dataclasses import replace

    from hwnas.profilers.run import profile_ops

    ctx, m = model_context(device, model, home)
    if any(v is not None for v in overrides.values()):
        cfg = ctx.cfg.with_overrides(**overrides)
        ctx = replace(ctx, cfg=cfg, paths=device_paths(device, home, cfg.batch, cfg.precision))
    check_folder(ctx.paths.root, write=True)
    if ctx.paths.table.exists():
        load_table(ctx)  # unreadable, another device's, or another CPU's
    try:
        with _profiler(ctx) as prof:
            return profile_ops(prof, m.ops(), ctx.paths.table,
                               sentinel_every=ctx.cfg.sentinel_every,
                               drift_tolerance=ctx.cfg.drift_tolerance, progress=progress)
    except Interrupted:
        raise
    except KeyboardInterrupt:  # before the driver measured anything
        raise Interrupted("nothing was measured by this run") from None


# --- exporting -------------------------------------------------------------------------------
def export(space: SearchSpace, arch, fmt: str, out: str | Path) -> Path:
    if fmt != "onnx":
        raise HwnasError(f"unknown export format {fmt!r}; supported: onnx")
    from hwnas.profilers.export import export_onnx

    return export_onnx(space.build_model(arch), space.input_shape(arch), out)


