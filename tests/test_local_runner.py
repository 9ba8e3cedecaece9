"""Whole networks timed in a fresh onnxruntime process per pass (profilers/local_runner.py):
the real runner (ssh_runner.py) started on this machine, beside the real reference network."""

from __future__ import annotations

import os

import numpy as np
import pytest

from hwnas.api.device import context, session
from hwnas.api.measuring import measure, measure_passes
from hwnas.errors import ModelError, ProfileError
from hwnas.profilers.local_runner import LocalRunner
from hwnas.profilers.onnxrt import OrtProfiler


def _quick(ctx):
    """local-cpu with few runs: these tests check where and how networks are timed, not how
    precisely."""
    from dataclasses import replace

    return replace(ctx, cfg=ctx.cfg.with_overrides(runs=6, warmup=2, reference_batches=1))


@pytest.fixture
def pids(monkeypatch):
    """The process id of every fresh process opened (the real runner, spied on)."""
    seen: list[int] = []
    enter = LocalRunner.__enter__

    def spy(self):
        got = enter(self)
        seen.append(got.proc.pid)
        return got

    monkeypatch.setattr(LocalRunner, "__enter__", spy)
    return seen


def test_each_pass_is_timed_in_a_process_of_its_own(hwnas_home, pids):
    ctx = _quick(context("local-cpu", "elasticvit", home=hwnas_home))
    archs = [ctx.space.smallest(160), ctx.space.largest(160)]
    with session(ctx) as ctx:
        per = measure_passes(ctx, archs, passes=3)
        exported = dict(ctx.session.exported)
        again = measure_passes(ctx, archs[:1], passes=1)  # a confirmation: no new export
        assert ctx.session.exported == exported and len(exported) == 2
    assert len(pids) == 4 and len(set(pids)) == 4 and os.getpid() not in pids
    for ms in per + again:
        assert all(np.isfinite(m) and m > 0 for m in ms)
    assert per[0][0] < per[1][0] * 1.5  # the smallest subnet is not timed as a bigger one


def test_a_measure_opens_one_process_per_pass(hwnas_home, pids):
    ctx = _quick(context("local-cpu", "elasticvit", home=hwnas_home))
    records = measure(ctx, sample=3, passes=2, progress=False)
    assert len(pids) == 2 and len(set(pids)) == 2
    assert all(len(r.passes) == 2 for r in records.records)


def test_the_fresh_process_times_a_file_as_the_profiler_does(hwnas_home, tmp_path):
    """The same network, timed here and in the fresh process, beside the same reference:
    the ratios agree within what two processes' draws differ by on a busy box."""
    from hwnas.profilers.export import export_onnx

    ctx = context("local-cpu", "elasticvit", home=hwnas_home)
    arch = ctx.space.smallest(160)
    path = export_onnx(ctx.space.build_model(arch).eval(), ctx.space.input_shape(arch),
                       tmp_path / "net.onnx")
    with session(ctx) as ctx:
        prof = ctx.session.profiler()
        here = prof.measure_file_full(path, "onnx", ctx.space.input_shape(arch))
        with prof.fresh_process() as runner:
            assert isinstance(runner, LocalRunner)
            there = runner.measure_file_full(path, "onnx", ctx.space.input_shape(arch))
    assert there.ratio is not None and there.reference_ms > 0
    assert 0.75 < there.ratio.median / here.ratio.median < 1.33


def test_a_file_the_runtime_cannot_run_is_one_model_error(hwnas_home, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    ctx = context("local-cpu", "elasticvit", home=hwnas_home)
    with session(ctx) as ctx:
        with ctx.session.profiler().fresh_process() as runner:
            with pytest.raises(ModelError, match="bad.onnx"):
                runner.measure_file_full(bad, "onnx", (1, 3, 8, 8))
            with pytest.raises(ProfileError, match="onnx files, not tflite"):
                runner.measure_file_full(bad, "tflite")


def test_a_process_that_died_is_one_profile_error(hwnas_home, tmp_path):
    ctx = context("local-cpu", "elasticvit", home=hwnas_home)
    with session(ctx) as ctx:
        with ctx.session.profiler().fresh_process() as runner:
            runner.proc.kill()
            runner.proc.wait()
            with pytest.raises(ProfileError, match="timing process"):
                runner.measure_file_full(tmp_path / "x.onnx", "onnx", (1, 3, 8, 8))


def test_an_error_inside_ends_the_process_and_its_pipes(hwnas_home):
    ctx = context("local-cpu", "elasticvit", home=hwnas_home)
    with session(ctx) as ctx:
        with pytest.raises(RuntimeError, match="stop"):
            with ctx.session.profiler().fresh_process() as runner:
                proc = runner.proc
                raise RuntimeError("stop")
        assert runner.proc is None
    assert proc.poll() is not None and proc.stdout.closed and proc.stdin.closed


def test_folders_of_runners_killed_hard_are_swept_and_live_ones_kept(tmp_path):
    """A SIGKILLed timing process leaves its folder: the next runner removes it, never the
    folder of a live runner (its lock is held) nor one still starting (too young)."""
    import fcntl
    import os

    from hwnas.profilers.local_runner import PREFIX, STALE_S, sweep_stale

    def folder(name, age_s):
        d = tmp_path / f"{PREFIX}{name}"
        d.mkdir()
        (d / "runner.lock").write_text("hwnas runner pid 1")
        (d / "stderr").write_text("")
        old = os.path.getmtime(d / "runner.lock") - age_s
        os.utime(d / "runner.lock", (old, old))
        return d

    dead, live, young = folder("dead", STALE_S + 5), folder("live", STALE_S + 5), \
        folder("young", 0)
    (tmp_path / f"{PREFIX}nolock").mkdir()  # a runner before it wrote its lock
    held = open(live / "runner.lock")
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        assert sweep_stale(str(tmp_path)) == 1
    finally:
        held.close()
    assert not dead.exists() and live.exists() and young.exists()
    assert (tmp_path / f"{PREFIX}nolock").exists()
