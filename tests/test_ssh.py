"""The ssh device kind end to end, with no board: real SSH, a stand-in board.

THE BOARD HERE IS A STAND-IN for a Raspberry Pi (or a Jetson, a remote Xeon) reachable over
SSH. ``sshd_standin.py`` is a real SSH server (asyncssh's) on loopback with a host key made for
the test and one authorised client key; it runs every command with /bin/sh on THIS machine and
serves this machine's files over SFTP. So the board is this machine: its python (the venv's, with
onnxruntime), its /proc/cpuinfo, its cores. Every connection, host key check, login, command and
model copy of the ssh profiler goes through the real asyncssh client and the real protocol, and
the timing runner really runs the models; numbers measured here say nothing about a Pi.
"""

import shutil
import socket
import sys
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # cryptography's DSA deprecation, at asyncssh's import
    asyncssh = pytest.importorskip("asyncssh", reason="ssh tests need asyncssh "
                                                      "(pip install 'hwnas[ssh]')")

from cli_harness import assert_one_line, invoke  # noqa: E402
from sshd_standin import StandinBoard  # noqa: E402

from hwnas.device_configs import load_device  # noqa: E402
from hwnas.errors import DeviceError  # noqa: E402
from hwnas.latency.table import LatencyTable  # noqa: E402

# asyncssh's process redirection (the stand-in server's side) leaves a cleanup coroutine
# unawaited when a connection is cut; harmless, and not hwnas's
pytestmark = pytest.mark.filterwarnings("ignore:coroutine 'Queue.join' was never awaited")
FAST = ["warmup=1", "runs=3", "reference_rounds=3", "reference_batches=1"]
NB201_OPS = 22  # nb201's distinct ops at 32 px


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    b = StandinBoard(tmp_path_factory.mktemp("board")).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def reference_cache(tmp_path_factory):
    """The reference network exported once for the module (each test has its own home)."""
    from hwnas.profilers.reference import reference_onnx

    cache = tmp_path_factory.mktemp("ssh-export")
    return reference_onnx(cache)


@pytest.fixture
def home(hwnas_home, reference_cache):
    dst = hwnas_home / "cache" / "onnx"
    dst.mkdir(parents=True)
    shutil.copy(reference_cache, dst / reference_cache.name)
    return hwnas_home


def add_board(home, board, tmp_path, *extra, name="board", python=sys.executable):
    kh = board.known_hosts(tmp_path / "known_hosts")
    r = invoke(["devices", "add", name, "--kind", "ssh", "host=127.0.0.1",
                f"port={board.port}", f"identity_file={board.identity}", f"known_hosts={kh}",
                f"python={python}", f"workdir={tmp_path / 'board-workdir'}", *FAST, *extra],
               home)
    assert r.exit_code == 0, r.stderr
    return load_device(name)


def small_onnx(path: Path) -> Path:
    from hwnas.profilers.export import export_onnx
    from hwnas.spaces import get_space

    space = get_space("nb201")
    arch = space.smallest(32)
    return export_onnx(space.build_model(arch), space.input_shape(arch), path)


def as_seen(result):
    """The result as a terminal shows it: the progress bar (stderr, erased with \\r when the
    command stops) is not a line of its own."""
    from types import SimpleNamespace

    shown = "\n".join(line.rsplit("\r", 1)[-1] for line in result.stderr.split("\n"))
    return SimpleNamespace(exception=result.exception, exit_code=result.exit_code,
                           stdout=result.stdout, stderr=shown)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_measure_a_model_and_profile_ops_over_ssh(board, home, tmp_path):
    add_board(home, board, tmp_path)
    assert invoke(["devices", "check", "board"], home).stdout.startswith("board: reachable")
    model = small_onnx(tmp_path / "model.onnx")
    r = invoke(["measure", "--device", "board", "--onnx", model], home)
    assert r.exit_code == 0, r.stderr
    assert " ms" in r.stdout
    before = board.uploads
    r = invoke(["profile", "--device", "board", "--space", "nb201", "-r", "32"], home)
    assert r.exit_code == 0, r.stderr
    from hwnas.home import device_paths

    table = LatencyTable.load(device_paths("board", home).table)
    assert len(table) == NB201_OPS
    assert set(table.ratios) == set(table.entries)  # every op timed beside the reference
    m = table.meta
    assert m["transport"] == "ssh" and m["runtime"] == "onnxruntime"
    assert m["board"]["kernel"].startswith("Linux ") and m["cpu"]
    assert m["protocol"]["reference"].startswith("reference-v2")
    assert len(m["affinity"]) == 1  # "auto": one core of the board, picked there
    # models went over SFTP once each: the reference and the overhead model were already there
    assert board.uploads - before == NB201_OPS
    runner = [c for c in board.commands if "ssh_runner-" in c][-1]
    assert " serve " in runner and "'" in runner  # every argument quoted
    # a rerun has nothing to do and copies nothing
    uploads = board.uploads
    r = invoke(["profile", "--device", "board", "--space", "nb201", "-r", "32"], home)
    assert r.exit_code == 0, r.stderr
    assert board.uploads == uploads


def test_wrong_host_key_is_refused_in_one_line(board, home, tmp_path):
    add_board(home, board, tmp_path)
    other = asyncssh.generate_private_key("ssh-ed25519")
    kh = board.known_hosts(tmp_path / "known_hosts", other)  # the yaml's file, now wrong
    line = assert_one_line(invoke(["devices", "check", "board"], home),
                           r"host key of 127\.0\.0\.1:\d+ refused")
    assert str(kh) in line
    model = small_onnx(tmp_path / "m.onnx")
    assert_one_line(invoke(["measure", "--device", "board", "--onnx", model], home),
                    rf"host key of 127\.0\.0\.1:{board.port} refused.*{kh.name}")
    kh.write_text("")  # a board it has never seen
    assert_one_line(invoke(["devices", "check", "board"], home), "host key .* refused")
    kh.unlink()  # no file at all: refused too, never unchecked
    assert_one_line(invoke(["devices", "check", "board"], home),
                    "cannot check the host key .*no known_hosts file")


def test_unreachable_host_in_one_line(board, home, tmp_path):
    add_board(home, board, tmp_path)
    port = free_port()  # nothing listens there
    add_board(home, board, tmp_path, name="gone")
    path = home / "devices" / "gone.yaml"
    path.write_text(path.read_text().replace(f"port: {board.port}", f"port: {port}"))
    assert_one_line(invoke(["devices", "check", "gone"], home),
                    rf"gone cannot be reached: cannot reach 127\.0\.0\.1:{port}")
    model = small_onnx(tmp_path / "m.onnx")
    assert_one_line(invoke(["measure", "--device", "gone", "--onnx", model], home),
                    rf"cannot reach 127\.0\.0\.1:{port}")


def test_runtime_missing_on_the_board_in_one_line(board, home, tmp_path):
    """The board's python cannot import onnxruntime (a wrapper hides it from this one)."""
    fake = tmp_path / "no-ort"
    (fake / "onnxruntime").mkdir(parents=True)
    (fake / "onnxruntime" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'onnxruntime'\")\n")
    wrapper = tmp_path / "python-without-ort"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={fake} exec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    add_board(home, board, tmp_path, python=str(wrapper))
    model = small_onnx(tmp_path / "m.onnx")
    line = assert_one_line(invoke(["measure", "--device", "board", "--onnx", model], home),
                           "onnxruntime is missing on board")
    assert str(wrapper) in line and "pip install onnxruntime" in line
    assert_one_line(invoke(["devices", "check", "board"], home),
                    r"onnxruntime is missing on board \(127\.0\.0\.1:\d+\)")
    add_board(home, board, tmp_path, "--force", name="board", python="/nonexistent/python3")
    assert_one_line(invoke(["measure", "--device", "board", "--onnx", model], home),
                    "cannot start '/nonexistent/python3'")


@pytest.mark.slow
def test_dropped_connection_mid_profile_loses_nothing_and_resumes(board, home, tmp_path):
    from hwnas.home import device_paths

    add_board(home, board, tmp_path)
    # the overhead model, the reference, the sentinel, two ops; cut while copying the next
    board.drop_at = board.uploads + 6
    try:
        line = assert_one_line(as_seen(invoke(["profile", "--device", "board", "--space",
                                               "nb201", "-r", "32"], home)), "stopped answering")
    finally:
        board.drop_at = 0
    assert "rerun to resume" in line and board.drops >= 1
    path = device_paths("board", home).table
    first = LatencyTable.load(path)  # saved on the way out
    assert 0 < len(first) < NB201_OPS
    r = invoke(["profile", "--device", "board", "--space", "nb201", "-r", "32"], home)
    assert r.exit_code == 0, r.stderr
    table = LatencyTable.load(path)
    assert len(table) == NB201_OPS and set(first.entries) <= set(table.entries)
    # nothing measured before the drop was re-measured: the same ratios (the ms move with the
    # table's one reference speed, which the new observations refine)
    for k, r in first.ratios.items():
        assert table.ratios[k].to_list() == r.to_list()


def test_two_hosts_never_time_on_one_board_at_once(board, home, tmp_path, monkeypatch):
    """The runner's lock on the board: a second session (another host, another hwnas home:
    hwnas's own measuring locks do not see it) waits, here 0 s, and says the board is busy."""
    from hwnas.profilers.ssh import SshProfiler

    cfg = add_board(home, board, tmp_path, "reference=false")
    monkeypatch.setenv("HWNAS_LOCK_TIMEOUT", "0")
    with SshProfiler(cfg, home / "cache"):
        with pytest.raises(DeviceError, match="the board is busy: hwnas runner pid"):
            with SshProfiler(cfg, home / "cache"):
                pass
    with SshProfiler(cfg, home / "cache") as prof:  # released when the first session ended
        assert prof.call_overhead_ms > 0


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["tflite", "benchmark_model"])
def test_litert_and_benchmark_model_on_the_board(board, tmp_path, tflite_cache, export_seeded,
                                                 runtime):
    """runtime: tflite (LiteRT in the board's python) and benchmark_model (the binary on the
    board; here benchmark_model_standin.py, which really runs the model with LiteRT)."""
    pytest.importorskip("ai_edge_litert", reason="the board's LiteRT is this machine's")
    from hwnas.profilers.export import tflite_export_available

    if not tflite_export_available():
        pytest.skip("litert-torch is not installed: no .tflite to copy to the board")
    from standin_harness import standin_bin

    from hwnas.device_configs import DeviceConfig
    from hwnas.profilers.ssh import SshProfiler
    from hwnas.spaces.elasticvit.ops import MBConv

    op = MBConv(16, 24, 24, 4, 1, 3, 1)
    path = export_seeded(op)
    cfg = DeviceConfig(
        name="board", description="a stand-in board", kind="ssh", host="127.0.0.1",
        port=board.port, identity_file=str(board.identity), python=sys.executable,
        known_hosts=str(board.known_hosts(tmp_path / "known_hosts")), runtime=runtime,
        workdir=str(tmp_path / "wd"), benchmark_bin=str(standin_bin(tmp_path)), warmup=1,
        runs=3, reference=False)  # the reference's .tflite export alone takes a minute here
    with SshProfiler(cfg, tflite_cache) as prof:
        op_ms = prof.measure_op_full(op)
        whole = prof.measure_file_full(path, "tflite")
        meta = prof.meta()
    assert op_ms.stats.n == 3 and op_ms.stats.median_ms > 0 and whole.stats.median_ms > 0
    assert meta["runtime"] == {"tflite": "litert",
                               "benchmark_model": "tflite-benchmark_model"}[runtime]
    # the model went to the board's workdir under its content hash
    assert any(p.name.startswith(op.key) for p in (tmp_path / "wd" / "models").iterdir())
