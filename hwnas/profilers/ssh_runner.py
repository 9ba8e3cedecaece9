"""hwnas's timing runner for a Linux board (copied there by the ssh profiler; runs there).

ONE FILE, the standard library plus the board's runtime (onnxruntime, or LiteRT /
tflite_runtime; numpy comes with either), because it is copied to boards that have no hwnas.
Nothing here imports hwnas.

    python ssh_runner.py serve SETTINGS_JSON

reads one JSON request a line on stdin and answers one JSON line each on stdout, so one
process (one runtime import, one reference session) serves a whole profiling session over one
SSH channel. It ends at EOF on stdin: a dropped connection ends it, and with it the board lock.

* The board lock: ``flock`` on WORKDIR/runner.lock for the process's life, so two hosts (each
  with its own hwnas home and measuring locks) never time on one board at once; the second
  waits (it says so on stdout) up to ``lock_timeout_s``.
* The drift-free protocol is hwnas.profilers.drift's, ported (this file cannot import it):
  reference, item, reference, ... in rounds, per-call item times divided by the mean of the
  reference medians around their round; the host turns the samples into Stats and ratios.
* Thermal: before each item the watched zones of /sys/class/thermal are read; while one is
  over the limit the runner waits (bounded) and reports the wait, as the adb profiler does.
* Native code printing to fd 1 would corrupt the answers: fd 1 is pointed at stderr and the
  answers go to a private copy of the original stdout.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time

RUNNER_VERSION = 1


# --- facts about the board ----------------------------------------------------------------------
def cpu_model() -> str:
    """A Pi's "Model" line (its cpuinfo has no model name), else the first "model name"."""
    model = name = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip().lower(), value.strip()
                if value.isdigit():  # x86's "model : 17", "processor : 0": numbers, not names
                    continue
                if key == "model" and not model:
                    model = value
                elif key in ("model name", "hardware", "processor") and not name:
                    name = value
    except OSError:
        pass
    return model or name or platform.machine()


def thermal_zones(pattern: str) -> list:
    """[(zone, type, celsius)] of the zones whose type matches ``pattern`` (all if none does)."""
    zones = []
    for d in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        try:
            with open(os.path.join(d, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(d, "temp")) as f:
                raw = float(f.read().strip())
        except (OSError, ValueError):
            continue
        # millidegrees on most kernels, degrees on a few old ones
        zones.append((os.path.basename(d), kind, raw / 1000 if abs(raw) >= 200 else raw))
    watched = [z for z in zones if re.search(pattern, z[1], re.I)]
    return watched or zones


def hot_reason(settings: dict) -> str | None:
    hot = [f"{kind} at {c:.1f} C" for _, kind, c in thermal_zones(settings["thermal_zones"])
           if c > settings["thermal_limit_c"]]
    return f"{', '.join(hot)} (limit {settings['thermal_limit_c']:g})" if hot else None


def wait_until_cool(settings: dict) -> dict | None:
    """None when cool; else the wait, bounded by cool_max_s (measured anyway after it)."""
    reason = hot_reason(settings)
    if reason is None:
        return None
    t0 = time.monotonic()
    first = reason
    while reason is not None and time.monotonic() - t0 < settings["cool_max_s"]:
        time.sleep(settings["cool_poll_s"])
        reason = hot_reason(settings)
    return {"reason": first, "waited_s": round(time.monotonic() - t0, 2),
            "cooled": reason is None, "still": reason or ""}


def max_temp_c(settings: dict):
    temps = [c for _, _, c in thermal_zones(settings["thermal_zones"])]
    return max(temps) if temps else None


def pin_auto(threads: int) -> None:
    """affinity "auto": the ``threads`` allowed cores with the highest peak clock (the big
    cores of a big.LITTLE board; ties to the higher id: core 0 takes most interrupts)."""
    if not hasattr(os, "sched_setaffinity"):
        return
    allowed = sorted(os.sched_getaffinity(0))

    def peak(c):
        try:
            with open(f"/sys/devices/system/cpu/cpu{c}/cpufreq/cpuinfo_max_freq") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return 0

    fastest = sorted(allowed, key=lambda c: (peak(c), c), reverse=True)[:max(1, threads)]
    os.sched_setaffinity(0, set(fastest))


# --- the board lock -----------------------------------------------------------------------------
def take_lock(workdir: str, timeout_s: float, say) -> object:
    path = os.path.join(workdir, "runner.lock")
    f = open(path, "a+")
    t0, told = time.monotonic(), False
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if not told:
                f.seek(0)
                say({"waiting": f.read().strip() or "another runner"})
                told = True
            if time.monotonic() - t0 > timeout_s:
                f.seek(0)
                raise RuntimeError(f"the board is busy: {f.read().strip() or 'another runner'}"
                                   f" has held {path} for over {timeout_s:g} s")
            time.sleep(0.5)
    f.seek(0)
    f.truncate()
    f.write(f"hwnas runner pid {os.getpid()} since "
            f"{time.strftime('%Y-%m-%dT%H:%M:%S')} for {os.environ.get('SSH_CLIENT', '?')}\n")
    f.flush()
    return f  # held while the file stays open


# --- runtimes -----------------------------------------------------------------------------------
class OrtRuntime:
    name = "onnxruntime"

    def __init__(self, settings: dict):
        import onnxruntime as ort  # first: its absence is what the error must name
        import numpy as np

        self.np, self.ort, self.settings = np, ort, settings
        self.version = ort.__version__
        if settings["context"] == "flush":
            # one arena for all sessions: a network's consecutive blocks share scratch memory
            mem = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                    ort.OrtMemType.DEFAULT)
            try:
                ort.create_and_register_allocator(mem, ort.OrtArenaCfg(0, -1, -1, -1))
            except Exception:
                pass

    def session(self, path: str, shared_arena: bool):
        ort = self.ort
        so = ort.SessionOptions()
        if shared_arena and self.settings["context"] == "flush":
            so.add_session_config_entry("session.use_env_allocators", "1")
        so.intra_op_num_threads = self.settings["threads"]
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def bench(self, path: str, shape, mode: str, flush_buf, feeds_path: str | None = None):
        np = self.np
        if mode == "kernel":
            with np.load(feeds_path, allow_pickle=False) as z:
                feeds = {k: z[k] for k in z.files}
            return OrtKernelBench(self.session(path, False), feeds)
        sess = self.session(path, mode == "flush")
        twin = self.session(path, True) if mode == "flush" else None
        if shape is None:
            shape = [d if isinstance(d, int) else 1 for d in sess.get_inputs()[0].shape]
        return OrtBench(np, sess, shape, twin, flush_buf)


class OrtBench:
    """hwnas.profilers.onnxrt._OrtBench: with a twin, each timed call in network context."""

    def __init__(self, np, sess, shape, twin=None, flush_buf=None):
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        name = sess.get_inputs()[0].name
        self.np, self.sess, self.twin, self.flush_buf, self.x = np, sess, twin, flush_buf, x
        self.feed, self.twin_feed = {name: x}, {name: x.copy()}

    def time_calls(self, n: int):
        out = self.np.empty(n)
        clock = time.perf_counter_ns
        sess, feed, twin = self.sess, self.feed, self.twin
        for i in range(n):
            if twin is not None:
                self.flush_buf.sum()  # evict this block's weights
                twin.run(None, self.twin_feed)  # warm the shared scratch buffers
                self.x.sum()  # the input is hot: the previous block just wrote it
            t0 = clock()
            sess.run(None, feed)
            out[i] = (clock() - t0) / 1e6
        return out


class OrtKernelBench:
    """hwnas.profilers.onnxrt._KernelBench: outputs bound once, each timed call hot."""

    def __init__(self, sess, feeds: dict):
        import numpy as np

        self.np, self.sess = np, sess
        self.binding = sess.io_binding()
        for name, x in feeds.items():
            self.binding.bind_cpu_input(name, x)
        outputs = [o.name for o in sess.get_outputs()]
        for name in outputs:
            self.binding.bind_output(name, "cpu")
        sess.run_with_iobinding(self.binding)
        for name, value in zip(outputs, self.binding.get_outputs()):
            self.binding.bind_ortvalue_output(name, value)

    def time_calls(self, n: int):
        out = self.np.empty(n)
        clock = time.perf_counter_ns
        run, binding = self.sess.run_with_iobinding, self.binding
        for i in range(n):
            run(binding)
            t0 = clock()
            run(binding)
            out[i] = (clock() - t0) / 1e6
        return out


class LiteRuntime:
    name = "litert"

    def __init__(self, settings: dict):
        import numpy as np

        self.np, self.settings = np, settings
        try:
            import ai_edge_litert
            from ai_edge_litert.interpreter import Interpreter, OpResolverType

            self.version = f"ai-edge-litert {ai_edge_litert.__version__}"
        except ImportError:
            import tflite_runtime  # the error names tflite_runtime when neither is there
            from tflite_runtime.interpreter import Interpreter, OpResolverType

            self.version = f"tflite-runtime {tflite_runtime.__version__}"
        self.Interpreter, self.resolvers = Interpreter, OpResolverType

    def interpreter(self, path: str):
        resolver = (self.resolvers.AUTO if self.settings["use_xnnpack"]
                    else self.resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        it = self.Interpreter(model_path=path, num_threads=self.settings["threads"],
                              experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        return it

    def bench(self, path: str, shape, mode: str, flush_buf, feeds_path: str | None = None):
        it = self.interpreter(path)
        twin = self.interpreter(path) if mode == "flush" else None
        return LiteBench(self.np, it, twin, flush_buf, hot=mode == "kernel")


class LiteBench:
    """hwnas.profilers.litert._LiteBench."""

    def __init__(self, np, it, twin=None, flush_buf=None, hot=False):
        rng = np.random.default_rng(0)
        details = it.get_input_details()
        for d in details:
            x = (rng.standard_normal(d["shape"]).astype(d["dtype"])
                 if np.issubdtype(d["dtype"], np.floating) else np.zeros(d["shape"], d["dtype"]))
            it.set_tensor(d["index"], x)
            if twin is not None:
                twin.set_tensor(d["index"], x.copy())
        self.np, self.it, self.twin, self.flush_buf = np, it, twin, flush_buf
        self.index, self.hot = details[0]["index"], hot

    def time_calls(self, n: int):
        it, twin = self.it, self.twin
        view = it.tensor(self.index)
        out = self.np.empty(n)
        clock = time.perf_counter_ns
        for i in range(n):
            if twin is not None:
                self.flush_buf.sum()
                twin.invoke()
                view().sum()
            elif self.hot:
                it.invoke()
            t0 = clock()
            it.invoke()
            out[i] = (clock() - t0) / 1e6
        del view
        return out


class BenchmarkModelRuntime:
    """TFLite's benchmark_model binary on the board, one process per run (as on a phone); the
    host parses its output (hwnas.profilers.benchmark_output)."""

    name = "benchmark_model"

    def __init__(self, settings: dict):
        self.settings = settings
        self.bin = settings["benchmark_bin"]
        if not os.access(self.bin, os.X_OK):
            raise ImportError(f"benchmark_model is not an executable file at {self.bin}")
        self.version = f"benchmark_model {self.bin}"

    def run(self, path: str, warmup: int, runs: int) -> str:
        s = self.settings
        cmd = [self.bin, f"--graph={path}", f"--num_threads={s['threads']}",
               f"--warmup_runs={warmup}", f"--num_runs={runs}",
               f"--use_xnnpack={'true' if s['use_xnnpack'] else 'false'}",
               "--min_secs=0", "--warmup_min_secs=0"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        out = p.stdout + p.stderr
        if p.returncode != 0:
            tail = " | ".join(out.strip().splitlines()[-4:])
            raise RuntimeError(f"benchmark_model failed for {os.path.basename(path)} "
                               f"(exit {p.returncode}): {tail}")
        return out


RUNTIMES = {"onnxruntime": OrtRuntime, "tflite": LiteRuntime,
            "benchmark_model": BenchmarkModelRuntime}
IMPORTS = {"onnxruntime": "onnxruntime", "tflite": "ai_edge_litert or tflite_runtime",
           "benchmark_model": "benchmark_model"}


# --- the drift-free protocol (hwnas.profilers.drift.interleave, ported) -----------------------
def median_rse(np, ratios) -> float:
    med = float(np.median(ratios))
    mad_sigma = 1.4826 * float(np.median(np.abs(ratios - med)))
    return 1.2533 * mad_sigma / np.sqrt(len(ratios)) / med


def reference_ms(np, reference, runs: int) -> float:
    # one untimed call first: the reference back in a steady state whatever ran before it
    return float(np.median(reference.time_calls(1 + runs)[1:]))


def settle_calls(np, item_ms: float, settle_ms: float) -> int:
    """drift.settle_calls: untimed calls that make up ``settle_ms`` of the item's time."""
    if settle_ms <= 0 or not np.isfinite(item_ms) or item_ms <= 0:
        return 0
    return int(min(SETTLE_MAX_CALLS, max(0, np.ceil(settle_ms / item_ms) - 1)))


SETTLE_MAX_CALLS = 8  # drift.SETTLE_MAX_CALLS (this file cannot import hwnas)


def interleave(np, item, reference, runs: int, warmup: int, plan: dict) -> dict:
    settle_ms = float(plan.get("settle_ms") or 0.0)
    warm = item.time_calls(max(warmup, 1)) if warmup or settle_ms else []
    settle = plan.get("settle") or (settle_calls(np, float(np.median(warm)), settle_ms)
                                    if len(warm) else 0)
    reference.time_calls(plan["reference_warmup"])
    rounds = max(1, min(plan["rounds"], runs))
    sizes = np.diff(np.linspace(0, runs, rounds + 1).round().astype(int))
    refs = [reference_ms(np, reference, plan["reference_runs"])]
    samples, local = [], []
    for _ in range(max(1, plan["max_batches"])):
        for size in sizes:
            if settle:  # untimed: the item out of the reference's cold start
                item.time_calls(settle)
            s = item.time_calls(int(size))
            refs.append(reference_ms(np, reference, plan["reference_runs"]))
            samples.append(s)
            local.append(np.full(len(s), 0.5 * (refs[-2] + refs[-1])))
        if median_rse(np, np.concatenate(samples) / np.concatenate(local)) <= plan["precision"]:
            break
    return {"samples_ms": np.concatenate(samples).tolist(),
            "local_reference_ms": np.concatenate(local).tolist(),
            "reference_ms": float(np.median(refs))}


# --- serving ------------------------------------------------------------------------------------
class Runner:
    def __init__(self, settings: dict, runtime):
        self.settings, self.rt = settings, runtime
        self.reference = None  # a bench, or for benchmark_model the reference's path
        self.flush_buf = None
        if settings["context"] == "flush" and runtime.name != "benchmark_model":
            import numpy as np

            self.flush_buf = np.ones(settings["flush_mb"] * (1 << 20) // 8)

    def handle(self, req: dict) -> dict:
        op = req.get("op")
        if op == "reference":
            return self.load_reference(req)
        if op == "measure":
            return self.measure(req)
        if op == "state":
            return {"max_temp_c": max_temp_c(self.settings)}
        raise ValueError(f"unknown request {op!r}")

    def load_reference(self, req: dict) -> dict:
        if self.rt.name == "benchmark_model":
            self.reference = req["path"]
            return {"ok": True}
        self.reference = self.rt.bench(req["path"], req.get("shape"), "isolated", None)
        self.reference.time_calls(1)
        return {"ok": True}

    def measure(self, req: dict) -> dict:
        wait = wait_until_cool(self.settings)
        out = {"thermal": wait, "max_temp_c": max_temp_c(self.settings)}
        warmup, runs = req["warmup"], req["runs"]
        if self.rt.name == "benchmark_model":
            ref = self.reference if req.get("plan") else None
            if ref:
                out["reference_before"] = self.rt.run(ref, warmup, runs)
            out["output"] = self.rt.run(req["path"], warmup, runs)
            if ref:
                out["reference_after"] = self.rt.run(ref, warmup, runs)
            return out
        import numpy as np

        bench = self.rt.bench(req["path"], req.get("shape"), req["mode"], self.flush_buf,
                              req.get("feeds"))
        plan = req.get("plan")
        if plan is None or self.reference is None:
            if warmup:
                bench.time_calls(warmup)
            out["samples_ms"] = bench.time_calls(runs).tolist()
            return out
        out.update(interleave(np, bench, self.reference, runs, warmup, plan))
        return out


def serve(settings: dict) -> int:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # native code's prints go to stderr, not into the answers
    sys.stdout = sys.stderr

    def say(obj) -> None:
        answers.write(json.dumps(obj) + "\n")
        answers.flush()

    os.makedirs(settings["workdir"], exist_ok=True)
    try:
        lock = take_lock(settings["workdir"], settings["lock_timeout_s"], say)
    except RuntimeError as e:
        say({"error": str(e), "kind": "busy"})
        return 3
    if settings["affinity"] == "auto":
        pin_auto(settings["threads"])
    try:
        runtime = RUNTIMES[settings["runtime"]](settings)
    except ImportError as e:
        say({"error": f"{type(e).__name__}: {e}", "kind": "runtime",
             "runtime": IMPORTS[settings["runtime"]]})
        return 4
    runner = Runner(settings, runtime)
    say({"hello": {
        "runner_version": RUNNER_VERSION, "runtime": runtime.name,
        "runtime_version": runtime.version, "python": platform.python_version(),
        "cpu": cpu_model(), "kernel": " ".join(platform.uname()[i] for i in (0, 2, 4)),
        "hostname": socket.gethostname(), "cores": os.cpu_count(),
        "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "max_temp_c": max_temp_c(settings),
        "zones": [[z, k, round(c, 1)] for z, k, c in thermal_zones(settings["thermal_zones"])],
    }})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            say({"ok": True, **runner.handle(json.loads(line))})
        except Exception as e:  # a model the runtime cannot run: say so, keep serving
            say({"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"})
    lock.close()
    return 0


def main(argv) -> int:
    if len(argv) != 3 or argv[1] != "serve":
        print("usage: ssh_runner.py serve SETTINGS_JSON", file=sys.stderr)
        return 2
    return serve(json.loads(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
