"""How much the reference network's speed depends on the process and the instance that runs it.

``python -m benchmarks.reference_instances`` (under the timing lock) starts PROCESSES fresh
Python processes one after another, pinned to one core like hwnas's timing processes. Each
loads the reference network INSTANCES times (separate LiteRT interpreters, or onnxruntime
sessions) and a few zoo networks once, and times them round-robin, one untimed and one timed
call each per round: every instance and network sees the same minutes of the machine.

Reported per runtime: each instance's median ms; the spread of the reference over instances
within a process and over processes (one instance each, as hwnas holds it); and, for the zoo
networks, the spread of their ms over processes. If the reference moves more than networks
of its size do, a drift-free ratio carries the reference's own luck of the draw between
sessions: the kernel table of one session and the records of another are in slightly
different units. Writes the ``reference-instances`` section.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r'''
import json, os, sys, time
import numpy as np
os.sched_setaffinity(0, {int(sys.argv[1])})
runtime, rounds, k = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
files = json.loads(sys.argv[5])
def lite(path):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path, num_threads=1)
    it.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        it.set_tensor(d["index"], rng.standard_normal(d["shape"]).astype(np.float32))
    return it.invoke
def ort(path):
    import onnxruntime as rt
    so = rt.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    s = rt.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal(
        [d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
    return lambda: s.run(None, {i.name: x})
make = lite if runtime == "litert" else ort
calls = [("reference", make(files["reference"])) for _ in range(k)]
calls += [(name, make(path)) for name, path in files.items() if name != "reference"]
out = [[] for _ in calls]
clock = time.perf_counter_ns
for _ in range(rounds):
    for j, (_, call) in enumerate(calls):
        call()
        t0 = clock(); call(); out[j].append((clock() - t0) / 1e6)
print(json.dumps([[name, float(np.median(v))] for (name, _), v in zip(calls, out)]))
'''


def _files(runtime: str, cache: Path, zoo_names: list[str]) -> dict:
    from hwnas.anymodel import zoo
    from hwnas.profilers.reference import reference_onnx, reference_tflite

    fmt = "tflite" if runtime == "litert" else "onnx"
    ref = reference_tflite(cache) if runtime == "litert" else reference_onnx(cache)
    out = {"reference": str(ref)}
    for name in zoo_names:
        out[name] = str(zoo.export(name, fmt, cache))
    return out


def _pct(x) -> str:
    return f"{100 * x:.1f}%"


def main(argv=None) -> None:
    from benchmarks._report import machine_line, write_section

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=6)
    ap.add_argument("--instances", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--cpu", type=int, default=1)
    ap.add_argument("--runtimes", default="litert,onnxruntime")
    ap.add_argument("--zoo", default="mobilenet-v2-1.0,resnet-18,deit-tiny,elastic_T1")
    ap.add_argument("--cache", default=None, help="the zoo's export cache")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    zoo_names = [z for z in args.zoo.split(",") if z]
    lines = ["| runtime | reference ms, median over instances and processes | reference: SD "
             "over instances in a process (median over processes) | reference: SD over "
             "processes, one instance each (the first) | reference: SD over processes, mean "
             "of the instances | zoo networks: SD over processes |",
             "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="hwnas-refinst-") as tmp:
        cache = Path(args.cache or tmp)
        for runtime in args.runtimes.split(","):
            files = _files(runtime, cache, zoo_names)
            runs = []
            for _ in range(args.processes):
                got = subprocess.run([sys.executable, "-c", CHILD, str(args.cpu), runtime,
                                      str(args.rounds), str(args.instances), json.dumps(files)],
                                     capture_output=True, text=True, check=True)
                runs.append(json.loads(got.stdout.strip().splitlines()[-1]))
            refs = np.array([[ms for name, ms in r if name == "reference"] for r in runs])
            nets = {name: np.array([dict((n, m) for n, m in r if n != "reference")[name]
                                    for r in runs]) for name in zoo_names}
            within = np.median(refs.std(1, ddof=1) / refs.mean(1))
            first = refs[:, 0].std(ddof=1) / refs[:, 0].mean()
            pooled = refs.mean(1).std(ddof=1) / refs.mean()
            zoo_sd = ", ".join(f"{n} {_pct(v.std(ddof=1) / v.mean())} ({np.median(v):.2f} ms)"
                               for n, v in nets.items())
            lines.append(f"| {runtime} | {np.median(refs):.3f} | {_pct(within)} | "
                         f"{_pct(first)} | {_pct(pooled)} | {zoo_sd} |")
            print(runtime, refs.round(3).tolist(), flush=True)
    md = "\n".join([
        "## The reference network's speed per process and instance "
        "(`benchmarks/reference_instances.py`)", "", machine_line(), "",
        f"`flock /tmp/hwnas-timing.lock .venv/bin/python -m benchmarks.reference_instances "
        f"--processes {args.processes} --instances {args.instances} --rounds {args.rounds} "
        f"--runtimes {args.runtimes} --zoo {args.zoo}`: {args.processes} fresh processes one "
        f"after another, pinned to CPU {args.cpu}, each loading the reference network "
        f"{args.instances} times and each zoo network once, and timing them round-robin "
        f"({args.rounds} rounds of one untimed and one timed call each; random weights, "
        f"1 thread). SD as a share of the mean.", "", *lines])
    print(md)
    if not args.no_write:
        write_section("reference-instances", md)


if __name__ == "__main__":
    main()
