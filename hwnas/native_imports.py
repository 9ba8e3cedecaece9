"""Ctrl-C deferred while a native library initialises (the CLI installs this; the library
never does).

torch and onnxruntime run C++ (pybind11) code while they import. Python's SIGINT handler only
sets a flag, but pybind11 checks for pending signals inside that code, turns the flag into an
exception where none may be thrown, and the process dies in ``std::terminate`` ("terminate
called after throwing an instance of 'pybind11::error_already_set'"): no exit 130, no word on
what was saved. hwnas imports these libraries lazily, mid-command, so a Ctrl-C can land in
one. While one of them imports, SIGINT is blocked at the OS level; it is delivered (and
handled as any Ctrl-C) the moment the native code is done: the import then ends in
KeyboardInterrupt, and the CLI exits 130 as for any Ctrl-C.

The block is the main thread's mask. A thread started earlier with SIGINT unblocked could
still take the signal during the import; the CLI starts none before its first heavy import.
"""

from __future__ import annotations

import importlib.abc
import signal
import sys
import threading

# Top-level packages with native initialisation that hwnas imports lazily.
NATIVE = frozenset({"torch", "onnxruntime", "onnx", "xgboost", "sklearn", "ai_edge_litert",
                    "litert_torch", "transformers"})


class _Blocked:
    """SIGINT blocked for the thread's duration inside the block (main thread only: signals
    are delivered there, and pthread_sigmask is per thread)."""

    def __enter__(self):
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old)


class _DeferredLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        with _Blocked():
            return self._loader.create_module(spec)

    def exec_module(self, module):
        with _Blocked():
            self._loader.exec_module(module)

    def __getattr__(self, name):  # get_resource_reader, is_package, ...: the real loader's
        if name == "_loader":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self._loader, name)


class _DeferInterrupts(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in NATIVE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _DeferredLoader(spec.loader)
                return spec
        return None


def defer_interrupts_during_native_imports() -> None:
    """Install the finder once (idempotent); a no-op where signals cannot be masked."""
    if not hasattr(signal, "pthread_sigmask"):
        return
    if not any(isinstance(f, _DeferInterrupts) for f in sys.meta_path):
        sys.meta_path.insert(0, _DeferInterrupts())
