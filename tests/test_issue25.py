"""Issue 25 ("Every path and number a careless user gives"), items 1, 2 and 3.

1. Outputs write to what the user named: a symlink's target is replaced (in its own folder), a
   FIFO, /dev/null or /dev/stdout is written directly, ``-`` is standard output, and hwnas
   never renames over anything but a regular file. As root and as a plain user.
2. Inputs are regular files under a size cap: /dev/zero, a FIFO or a folder is one line at once.
3. Every latency entering hwnas is within 1 ns .. 1 hour, or refused in one line naming the
   entry; predictions never print as 0.000 ms, and no numpy warning reaches stderr.
4. A user's mistake is named as theirs: a ``--space`` that is no SearchSpace, raises, or exits;
   JSON nested 100,000 deep or holding a 5,000-digit integer; a custom-domain op in
   ``measure --onnx``. "A bug in hwnas" stays for hwnas's own failures.
6. The messages: a full disk names the file and the free space (and is not blamed on the
   reference model); ``--data ''`` is refused; an empty data folder is named; ``--sample 0`` is
   out of range in ``--help`` as on the command line.
7. Imports say what they really check: the published nn-Meter and TF-NAS tables are recognised
   by sha256 whatever their name, said, and refused as another device; an unknown file imports
   with a warning.

Everything runs the real CLI in-process (tests/cli_harness.py), as a user meets it.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from cli_harness import (CHECKOUT, assert_one_line, assert_untouched, copy_tree, invoke,
                         snapshot, synthetic_records, synthetic_table)
from hwnas.latency.records import Records
from hwnas.spaces.elasticvit.space import elasticvit_named

T1 = elasticvit_named()["elastic_T1"]


@pytest.fixture(scope="module")
def home_template(tmp_path_factory):
    h = tmp_path_factory.mktemp("issue25") / "home"
    synthetic_table("pixel6", source_format="nn-meter").save(h / "devices/pixel6/table.pkl")
    synthetic_records("local-cpu").save(h / "devices/local-cpu/records.json")
    return h


@pytest.fixture
def home(tmp_path, home_template):
    return copy_tree(home_template, tmp_path / "home")


@pytest.fixture
def arch(tmp_path):
    p = tmp_path / "arch.json"
    p.write_text(json.dumps(dict(T1.to_dict(), resolution=160)))
    return p


def export_csv(home, out, **kw):
    return invoke(["records", "export", "--device", "local-cpu", "--csv", out], home, **kw)


def expected_csv(home) -> str:
    return Records.load(home / "devices/local-cpu/records.json").to_frame().to_csv(index=False)


def one_line_and_untouched(args, home, pattern, root=None):
    root = root or home.parent
    before = snapshot(root)
    line = assert_one_line(invoke(args, home), pattern)
    assert_untouched(before, root)
    return line


# --- 1: outputs ----------------------------------------------------------------------------
def test_a_symlink_is_followed_and_its_target_replaced(home, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    r = export_csv(home, link)
    assert r.exit_code == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)  # the link stays a link
    assert target.read_text() == expected_csv(home)
    # the temp file lived beside the target (same file system) and is gone
    assert sorted(p.name for p in elsewhere.iterdir()) == ["real.csv"]


def test_a_dangling_symlink_creates_its_target(home, tmp_path):
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "new" / "made.csv")
    assert export_csv(home, link).exit_code == 0
    assert link.is_symlink() and (tmp_path / "new/made.csv").read_text() == expected_csv(home)


def test_a_fifo_is_written_not_replaced(home, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = export_csv(home, fifo)
    reader.join(timeout=60)
    assert r.exit_code == 0, r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got and got[0].decode() == expected_csv(home)


def test_dev_null_is_written_not_replaced(home):
    before = os.stat("/dev/null")
    r = export_csv(home, "/dev/null")
    assert r.exit_code == 0, r.stderr
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_dev_full_names_the_file_and_stays_a_device(home):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    assert_one_line(export_csv(home, "/dev/full"), r"/dev/full: no space left on device")
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)


@pytest.mark.parametrize("name", ["-", "/dev/stdout"])
def test_dash_and_dev_stdout_are_standard_output(home, name):
    was = os.readlink("/dev/stdout") if os.path.islink("/dev/stdout") else None
    r = export_csv(home, name)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == expected_csv(home)  # the CSV alone: the report went to stderr
    assert "wrote" in r.stderr
    if was is not None:
        assert os.readlink("/dev/stdout") == was  # still the machine's link


def test_dash_for_search_out_and_predict_csv(home, tmp_path):
    archs = tmp_path / "archs.csv"
    archs.write_text("arch\n" + json.dumps(json.dumps(T1.to_dict())).replace('\\"', '""') + "\n")
    r = invoke(["predict", "--device", "pixel6", "--archs", archs, "--csv", "-"], home)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("arch,predicted_ms,predictor\n") and "predicted 1" in r.stderr


def test_a_socket_or_folder_is_never_renamed_over(home, tmp_path):
    import socket

    sock_path = tmp_path / "s.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock_path))
    try:
        one_line_and_untouched(["records", "export", "--device", "local-cpu", "--csv",
                                sock_path], home, "is a socket")
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    finally:
        s.close()
    folder_link = tmp_path / "dirlink"
    folder_link.symlink_to(tmp_path)
    one_line_and_untouched(["records", "export", "--device", "local-cpu", "--csv",
                            folder_link], home, "is a (directory|folder)")


def test_the_library_writer_follows_links_and_refuses_sockets(tmp_path):
    """The one writer every table, records file, model and CSV goes through."""
    import socket

    from hwnas.errors import HwnasError
    from hwnas.latency.safeio import atomic_write_bytes

    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    link = tmp_path / "l.bin"
    link.symlink_to("t.bin")  # a relative link
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    atomic_write_bytes("/dev/null", b"x" * 1000)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "s"))
    try:
        with pytest.raises(HwnasError, match="is a socket"):
            atomic_write_bytes(tmp_path / "s", b"x")
    finally:
        s.close()


# As a plain user: /dev is not writable, so a device is only usable if it is written directly,
# and a link's target folder (not the link's) is what must be writable. The interpreter here
# may live where only root can read (a pyenv under /root), so the process starts as root, runs
# the command once into /dev/null (loading every module it imports lazily), then becomes
# nobody for good (uid and gid) and runs the command under test.
PLAIN_USER_SCRIPT = r"""
import contextlib, io, json, os, sys
from hwnas.cli import cli, main
args = json.loads(sys.argv[1])
with contextlib.redirect_stdout(io.StringIO()):
    cli.main(args=args[:-1] + ["/dev/null"], prog_name="hwnas", standalone_mode=False)
os.setgroups([])
os.setgid(int(os.environ["AS_GID"]))
os.setuid(int(os.environ["AS_UID"]))
main(args)
"""


def _as_nobody(args, home, cwd):
    import pwd

    who = pwd.getpwnam("nobody")
    env = dict(os.environ, HWNAS_HOME=str(home), PYTHONPATH=str(CHECKOUT), HOME=str(cwd),
               AS_UID=str(who.pw_uid), AS_GID=str(who.pw_gid))
    return subprocess.run([sys.executable, "-c", PLAIN_USER_SCRIPT, json.dumps(args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_outputs_as_a_plain_user(home_template):
    if os.geteuid() != 0:
        pytest.skip("needs root to become a plain user (nobody); the root-run tests above "
                    "cover the same writer as this user")
    try:
        import pwd

        who = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this machine")
    base = Path(tempfile.mkdtemp(prefix="hwnas-issue25-", dir="/tmp"))
    try:
        base.chmod(0o777)
        home = copy_tree(home_template, base / "home")
        for p in [home, *home.rglob("*")]:
            os.chown(p, who.pw_uid, who.pw_gid, follow_symlinks=False)
        work = base / "work"
        work.mkdir()
        os.chown(work, who.pw_uid, who.pw_gid)
        target_dir = work / "real"
        target_dir.mkdir()
        os.chown(target_dir, who.pw_uid, who.pw_gid)
        (work / "link.csv").symlink_to(target_dir / "r.csv")
        fifo = work / "pipe"
        os.mkfifo(fifo)
        os.chown(fifo, who.pw_uid, who.pw_gid)
        got = []
        reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
        reader.start()
        export = ["records", "export", "--device", "local-cpu", "--csv"]
        for out in ("/dev/null", str(work / "link.csv"), str(fifo), "-"):
            r = _as_nobody(export + [out], home, work)
            assert r.returncode == 0, (out, r.stderr)
            if out == "-":
                assert r.stdout.startswith("device,") and "wrote" in r.stderr
        reader.join(timeout=60)
        assert got and got[0].startswith(b"device,")
        assert (work / "link.csv").is_symlink() and (target_dir / "r.csv").is_file()
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
        # a link into a folder nobody may not write is refused before any work, naming it
        (work / "root.csv").symlink_to("/root/r.csv")
        r = _as_nobody(export + [str(work / "root.csv")], home, work)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "not writable" in r.stderr or "permission denied" in r.stderr, r.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- 3: physical bounds on every latency ----------------------------------------------------
def _nn_meter_json(path, value=None, one=None):
    """An nn-Meter-format LUT of every elasticvit op key at 160 px (``one``: (index, value))."""
    from hwnas.spaces import get_space

    keys = [op.key for op in get_space("elasticvit").enumerate_ops(160)]
    body = {k: value if value is not None else 0.01 + i * 1e-4 for i, k in enumerate(keys)}
    if one is not None:
        body[keys[one[0]]] = one[1]
    path.write_text(json.dumps(body))
    return path, keys


@pytest.mark.parametrize("value", [1e307, 5e-324, 1e-7, 3.7e6])
def test_nn_meter_import_refuses_unphysical_latencies_naming_the_entry(home, tmp_path, value):
    lut, keys = _nn_meter_json(tmp_path / "lut.json", one=(3, value))
    line = one_line_and_untouched(["import", "nn-meter", lut, "--device", "android"], home,
                                  r"outside the physical range 1 ns to 1 hour")
    assert repr(keys[3]) in line and repr(value) in line


def test_latencies_at_the_bounds_import_and_print_in_microseconds(home, tmp_path, arch):
    lut, _ = _nn_meter_json(tmp_path / "lut.json", value=1e-6)
    r = invoke(["import", "nn-meter", lut, "--device", "android"], home)
    assert r.exit_code == 0, r.stderr
    r = invoke(["predict", "--device", "android", "--arch", arch], home)
    assert r.exit_code == 0, r.stderr
    assert "0.000 ms" not in r.stdout and "µs on android" in r.stdout, r.stdout
    assert r.stderr == ""  # no numpy warning, nothing else


def _tf_nas(path, mid_value, base=1.5):
    block = "MBInvertedResBlock_112_16_0_24_k3_s2_relu"
    path.write_bytes(pickle.dumps({"base": base, block: {1: mid_value, 8: 0.2, 16: 0.3}}))
    return path


def test_tf_nas_keeps_its_flagged_negatives_but_refuses_absurd_values(home, tmp_path):
    r = invoke(["import", "tf-nas", _tf_nas(tmp_path / "ok.pkl", -0.1), "--device", "titan-rtx"],
               home)
    assert r.exit_code == 0 and "1 flagged" in r.stdout, (r.stdout, r.stderr)
    for name, mid, base in (("huge", 1e9, 1.5), ("tiny", 1e-300, 1.5), ("deep", -1e9, 1.5),
                            ("base", 0.2, 1e308)):
        p = _tf_nas(tmp_path / f"{name}.pkl", mid, base)
        one_line_and_untouched(["import", "tf-nas", p, "--device", "titan-rtx", "--force"], home,
                               r"entry '(base|MBInverted\w+_mid1)' has a latency of .*(outside "
                               r"the physical range|hour below zero)")


def test_a_stored_table_outside_the_bounds_is_refused(home, arch):
    from hwnas.latency.table import LatencyTable

    path = home / "devices/pixel6/table.pkl"
    t = LatencyTable.load(path)
    key = sorted(t.entries)[5]
    t.put(key, t.entries[key].__class__.single(1e307))
    t.save(path)
    line = one_line_and_untouched(["predict", "--device", "pixel6", "--arch", arch], home,
                                  "outside the physical range")
    assert repr(key) in line


@pytest.mark.parametrize("value", [1e307, 1e-9])
def test_a_records_file_outside_the_bounds_is_refused(home, tmp_path, value):
    path = home / "devices/local-cpu/records.json"
    obj = json.loads(path.read_text())
    obj["records"][2]["passes"][1] = [value, value, 0.0, value, value, 5]
    path.write_text(json.dumps(obj))
    for args in (["records", "export", "--device", "local-cpu", "--csv", tmp_path / "o.csv"],
                 ["fit", "--device", "local-cpu", "--kind", "lut"]):
        one_line_and_untouched(args, home, r"record 2 pass 1 has a latency of .* outside the "
                                           r"physical range")


def test_csv_records_and_help_values_outside_the_bounds_are_refused(home, tmp_path):
    from hwnas.errors import TableError
    from hwnas.latency import help as h

    csv = tmp_path / "m.csv"
    cell = json.dumps(json.dumps(T1.to_dict())).replace('\\"', '""')
    csv.write_text(f"arch,latency_ms\n{cell},5.0\n{cell},4e6\n")
    one_line_and_untouched(["records", "import", csv, "--device", "my-phone", "--space",
                            "elasticvit"], home, r"row 3: latency_ms has a latency of 4000000.0")
    with pytest.raises(TableError, match=r"entry 1 \(b\) has a latency of 1e-09 ms, outside"):
        h._latencies([1.0, 1e-9], Path("x.pt"), ["a", "b"])


def test_the_latency_formatter_never_prints_zero():
    from hwnas.cli.fmt import fmt_ms

    assert fmt_ms(12.3456) == "12.346 ms"
    assert fmt_ms(0.01234567) == "0.01235 ms"
    assert fmt_ms(1e-6) == "0.001 µs"
    assert fmt_ms(3.6e6) == "3600000.000 ms"
    assert fmt_ms(5e-324) != "0.000 ms" and "0 " not in fmt_ms(4e-4)


# --- 2: inputs are regular files of bounded size --------------------------------------------
def _inputs(kind_path, tmp_path, arch):
    """Each command that reads a user's file, with the file replaced by ``kind_path``."""
    return [(["predict", "--device", "pixel6", "--arch", kind_path], "architecture file"),
            (["export", "--arch", kind_path, "--out", tmp_path / "m.onnx"], "architecture file"),
            (["import", "nn-meter", kind_path, "--device", "android"], "nn-Meter table"),
            (["import", "tf-nas", kind_path, "--device", "titan-rtx", "--force"],
             "TF-NAS table"),
            (["fit", "--device", "local-cpu", "--kind", "lut", "--records", kind_path],
             "records file")]


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "folder"])
def test_special_inputs_are_one_line_at_once(home, tmp_path, arch, special):
    import time

    path = {"/dev/zero": Path("/dev/zero"), "fifo": tmp_path / "fifo",
            "folder": tmp_path / "folder"}[special]
    if special == "fifo":
        os.mkfifo(path)
    elif special == "folder":
        path.mkdir()
    done = threading.Event()

    def unblock():  # were a command to open the FIFO and wait, end its wait (EOF) and fail
        if special == "fifo" and not done.wait(20):
            with open(path, "wb"):
                pass

    threading.Thread(target=unblock, daemon=True).start()
    try:
        for args, what in _inputs(path, tmp_path, arch):
            t0 = time.monotonic()
            pattern = ("is a directory" if special == "folder" else
                       rf"is (a character device|a FIFO).*{what}s are regular files up to \d+ MB")
            one_line_and_untouched(args, home, pattern, root=tmp_path)
            assert time.monotonic() - t0 < 10, args
    finally:
        done.set()


def test_each_input_kind_states_its_cap(home, tmp_path, arch, monkeypatch):
    from hwnas.latency import importers, records, safeio

    for module in (safeio, importers, records):  # where each reader took its cap from
        for name in ("MAX_ARCH_BYTES", "MAX_IMPORT_BYTES", "MAX_RECORDS_BYTES"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, 100)
    big = tmp_path / "big.json"
    big.write_text(" " * 200 + "{}")
    for args, what in _inputs(big, tmp_path, arch):
        one_line_and_untouched(args, home, rf"over the 100 bytes cap for an? {what}",
                               root=tmp_path)


def test_an_arch_file_may_be_standard_input(home, arch):
    from click.testing import CliRunner

    from hwnas.cli import cli

    r = CliRunner().invoke(cli, ["predict", "--device", "pixel6", "--arch", "-"],
                           input=arch.read_text(), env={"HWNAS_HOME": str(home)})
    assert r.exit_code == 0, r.stderr
    assert " ms on pixel6" in r.stdout


def test_a_model_file_that_never_ends_is_one_line(tmp_path):
    from hwnas.anymodel import model as mfile
    from hwnas.errors import ModelError

    with pytest.raises(ModelError, match=r"/dev/zero is a character device.*model files are "
                                         r"regular files up to \d+ MB"):
        mfile.load_model("/dev/zero", "onnx")
    fifo = tmp_path / "m.onnx"
    os.mkfifo(fifo)
    with pytest.raises(ModelError, match="FIFO"):
        mfile.load_model(fifo, "onnx")


# --- 4: a user's mistake is named as theirs ------------------------------------------------
USER_SPACE = """
import sys
from hwnas.spaces.elasticvit.space import ElasticViTSpace

class NotASpace:
    pass

class Raises(ElasticViTSpace):
    def __init__(self):
        raise RuntimeError("no config here")

class Exits(ElasticViTSpace):
    def __init__(self):
        sys.exit(2)

def returns_a_number():
    return 3

def good():
    return ElasticViTSpace()
"""


@pytest.mark.parametrize("attr, pattern", [
    ("NotASpace", r"class NotASpace in .*issue25_user_space\.py is not a search space"),
    ("Raises", r"making Raises in .*issue25_user_space\.py failed: RuntimeError: no config here"),
    ("Exits", r"making Exits in .*issue25_user_space\.py failed: sys\.exit\(2\)"),
    ("returns_a_number", r"returns_a_number in .*issue25_user_space\.py returned an int object"),
], ids=["not-a-space", "raises", "exits", "returns-a-number"])
def test_a_user_space_that_is_not_one_is_named_as_theirs(home, tmp_path, arch, attr, pattern,
                                                         spaces_restored):
    (tmp_path / "issue25_user_space.py").write_text(USER_SPACE)
    spec = f"{tmp_path / 'issue25_user_space.py'}:{attr}"
    one_line_and_untouched(["predict", "--device", "pixel6", "--arch", arch, "--space", spec],
                           home, pattern, root=tmp_path)


@pytest.fixture
def spaces_restored():
    """The registry as it was: a user's space registered here must not leak into the other
    tests of this worker (test_models counts which spaces hold each named model)."""
    from hwnas.spaces import SPACES

    before = dict(SPACES)
    yield
    SPACES.clear()
    SPACES.update(before)


def test_a_user_space_function_still_works(home, tmp_path, arch, spaces_restored):
    (tmp_path / "issue25_user_space.py").write_text(USER_SPACE)
    r = invoke(["predict", "--device", "pixel6", "--arch", arch, "--space",
                f"{tmp_path / 'issue25_user_space.py'}:good"], home)
    assert r.exit_code == 0, r.stderr


def test_a_builtin_is_refused_without_being_called(home, arch):
    line = one_line_and_untouched(["predict", "--device", "pixel6", "--arch", arch,
                                   "--space", "os:system"], home,
                                  r"--space os:system: system in .*os\.py is a built-in "
                                  r"function, and is not a search space")
    assert "missing required argument" not in line  # never called to find out


@pytest.mark.parametrize("code", ["3", "'bye'", ""], ids=["3", "message", "none"])
def test_a_space_module_that_exits_is_one_line(home, tmp_path, arch, code):
    mod = tmp_path / f"issue25_exits_{len(code)}.py"
    mod.write_text(f"import sys\nsys.exit({code})\n")
    r = invoke(["predict", "--device", "pixel6", "--arch", arch, "--space", f"{mod}:Space"],
               home)
    line = assert_one_line(r, rf"--space .*{mod.name}:Space: importing search space module "
                              rf".*{mod.name}.* exited \(sys\.exit\(")
    assert "bye" not in r.stdout


def test_hwnas_own_failure_is_still_a_bug(home, arch, monkeypatch):
    from hwnas.cli.boundary import BUG
    from hwnas.spaces.elasticvit.space import ElasticViTSpace

    def broken(self, *a, **k):
        raise RuntimeError("an hwnas bug")

    monkeypatch.setattr(ElasticViTSpace, "__init__", broken)
    r = invoke(["predict", "--device", "pixel6", "--arch", arch], home)
    assert r.exit_code == 1 and BUG in r.stderr, r.stderr


DEEP = "[" * 100_000
HUGE_INT = '{"space": "elasticvit", "resolution": ' + "9" * 5000 + "}"


@pytest.mark.parametrize("text, pattern", [
    (DEEP, r"nests JSON 100000 levels deep; hwnas reads at most \d+"),
    ('{"a": ' + DEEP, r"nests JSON 100001 levels deep"),
    (HUGE_INT, r"holds an integer of 5000 digits; hwnas reads integers of at most \d+"),
], ids=["deep", "deep-in-an-object", "5000-digits"])
def test_json_past_its_limits_is_the_users_file(home, tmp_path, text, pattern):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    for args in (["predict", "--device", "pixel6", "--arch", bad],
                 ["predict", "--device", "pixel6", "--arch", bad, "--space", "elasticvit"],
                 ["fit", "--device", "local-cpu", "--kind", "lut", "--records", bad],
                 ["import", "nn-meter", bad, "--device", "android"]):
        line = one_line_and_untouched(args, home, pattern, root=tmp_path)
        assert str(bad) in line, line


def test_a_stored_records_file_nested_too_deep_is_named(home, tmp_path):
    path = home / "devices/local-cpu/records.json"
    path.write_text(DEEP)
    line = one_line_and_untouched(["records", "export", "--device", "local-cpu", "--csv",
                                   tmp_path / "o.csv"], home, "nests JSON", root=tmp_path)
    assert str(path) in line


def test_a_csv_arch_cell_past_the_limits_names_its_row(home, tmp_path):
    csv_path = tmp_path / "r.csv"
    csv_path.write_text('arch,latency_ms\n"' + "[" * 5000 + '",3.0\n')
    one_line_and_untouched(["records", "import", csv_path, "--device", "local-cpu", "--space",
                            "elasticvit", "--force"], home, r"row 2: .*nests JSON 5000 levels",
                           root=tmp_path)


def test_the_json_loader_limits():
    from hwnas.latency.safeio import JSONLimitError, load_json

    assert load_json(b'\xef\xbb\xbf{"a": [1, "[[[[", -12]}', "f") == {"a": [1, "[[[[", -12]}
    assert load_json('["' + "9" * 500 + '"]', "f") == ["9" * 500]  # digits in a string are text
    assert load_json("[" * 100 + "]" * 100, "f")  # deep, but within the limit
    with pytest.raises(JSONLimitError, match="f nests JSON 129 levels"):
        load_json("[" * 129 + "]" * 129, "f")
    with pytest.raises(JSONLimitError, match="65 digits"):
        load_json("-" + "1" * 65, "f")
    with pytest.raises(JSONLimitError, match="cap"):
        load_json(b"[]" * 10, "f", cap=5)
    with pytest.raises(json.JSONDecodeError):
        load_json("not json", "f")  # a caller may read the text another way


def _custom_domain_onnx(path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("MyOp", ["x"], ["y"], domain="com.example")],
                              "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                      helper.make_opsetid("com.example", 1)]),
              path)
    return path


def test_measure_of_a_custom_domain_op_names_the_users_file(home, tmp_path):
    model = _custom_domain_onnx(tmp_path / "custom.onnx")
    line = one_line_and_untouched(["measure", "--device", "local-cpu", "--onnx", model], home,
                                  r"onnxruntime cannot run .*custom\.onnx.*com\.example:MyOp")
    assert "cache" not in line and str(home) not in line, line


# --- 6: the messages -------------------------------------------------------------------------
def _full_disk(monkeypatch):
    import errno

    from hwnas.latency import safeio

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safeio.os, "fsync", no_space)


def test_a_full_disk_names_the_file_and_the_free_space(home, tmp_path, monkeypatch):
    out = tmp_path / "out.csv"
    _full_disk(monkeypatch)
    line = one_line_and_untouched(["records", "export", "--device", "local-cpu", "--csv", out],
                                  home, rf"{out}: no space left on device \([\d.]+ \w+ free in "
                                        rf"{tmp_path}; the file is [\d.]+ kB\)", root=tmp_path)
    assert not out.exists() and not list(tmp_path.glob(".out.csv.*"))  # no temp file left


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_really_full_disk_names_the_file_and_the_free_space(home, tmp_path):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        try:
            (tiny / "filler").write_bytes(b"x" * 2**20)
        except OSError:
            pass  # full now
        line = assert_one_line(export_csv(home, tiny / "out.csv"),
                               r"out\.csv: no space left on device \(0 bytes free in .*tiny; "
                               r"the file is [\d.]+ kB\)")
        assert str(tiny / "out.csv") in line
    finally:
        subprocess.run(["umount", str(tiny)], capture_output=True)


def test_a_full_disk_is_not_blamed_on_the_reference_model():
    import errno

    from hwnas.profilers.reference import reference_error

    e = OSError(errno.ENOSPC, "No space left on device (0 bytes free in /c/onnx; the file is "
                              "20.2 MB)", "/c/onnx/_reference.onnx")
    msg = str(reference_error("local-cpu", e))
    assert msg == ("local-cpu: cannot write the reference model (/c/onnx/_reference.onnx: no "
                   "space left on device (0 bytes free in /c/onnx; the file is 20.2 MB))")
    assert "delete the cached reference model" in str(reference_error("x", RuntimeError("bad")))


@pytest.mark.parametrize("data", ["", "  "])
def test_an_empty_data_spec_is_refused(home, tmp_path, data):
    run = tmp_path / "run"
    one_line_and_untouched(["train-supernet", "--data", data, "--out", run, "--epochs", "1"],
                           home, r"--data.*names no dataset", root=tmp_path)
    assert not run.exists()


def test_a_data_folder_without_classes_is_named(home, tmp_path):
    from hwnas.data import DataError, count_classes, load_data

    empty, one = tmp_path / "empty", tmp_path / "one"
    empty.mkdir()
    (one / "train" / "cat").mkdir(parents=True)
    for folder, pattern in ((empty, "has no class folders"), (one, "has one class folder")):
        line = one_line_and_untouched(["train-supernet", "--data", folder, "--out",
                                       tmp_path / "run", "--epochs", "1"], home, pattern,
                                      root=tmp_path)
        assert str(folder) in line, line
    with pytest.raises(DataError, match=str(empty)):
        count_classes(str(empty))
    with pytest.raises(DataError, match="names no dataset"):
        load_data("")


def test_measure_sample_zero_is_out_of_range_in_help_too(home):
    assert_one_line(invoke(["measure", "--device", "local-cpu", "--sample", "0"], home),
                    r"'--sample': 0 is not in the range 1<=x<=100000")
    shown = invoke(["measure", "--help"], home).stdout
    assert "1<=x<=100000" in shown.split("--sample", 1)[1].split("--passes", 1)[0]
    assert_one_line(invoke(["measure", "--device", "local-cpu"], home),
                    r"give --arch FILE or --sample N")


# --- 7: imports say what they really check ----------------------------------------------------
NN_METER_PHONES = ("pixel1", "pixel4", "pixel6", "xiaomi11")


@pytest.mark.data
def test_the_published_hashes_are_the_shared_files(shared_data):
    import hashlib

    from hwnas.latency.importers import PUBLISHED

    files = {**{f"nn-meter-vit-luts/{p}_lut_ln_v3.json": ("nn-meter", p) for p in NN_METER_PHONES},
             "tf-nas-luts/latency_cpu.pkl": ("tf-nas", "xeon-gold-6130"),
             "tf-nas-luts/latency_gpu.pkl": ("tf-nas", "titan-rtx")}
    for rel, (fmt, device) in files.items():
        known = PUBLISHED[hashlib.sha256((shared_data / rel).read_bytes()).hexdigest()]
        assert (known.fmt, known.device) == (fmt, device)
        assert known.source.endswith("/" + rel.split("/")[-1])
    assert len(PUBLISHED) == len(files)


@pytest.mark.data
@pytest.mark.parametrize("name, device", [("pixel6_lut_ln_v3.json", "pixel6"),
                                          ("lut.json", "pixel7"), ("lut.json", "android"),
                                          ("pixel4_lut_ln_v3.json", "xiaomi11")])
def test_a_known_table_is_refused_as_another_device_whatever_its_name(home, tmp_path,
                                                                      shared_data, name, device):
    copy = tmp_path / name
    shutil.copy(shared_data / "nn-meter-vit-luts/pixel4_lut_ln_v3.json", copy)
    line = one_line_and_untouched(["import", "nn-meter", copy, "--device", device, "--force"],
                                  home, rf"{name} is the table of pixel4 \(microsoft/nn-Meter .*"
                                        rf"pixel4_lut_ln_v3\.json; recognised by its sha256",
                                  root=home.parent)
    assert f"not of {device}" in line and "--device pixel4" in line


@pytest.mark.data
def test_a_known_table_under_any_name_imports_as_its_device_and_is_named(home, tmp_path,
                                                                         shared_data):
    copy = tmp_path / "whatever.json"
    shutil.copy(shared_data / "nn-meter-vit-luts/pixel4_lut_ln_v3.json", copy)
    r = invoke(["import", "nn-meter", copy, "--device", "pixel4"], home)
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""  # known: no warning
    assert "is the published table microsoft/nn-Meter" in r.stdout
    assert "pixel4_lut_ln_v3.json (recognised by its sha256)" in r.stdout
    from hwnas.latency.table import LatencyTable

    meta = LatencyTable.load(home / "devices/pixel4/table.pkl").meta
    assert meta["recognised_as"].endswith("lut/pixel4_lut_ln_v3.json")


@pytest.mark.data
def test_tf_nas_tables_are_recognised_by_content(home, tmp_path, shared_data):
    cpu = tmp_path / "latency_gpu.pkl"  # the CPU table, named as the GPU one
    shutil.copy(shared_data / "tf-nas-luts/latency_cpu.pkl", cpu)
    one_line_and_untouched(["import", "tf-nas", cpu, "--device", "titan-rtx"], home,
                           r"latency_gpu\.pkl is the table of xeon-gold-6130 \(AberHu/TF-NAS .*"
                           r"latency_cpu\.pkl; recognised by its sha256", root=home.parent)
    r = invoke(["import", "tf-nas", cpu, "--device", "xeon-gold-6130"], home)
    assert r.exit_code == 0, r.stderr
    assert "latency_cpu.pkl (recognised by its sha256)" in r.stdout


@pytest.mark.data
def test_an_edited_copy_imports_with_a_warning(home, tmp_path, shared_data):
    raw = json.loads((shared_data / "nn-meter-vit-luts/pixel4_lut_ln_v3.json").read_text())
    key = sorted(raw)[0]
    raw[key] *= 1.01
    edited = tmp_path / "lut.json"
    edited.write_text(json.dumps(raw))
    r = invoke(["import", "nn-meter", edited, "--device", "pixel7"], home)
    assert r.exit_code == 0, r.stderr
    assert "recognised" not in r.stdout
    warning = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(warning) == 1 and "WARNING" in warning[0], r.stderr
    assert "is not one of the published tables hwnas knows" in warning[0]
    assert "which hardware measured it could not be checked" in warning[0]


def test_an_unknown_file_still_has_its_name_checked(home, tmp_path):
    lut, _ = _nn_meter_json(tmp_path / "pixel4_lut_ln_v3.json", value=1.0)
    one_line_and_untouched(["import", "nn-meter", lut, "--device", "pixel6", "--force"], home,
                           "looks like the table of pixel4", root=home.parent)
    r = invoke(["import", "nn-meter", lut, "--device", "pixel4"], home)
    assert r.exit_code == 0 and "could not be checked" in r.stderr, r.stderr


def test_the_readme_says_what_an_import_checks():
    readme = (CHECKOUT / "README.md").read_text()
    assert "recognised by their sha256" in readme
    assert "measured on other hardware (TF-NAS's" not in readme
