"""The onnxruntime profiler and the resumable driver, on the real runtime."""

import pytest

from hwnas.device_configs import load_device
from hwnas.errors import ProfileError
from hwnas.latency.table import LatencyTable
from hwnas.profilers.onnxrt import OrtProfiler
from hwnas.profilers.run import profile_ops
from hwnas.spaces import get_space
from hwnas.spaces.elasticvit.space import elasticvit_named


def _cfg(**kw):
    return load_device("local-cpu").with_overrides(warmup=2, runs=5, **kw)


@pytest.mark.parametrize("context", ["flush", "isolated"])
def test_measure_op_and_model(export_cache_dir, context):
    space = get_space("elasticvit")
    arch = elasticvit_named()["elastic_T1"]
    op = space.ops(arch)[3]
    with OrtProfiler(_cfg(context=context), export_cache_dir) as prof:
        s = prof.measure_op(op)
        whole = prof.measure_model(space.build_model(arch), space.input_shape(arch))
        meta = prof.meta()
    assert s.n == 5 and 0 < s.p10_ms <= s.median_ms <= s.p90_ms
    assert whole.median_ms > s.median_ms
    assert 0 < meta["call_overhead_ms"] < 1.0
    assert meta["threads"] == 1 and meta["context"] == context
    assert (export_cache_dir / "onnx" / f"{op.key}.onnx").exists()


def test_profiler_pins_and_restores_affinity(export_cache_dir):
    import os

    before = os.sched_getaffinity(0)
    with OrtProfiler(_cfg(), export_cache_dir) as prof:
        assert os.sched_getaffinity(0) == set(prof.cpus) and len(prof.cpus) == 1
    assert os.sched_getaffinity(0) == before


class _Unplugged:
    """Wraps a real profiler and fails after n ops, as a phone pulled out mid-run would.
    Not a Profiler subclass: everything it does not override is the wrapped profiler's
    (``__getattr__``), which a subclass would answer with the base class's defaults."""

    def __init__(self, inner, fail_after, exc):
        self.inner, self.fail_after, self.exc, self.calls = inner, fail_after, exc, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def measure_op_full(self, op):
        self.calls += 1
        if self.calls > self.fail_after:
            raise self.exc
        return self.inner.measure_op_full(op)

    def measure_op(self, op):
        return self.measure_op_full(op).stats


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), ProfileError("device gone")])
def test_interrupted_profile_keeps_measurements_and_resumes(tmp_path, export_cache_dir, exc):
    ops = get_space("elasticvit").ops(elasticvit_named()["elastic_T1"])
    ops = list({op.key: op for op in ops}.values())
    path = tmp_path / "table.pkl"
    with OrtProfiler(_cfg(), export_cache_dir) as prof:
        # the sentinel baseline takes the first 4 calls; then 7 ops succeed before the "unplug"
        with pytest.raises(type(exc)):
            profile_ops(_Unplugged(prof, 11, exc), ops, path, progress=False)
        saved = LatencyTable.load(path)
        assert len(saved) == 7
        counting = _Unplugged(prof, 10**6, None)
        table = profile_ops(counting, ops, path, progress=False)
    assert len(table) == len(ops)
    assert counting.calls == 4 + len(ops) - 7  # sentinel baseline + only the missing ops
    # kept, not redone: the same ratios to the reference, at the table's (updated) reference ms
    assert all(table.ratios[k] == v for k, v in saved.ratios.items())
    assert all(table.entries[k].median_ms == pytest.approx(v.median * table.reference_ms)
               for k, v in saved.ratios.items())


def test_protocol_mismatch_is_refused(tmp_path, export_cache_dir):
    ops = get_space("elasticvit").ops(elasticvit_named()["elastic_T1"])[:2]
    path = tmp_path / "table.pkl"
    with OrtProfiler(_cfg(), export_cache_dir) as prof:
        profile_ops(prof, ops, path, progress=False)
    with OrtProfiler(_cfg(context="isolated"), export_cache_dir) as prof:
        with pytest.raises(ProfileError, match="pass --fresh"):
            profile_ops(prof, ops, path, progress=False)
        t = profile_ops(prof, ops, path, fresh=True, progress=False)
    assert t.meta["protocol"]["context"] == "isolated"


def test_drift_is_detected_and_recent_ops_remeasured(tmp_path):
    """The driver's drift logic, with a stand-in profiler whose sentinel reads 50% slow once
    (as a throttled phone would); timings here are synthetic, the driver is the real one."""
    from hwnas.latency.stats import Stats
    from hwnas.profilers import Measurement, Profiler
    from hwnas.profilers.run import pick_sentinel

    ops = list({o.key: o for o in get_space("elasticvit").ops(
        elasticvit_named()["elastic_T1"])}.values())
    sentinel = pick_sentinel(ops)

    class Throttled(Profiler):
        def __init__(self):
            self.calls = []

        def meta(self):
            return {"device": "stand-in"}

        def protocol(self):
            return {"runtime": "stand-in"}

        def measure_op_full(self, op):
            self.calls.append(op.key)
            ms = op.macs() / 1e7
            # calls 1-4 take the baseline, 5-9 the first five ops, call 10 is the first check
            if len(self.calls) == 10:
                assert op.key == sentinel.key
                ms *= 1.5
            return Measurement(Stats.from_samples([ms] * 3))

    prof = Throttled()
    table = profile_ops(prof, ops, tmp_path / "t.pkl", sentinel_every=5, drift_tolerance=0.3,
                        cooldown_s=0.01, progress=False)
    (event,) = table.meta["drift_events"]
    assert event["action"] == "re-measured" and event["drift"] == pytest.approx(0.5)
    assert prof.calls[10] == sentinel.key  # re-checked after the cool-down ...
    assert prof.calls[11:16] == [o.key for o in ops[:5]]  # ... then the 5 ops re-measured
