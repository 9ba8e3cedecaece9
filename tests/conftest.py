"""Shared fixtures. Tests run with their own HWNAS_HOME and never touch the user's tables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
# docs/extending.md's worked example, registered like any user's space: every registry-driven
# test (they enumerate hwnas.spaces.SPACES) runs on it as on the built-in families.
EXAMPLE_SPACE = REPO / "docs" / "examples" / "my_space.py"


def pytest_configure(config):
    import signal

    from hwnas.spaces import get_space

    # A suite started in the background by a non-interactive shell inherits SIGINT ignored, and
    # an ignored signal survives exec: the hwnas processes the interruption tests start would
    # never see their Ctrl-C. A handler (unlike SIG_IGN) is reset to the default on exec.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    _own_core_per_worker()

    get_space(f"{EXAMPLE_SPACE}:MySpace")


def _own_core_per_worker() -> None:
    """Under pytest-xdist (``-n 2``), confine worker ``gwK`` to core ``K`` (modulo the cores
    this process may use). The profilers' "auto" affinity pins to the last *allowed* core, so
    without this every worker's measurements would queue on the same core while the other
    idles; with it each worker is a one-core machine of its own, and the processes it starts
    inherit that."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if count < 2 or len(cores) < 2:
        return
    os.sched_setaffinity(0, {cores[int(worker[2:]) % len(cores)]})


@pytest.fixture(autouse=True)
def hwnas_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "hwnas-home"
    monkeypatch.setenv("HWNAS_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def export_cache_dir(tmp_path_factory) -> Path:
    """One ONNX export cache for the whole session: keys are stable, exports are reusable."""
    return tmp_path_factory.mktemp("export-cache")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real tables measured by others are not here ({SHARED_DATA} is absent)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests share 2 cores; keep torch from spawning a thread per core."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def hwnas_env(home: Path) -> dict:
    env = dict(os.environ, HWNAS_HOME=str(home))
    return env


@pytest.fixture(scope="session")
def tflite_cache(tmp_path_factory):
    """One export cache (cache_dir/tflite/{key}.tflite) for the whole session: exporting a block
    with litert-torch costs 1-3 s, so the TFLite and adb tests share their exports. Everything
    in it is exported through ``export_seeded``, so a test can rebuild the same weights."""
    return tmp_path_factory.mktemp("tflite-export-cache")


@pytest.fixture(scope="session")
def export_seeded(tflite_cache):
    """op -> its cached .tflite, exported (once per session) from ``op.build()`` under
    ``torch.manual_seed(0)``; ``torch.manual_seed(0); op.build()`` gives the same weights."""
    import torch

    from hwnas.profilers.export import tflite_for_op

    def export(op):
        path = tflite_cache / "tflite" / f"{op.key}.tflite"
        if not path.exists():
            torch.manual_seed(0)
            tflite_for_op(op, tflite_cache)
        return path

    return export
