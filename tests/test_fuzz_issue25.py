"""Issue 25, item 8: the fuzzing keeps what issue 25 fixed (tests/test_fuzz_cli.py's contract,
extended to what a careless user gives).

* Special files as every file input: /dev/zero, /dev/null, a FIFO no one writes, a folder, a
  symlink loop, a dangling link, each behind 0-2 more links, under any name. Each is one line,
  exit 1, at once (a watchdog fails a run that blocks), files untouched.
* Absurd numbers (1e307, 5e-324, nan, inf, -0, huge and 5,000-digit integers) in nn-Meter
  JSON, records CSVs and architecture files: refused in one line naming the entry (or, past
  the JSON integer limit, the file), with no numpy warning on stderr.
* JSON nested to a fuzzed depth in an --arch file, a records file, an nn-Meter import and a
  pools file: one line, never a RecursionError.
* User-space modules (``--space file.py:Class``) that raise, exit, return a non-space or name
  a built-in: one line naming the user's file. A module calling ``os._exit`` ends the process
  there, as any Python code may (hwnas runs a --space module in-process, by design): the
  exit status is the module's and nothing was written.
* Empty paths ('' read as '.', or as the option left out): every path parameter of every
  command, and --data and --space, refuse '' in one line (found by walking the commands, so a
  new option is covered without being listed here).

Derandomized and bounded like tests/test_fuzz_cli.py (HWNAS_FUZZ_SCALE multiplies the tries).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_harness import (assert_one_line, assert_untouched, copy_tree, invoke, snapshot,
                         synthetic_records, synthetic_table)
from hwnas.spaces.elasticvit.space import elasticvit_named

SCALE = float(os.environ.get("HWNAS_FUZZ_SCALE", "1"))
T1 = elasticvit_named()["elastic_T1"]
WATCHDOG_S = 60  # far above any one refusal here (each takes well under a second)


def fuzz(n: int):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=True,
                    database=None, suppress_health_check=list(HealthCheck), print_blob=True)


class Hung(BaseException):
    """Raised by the watchdog: not an Exception, so the CLI's boundary cannot make a line of it."""


@contextlib.contextmanager
def watchdog(seconds: int = WATCHDOG_S):
    def fire(signum, frame):
        raise Hung(f"blocked for {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz25") / "template"
    home = root / "home"
    synthetic_table("pixel6", source_format="nn-meter").save(home / "devices/pixel6/table.pkl")
    synthetic_records("local-cpu").save(home / "devices/local-cpu/records.json")
    (root / "arch.json").write_text(json.dumps(T1.to_dict()))
    return root


@contextlib.contextmanager
def world(template):
    """A fresh copy of the template (a home and arch.json) for one example."""
    root = Path(tempfile.mkdtemp(prefix="fuzz25-"))
    try:
        copy_tree(template, root / "w")
        yield root / "w"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def refused(args, root: Path, pattern: str = ""):
    """Run in ``root`` under the watchdog: one line, exit 1, nothing changed. The line."""
    before = snapshot(root)
    with watchdog():
        r = invoke(args, root / "home", cwd=root)
    line = assert_one_line(r, pattern)
    assert_untouched(before, root)
    return line


# --- special files as every file input ---------------------------------------------------------
SPECIALS = ["/dev/zero", "/dev/null", "fifo", "folder", "symlink loop", "dangling link"]
# F: the special file; OUT: a fresh output path; ARCH: a valid architecture file
FILE_INPUTS = {
    "predict --arch": ["predict", "--device", "pixel6", "--arch", "F"],
    "predict --archs": ["predict", "--device", "pixel6", "--archs", "F"],
    "measure --arch": ["measure", "--device", "pixel6", "--arch", "F"],
    "export --arch": ["export", "--arch", "F", "--out", "OUT"],
    "import nn-meter": ["import", "nn-meter", "F", "--device", "android"],
    "import tf-nas": ["import", "tf-nas", "F", "--device", "xeon-gold-6130", "--force"],
    "import help": ["import", "help", "F", "--device", "fuzzdev"],
    "fit --records": ["fit", "--device", "local-cpu", "-r", "160", "--kind", "flops",
                      "--records", "F"],
    "evaluate --records": ["evaluate", "--device", "local-cpu", "-r", "160", "--predictor",
                           "flops", "--records", "F"],
    "records import": ["records", "import", "F", "--device", "fuzzdev", "--space", "nb201"],
    "measure --onnx": ["measure", "--device", "local-cpu", "--onnx", "F"],
    "predict --onnx": ["predict", "--device", "local-cpu", "--onnx", "F"],
    "measure --tflite": ["measure", "--device", "local-tflite", "--tflite", "F"],
    "search --supernet": ["search", "--device", "pixel6", "--target-latency", "20",
                          "--supernet", "F"],
    "train-supernet --pools": ["train-supernet", "--pools", "F", "--out", "OUT"],
    "--space F:Space": ["predict", "--device", "pixel6", "--arch", "ARCH", "--space",
                        "F:Space"],
}


def make_special(root: Path, kind: str, name: str, links: int) -> Path:
    """``kind`` at ``root/name`` (devices through a link there), behind ``links`` more links."""
    target = root / name
    if kind in ("/dev/zero", "/dev/null"):
        target.symlink_to(kind)
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
        (target / "inside.json").write_text("{}")
    elif kind == "symlink loop":
        other = root / f"{name}.loop"
        target.symlink_to(other.name)
        other.symlink_to(target.name)
    else:  # dangling
        target.symlink_to(root / "nowhere" / name)
    for i in range(links):
        link = root / f"link{i}-{name}"
        link.symlink_to(target.name)
        target = link
    return target


def _args(template_args, f: Path, root: Path) -> list[str]:
    out = []
    for a in template_args:
        if a == "F":
            a = str(f)
        elif a == "F:Space":
            a = f"{f}:Space"
        elif a == "OUT":
            a = str(root / "out" / "result")
        elif a == "ARCH":
            a = str(root / "arch.json")
        out.append(a)
    return out


@pytest.mark.parametrize("special", SPECIALS)
@pytest.mark.parametrize("what", sorted(FILE_INPUTS))
def test_a_special_file_is_one_line_at_once(template, what, special):
    """Every input, every special file: the whole matrix, every run."""
    if what == "--space F:Space" and special == "fifo":
        pytest.skip("importing a FIFO as a module: see test_a_fifo_as_a_space_module")
    with world(template) as root:
        (root / "out").mkdir()
        f = make_special(root, special, "input.json", 0)
        refused(_args(FILE_INPUTS[what], f, root), root)


NAMES = st.one_of(st.sampled_from(["m.onnx", "m.tflite", "t.pkl", "r.csv", "lut.json",
                                   "space.py", "a b.json", "ünï.json", "-x.json"]),
                  st.text(st.characters(whitelist_categories=("L", "N")), min_size=1,
                          max_size=12))


@fuzz(60)
@given(special=st.sampled_from(SPECIALS), what=st.sampled_from(sorted(FILE_INPUTS)),
       name=NAMES, links=st.integers(0, 2))
def test_fuzz_special_files_under_any_name_behind_links(template, special, what, name,
                                                         links):
    if what == "--space F:Space" and special == "fifo":
        return  # see test_a_fifo_as_a_space_module
    with world(template) as root:
        (root / "out").mkdir()
        f = make_special(root, special, name, links)
        refused(_args(FILE_INPUTS[what], f, root), root)


def test_a_fifo_as_a_space_module(template):
    """Python's import opens a FIFO and waits for a writer; hwnas refuses it first."""
    with world(template) as root:
        f = make_special(root, "fifo", "space.py", 0)
        refused(_args(FILE_INPUTS["--space F:Space"], f, root), root, "FIFO|not a regular")


def test_special_files_through_a_real_process(tmp_path):
    """What a shell sees, for the two that used to hang or exhaust memory."""
    fifo = tmp_path / "m.onnx"
    os.mkfifo(fifo)
    env = dict(os.environ, HWNAS_HOME=str(tmp_path / "home"))
    for args in (["measure", "--device", "local-cpu", "--onnx", str(fifo)],
                 ["import", "nn-meter", "/dev/zero", "--device", "android"]):
        p = subprocess.run([sys.executable, "-m", "hwnas.cli", *args], capture_output=True,
                           text=True, timeout=120, env=env)
        assert p.returncode == 1 and len(p.stderr.splitlines()) == 1, p.stderr
        assert p.stderr.startswith("hwnas: error: ") and "regular file" in p.stderr


# --- absurd numbers -----------------------------------------------------------------------------
ABSURD = st.one_of(
    st.sampled_from([1e307, 5e-324, float("nan"), float("inf"), float("-inf"), -0.0, 0.0,
                     -1.0, 1e-12, 3.7e6, 10 ** 30, -(10 ** 20), 2 ** 63]),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not 1e-6 <= v <= 3.6e6),
    st.integers().filter(lambda v: not 0 < v <= 3_600_000),
)
HUGE = "9" * 5000  # a 5,000-digit integer, written into the text as it stands


def _numbers_text(value) -> str:
    return HUGE if value == "HUGE" else json.dumps(value, allow_nan=True)


def assert_no_numpy_warning(line_or_err: str) -> None:
    assert "RuntimeWarning" not in line_or_err and "overflow" not in line_or_err.lower()


@fuzz(40)
@given(value=st.one_of(ABSURD, st.just("HUGE")), position=st.integers(0, 20))
def test_fuzz_absurd_latencies_in_an_nn_meter_import(template, value, position):
    from hwnas.spaces import get_space

    keys = sorted({op.key for op in get_space("elasticvit").enumerate_ops(224)})[:21]
    bad = keys[position]
    entries = ", ".join(f'"{k}": ' + (_numbers_text(value) if k == bad else "0.5")
                        for k in keys)
    with world(template) as root:
        f = root / "lut.json"
        f.write_text("{" + entries + "}")
        line = refused(["import", "nn-meter", f, "--device", "android"], root)
        if value == "HUGE":
            assert "5000 digits" in line and str(f) in line, line
        else:
            assert bad in line, line  # the entry, by its key
        assert_no_numpy_warning(line)


@fuzz(40)
@given(value=st.one_of(ABSURD, st.just("HUGE"), st.sampled_from(["nan", "inf", "-0", "1e999",
                                                                  "0x10", "", " "])),
       row=st.integers(0, 4))
def test_fuzz_absurd_latencies_in_a_records_csv(template, value, row):
    import numpy as np

    from hwnas.spaces import get_space

    sp = get_space("nb201")
    archs = [json.dumps(sp.sample(np.random.default_rng(i)).to_dict()) for i in range(5)]
    text = value if isinstance(value, str) and value != "HUGE" else _numbers_text(value)
    lines = ["arch,latency_ms"] + [f'"{a.replace(chr(34), chr(34) * 2)}",'
                                   + (text if i == row else "3.5")
                                   for i, a in enumerate(archs)]
    with world(template) as root:
        f = root / "r.csv"
        f.write_text("\n".join(lines) + "\n")
        line = refused(["records", "import", f, "--device", "fuzzdev", "--space", "nb201"],
                       root)
        assert f"row {row + 2}" in line, line  # the header is row 1
        assert_no_numpy_warning(line)


ARCH_FIELDS = [k for k in T1.to_dict() if k != "space"]  # resolution, channels, depths, ...


@fuzz(40)
@given(value=st.one_of(ABSURD, st.just("HUGE")), field=st.sampled_from(ARCH_FIELDS),
       index=st.integers(0, 5), cmd=st.sampled_from(["predict", "measure", "export"]))
def test_fuzz_absurd_numbers_in_an_arch_file(template, value, field, index, cmd):
    d = T1.to_dict()
    if isinstance(d[field], list):
        items = [json.dumps(v) for v in d[field]]
        items[index % len(items)] = _numbers_text(value)
        text_value = "[" + ", ".join(items) + "]"
    else:
        text_value = _numbers_text(value)
    body = ", ".join(f'"{k}": ' + (text_value if k == field else json.dumps(v))
                     for k, v in d.items())
    with world(template) as root:
        f = root / "bad.json"
        f.write_text("{" + body + "}")
        args = {"predict": ["predict", "--device", "pixel6", "--arch", f],
                "measure": ["measure", "--device", "pixel6", "--arch", f],
                "export": ["export", "--arch", f, "--out", root / "m.onnx"]}[cmd]
        with watchdog():
            r = invoke(args, root / "home", cwd=root)
        if r.exit_code == 0:  # a value the space takes (an integer choice it has): fine
            return
        line = assert_one_line(r)
        if value == "HUGE":
            assert "5000 digits" in line and f.name in line, line
        else:
            assert field in line and f.name in line, line  # the entry, in the user's file
        assert_no_numpy_warning(r.stderr)


# --- deep JSON ----------------------------------------------------------------------------------
@fuzz(30)
@given(depth=st.one_of(st.integers(1, 300), st.integers(300, 200_000)),
       opener=st.sampled_from(["[", '{"a":']), where=st.sampled_from(
           ["arch", "records", "nn-meter", "pools", "archs"]))
def test_fuzz_deep_json(template, depth, opener, where):
    text = opener * depth + "1" + ("]" if opener == "[" else "}") * depth
    with world(template) as root:
        f = root / "deep.json"
        f.write_text(text)
        args = {"arch": ["predict", "--device", "pixel6", "--arch", f],
                "archs": ["predict", "--device", "pixel6", "--archs", f, "--csv",
                          root / "o.csv"],
                "records": ["fit", "--device", "local-cpu", "--kind", "lut", "--records", f],
                "nn-meter": ["import", "nn-meter", f, "--device", "android"],
                "pools": ["train-supernet", "--pools", f, "--out", root / "run"]}[where]
        line = refused(args, root)
        assert "RecursionError" not in line and "recursion" not in line.lower(), line
        if depth > 128:
            assert "nests JSON" in line, line


# --- a user's space module ----------------------------------------------------------------------
MODULE_BODIES = {
    "raises at import": "raise {exc}('{msg}')\n",
    "exits at import": "import sys\nsys.exit({code})\n",
    "raises in __init__": ("from hwnas.spaces.elasticvit.space import ElasticViTSpace\n"
                           "class Space(ElasticViTSpace):\n"
                           "    def __init__(self):\n        raise {exc}('{msg}')\n"),
    "exits in __init__": ("from hwnas.spaces.elasticvit.space import ElasticViTSpace\n"
                          "import sys\nclass Space(ElasticViTSpace):\n"
                          "    def __init__(self):\n        sys.exit({code})\n"),
    "not a space": "class Space:\n    pass\n",
    "returns a non-space": "def Space():\n    return {value}\n",
    "no such class": "x = 1\n",
    "syntax error": "def Space(:\n",
    "keyboard interrupt": "raise KeyboardInterrupt\n",
}
EXCEPTIONS = ["ValueError", "RuntimeError", "ImportError", "MemoryError", "RecursionError",
              "OSError", "AttributeError", "TypeError"]


@fuzz(50)
@given(kind=st.sampled_from(sorted(MODULE_BODIES)), exc=st.sampled_from(EXCEPTIONS),
       msg=st.text(st.characters(whitelist_categories=("L", "N", "Zs")), max_size=20),
       code=st.one_of(st.integers(-300, 300), st.sampled_from(["None", "'bye'", "[1]", "''"])),
       value=st.sampled_from(["3", "None", "'space'", "[]", "object()", "print"]),
       stem=st.text(st.characters(whitelist_categories=("Ll",)), min_size=1, max_size=8))
def test_fuzz_user_space_modules(template, kind, exc, msg, code, value, stem):
    from hwnas.spaces import SPACES

    body = MODULE_BODIES[kind].format(exc=exc, msg=msg, code=code, value=value)
    before = dict(SPACES)
    with world(template) as root:
        mod = root / f"fuzz25_{stem}.py"
        mod.write_text(body)
        try:
            with watchdog():
                r = invoke(["predict", "--device", "pixel6", "--arch", root / "arch.json",
                            "--space", f"{mod}:Space"], root / "home", cwd=root)
        finally:
            SPACES.clear()
            SPACES.update(before)
            for name in [m for m in sys.modules if m.startswith("fuzz25_")]:
                del sys.modules[name]
        if kind == "keyboard interrupt":  # Ctrl-C's own contract: exit 130, one line
            assert_one_line(r, code=130)
            return
        line = assert_one_line(r)
        assert mod.name in line, line  # the user's file, named


def test_a_builtin_space_is_refused_without_being_called(template):
    with world(template) as root:
        refused(["predict", "--device", "pixel6", "--arch", root / "arch.json", "--space",
                 "os:system"], root, r"built-in function, and is not a search space")


def test_a_space_module_calling_os_exit_ends_there_writing_nothing(template):
    """os._exit cannot be caught: hwnas runs a --space module in-process (by design, as it
    runs any plug-in), so the process ends with the module's status. Nothing is written:
    outputs are atomic, and nothing was computed yet."""
    with world(template) as root:
        mod = root / "exits_hard.py"
        mod.write_text("import os\nos._exit(7)\n")
        before = snapshot(root)
        p = subprocess.run([sys.executable, "-m", "hwnas.cli", "export", "--arch",
                            str(root / "arch.json"), "--space", f"{mod}:Space", "--out",
                            str(root / "m.onnx")], capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, HWNAS_HOME=str(root / "home")))
        assert p.returncode == 7 and p.stdout == "", (p.returncode, p.stdout, p.stderr)
        assert not (root / "m.onnx").exists()
        assert_untouched(before, root)


# --- empty paths --------------------------------------------------------------------------------
def _blank_cases():
    """(command words, argv) passing '' to each path parameter (and --data, --space) of every
    command; earlier positional arguments get a valid-looking value."""
    from hwnas.cli import cli

    out = []
    todo = [((), cli)]
    while todo:
        words, cmd = todo.pop()
        if isinstance(cmd, click.Group):
            todo.extend((words + (n,), c) for n, c in cmd.commands.items())
            continue
        args = [p for p in cmd.params if isinstance(p, click.Argument)]
        for p in cmd.params:
            if not (isinstance(p.type, click.Path) or p.name in ("data", "space")):
                continue
            if isinstance(p, click.Argument):
                before = []
                for a in args[:args.index(p)]:
                    before.append(a.type.choices[0] if isinstance(a.type, click.Choice)
                                  else "x")
                argv = [*words, *before, ""]
            else:
                argv = [*words, p.opts[0], ""]
            out.append(pytest.param(argv, id=" ".join(words) + " " + (p.opts[0] if p.opts
                                                                        else p.name)))
    return out


@pytest.mark.parametrize("argv", _blank_cases())
def test_an_empty_path_or_name_is_refused(template, argv):
    with world(template) as root:
        line = refused(argv, root)
        assert "Invalid value" in line and ("empty path" in line or "names no" in line), line


def test_the_blank_walk_covers_the_commands_issue_25_named():
    ids = {p.id for p in _blank_cases()}
    named = {"search --data", "search --supernet", "search --out", "train-supernet --data",
             "train-supernet --pools", "measure --onnx", "measure --tflite", "predict --arch",
             "import file", "import --index", "records import csv_file", "fit --records",
             "evaluate --records", "predict --space", "export --out"}
    assert named <= ids, sorted(named - ids)


@pytest.mark.parametrize("data", ["", "   "])
def test_search_data_blank_is_refused_before_the_checkpoint_is_read(template, data):
    with world(template) as root:
        ckpt = root / "missing.pt"  # never looked at: the option is refused first
        refused(["search", "--device", "pixel6", "--target-latency", "20", "--supernet", ckpt,
                 "--data", data], root, r"--data.*names no dataset")
