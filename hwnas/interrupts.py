"""A block that a Ctrl-C cannot split: for a save and the count that reports it.

Masking SIGINT (``pthread_sigmask``, as native_imports does for imports) is per thread: in a
process with other threads (onnxruntime's pools, tqdm's monitor, pytest-xdist's channel) the
kernel hands the signal to one of them, CPython sets its flag, and the main thread raises at
its next bytecode all the same. Python-level handlers always run in the main thread, so the
block swaps the handler instead: a Ctrl-C inside it is noted, and delivered when it ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Ctrl-C inside the block is delivered (to the handler it replaced) when the block ends;
    a no-op outside the main thread, where handlers cannot be set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if got and callable(old):  # an ignored SIGINT (SIG_IGN) stays ignored
        old(signal.SIGINT, None)
    elif got and old == signal.SIG_DFL:
        raise KeyboardInterrupt
