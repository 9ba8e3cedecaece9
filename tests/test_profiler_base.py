"""The one profiler base class: every kind's profiler subclasses it, defines exactly the
methods its kind's Capabilities claim, and a missing capability is one ProfileError line."""

import importlib
import re
from pathlib import Path

import numpy as np
import pytest

from hwnas.device_configs import load_device
from hwnas.devices import load_kinds
from hwnas.errors import DeviceError, ProfileError
from hwnas.profilers import CapabilityError, KernelJob, Measurement, Profiler
from hwnas.profilers.parallel import Fleet

# the profiler class each built-in kind's factory (profilers/factories.py) returns
CLASSES = {
    "onnxruntime": "hwnas.profilers.onnxrt:OrtProfiler",
    "tflite": "hwnas.profilers.litert:LiteRTProfiler",
    "adb": "hwnas.profilers.adb:AdbProfiler",
    "cuda": "hwnas.profilers.cuda:CudaProfiler",
    "ssh": "hwnas.profilers.ssh:SshProfiler",
}
# a capability of hwnas.devices.Capabilities -> the one method that provides it
METHODS = {"ops": "measure_op_full", "models": "measure_model_full",
           "kernels": "measure_kernel_full", "formats": "measure_file_full"}


def _class(spec: str) -> type:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _overrides(cls: type, method: str) -> bool:
    return getattr(cls, method) is not getattr(Profiler, method)


def test_every_built_in_live_kind_is_covered():
    live = {n for n, k in load_kinds().items()
            if k.profiler.startswith("hwnas.profilers.factories:")}
    assert live == set(CLASSES)


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_each_profiler_subclasses_the_base_and_defines_what_its_kind_claims(kind):
    cls, caps = _class(CLASSES[kind]), load_kinds()[kind].caps
    assert issubclass(cls, Profiler)
    for cap, method in METHODS.items():
        # both ways: a claimed capability is implemented, an unclaimed one left to the base
        assert _overrides(cls, method) == bool(getattr(caps, cap)), (kind, method)
    assert not getattr(cls, "__abstractmethods__", None)


def test_the_fleet_is_a_profiler_that_measures_what_one_phone_does():
    assert issubclass(Fleet, Profiler)
    for method in METHODS.values():
        assert _overrides(Fleet, method)


class _Bare(Profiler):
    """A profiler with no capability at all."""

    runtime = "bare-runtime"

    def __init__(self, cfg=None):
        self.cfg = cfg

    def meta(self):
        return {"device": self.device_name}

    def protocol(self):
        return {"runtime": self.runtime}


@pytest.mark.parametrize("call, what", [
    (lambda p: p.measure_op_full(None), "time single blocks"),
    (lambda p: p.measure_op(None), "time single blocks"),
    (lambda p: p.measure_model_full(None, (1, 3, 8, 8)), "time whole networks"),
    (lambda p: p.measure_model(None, (1, 3, 8, 8)), "time whole networks"),
    (lambda p: p.measure_file_full(Path("m.tflite"), "tflite"), "run tflite model files"),
    (lambda p: p.measure_kernel_full(KernelJob(b"", "tflite", "k")), "time single kernels"),
])
def test_a_missing_capability_is_one_profile_error_line(call, what):
    prof = _Bare(load_device("local-cpu"))
    with pytest.raises(ProfileError) as e:
        call(prof)
    assert isinstance(e.value, CapabilityError)
    assert str(e.value) == f"local-cpu (bare-runtime) cannot {what}"
    assert "\n" not in str(e.value)


def test_the_base_class_defaults():
    prof = _Bare()
    assert prof.device_name == "_Bare" and prof.plan is None and prof.members == ()
    assert prof.drain_events() == []
    mem = prof.memory_bytes()
    assert mem is None or mem > 0
    with prof as p:
        assert p is prof
    with pytest.raises(TypeError):  # meta and protocol are what every profiler must say
        type("NoMeta", (Profiler,), {})()


def test_a_format_the_runtime_does_not_run_is_one_line(tmp_path):
    from hwnas.profilers.onnxrt import OrtProfiler

    prof = OrtProfiler(load_device("local-cpu"), tmp_path)  # not entered: nothing is timed
    with pytest.raises(CapabilityError, match=r"^local-cpu \(onnxruntime\) cannot run tflite "
                                              r"models: it runs onnx$"):
        prof.measure_file_full(tmp_path / "m.tflite", "tflite")
    with pytest.raises(CapabilityError, match="cannot run tflite models"):
        prof.measure_kernel_full(KernelJob(b"", "tflite", "k"))


def test_kernel_job_carries_what_each_runtime_needs(tmp_path):
    with pytest.raises(ValueError, match="needs feeds"):
        KernelJob(b"onnx", "onnx", "Conv:1")
    with pytest.raises(ValueError, match="one of"):
        KernelJob(b"x", "pt", "k")
    job = KernelJob(b"tflite bytes", "tflite", "CONV_2D:a/b")
    path = job.file(tmp_path)
    assert path == tmp_path / "CONV_2D_a-b.tflite" and path.read_bytes() == b"tflite bytes"
    path.write_bytes(b"kept")  # written once: a rerun finds the cached file
    assert job.file(tmp_path).read_bytes() == b"kept"
    onnx = KernelJob(b"onnx", "onnx", "k", {"x": np.zeros(2, np.float32)})
    assert onnx.feeds["x"].shape == (2,)


def test_make_profiler_refuses_a_kind_whose_profiler_is_not_a_profiler(monkeypatch):
    from types import SimpleNamespace

    import hwnas.devices
    from hwnas.profilers import make_profiler

    kind = SimpleNamespace(name="duck", profiler="another_package:duck",
                           make_profiler=lambda *a: object())  # another package's kind
    monkeypatch.setattr(hwnas.devices, "kind_of", lambda cfg: kind)
    with pytest.raises(DeviceError, match="not a hwnas.profilers.Profiler subclass"):
        make_profiler(load_device("local-cpu"), Path("."))


def test_measurement_is_what_every_full_method_returns():
    from hwnas.latency.stats import Stats

    m = Measurement(Stats.from_samples([1.0, 2.0, 3.0]))
    assert m.energy is None and m.flag == "" and m.ratio is None


def test_no_caller_asks_a_profiler_what_it_has():
    """Callers call the capability's method (a device without it says so) or ask the kind;
    never getattr/hasattr on a profiler."""
    root = Path(__file__).resolve().parents[1] / "hwnas"
    pattern = re.compile(r"(getattr|hasattr)\((prof|profiler|phone|self\.prof)\b")
    hits = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_a_kernel_job_names_its_timing_context():
    assert KernelJob(b"t", "tflite", "k").context == "hot"
    assert KernelJob(b"t", "tflite", "k", context="network").context == "network"
    with pytest.raises(ValueError, match="timed in one of"):
        KernelJob(b"t", "tflite", "k", context="cold")


def test_only_a_network_context_kernel_takes_an_eviction_read():
    assert KernelJob(b"t", "tflite", "k").evict_bytes is None  # the runtime's own default
    assert KernelJob(b"t", "tflite", "k", context="network", evict_bytes=0).evict_bytes == 0
    with pytest.raises(ValueError, match="evict_bytes"):
        KernelJob(b"t", "tflite", "k", evict_bytes=1 << 20)  # hot: nothing is evicted
    with pytest.raises(ValueError, match="evict_bytes"):
        KernelJob(b"t", "tflite", "k", context="network", evict_bytes=-1)
