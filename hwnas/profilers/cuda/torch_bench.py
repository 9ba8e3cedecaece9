"""The torch backend: eager PyTorch on the GPU, timed with CUDA events.

Calls are queued back to back, one event pair around each, and the host synchronises once
before reading the events. This is how ``measure_model`` times a whole network too, so the
per-block numbers describe the same regime as the network: a block whose host-side launches are
slower than its kernels (small batches) comes out at its launch-bound time, as it runs inside
the network, and a GPU-bound block at its kernel time.

``device="cpu"`` swaps the CUDA events for host timers. It is a debug backend for testing this
loop on a machine without a GPU; its numbers are not GPU numbers and no config selects it.
"""

from __future__ import annotations

import time

import numpy as np

DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class _HostEvent:
    """The two methods of torch.cuda.Event that the loop uses, on the host clock."""

    def __init__(self):
        self.t = 0

    def record(self) -> None:
        self.t = time.perf_counter_ns()

    def elapsed_time(self, end: "_HostEvent") -> float:
        return (end.t - self.t) / 1e6


class TorchBench:
    """One module and its input, ready to be called on the GPU."""

    def __init__(self, module, shape: tuple[int, ...], *, precision: str,
                 include_copies: bool, device: str = "cuda"):
        import torch

        self.torch, self.device, self.include_copies = torch, device, include_copies
        dtype = getattr(torch, DTYPES[precision])
        self.module = module.eval().to(device=device, dtype=dtype)
        if include_copies:
            x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(dtype)
            # pinned host memory: what a serving loop uses, and the only way copies can overlap
            self.x = x.pin_memory() if device == "cuda" else x
        else:
            # made on the device: a batch too big for the GPU fails here as a GPU OOM, not as a
            # host allocation of the same size
            self.x = torch.randn(shape, device=device, dtype=dtype,
                                 generator=torch.Generator(device=device).manual_seed(0))
        self._event = ((lambda: torch.cuda.Event(enable_timing=True)) if device == "cuda"
                       else _HostEvent)

    def _call(self):
        if self.include_copies:
            # the output copy back to the host ends with the host waiting for it, as in serving
            return self.module(self.x.to(self.device)).to("cpu")
        return self.module(self.x)

    def _sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def time_calls(self, n: int) -> np.ndarray:
        """ms per call of ``n`` calls queued back to back."""
        starts = [self._event() for _ in range(n)]
        ends = [self._event() for _ in range(n)]
        with self.torch.inference_mode():
            for start, end in zip(starts, ends):
                start.record()
                self._call()
                end.record()
        self._sync()  # events can only be read once the GPU has passed them
        return np.array([s.elapsed_time(e) for s, e in zip(starts, ends)], dtype=np.float64)

    def run_calls(self, n: int) -> None:
        """``n`` calls back to back, finished on the GPU when this returns (energy loops)."""
        with self.torch.inference_mode():
            for _ in range(n):
                self._call()
        self._sync()

    def close(self) -> None:
        self.module = self.x = None
