"""What the protocol benchmarks share: subnets spread over a space's MACs, and a whole network
in an onnxruntime session with an arena of its own, as a deployed model runs."""

from __future__ import annotations

import numpy as np


def spread_subnets(space, n: int, seed: int, pool: int = 300, first: int = 0,
                   last: int | None = None) -> list:
    """``n`` subnets at evenly spaced positions ``first``..``last`` of ``pool`` random subnets
    sorted by MACs (default: the smallest to the largest)."""
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(pool)]
    order = np.argsort([space.macs(a) for a in archs])
    last = pool - 1 if last is None else last
    return [archs[order[int(q)]] for q in np.linspace(first, last, n)]


def own_arena_bench(prof, path):
    """The onnx file as the onnxruntime profiler's bench, in a session with its own arena (not
    the shared one the profiler registers for blocks)."""
    from hwnas.profilers.onnxrt import _OrtBench

    ort = prof.ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = prof.cfg.threads, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return _OrtBench(sess, sess.get_inputs()[0].shape)
