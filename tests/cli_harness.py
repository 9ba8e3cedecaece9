"""What the command-line tests share: run ``hwnas`` in-process exactly as a user meets it,
check the error contract, build small real homes, and make a folder really read-only.

The CLI runs through click's CliRunner and ``hwnas.cli.cli``, whose class is the CLI's one
error boundary, so a test sees the same exit status and stderr as ``hwnas`` in a shell.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from hwnas.cli.boundary import BUG
from hwnas.latency.records import Records
from hwnas.latency.stats import Stats
from hwnas.latency.table import LatencyTable
from hwnas.spaces import get_space

# files hwnas may create or rewrite without it being data: locks and who holds them
NOT_DATA = re.compile(r"(^|/)(\.hwnas\.lock|locks/.*)$")


def invoke(args, home, cwd=None, **env):
    """Run ``hwnas ARGS`` with HWNAS_HOME=home (in folder ``cwd``, where relative paths land);
    returns click's Result (stdout and stderr apart)."""
    env = {"HWNAS_HOME": str(home), **env}
    with _chdir(cwd):
        return CliRunner().invoke(_cli(), [str(a) for a in args], env=env, prog_name="hwnas",
                                  catch_exceptions=True)


@contextlib.contextmanager
def _chdir(folder):
    if folder is None:
        yield
        return
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def _cli():
    from hwnas.cli import cli

    return cli


def error_lines(result) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if ln.strip()]


def assert_one_line(result, pattern: str = "", code: int = 1) -> str:
    """The error contract: a non-zero exit, exactly one line on stderr, never a traceback,
    never the boundary's 'this is a bug' line."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception, result.stderr)
    lines = error_lines(result)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(("hwnas: error: ", "hwnas: interrupted")), line
    assert "Traceback" not in result.stderr and BUG not in line, line
    if pattern:
        assert re.search(pattern, line), line
    return line


LATENCY = re.compile(r"(?<![\w.])([-+]?(?:\d[\d.]*(?:e[-+]?\d+)?|inf|nan))\s*ms\b", re.I)


def printed_latencies(stdout: str) -> list[float]:
    """Every latency a command printed: 'N ms' in text, and '*_ms' values in JSON."""
    values = [float(m.group(1)) for m in LATENCY.finditer(stdout)]
    try:
        doc = json.loads(stdout)
    except ValueError:
        return values

    def walk(obj, key=""):
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, k)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, key)
        elif key.endswith("_ms") and obj is not None:
            values.append(float(obj))

    walk(doc)
    return values


def assert_latencies_sane(result) -> None:
    for v in printed_latencies(result.stdout):
        assert math.isfinite(v) and v > 0, (v, result.stdout)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every data file under root, by relative path (locks are not data)."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not p.is_symlink() and not NOT_DATA.search(rel):
            try:
                out[rel] = p.read_bytes()
            except OSError:
                out[rel] = b"<unreadable>"
    return out


def assert_untouched(before: dict[str, bytes], root: Path) -> None:
    after = snapshot(root)
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"files changed by a failed command: {changed}"


# --- small real homes --------------------------------------------------------------------
def synthetic_table(device: str, space: str = "elasticvit", resolutions=None,
                    **meta) -> LatencyTable:
    """A table priced from op MACs (no measuring): what an imported table looks like."""
    sp = get_space(space, resolutions)
    entries = {op.key: Stats.single(0.01 + op.macs() / 3e7)
               for r in sp.resolutions for op in sp.enumerate_ops(r)}
    return LatencyTable({"device": device, **meta}, entries)


def synthetic_records(device: str, n: int = 14, passes: int = 2, seed: int = 0) -> Records:
    """Records of n sampled elasticvit subnets at 160 px, priced from MACs with +-3% noise."""
    import numpy as np

    sp = get_space("elasticvit", [160])
    rng = np.random.default_rng(seed)
    recs = Records(device, {"runtime": "synthetic"})
    for _ in range(n):
        arch = sp.sample(rng)
        base = 0.5 + sp.macs(arch) / 3e7
        for _ in range(passes):
            recs.add(arch.to_dict(), Stats.from_samples(base * (1 + 0.03 * rng.standard_normal(5))))
    return recs


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


# --- read-only folders -------------------------------------------------------------------
def _mount(*args) -> bool:
    try:
        return subprocess.run(["mount", *args], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def read_only_supported(probe_dir: Path) -> bool:
    """Whether this process can make a folder read-only for itself: an unprivileged user by
    permissions, root (which ignores them) by a read-only bind mount."""
    if os.geteuid() != 0:
        return True
    probe = Path(probe_dir) / "ro-probe"
    probe.mkdir(parents=True, exist_ok=True)
    with read_only(probe, strict=False) as ok:
        return ok and not os.access(probe, os.W_OK)


@contextlib.contextmanager
def read_only(folder: Path, strict: bool = True):
    """Make ``folder`` read-only for this process for the duration; yields whether it is."""
    folder = Path(folder)
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if not p.is_symlink()}
        for p, m in modes.items():
            p.chmod(m & ~0o222)
        try:
            yield True
        finally:
            for p, m in modes.items():
                p.chmod(m)
        return
    ok = _mount("--bind", str(folder), str(folder))
    if ok and not _mount("-o", "remount,bind,ro", str(folder)):
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=10)
        ok = False
    if strict and not ok:
        raise RuntimeError("cannot make a read-only folder here (root without mount rights)")
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", str(folder)], capture_output=True, timeout=10)


CONSOLE_SCRIPT = Path(__file__).resolve().parent / "console_script.py"
CHECKOUT = Path(__file__).resolve().parent.parent


def run_console_script(args, cwd, home, timeout=600) -> subprocess.CompletedProcess:
    """``hwnas ARGS`` as a user types it in the folder ``cwd``: a new process, the console
    script's code, the current folder not on sys.path; this checkout's hwnas."""
    env = dict(os.environ, HWNAS_HOME=str(home), PYTHONPATH=str(CHECKOUT))
    return subprocess.run([sys.executable, str(CONSOLE_SCRIPT), *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)
