"""Search a trained supernet's checkpoint: the job behind ``hwnas search --supernet CKPT``.

It only wires library pieces together (checkpoint, data, distributed context, search). What it
needs from the device, its latency predictor and a way to time the chosen subnet, arrives as
callables: resolving a device name is the API's job (``hwnas.api.supernet.search_from_checkpoint``
builds them from the name), and this package sits below the API.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ContextManager

from hwnas.supernet.latency import LatencyFn
from hwnas.supernet.search import AccuracySearchConfig, AccuracySearchResult, MeasureFn

if TYPE_CHECKING:
    from hwnas.spaces.base import SearchSpace

# Opens the measuring of the chosen subnet, entered once around the search (the profiler open,
# the measuring lock held); it yields None where nothing can be timed here (search anyway).
Measurer = Callable[[], ContextManager["MeasureFn | None"]]


def search_checkpoint(checkpoint: str | Path, *, latency_for: Callable[["SearchSpace"], LatencyFn],
                      target_ms: float, out_dir: str | Path, data: str | None = None,
                      cfg: AccuracySearchConfig = AccuracySearchConfig(),
                      measurer: Measurer | None = None,
                      run_on: str | None = None) -> AccuracySearchResult:
    """Evolve under the predicted latency ``latency_for(space)`` (the space is the checkpoint's,
    known once it is read), scored by the supernet's holdout top-1; time the pick with
    ``measurer`` when given. The holdout is re-created with the seed and fractions the
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
        fn = latency_for(supernet.space)
        # only rank 0 times the pick: a measurer per rank would take the machine's measuring
        # lock on every rank, and a rank waiting for it never joins rank 0's collectives
        timing = measurer is not None and ctx.is_main
        with (measurer() if timing else contextlib.nullcontext(None)) as measure_fn:
            return search_by_accuracy(supernet.space, supernet, splits, fn, target_ms, cfg,
                                      ctx=ctx, measure_fn=measure_fn, out_dir=out_dir,
                                      device=dev)
    finally:
        shutdown(ctx)


__all__ = ["Measurer", "search_checkpoint"]
