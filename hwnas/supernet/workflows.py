"""The end-to-end jobs behind the CLI: build pools for a device, search a trained supernet.

They only wire library pieces together (predictor, pools, checkpoint, data, profiler), so the
click commands stay free of logic and the lead's ``hwnas search --supernet`` can call
``search_from_checkpoint`` directly.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

from hwnas.errors import DeviceError, HwnasError
from hwnas.supernet.latency import LatencyFn, load_latency_fn
from hwnas.supernet.pools import Pools, build_pools, flops_cost_fn
from hwnas.supernet.search import AccuracySearchConfig, AccuracySearchResult, MeasureFn
from hwnas.supernet.spec import SpaceSpec

log = logging.getLogger(__name__)


def build_pools_for(spec: SpaceSpec, *, metric: str, levels: Sequence[float],
                    out: str | Path, device: str | None = None, bound: float | None = None,
                    per_level: int = 64, seed: int = 0, max_draws: int = 20000,
                    latency_fn: LatencyFn | None = None, predictor: str = "auto") -> Pools:
    """Pools per latency level on ``device`` (metric "latency") or per MMACs level ("flops")."""
    space = spec.build()
    if metric == "latency":
        if device is None and latency_fn is None:
            raise HwnasError("latency pools need --device (whose predictor gives the latency)")
        fn = latency_fn or load_latency_fn(device, space, predictor)
        source = f"latency predictor of {device}"
    else:
        fn, source = flops_cost_fn(space), "analytic MACs (space.macs)"
    pools = build_pools(spec, fn, levels, metric=metric, bound=bound, per_level=per_level,
                        seed=seed, device=device or "", cost_source=source, max_draws=max_draws)
    pools.save(out)
    return pools


@contextlib.contextmanager
def local_measure(device: str) -> Iterator[MeasureFn | None]:
    """A whole-model latency measurer on ``device`` when hwnas can run it here, else None.

    Drift-free where the profiler times beside the reference: the ratio at the device's table's
    reference speed, the scale its predictions are in."""
    from hwnas import api
    from hwnas.home import export_cache, hwnas_home
    from hwnas.locks import measuring, measuring_resources
    from hwnas.profilers import make_profiler

    ctx = api.context(device)
    scale = api.reference_scale_ms(ctx)
    try:
        profiler = make_profiler(ctx.cfg, export_cache())
    except DeviceError as e:
        log.info("not measuring the chosen subnet on %s: %s", device, e)
        yield None
        return

    def measure(p, module, shape) -> float:
        m = p.measure_model_full(module, shape)
        return m.ratio.median * scale if m.ratio is not None and scale else m.stats.median_ms

    with contextlib.ExitStack() as stack:
        # held for the whole search: evaluating candidates on this CPU would disturb another
        # process's timings as much as timing does
        try:
            stack.enter_context(measuring(hwnas_home(), measuring_resources(ctx.cfg)))
        except OSError as e:  # a read-only HWNAS_HOME: search, but do not time anything
            log.warning("not measuring the chosen subnet on %s (no measuring lock: %s)", device,
                        (e.strerror or str(e)).lower())
            yield None
            return
        p = stack.enter_context(profiler)
        yield lambda module, shape: measure(p, module, shape)


def search_from_checkpoint(checkpoint: str | Path, *, device: str, target_ms: float,
                           out_dir: str | Path, data: str | None = None,
                           cfg: AccuracySearchConfig = AccuracySearchConfig(),
                           measure: bool = True, run_on: str | None = None,
                           latency_fn: LatencyFn | None = None,
                           predictor: str = "auto") -> AccuracySearchResult:
    """``hwnas search --supernet CKPT``: evolve under the device's predicted latency, scored by
    the supernet's holdout top-1. The holdout is re-created with the seed and fractions the
    checkpoint was trained with (``data`` may point at the dataset's new location), so no
    training image is ever used to score a candidate. Works under ``torchrun``."""
    import torch

    from hwnas.supernet.distributed import init_distributed, shutdown
    from hwnas.supernet.evaluate import load_supernet
    from hwnas.supernet.search import search_by_accuracy
    from hwnas.supernet.train import DataSpec

    use_cuda = torch.cuda.is_available() if run_on in (None, "auto") else run_on == "cuda"
    ctx = init_distributed(use_cuda)
    try:
        dev = torch.device(f"cuda:{ctx.local_rank}") if use_cuda else torch.device("cpu")
        supernet, state = load_supernet(checkpoint, map_location=dev)
        data_spec = DataSpec(**state["data"])
        if data is not None:
            data_spec = replace(data_spec, spec=str(data))
        splits = data_spec.load()
        fn = latency_fn or load_latency_fn(device, supernet.space, predictor)
        measurer = local_measure(device) if measure else contextlib.nullcontext(None)
        with measurer as measure_fn:
            return search_by_accuracy(supernet.space, supernet, splits, fn, target_ms, cfg,
                                      ctx=ctx, measure_fn=measure_fn, out_dir=out_dir,
                                      device=dev)
    finally:
        shutdown(ctx)
