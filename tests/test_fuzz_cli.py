"""Property-based fuzzing of the command line: hypothesis through click's CliRunner.

Generated inputs: architecture files, option values, latency tables, records files, foreign
tables to import, and file-system states (missing, a directory, a file where a folder should
be, read-only). Whatever is generated, the CLI keeps its contract:

* exit status != 0: exactly one line on stderr ('hwnas: error: ...'), no traceback, not the
  boundary's "a bug in hwnas" line, and every file that existed before is byte-identical after;
* exit status 0: every latency printed is finite and > 0 (and an import that succeeds leaves
  a table that loads, with no unflagged latency <= 0).

Runs are derandomized (the same inputs every run: CI is stable) and bounded: the whole module
takes well under a minute. HWNAS_FUZZ_SCALE=10 tries ten times as many inputs;
HWNAS_FUZZ_REPORT=FILE writes how many each test tried (benchmarks/reliability.py uses it).
Nothing here profiles or measures: commands that would time something are given a device
hwnas cannot time here (pixel6 without its benchmark binary, xeon-gold-6130).
"""

from __future__ import annotations

import collections
import copy
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from cli_harness import (assert_latencies_sane, assert_one_line, assert_untouched, invoke,
                         read_only, read_only_supported, snapshot, synthetic_records,
                         synthetic_table)
from hwnas.latency.table import LatencyTable
from hwnas.spaces import get_space
from hwnas.spaces.elasticvit.space import elasticvit_named

SCALE = float(os.environ.get("HWNAS_FUZZ_SCALE", "1"))
TRIED: collections.Counter = collections.Counter()


def fuzz(n: int):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=True,
                    database=None, suppress_health_check=list(HealthCheck), print_blob=True)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    out = os.environ.get("HWNAS_FUZZ_REPORT")
    if out:
        Path(out).write_text(json.dumps(dict(TRIED), indent=1, sort_keys=True))


# --- the world each example starts from ----------------------------------------------------
SPACE = get_space("elasticvit", [160])
ARCHS = [elasticvit_named()["elastic_T2"]] + [SPACE.sample(np.random.default_rng(i))
                                               for i in range(12)]
KEYS = sorted({op.key for op in SPACE.enumerate_ops(160)})
# 160 px only: small files make each example cheap; every generated arch is at 160 px
TABLE = synthetic_table("pixel6", resolutions=[160], source_format="nn-meter")
RECORDS = synthetic_records("local-cpu", n=16)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A template home (pixel6: imported table; local-cpu: table, records, a fitted predictor)
    and a scratch area where each example gets its own copy."""
    from hwnas import api

    base = tmp_path_factory.mktemp("fuzz")
    home = base / "template" / "home"
    TABLE.save(home / "devices/pixel6/table.pkl")
    synthetic_table("local-cpu", resolutions=[160]).save(home / "devices/local-cpu/table.pkl")
    RECORDS.save(home / "devices/local-cpu/records.json")
    api.fit(api.context("local-cpu", resolutions=[160], home=home), "flops")
    scratch = base / "examples"
    scratch.mkdir()
    scratch.chmod(0o755)
    return {"template": home.parent, "scratch": scratch,
            "read_only": read_only_supported(base)}


class Example:
    """One example's copy of the world: ``root`` holds ``home`` and the input files."""

    def __init__(self, world, kind: str):
        self.kind = kind
        self.root = Path(tempfile.mkdtemp(dir=world["scratch"]))
        shutil.rmtree(self.root)
        shutil.copytree(world["template"], self.root, symlinks=True)
        self.home = self.root / "home"
        self.world = world

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.root, ignore_errors=True)

    def path(self, name: str) -> Path:
        return self.root / name

    def run(self, args, read_only_dir: Path | None = None):
        """Run and check the contract; returns click's Result."""
        before = snapshot(self.root)
        if read_only_dir is not None:
            with read_only(read_only_dir):
                r = invoke(args, self.home, cwd=self.root)
        else:
            r = invoke(args, self.home, cwd=self.root)
        if r.exit_code != 0:
            assert_one_line(r)
            assert_untouched(before, self.root)
        else:
            assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
            assert_latencies_sane(r)
        TRIED[self.kind] += 1  # counted once checked: what the report says was tried
        TRIED[f"{self.kind}, exit 0"] += r.exit_code == 0
        return r


# --- strategies --------------------------------------------------------------------------
# argv text as a shell can pass it: no NUL, no lone surrogates, no control characters
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**20, 10**20).map(str),
    st.sampled_from(["", " ", "1e999", "-inf", "NaN", "0x10", "1_000", "1,2", "--", "-0", "½",
                     "1e-320", "9" * 40]),
    TEXT,
)
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                        st.floats(allow_nan=True, allow_infinity=True), TEXT)
JSON = st.recursive(JSON_SCALAR, lambda kids: st.one_of(
    st.lists(kids, max_size=6), st.dictionaries(TEXT, kids, max_size=6)), max_leaves=20)
LATENCY = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.floats(1e-6, 1e3), st.sampled_from([0.0, -0.0, -1.0, 1e308, 5e-324]))


def _dump(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


@st.composite
def arch_file(draw):
    """The bytes of an architecture file: valid, valid-looking but wrong, or junk."""
    arch = draw(st.sampled_from(ARCHS))
    kind = draw(st.sampled_from(["dict", "list", "mutated-dict", "mutated-list", "json", "bytes"]))
    if kind == "dict":
        return _dump(arch.to_dict())
    if kind == "list":
        return _dump(arch.to_elasticvit_list())
    if kind == "mutated-dict":
        d = arch.to_dict()
        field = draw(st.sampled_from(sorted(d) + ["extra"]))
        d[field] = draw(st.one_of(JSON, st.lists(st.integers(-5, 600), max_size=12)))
        return _dump(d)
    if kind == "mutated-list":
        lst = arch.to_elasticvit_list()
        i = draw(st.integers(0, 10))
        value = draw(st.one_of(JSON, st.lists(st.integers(-5, 600), max_size=12)))
        lst = lst[:i] + [value] + lst[i + 1:]
        return _dump(lst)
    if kind == "json":
        return _dump(draw(JSON))
    return draw(st.binary(max_size=64))


def place(ex: Example, name: str, content: bytes | None, state: str) -> Path:
    """Put an input file in one of the states a user's file can be in."""
    p = ex.path(name)
    if state == "file":
        p.write_bytes(content)
    elif state == "directory":
        p.mkdir()
    elif state == "empty":
        p.write_bytes(b"")
    return p  # "missing": nothing there


# --- 1: architecture files ---------------------------------------------------------------
@fuzz(120)
@given(content=arch_file(), state=st.sampled_from(["file"] * 6 + ["missing", "directory", "empty"]),
       cmd=st.sampled_from(["predict-pixel6", "predict-json", "predict-local", "measure-pixel6"]))
@example(content=_dump(ARCHS[0].to_dict()), state="file", cmd="predict-json")
def test_fuzz_arch_files(world, content, state, cmd):
    with Example(world, "arch files") as ex:
        f = place(ex, "arch.json", content, state)
        args = {"predict-pixel6": ["predict", "--device", "pixel6", "--arch", f],
                "predict-json": ["predict", "--device", "pixel6", "--arch", f, "--json"],
                "predict-local": ["predict", "--device", "local-cpu", "--arch", f],
                "measure-pixel6": ["measure", "--device", "pixel6", "--arch", f]}[cmd]
        ex.run(args)


# --- 2: option values --------------------------------------------------------------------
TARGETS = st.one_of(NUMBER_TEXT, st.floats(1e-9, 0.5).map(repr),  # under the fastest subnet
                    st.floats(1e6, 1e300).map(repr))


@fuzz(150)
@given(data=st.data(), cmd=st.sampled_from(["search", "measure", "profile", "fit", "pools",
                                            "evaluate", "export"]))
def test_fuzz_options(world, data, cmd):
    n = lambda: data.draw(NUMBER_TEXT)  # noqa: E731
    with Example(world, "option values") as ex:
        out = ex.path("out.json")
        if cmd == "search":
            args = ["search", "--device", "pixel6", "--target-latency", data.draw(TARGETS),
                    "--seed", n(), "-r", data.draw(st.sampled_from(["160", "224", "0", "-1"]))]
        elif cmd == "measure":  # pixel6 cannot be timed here: valid options end at the device
            args = ["measure", "--device", "pixel6", "--sample", n(), "--passes", n(),
                    "--seed", n()]
        elif cmd == "profile":
            args = ["profile", "--device", "pixel6", "-r", "160",
                    *data.draw(st.sampled_from([[], ["--fresh"]])),
                    *[x for opt in data.draw(st.lists(st.sampled_from(
                        ["--budget", "--runs", "--warmup", "--batch"]), max_size=3, unique=True))
                      for x in (opt, n())]]
        elif cmd == "fit":
            args = ["fit", "--device", "local-cpu", "-r", 160, "--kind",
                    data.draw(st.sampled_from(["flops", "lut", "flops+blocks"])),
                    "--test-fraction", n()]
        elif cmd == "pools":  # levels far outside the tiny space's range fail fast
            args = ["build-pools", "--metric", "flops", "--preset", "tiny", "--levels",
                    data.draw(st.one_of(NUMBER_TEXT, st.lists(NUMBER_TEXT, min_size=1,
                                                              max_size=4).map(",".join))),
                    "--per-level", n(), "--seed", n(), "--out", out]
            if data.draw(st.booleans()):
                args += ["--bound", n()]
        elif cmd == "evaluate":
            args = ["evaluate", "--device", "local-cpu", "-r", 160, "--predictor", "flops",
                    "--plots", data.draw(st.sampled_from([ex.path("plots"), ex.path("arch"),
                                                          ex.path("home/devices")]))]
        else:  # export: a junk or missing arch stops it before any model is built
            f = place(ex, "arch", data.draw(st.binary(max_size=16)), "file")
            args = ["export", "--arch", f, "--out", data.draw(st.sampled_from(
                [ex.path("m.onnx"), ex.root, ex.path("arch/m.onnx"), ""]))]
        ex.run(args)


@pytest.mark.parametrize("args", [
    # the runs that go to the end (a search takes seconds, so the fuzzed ones fail early)
    ["search", "--device", "pixel6", "-r", 160, "--target-latency", 20, "--out", "OUT", "--json"],
    ["build-pools", "--metric", "flops", "--preset", "tiny", "--levels", "8,12", "--per-level",
     4, "--out", "OUT"],
])
def test_options_that_run_to_the_end(world, args):
    with Example(world, "option values") as ex:
        r = ex.run([ex.path("out.json") if a == "OUT" else a for a in args])
        assert r.exit_code == 0, r.stderr


# --- 3: latency tables -------------------------------------------------------------------
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@st.composite
def table_bytes(draw):
    obj = copy.deepcopy(TABLE.to_obj())
    kind = draw(st.sampled_from(["entries"] * 3 + ["meta"] * 2 + ["flags", "structure",
                                                                  "junk", "evil"]))
    if kind == "entries":
        for key in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=5)):
            v = draw(LATENCY)
            obj["entries"][key] = draw(st.sampled_from([
                [v, v, float("nan"), float("nan"), float("nan"), 0], [v], v, str(v), None]))
    elif kind == "meta":
        for field in draw(st.lists(st.sampled_from(["call_overhead_ms", "batch", "device",
                                                    "protocol"]), min_size=1, max_size=3)):
            obj["meta"][field] = draw(st.one_of(JSON_SCALAR, st.sampled_from(
                ["pixel1", "pixel6", "local-cpu"])))
    elif kind == "flags":
        for key in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=5)):
            obj["entries"][key] = [-1.0, -1.0, 0.0, -1.0, -1.0, 0]
            obj["flags"][key] = draw(TEXT)  # the source's own negatives: allowed, if flagged
    elif kind == "structure":
        field = draw(st.sampled_from(["format", "schema", "entries", "meta", "flags", "energy"]))
        obj[field] = draw(JSON)
    elif kind == "junk":
        return draw(st.one_of(st.binary(max_size=64), JSON.map(lambda o: pickle.dumps(o))))
    else:
        return pickle.dumps({"format": "hwnas-latency-table", "entries": Evil()})
    return pickle.dumps(obj)


@fuzz(50)
@given(content=table_bytes(), cmd=st.sampled_from(["predict", "predict-json", "search",
                                                   "devices"]))
def test_fuzz_tables(world, content, cmd):
    with Example(world, "latency tables") as ex:
        (ex.home / "devices/pixel6/table.pkl").write_bytes(content)
        arch = place(ex, "arch.json", _dump(ARCHS[1].to_dict()), "file")
        args = {"predict": ["predict", "--device", "pixel6", "--arch", arch],
                "predict-json": ["predict", "--device", "pixel6", "--arch", arch, "--json"],
                # under the fastest subnet: the table is read and priced, then refused
                "search": ["search", "--device", "pixel6", "-r", 160, "--target-latency", 0.01],
                "devices": ["devices"]}[cmd]
        ex.run(args)


# --- 4: records files --------------------------------------------------------------------
@st.composite
def records_bytes(draw):
    obj = copy.deepcopy(RECORDS.to_obj())
    kind = draw(st.sampled_from(["passes"] * 3 + ["arch"] * 2 + ["structure", "junk"]))
    recs = obj["records"]
    if kind == "passes":
        for i in draw(st.lists(st.integers(0, len(recs) - 1), min_size=1, max_size=3)):
            v = draw(LATENCY)
            recs[i]["passes"] = draw(st.sampled_from([
                [[v, v, 0.0, v, v, 3]], [], [[v]], [None], "x",
                [{"timed": [v, v, 0, v, v, 3], "ratio": [0.5, 0.5, 0, 0.5, 0.5, 3],
                  "reference_ms": v, "extra": 1}]]))
    elif kind == "arch":
        i = draw(st.integers(0, len(recs) - 1))
        recs[i]["arch"] = draw(st.one_of(JSON, st.just(dict(recs[i]["arch"], resolution=-1))))
    elif kind == "structure":
        obj[draw(st.sampled_from(["format", "schema", "device", "records", "meta"]))] = draw(JSON)
    else:
        return draw(st.one_of(st.binary(max_size=64), JSON.map(_dump)))
    return _dump(obj)


@fuzz(40)
@given(content=records_bytes(), cmd=st.sampled_from(["predict", "fit", "export", "evaluate"]))
def test_fuzz_records(world, content, cmd):
    with Example(world, "records files") as ex:
        (ex.home / "devices/local-cpu/records.json").write_bytes(content)
        arch = place(ex, "arch.json", _dump(ARCHS[2].to_dict()), "file")
        args = {"predict": ["predict", "--device", "local-cpu", "--arch", arch],
                "fit": ["fit", "--device", "local-cpu", "-r", 160, "--kind", "flops"],
                "export": ["records", "export", "--device", "local-cpu", "--csv",
                           ex.path("r.csv")],
                "evaluate": ["evaluate", "--device", "local-cpu", "-r", 160, "--predictor",
                             "flops", "--json", "--plots", ex.path("plots")]}[cmd]
        ex.run(args)


# --- 5: file-system states ---------------------------------------------------------------
PLACES = ["home", "home/devices", "home/devices/pixel6", "home/devices/pixel6/table.pkl",
          "home/devices/local-cpu", "home/devices/local-cpu/records.json",
          "home/devices/local-cpu/predictors", "home/devices/local-cpu/predictors/flops.pkl",
          "home/cache", "out"]
STATE_COMMANDS = ["predict-pixel6", "predict-local", "import", "fit", "evaluate",
                  "records-export", "search", "devices", "profile-model", "table-show"]


@fuzz(80)
@given(place_=st.sampled_from(PLACES),
       state=st.sampled_from(["missing", "directory", "file", "read-only"]),
       cmd=st.sampled_from(STATE_COMMANDS))
def test_fuzz_file_system_states(world, place_, state, cmd):
    assume(state != "read-only" or world["read_only"])
    with Example(world, "file-system states") as ex:
        lut = ex.path("lut.json")
        lut.write_text(json.dumps({k: 0.01 + i * 1e-4 for i, k in enumerate(KEYS)}))
        arch = place(ex, "arch.json", _dump(ARCHS[3].to_dict()), "file")
        ex.path("out").mkdir()
        target = ex.path(place_)
        ro = None
        if state == "read-only":
            ro = target if target.is_dir() else target.parent
        else:
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            if state == "directory":
                target.mkdir(parents=True, exist_ok=True)
            elif state == "file":
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("x")
        out = ex.path("out/result")
        args = {
            "predict-pixel6": ["predict", "--device", "pixel6", "--arch", arch],
            "predict-local": ["predict", "--device", "local-cpu", "--arch", arch],
            "import": ["import", "nn-meter", lut, "--device", "pixel6", "--force"],
            "fit": ["fit", "--device", "local-cpu", "-r", 160, "--kind", "flops"],
            "evaluate": ["evaluate", "--device", "local-cpu", "-r", 160, "--predictor", "flops",
                         "--json"],
            "records-export": ["records", "export", "--device", "local-cpu", "--csv", out],
            "search": ["search", "--device", "pixel6", "-r", 160, "--target-latency", 0.01,
                       "--out", out],
            "devices": ["devices", "--json"],
            # xeon-gold-6130 cannot be timed here: everything up to the profiler is exercised
            "profile-model": ["profile", "--device", "xeon-gold-6130", "--model", "deit-tiny"],
            "table-show": ["table", "show", "--device", "pixel6", "-r", 160, "--csv", out],
        }[cmd]
        ex.run(args, read_only_dir=ro)


# --- 6: foreign tables to import -----------------------------------------------------------
@st.composite
def nn_meter_bytes(draw):
    keys = st.one_of(st.sampled_from(KEYS), TEXT, st.sampled_from(["base", "conv_1", "foo"]))
    kind = draw(st.sampled_from(["lut"] * 3 + ["json", "bytes"]))
    if kind == "lut":
        lut = {k: 0.01 + i * 1e-4 for i, k in enumerate(draw(st.lists(
            st.sampled_from(KEYS), min_size=1, max_size=30, unique=True)))}
        if draw(st.booleans()):  # else a clean LUT: imports that succeed are checked too
            lut.update(draw(st.dictionaries(keys, st.one_of(LATENCY, JSON_SCALAR), max_size=4)))
        return _dump(lut)
    if kind == "json":
        return _dump(draw(JSON))
    return draw(st.binary(max_size=64))


@st.composite
def tf_nas_bytes(draw):
    block = "MBInvertedResBlock_112_16_0_24_k3_s2_relu"
    mids = st.dictionaries(st.one_of(st.integers(-3, 2000), TEXT, st.none(), st.booleans()),
                           st.one_of(LATENCY, JSON_SCALAR), max_size=5)
    obj = {"base": draw(st.one_of(LATENCY, JSON_SCALAR)), block: draw(mids)}
    if draw(st.booleans()):
        obj[draw(st.one_of(TEXT, st.integers()))] = draw(st.one_of(mids, JSON))
    if draw(st.booleans()):
        del obj["base"]
    return pickle.dumps(draw(st.one_of(st.just(obj), JSON)))


@fuzz(100)
@given(data=st.data(), fmt=st.sampled_from(["nn-meter", "tf-nas"]),
       device=st.sampled_from(["pixel6", "android", "local-cpu", "titan-rtx", "xeon-gold-6130",
                               "nosuch"]),
       name=st.sampled_from(["lut.json", "pixel4_lut_ln_v3.json", "latency_gpu.pkl",
                             "latency_cpu.pkl", "t.pkl"]),
       force=st.booleans())
def test_fuzz_imports(world, data, fmt, device, name, force):
    with Example(world, "imported tables") as ex:
        content = data.draw(nn_meter_bytes() if fmt == "nn-meter" else tf_nas_bytes())
        f = place(ex, name, content, data.draw(st.sampled_from(["file"] * 5 + ["directory"])))
        r = ex.run(["import", fmt, f, "--device", device] + (["--force"] if force else []))
        if r.exit_code == 0:  # what got in loads, and holds nothing impossible
            from hwnas.home import device_paths
            from hwnas.device_configs import load_device

            cfg = load_device(device)
            table = LatencyTable.load(device_paths(device, ex.home, cfg.batch, cfg.precision)
                                      .table, device)
            bad = [k for k, s in table.entries.items()
                   if not (np.isfinite(s.median_ms) and (s.median_ms > 0 or k in table.flags))]
            assert not bad
