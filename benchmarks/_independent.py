"""An independent check of what hwnas measures: subnets timed by this file's own loop.

It shares nothing with hwnas's profilers but the model definitions (``space.build_model``, the
ONNX export) and the reference network (the unit every drift-free number is expressed in). The
loop is written out here on purpose: plain onnxruntime sessions, one thread pinned to the last
allowed core, the reference called before every call of the subnet, each call divided by the
mean of the reference calls around it, the median of those ratios; passes in fresh sessions,
in a random order. Each timed reference call follows an untimed one, as in hwnas's protocol:
the reference's speed depends on what ran before it, and a ratio is only comparable to another
taken to a reference in the same state. Milliseconds are that ratio times a reference speed the caller passes (the
device table's), so the figures are comparable to hwnas's predictions.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _caller(sess, shape):
    x = {sess.get_inputs()[0].name: np.random.default_rng(1).standard_normal(shape)
         .astype(np.float32)}
    clock = time.perf_counter_ns

    def call() -> float:
        t0 = clock()
        sess.run(None, x)
        return (clock() - t0) / 1e6

    return call


def time_ratios(space, archs, passes: int = 3, runs: int = 40, warmup: int = 5,
                seed: int = 0) -> np.ndarray:
    """passes x subnets array of median ratios (subnet time / reference time)."""
    from hwnas.home import export_cache
    from hwnas.profilers.export import export_onnx
    from hwnas.profilers.reference import reference_model, reference_onnx

    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(saved)})
    rng = np.random.default_rng(seed)
    out = np.zeros((passes, len(archs)))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = [export_onnx(space.build_model(a), space.input_shape(a),
                                 Path(tmp) / f"s{i}.onnx") for i, a in enumerate(archs)]
            ref = _caller(_session(reference_onnx(export_cache())), reference_model()[1])
            for _ in range(warmup):
                ref()
            for p in range(passes):
                for i in rng.permutation(len(archs)):
                    item = _caller(_session(paths[i]), space.input_shape(archs[i]))
                    for _ in range(warmup):
                        item()
                    ref()
                    before, ratios = ref(), []
                    for _ in range(runs):
                        t = item()
                        ref()  # untimed: the reference back in its steady state
                        after = ref()
                        ratios.append(t / (0.5 * (before + after)))
                        before = after
                    out[p, i] = np.median(ratios)
    finally:
        os.sched_setaffinity(0, saved)
    return out
