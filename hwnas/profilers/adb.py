"""The adb profiler: TFLite ``benchmark_model`` on an Android phone's CPU.

Protocol for one op: export the block to .tflite (cached by key), push it (once: remote names
carry a content hash), check the phone is cool, then run

    taskset MASK benchmark_model --graph=M --num_threads=T --warmup_runs=W --num_runs=R
        --use_xnnpack=B --enable_op_profiling=true --min_secs=0 --warmup_min_secs=0

and parse its output (benchmark_output.py). ``min_secs=0`` makes the runs exactly ``runs``
rather than "at least one second", so a table of 670 blocks takes minutes, not an hour. Each
block runs in its own process, isolated (nn-Meter's protocol); what that costs against a whole
network is for the predictor's calibration, and the per-call overhead (a one-op model) is
subtracted from each block as on the other runtimes.

Between measurements the profiler reads the pinned cores' clocks and the thermal zones; when the
phone is throttling it waits for it to cool, and every wait is recorded in the table's meta.

Drift (``reference: true``): each block's benchmark_model run sits between two runs of the
reference network's .tflite in the same adb session (reference, block, reference; the reference
after one block is the one before the next, unless the phone had to cool down in between), and
the block's ratio to their mean is kept beside its ms. A phone's clocks move with its
temperature, and the reference moves with them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import shlex
import tempfile
import threading
import time
from pathlib import Path

from hwnas import __version__
from hwnas.device_configs import DeviceConfig
from hwnas.errors import DeviceError, ProfileError
from hwnas.latency.stats import RatioStats
from hwnas.ops import OpSpec
from hwnas.profilers import KernelJob, Measurement, Profiler, android
from hwnas.profilers.adb_conn import AdbLink, connect
from hwnas.profilers.benchmark_output import BenchmarkOutput, parse_benchmark_output
from hwnas.profilers.drift import plan_of, protocol_reference
from hwnas.profilers.export import export_tflite, tflite_for_op, tflite_overhead_model

log = logging.getLogger(__name__)
BIN_NAME = "android_aarch64_benchmark_model"
REFERENCE_MAX_AGE_S = 10.0  # older than this, a reference run no longer describes the phone
BIN_GUIDANCE = (
    "download TFLite's benchmark tool for Android ({name}: "
    "https://ai.google.dev/edge/litert/models/measurement#native_benchmark_binary, or build "
    "//tensorflow/lite/tools/benchmark:benchmark_model for android_arm64), then pass "
    "--benchmark-bin PATH, set benchmark_bin: in the device config, or put it at {default}")


def default_benchmark_bin() -> Path:
    from hwnas.home import hwnas_home

    return hwnas_home() / "bin" / BIN_NAME


def resolve_benchmark_bin(cfg: DeviceConfig) -> Path:
    """The host path of benchmark_model, or DeviceError saying where to get it."""
    path = Path(cfg.benchmark_bin).expanduser() if cfg.benchmark_bin else default_benchmark_bin()
    if not path.is_file():
        what = f"benchmark_bin {path} does not exist" if cfg.benchmark_bin else \
            f"{cfg.name} needs TFLite's benchmark_model binary"
        raise DeviceError(f"{what}: " + BIN_GUIDANCE.format(name=BIN_NAME,
                                                            default=default_benchmark_bin()))
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class AdbProfiler(Profiler):
    """One phone. Use as a context manager: entering connects, reads the phone and pushes the
    binary; a phone that disappears later raises ProfileError (the driver saves the table)."""

    runtime = "tflite-benchmark_model"

    def __init__(self, cfg: DeviceConfig, cache_dir: Path, serial: str = "",
                 export_lock: threading.Lock | None = None):
        self.cfg, self.cache_dir = cfg, Path(cache_dir)
        self.wanted_serial = serial or cfg.serial
        self.bin = resolve_benchmark_bin(cfg)
        self.bin_sha = _sha256(self.bin)
        self.export_lock = export_lock or threading.Lock()
        self.link: AdbLink | None = None
        self.facts: dict = {}
        self.cpus: list[int] | None = None
        self.reference_khz: dict[int, int] = {}
        self.call_overhead_ms = 0.0
        self.generation, self.has_median = "?", False
        self._events: list[dict] = []
        self._hashes: dict[Path, str] = {}
        self.plan = plan_of(cfg)
        self._reference_path: Path | None = None
        self._last_reference: tuple[float, float] | None = None  # (monotonic s, ms)

    @property
    def serial(self) -> str:
        return self.link.serial if self.link else self.wanted_serial

    @property
    def remote_bin(self) -> str:
        return f"{self.cfg.remote_dir}/benchmark_model-{self.bin_sha[:12]}"

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "AdbProfiler":
        self.link = connect(self.wanted_serial)
        self.facts = android.read_facts(self.link)
        if self.facts["abi"] not in ("?", "arm64-v8a", "x86_64"):
            log.warning("%s reports ABI %s; benchmark_bin must be built for it",
                        self.serial, self.facts["abi"])
        cores, _ = android.read_state(self.link)
        self.cpus = android.phone_cpus(self.cfg.affinity, self.cfg.threads, cores)
        self.reference_khz = {c: cores[c].cur_khz for c in (self.cpus or [])}
        self.link.push(self.bin, self.remote_bin, mode=0o755)
        self.link.check(f"chmod 755 {shlex.quote(self.remote_bin)}")
        probe, _ = self._run(self._overhead_model())
        self.call_overhead_ms = probe.stats().median_ms
        self.generation, self.has_median = probe.generation, probe.has_median
        if self.plan is not None:
            from hwnas.profilers.reference import reference_error, reference_tflite

            try:
                with self.export_lock:
                    self._reference_path = reference_tflite(self.cache_dir)
                self._reference_run()
            except ProfileError as e:  # benchmark_model cannot run it on this phone
                raise reference_error(self.cfg.name, e) from None
        return self

    def __exit__(self, *exc) -> None:
        self.link = None
        self._last_reference = None

    def meta(self) -> dict:
        return {
            "device": self.cfg.name, "runtime": self.runtime,
            "runtime_version": f"benchmark_model sha256:{self.bin_sha[:16]} "
                               f"({self.generation} output)",
            "benchmark_bin": self.bin.name, "benchmark_bin_sha256": self.bin_sha,
            "threads": self.cfg.threads, "affinity": self.cpus,
            "affinity_mask": android.mask_hex(self.cpus) if self.cpus else "none",
            "batch": 1, "precision": "fp32", "use_xnnpack": self.cfg.use_xnnpack,
            "warmup": self.cfg.warmup, "runs": self.cfg.runs, "op_profiling": True,
            "context": "isolated (one benchmark_model process per block)",
            "median_source": "printed median" if self.has_median else
                             "mean: this benchmark_model prints no median",
            "call_overhead_ms": self.call_overhead_ms, "serial": self.serial,
            "phone": dict(self.facts), "hwnas_version": __version__,
            "latency_unit": "ms per batch",
        }

    def protocol(self) -> dict:
        """Settings that must match to extend a table: another phone model, mask or binary
        build measures different numbers."""
        return {"runtime": self.runtime, "threads": self.cfg.threads,
                "affinity": self.cpus, "use_xnnpack": self.cfg.use_xnnpack,
                "benchmark_bin_sha256": self.bin_sha[:16],
                "phone_model": self.facts.get("model", "?"), "batch": 1, "precision": "fp32",
                **protocol_reference(self.plan)}

    def drain_events(self) -> list[dict]:
        """Cool-down waits since the last call (the driver appends them to the table's meta)."""
        events, self._events = self._events, []
        return events

    # --- running -----------------------------------------------------------------------------
    def _overhead_model(self) -> Path:
        with self.export_lock:
            return tflite_overhead_model(self.cache_dir)

    def _remote_model(self, path: Path) -> str:
        if path not in self._hashes:
            self._hashes[path] = _sha256(path)[:12]
        remote = f"{self.cfg.remote_dir}/models/{path.stem}-{self._hashes[path]}.tflite"
        self.link.push(path, remote)
        return remote

    def command(self, remote_model: str) -> str:
        pin = f"taskset {android.mask_hex(self.cpus)} " if self.cpus else ""
        xnn = "true" if self.cfg.use_xnnpack else "false"
        return (f"{pin}{shlex.quote(self.remote_bin)} --graph={shlex.quote(remote_model)} "
                f"--num_threads={self.cfg.threads} --warmup_runs={self.cfg.warmup} "
                f"--num_runs={self.cfg.runs} --use_xnnpack={xnn} --enable_op_profiling=true "
                f"--min_secs=0 --warmup_min_secs=0")

    def _run(self, local_model: Path) -> tuple[BenchmarkOutput, dict | None]:
        """Push, cool down if needed, run; the output and the cool-down event (None: none)."""
        if self.link is None:
            raise ProfileError("AdbProfiler used outside its 'with' block")
        remote = self._remote_model(local_model)
        wait = self.wait_until_cool()
        rc, out = self.link.shell(self.command(remote))
        if rc != 0:
            tail = " | ".join(line for line in out.strip().splitlines()[-4:])
            raise ProfileError(f"benchmark_model failed on {self.serial} for "
                               f"{local_model.name} (exit {rc}): {tail}")
        return parse_benchmark_output(out), wait

    def wait_until_cool(self) -> dict | None:
        """Read clocks and temperatures; while throttled, wait (bounded) and record the wait.
        Returns the recorded event, or None when the phone was cool."""
        cores, zones = android.read_state(self.link)
        reason = android.throttle_reason(cores, zones, self.cpus, self.reference_khz, self.cfg)
        if reason is None:
            return None
        event = {"at": _now(), "serial": self.serial, "reason": reason,
                 "cur_khz": {f"cpu{c}": cores[c].cur_khz for c in self.cpus or [] if c in cores}}
        log.warning("%s is throttling (%s); waiting for it to cool", self.serial, reason)
        t0 = time.monotonic()
        while reason is not None and time.monotonic() - t0 < self.cfg.cool_max_s:
            time.sleep(self.cfg.cool_poll_s)
            cores, zones = android.read_state(self.link)
            reason = android.throttle_reason(cores, zones, self.cpus, self.reference_khz,
                                             self.cfg)
        event.update(waited_s=round(time.monotonic() - t0, 2), cooled=reason is None,
                     still=reason or "")
        if reason is not None:
            log.warning("%s still throttling after %.0f s (%s); measuring anyway, recorded in "
                        "the table's meta", self.serial, self.cfg.cool_max_s, reason)
        self._events.append(event)
        return event

    # --- measuring ---------------------------------------------------------------------------
    def measure_op_full(self, op: OpSpec) -> Measurement:
        """The op's Stats, flagged when the phone was still throttling (the driver keeps the
        flag in the table: a number measured hot is kept, never hidden)."""
        with self.export_lock:  # litert-torch conversion is not made for several threads
            path = tflite_for_op(op, self.cache_dir)
        return self._measure_file(path, self.call_overhead_ms)

    def _reference_run(self) -> float:
        out, _ = self._run(self._reference_path)
        ms = out.stats().median_ms
        self._last_reference = (time.monotonic(), ms)
        return ms

    def _measure_file(self, path: Path, overhead_ms: float) -> Measurement:
        """One benchmark_model run of ``path``, between reference runs when the plan says so.

        The reference run after one item is the one before the next, while it is fresh."""
        last = self._last_reference
        fresh = last is not None and time.monotonic() - last[0] < REFERENCE_MAX_AGE_S
        before = last[1] if fresh else None
        if self.plan is not None and before is None:
            before = self._reference_run()
        out, wait = self._run(path)
        hot = wait is not None and not wait["cooled"]
        flag = f"measured while throttling: {wait['still']}" if hot else ""
        stats = out.stats().shifted(-overhead_ms)
        if self.plan is None:
            return Measurement(stats, None, flag)
        after = self._reference_run()
        # after a cool-down the reference before the block described a hotter phone
        ref = after if wait is not None else 0.5 * (before + after)
        ratio = RatioStats(*(v / ref for v in (stats.median_ms, stats.mean_ms, stats.std_ms,
                                                 stats.p10_ms, stats.p90_ms)), stats.n)
        return Measurement(stats, None, flag, ratio=ratio, reference_ms=ref)

    def measure_model_full(self, module, input_shape) -> Measurement:
        """A whole network with NHWC input, end to end (overhead included)."""
        with tempfile.TemporaryDirectory() as tmp:
            with self.export_lock:
                path = export_tflite(module, input_shape, Path(tmp) / "model.tflite",
                                     channels_last=True)
            m = self._measure_file(path, 0.0)
        remote = f"{self.cfg.remote_dir}/models/model-{self._hashes.pop(path)}.tflite"
        self.link.shell(f"rm -f {shlex.quote(remote)}")
        return m

    def measure_kernel_full(self, job: KernelJob) -> Measurement:
        """One kernel of any model as its own .tflite (hwnas.anymodel), in its own
        benchmark_model run, with the per-call overhead subtracted (as blocks)."""
        self.only_format(job.fmt, "tflite")
        self.only_hot(job)
        return self._measure_file(job.file(self.cache_dir / "kernels-tflite"),
                                  self.call_overhead_ms)

    def measure_file_full(self, path: Path, fmt: str, input_shape=None) -> Measurement:
        """A model file as given (a user's .tflite), end to end."""
        self.only_format(fmt, "tflite")
        return self._measure_file(Path(path), 0.0)

    def memory_bytes(self) -> int | None:
        """The phone's available memory (its /proc/meminfo), None when it does not say."""
        from hwnas.profilers.base import mem_available

        if self.link is None:
            return None
        try:
            return mem_available(self.link.check("cat /proc/meminfo"))
        except Exception:  # noqa: BLE001 - a phone that does not say: do not guess
            return None
