"""The ssh profiler: a Linux board (a Raspberry Pi, a Jetson, a remote Xeon) over SSH.

Entering connects once (asyncssh, ssh_conn.py; host keys always checked), copies hwnas's
timing runner (ssh_runner.py, one file) to the board's ``workdir`` and starts it with the
board's ``python``:

    [taskset -c CPUS] PYTHON WORKDIR/ssh_runner-SHA.py serve SETTINGS_JSON

The runner holds a lock on the board for its life, imports the runtime once, loads the
reference network once and then answers one request a line: time this model file. Models go
to WORKDIR/models/ over SFTP, named by their content hash, and are copied only when the board
lacks a file of that name and size (so a rerun copies nothing it copied before).

Each item is timed on the board between runs of the reference network (the drift-free
protocol of drift.py, run by the runner so the reference and the item see the same second of
the board); the host turns the per-call samples into Stats and ratios. Hot boards: the runner
waits for its thermal zones to cool (bounded) and says so; a wait that did not cool flags the
number, and every wait goes into the table's meta.

A connection dropped mid-profile raises ProfileError: the driver (run.py) saves what was
measured and the rerun resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import tempfile
from pathlib import Path

from hwnas import __version__
from hwnas.device_configs import DeviceConfig
from hwnas.errors import DeviceError, ProfileError
from hwnas.latency.stats import RatioStats, Stats
from hwnas.ops import OpSpec
from hwnas.profilers import KernelJob, Measurement, Profiler
from hwnas.profilers.drift import Interleaved, plan_of, protocol_reference, runner_plan
from hwnas.profilers.ssh_conn import SshLink, Target

log = logging.getLogger(__name__)
RUNNER = Path(__file__).with_name("ssh_runner.py")
# what the runner's runtime is called in tables (the local profilers' names) and what it runs
RUNTIME_NAMES = {"onnxruntime": "onnxruntime", "tflite": "litert",
                 "benchmark_model": "tflite-benchmark_model"}
INSTALL_HINTS = {"onnxruntime": "pip install onnxruntime",
                 "tflite": "pip install ai-edge-litert (or tflite-runtime)",
                 "benchmark_model": "copy TFLite's benchmark_model there"}
IMPORTS = {"onnxruntime": "onnxruntime", "tflite": "ai_edge_litert or tflite_runtime",
           "benchmark_model": "benchmark_model"}  # as the runner names them


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def reachable(cfg: DeviceConfig) -> str | None:
    """Why the board cannot be used now (no connection, a refused key, no python or runtime
    there), or None. Connects once and runs one short command."""
    link = SshLink(Target.of(cfg))
    try:
        link.open()
    except DeviceError as e:
        return str(e)
    try:
        module = {"onnxruntime": "onnxruntime", "tflite": None}.get(cfg.runtime)
        if cfg.runtime == "benchmark_model":
            argv = ["test", "-x", cfg.benchmark_bin]
        elif module:
            argv = [cfg.python, "-c", f"import {module}"]
        else:  # LiteRT, or the older tflite_runtime
            argv = [cfg.python, "-c", "import importlib.util as u, sys; sys.exit(not ("
                    "u.find_spec('ai_edge_litert') or u.find_spec('tflite_runtime')))"]
        rc, out, err = link.shell(argv, timeout=60)
        if rc != 0:
            return _runtime_missing(cfg, rc, (err or out).strip())
    except ProfileError as e:
        return str(e)
    finally:
        link.close()
    return None


def _runtime_missing(cfg: DeviceConfig, rc: int, detail: str) -> str:
    if rc == 127:
        return (f"{cfg.name} ({cfg.host}:{cfg.port}) has no python {cfg.python!r} (set python: "
                f"in the yaml)")
    last = detail.splitlines()[-1] if detail else f"exit {rc}"
    return missing_runtime(cfg, IMPORTS.get(cfg.runtime, cfg.runtime), last)


def missing_runtime(cfg: DeviceConfig, what: str, detail: str) -> str:
    """One line naming the runtime, the board and its python (check and measure say the same)."""
    return (f"{what} is missing on {cfg.name} ({cfg.host}:{cfg.port}) for {cfg.python} "
            f"({detail}); {INSTALL_HINTS[cfg.runtime]} there")


def _taskset_prefix(affinity: str) -> list[str]:
    """taskset for an explicit CPU list or mask; "auto" is picked by the runner, which knows
    the board's cores and their clocks; "none" leaves the scheduler free."""
    spec = str(affinity).strip().lower()
    if spec in ("auto", "none"):
        return []
    if spec.startswith("0x"):
        return ["taskset", spec[2:]]
    return ["taskset", "-c", spec]


class SshProfiler(Profiler):
    """One board. Use as a context manager: entering connects, starts the runner and times the
    per-call overhead and the reference; leaving ends the runner (and its board lock)."""

    def __init__(self, cfg: DeviceConfig, cache_dir: Path):
        self.cfg, self.cache_dir = cfg, Path(cache_dir)
        self.runtime = RUNTIME_NAMES[cfg.runtime]
        self.fmt = "onnx" if cfg.runtime == "onnxruntime" else "tflite"
        self.plan = plan_of(cfg)
        self.link: SshLink | None = None
        self.proc = None
        self.workdir = ""
        self.facts: dict = {}
        self.call_overhead_ms = 0.0
        self._kernel_overhead_ms: float | None = None
        self._present: set[str] = set()  # remote files known to be there this session
        self._hashes: dict[Path, str] = {}
        self._events: list[dict] = []

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "SshProfiler":
        self.link = SshLink(Target.of(self.cfg)).open()
        try:
            self.workdir = self._resolve_workdir()
            self._start_runner()
            self.call_overhead_ms = self._overhead()
            if self.plan is not None:
                self._load_reference()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.close()
            self.proc = None
        if self.link is not None:
            self.link.close()
            self.link = None

    @property
    def where(self) -> str:
        return f"{self.cfg.name} ({self.cfg.host}:{self.cfg.port})"

    def _resolve_workdir(self) -> str:
        """An absolute workdir: SFTP paths do not expand ~, quoted shell arguments neither."""
        wd = self.cfg.workdir
        if wd.startswith("~"):
            rc, home, _ = self.link.shell("printf %s \"$HOME\"")
            if rc != 0 or not home.startswith("/"):
                raise DeviceError(f"{self.where}: cannot find the home folder for workdir {wd}")
            wd = home.rstrip("/") + wd[1:]
        rc, _, err = self.link.shell(["mkdir", "-p", f"{wd}/models"])
        if rc != 0:
            raise DeviceError(f"{self.where}: cannot create workdir {wd}: {err.strip()}")
        return wd.rstrip("/")

    def _settings(self) -> dict:
        from hwnas.locks import lock_timeout_s

        c = self.cfg
        return {"workdir": self.workdir, "runtime": c.runtime, "threads": c.threads,
                "affinity": str(c.affinity).strip().lower(), "context": c.context,
                "flush_mb": c.flush_mb, "use_xnnpack": c.use_xnnpack,
                "benchmark_bin": c.benchmark_bin, "thermal_zones": c.thermal_zones,
                "thermal_limit_c": c.thermal_limit_c, "cool_poll_s": c.cool_poll_s,
                "cool_max_s": c.cool_max_s, "lock_timeout_s": lock_timeout_s()}

    def _start_runner(self) -> None:
        sha = _sha(RUNNER)
        remote = f"{self.workdir}/ssh_runner-{sha[:12]}.py"
        self._upload(RUNNER, remote)
        argv = [*_taskset_prefix(self.cfg.affinity), self.cfg.python, remote, "serve",
                json.dumps(self._settings())]
        self.proc = self.link.start(" ".join(shlex.quote(a) for a in argv))
        while True:
            line = self.proc.read(timeout=None)
            msg = self._parse(line, starting=True)
            if "waiting" in msg:  # another host is timing on this board: its lock says who
                log.warning("%s is busy (%s); waiting for it", self.where, msg["waiting"])
                continue
            if "error" in msg:
                raise self._start_error(msg)
            self.facts = msg["hello"]
            return

    def _start_error(self, msg: dict) -> DeviceError:
        if msg.get("kind") == "runtime":
            return DeviceError(missing_runtime(self.cfg, msg["runtime"], msg["error"]))
        return DeviceError(f"{self.where}: {msg['error']}")

    def _parse(self, line: str, starting: bool = False) -> dict:
        if not line:
            status = self.proc.exit_status()
            tail = self.proc.stderr_tail()
            if starting and status is not None:
                if status == 127:
                    raise DeviceError(f"{self.where}: cannot start {self.cfg.python!r} there "
                                      f"({tail or 'not found'}); set python: in the yaml")
                raise DeviceError(f"{self.where}: the runner did not start (exit {status}): "
                                  f"{tail or 'no output'}")
            raise ProfileError(f"board {self.cfg.host}:{self.cfg.port} stopped answering "
                               f"(the connection or the runner ended"
                               + (f": {tail}" if tail else "")
                               + "); what was measured is kept: rerun to resume")
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise ProfileError(f"{self.where}: the runner answered {line.strip()[:120]!r}, "
                               f"not JSON") from None

    def _request(self, req: dict, what: str) -> dict:
        if self.proc is None:
            raise ProfileError("SshProfiler used outside its 'with' block")
        self.proc.write(json.dumps(req))
        msg = self._parse(self.proc.read())
        if "error" in msg:
            # ProfileError: the driver saves the table before it goes up
            raise ProfileError(f"{self.where} cannot run {what}: {msg['error']}")
        return msg

    # --- files -------------------------------------------------------------------------------
    def _upload(self, local: Path, remote: str) -> str:
        if remote in self._present:
            return remote
        size = local.stat().st_size
        if self.link.remote_size(remote) != size:
            self.link.put(local, remote)
        self._present.add(remote)
        return remote

    def _remote_model(self, path: Path) -> str:
        path = Path(path)
        if path not in self._hashes:
            self._hashes[path] = _sha(path)[:12]
        return self._upload(path, f"{self.workdir}/models/{path.stem}-{self._hashes[path]}"
                                  f"{path.suffix}")

    # --- facts ---------------------------------------------------------------------------------
    def meta(self) -> dict:
        f = self.facts
        return {
            "device": self.cfg.name, "runtime": self.runtime,
            "runtime_version": f.get("runtime_version", "?"), "transport": "ssh",
            "threads": self.cfg.threads, "affinity": f.get("cpus"), "batch": 1,
            "precision": "fp32", "warmup": self.cfg.warmup, "runs": self.cfg.runs,
            "context": self.cfg.context if self.cfg.runtime != "benchmark_model" else
            "isolated (one benchmark_model process per item)",
            "flush_mb": self.cfg.flush_mb if self.cfg.context == "flush" else 0,
            "use_xnnpack": self.cfg.use_xnnpack if self.fmt == "tflite" else None,
            "call_overhead_ms": self.call_overhead_ms, "cpu": f.get("cpu", "?"),
            "host": self.cfg.host, "port": self.cfg.port,
            "board": {"hostname": f.get("hostname"), "kernel": f.get("kernel"),
                      "python": f.get("python"), "cores": f.get("cores"),
                      "max_temp_c": f.get("max_temp_c"), "zones": f.get("zones")},
            "hwnas_version": __version__, "latency_unit": "ms per batch",
        }

    def protocol(self) -> dict:
        """Settings that must match to extend a table: another board, runtime build, core set
        or context measures different numbers."""
        p = {"runtime": self.runtime, "transport": "ssh", "board_cpu": self.facts.get("cpu"),
             "runtime_version": self.facts.get("runtime_version"),
             "threads": self.cfg.threads, "affinity": self.facts.get("cpus"),
             "context": self.cfg.context, "batch": 1, "precision": "fp32",
             **protocol_reference(self.plan)}
        if self.fmt == "tflite":
            p["use_xnnpack"] = self.cfg.use_xnnpack
        return p

    def drain_events(self) -> list[dict]:
        """Cool-down waits since the last call (the driver appends them to the table's meta)."""
        events, self._events = self._events, []
        return events

    def memory_bytes(self) -> int | None:
        """The board's available memory (its /proc/meminfo), None when it does not say."""
        from hwnas.profilers.base import mem_available

        if self.link is None:
            return None
        try:
            return mem_available(self.link.check("cat /proc/meminfo"))
        except Exception:  # noqa: BLE001 - a board that does not say: do not guess
            return None

    # --- the models every session needs ------------------------------------------------------
    def _overhead_model(self) -> Path:
        if self.fmt == "tflite":
            from hwnas.profilers.export import tflite_overhead_model

            return tflite_overhead_model(self.cache_dir)
        path = self.cache_dir / "onnx" / "_call_overhead.onnx"
        if not path.exists():
            from onnx import TensorProto, helper

            from hwnas.latency.safeio import atomic_write_bytes

            g = helper.make_graph(
                [helper.make_node("Identity", ["input"], ["output"])], "noop",
                [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
                [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1])])
            model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
            atomic_write_bytes(path, model.SerializeToString())
        return path

    def _overhead(self) -> float:
        """Median time of a call that does nothing (subtracted from blocks and kernels)."""
        m = self._time(self._overhead_model(), (1,), "isolated", reference=False)
        return m.stats.median_ms

    def _load_reference(self) -> None:
        from hwnas.profilers.reference import (reference_error, reference_model, reference_onnx,
                                               reference_tflite)

        try:
            if self.fmt == "onnx":
                path, shape = reference_onnx(self.cache_dir), list(reference_model()[1])
            else:
                path, shape = reference_tflite(self.cache_dir), None
            self._request({"op": "reference", "path": self._remote_model(path),
                           "shape": shape}, "the reference network")
        except ProfileError as e:
            raise reference_error(self.cfg.name, e) from None

    # --- timing -------------------------------------------------------------------------------
    def _time(self, path: Path, shape, mode: str, overhead_ms: float = 0.0,
              network: bool = False, reference: bool = True, feeds: Path | None = None
              ) -> Measurement:
        remote = self._remote_model(path)
        plan = self.plan if reference else None
        if plan is not None and network:
            plan = plan.for_networks(self.cfg.runs, self.cfg.reference_batches)
        req = {"op": "measure", "path": remote, "mode": mode,
               "shape": list(shape) if shape is not None else None,
               "warmup": self.cfg.warmup, "runs": self.cfg.runs,
               "feeds": self._remote_model(feeds) if feeds is not None else None,
               "plan": runner_plan(plan)}
        msg = self._request(req, Path(path).name)
        flag = self._thermal(msg.get("thermal"))
        if self.cfg.runtime == "benchmark_model":
            return self._benchmark_measurement(msg, overhead_ms, flag)
        import numpy as np

        samples = np.asarray(msg["samples_ms"], dtype=float)
        if "local_reference_ms" not in msg:
            return Measurement(Stats.from_samples(samples - overhead_ms), flag=flag)
        timing = Interleaved.from_runner(msg)
        return Measurement(timing.stats(overhead_ms), flag=flag,
                           ratio=timing.ratio(overhead_ms), reference_ms=timing.reference_ms)

    def _benchmark_measurement(self, msg: dict, overhead_ms: float, flag: str) -> Measurement:
        from hwnas.profilers.benchmark_output import parse_benchmark_output

        stats = parse_benchmark_output(msg["output"]).stats().shifted(-overhead_ms)
        if "reference_before" not in msg:
            return Measurement(stats, flag=flag)
        ref = 0.5 * sum(parse_benchmark_output(msg[k]).stats().median_ms
                        for k in ("reference_before", "reference_after"))
        ratio = RatioStats(*(v / ref for v in (stats.median_ms, stats.mean_ms, stats.std_ms,
                                                 stats.p10_ms, stats.p90_ms)), stats.n)
        return Measurement(stats, flag=flag, ratio=ratio, reference_ms=ref)

    def _thermal(self, wait: dict | None) -> str:
        if not wait:
            return ""
        import datetime as dt

        at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self._events.append({"at": at, "host": self.cfg.host, **wait})
        if wait["cooled"]:
            return ""
        log.warning("%s still hot after %.0f s (%s); measured anyway, recorded in the table's "
                    "meta", self.where, wait["waited_s"], wait["still"])
        return f"measured while hot: {wait['still']}"

    # --- measuring -----------------------------------------------------------------------------
    def _op_file(self, op: OpSpec) -> Path:
        if self.fmt == "onnx":
            from hwnas.profilers.export import onnx_for_op

            return onnx_for_op(op, self.cache_dir)
        from hwnas.profilers.export import tflite_for_op

        return tflite_for_op(op, self.cache_dir)

    def measure_op_full(self, op: OpSpec) -> Measurement:
        """One block in the config's context, the per-call overhead subtracted."""
        return self._time(self._op_file(op), op.input_shape(), self.cfg.context,
                          self.call_overhead_ms)

    def measure_model_full(self, module, input_shape) -> Measurement:
        """A whole network end to end (overhead included); its file is removed afterwards."""
        from hwnas.profilers.export import export_onnx, export_tflite

        with tempfile.TemporaryDirectory() as tmp:
            if self.fmt == "onnx":
                path = export_onnx(module, input_shape, Path(tmp) / "model.onnx")
            else:  # NHWC input, as the blocks and the phones
                path = export_tflite(module, input_shape, Path(tmp) / "model.tflite",
                                     channels_last=True)
            try:
                return self._time(path, input_shape if self.fmt == "onnx" else None,
                                  "isolated", network=True)
            finally:
                remote = self._remote_model(path)
                self._hashes.pop(path, None)
                self._present.discard(remote)
                if self.link is not None:
                    try:
                        self.link.remove(remote)
                    except ProfileError:  # the connection went: the measurement says so
                        pass

    def measure_file_full(self, path: Path, fmt: str, input_shape=None) -> Measurement:
        """A user's model file as given, end to end: ONNX at its input shape, or a .tflite
        (whose shape is the file's), whichever the board's runtime runs."""
        if fmt != self.fmt:
            raise ProfileError(f"{self.cfg.name} runs {self.cfg.runtime}: give "
                               + ("a .tflite" if self.fmt == "tflite" else "an ONNX file"))
        return self._time(Path(path), input_shape if fmt == "onnx" else None, "isolated",
                          network=True)

    def measure_kernel_full(self, job: KernelJob) -> Measurement:
        """One kernel of any model (hwnas.anymodel), hot, every input fed, the per-call
        overhead subtracted: an ONNX model and its feeds (onnxruntime), or a .tflite."""
        self.only_format(job.fmt, self.fmt)
        self.only_hot(job)
        if self.fmt == "tflite":
            return self._time(job.file(self.cache_dir / "kernels-tflite"), None, "kernel",
                              self.call_overhead_ms)
        import io

        import numpy as np

        from hwnas.latency.safeio import atomic_write_bytes

        folder = self.cache_dir / "ssh-kernels"
        buf = io.BytesIO()
        np.savez(buf, **job.feeds)
        files = []
        for data, ext in ((bytes(job.model), "onnx"), (buf.getvalue(), "npz")):
            p = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.{ext}"
            if not p.exists():
                atomic_write_bytes(p, data)
            files.append(p)
        if self._kernel_overhead_ms is None:  # a bound, hot call of nothing
            noop = self._overhead_model()
            xs = io.BytesIO()
            np.savez(xs, input=np.ones(1, np.float32))
            f = folder / "_noop_feeds.npz"
            if not f.exists():
                atomic_write_bytes(f, xs.getvalue())
            self._kernel_overhead_ms = self._time(noop, None, "kernel", reference=False,
                                                  feeds=f).stats.median_ms
        return self._time(files[0], None, "kernel", self._kernel_overhead_ms, feeds=files[1])
