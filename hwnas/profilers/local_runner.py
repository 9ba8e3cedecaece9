"""Whole networks timed in a fresh process of their own, on this machine.

Why: a drift-free figure (a network's time over the reference network's, drift.py) carries
its process. Each process draws its own memory layout and allocator state, and the small
reference network and a big subnet do not feel them alike: on local-cpu the same subnet's
drift-free median moves by 1.5-2% (SD) from process to process, more than between passes of
one process. The main job made every pass of every subnet in its one long-lived process, so a
whole landing carried that process's draw. A pass in a process of its own is an independent
draw: pooling passes then averages the draws away. And the process is a plain onnxruntime one
that runs the network in a session with its own arena, as a deployed model runs: the search's
process ran it in the arena it shares with the blocks' sessions, which read 0.1-2.8% faster
over three runs (docs/ARCHITECTURE.md, "A process per pass"; benchmarks/process_protocol.py).

The process is hwnas's timing runner (ssh_runner.py: the standard library, numpy and the
runtime; the drift-free protocol ported), started here with this interpreter instead of on a
board over SSH. It inherits the profiler's pinning, so it times on the device's core. Starting
one costs ~0.3 s (the runtime's import and the reference's session), so callers open one per
pass over their subnets, not one per subnet. A runner killed hard (SIGKILL) leaves its temporary
folder; the next one removes such folders (``sweep_stale``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hwnas.errors import ModelError, ProfileError
from hwnas.profilers.base import Measurement
from hwnas.profilers.drift import Interleaved, runner_plan

RUNNER = Path(__file__).with_name("ssh_runner.py")
PREFIX = "hwnas-runner-"
STALE_S = 60.0  # a folder younger than this may belong to a runner still starting


def sweep_stale(tmp_root: str | None = None) -> int:
    """Remove the folders of timing processes that were killed hard (SIGKILL, an OOM kill: no
    exit handler ran, so their folder stayed). A live runner holds ``runner.lock`` for its
    whole life; a folder whose lock can be taken, and that is older than STALE_S, has none.
    Returns how many were removed."""
    import fcntl

    removed = 0
    for d in Path(tmp_root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        lock = d / "runner.lock"
        try:
            if time.time() - lock.stat().st_mtime < STALE_S:
                continue
            fd = os.open(lock, os.O_RDWR)
        except OSError:  # no lock yet (starting), or not ours to open
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live runner holds it
            os.close(fd)
            continue
        try:
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
        finally:
            os.close(fd)
    return removed


class LocalRunner:
    """One fresh runner process; a context manager. ``measure_file_full`` and
    ``measure_model_full`` time whole networks in it, drift-free as the profiler would."""

    runtime = "onnxruntime"  # the runner also runs LiteRT; local-tflite does not use it yet

    def __init__(self, cfg, plan, reference: tuple[Path, tuple]):
        self.cfg, self.plan = cfg, plan
        self.reference = reference  # (file, input shape) of the reference network
        self.proc: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> "LocalRunner":
        sweep_stale()
        self._tmp = tempfile.TemporaryDirectory(prefix=PREFIX)
        c = self.cfg
        settings = {
            "workdir": self._tmp.name, "runtime": self.runtime, "threads": c.threads,
            "affinity": "none",  # the profiler pinned this process already; the child inherits
            "context": c.context, "flush_mb": c.flush_mb, "use_xnnpack": c.use_xnnpack,
            "benchmark_bin": "", "thermal_zones": "", "thermal_limit_c": 1e9,  # never waits
            "cool_poll_s": 1.0, "cool_max_s": 0.0, "lock_timeout_s": 0.0}
        self._err = open(Path(self._tmp.name) / "stderr", "w+")
        # a session of its own: a Ctrl-C reaches hwnas, which says what it kept and ends this
        self.proc = subprocess.Popen([sys.executable, str(RUNNER), "serve", json.dumps(settings)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True, start_new_session=True)
        try:
            hello = self._answer("start")
            if "hello" not in hello:
                raise ProfileError(f"the timing runner did not start: {hello}")
            path, shape = self.reference
            self._request({"op": "reference", "path": str(path), "shape": list(shape)},
                          "the reference network")
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            # after a Ctrl-C or an error, no reason to let it finish the network it is timing
            if not (exc and exc[0] is not None):
                try:
                    self.proc.stdin.close()  # EOF: the runner ends
                    self.proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                try:
                    pipe.close()
                except OSError:  # unsent bytes to a process that has gone
                    pass
            self.proc = None
        if self._tmp is not None:
            self._err.close()
            self._tmp.cleanup()
            self._tmp = None

    def _answer(self, what: str) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self._err.seek(0)
            tail = " | ".join(self._err.read().strip().splitlines()[-3:])
            raise ProfileError(f"the timing process for {what} ended (exit "
                               f"{self.proc.poll()}): {tail or 'no output'}")
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise ProfileError(f"the timing process answered {line.strip()[:120]!r}, not "
                               f"JSON") from None

    def _request(self, req: dict, what: str) -> dict:
        if self.proc is None:
            raise ProfileError("LocalRunner used outside its 'with' block")
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except OSError:  # it ended: _answer reads nothing, and says why
            pass
        msg = self._answer(what)
        if "error" in msg:
            raise ModelError(f"{self.runtime} cannot run {what}: {msg['error']}")
        return msg

    def measure_file_full(self, path: Path, fmt: str, input_shape=None) -> Measurement:
        """A model file end to end, as the profiler's ``measure_file_full`` (networks: the
        reference beside every call, more batches while the ratio is imprecise)."""
        if fmt != "onnx":
            raise ProfileError(f"the timing process runs onnx files, not {fmt}")
        plan = self.plan.for_networks(self.cfg.runs, self.cfg.reference_batches)
        msg = self._request({
            "op": "measure", "path": str(path), "mode": "isolated",
            "shape": None if input_shape is None else list(input_shape),
            "warmup": self.cfg.warmup, "runs": self.cfg.runs, "feeds": None,
            "plan": runner_plan(plan)}, Path(path).name)
        timing = Interleaved.from_runner(msg)
        return Measurement(timing.stats(), ratio=timing.ratio(),
                           reference_ms=timing.reference_ms)

    def measure_model_full(self, module, input_shape) -> Measurement:
        """A torch module: exported here (this process has torch), timed there."""
        from hwnas.profilers.export import export_onnx

        with tempfile.TemporaryDirectory(prefix="hwnas-net-") as tmp:
            path = export_onnx(module, input_shape, Path(tmp) / "model.onnx")
            return self.measure_file_full(path, "onnx", input_shape)
