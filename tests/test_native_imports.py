"""A Ctrl-C that lands while torch imports is handled after the import, not as an abort.

Without the deferral, pybind11 turns the pending SIGINT into an exception inside torch's C++
initialisation (std::terminate, SIGABRT) or the import stops half-way; with it the signal waits
until torch's initialisation has run and then raises KeyboardInterrupt like any other Ctrl-C
(as the import returns: the import counts as interrupted, and the CLI exits 130)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

CHILD = r"""
import sys, time
from hwnas.native_imports import defer_interrupts_during_native_imports
defer_interrupts_during_native_imports()
print("ready", flush=True)
t0 = time.perf_counter()
try:
    import torch  # noqa: F401
    time.sleep(5)  # the deferred signal arrives before this ends
    print("no interrupt", flush=True)
    sys.exit(3)
except KeyboardInterrupt:
    print(time.time(), flush=True)
    print("interrupted", flush=True)
    sys.exit(130)
"""


def test_ctrl_c_during_torch_import_waits_for_the_import():
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.05)  # torch takes a second or more to import: the signal lands inside it
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, out, err[-2000:])
    caught, verdict = out.split()[0], " ".join(out.split()[1:])
    assert verdict == "interrupted", out
    # it waited for torch's native initialisation to end (which outlasts this by far)
    assert float(caught) - sent > 0.2, "the import ended before the signal: nothing was tested"
    assert "terminate called" not in err
