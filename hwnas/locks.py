"""Locks between hwnas processes (filelock), so that concurrent commands neither lose nor
disturb each other's work.

* ``folder_lock(folder)`` is held for the moment of a read-merge-write of a device's files
  (table, records, predictors) and around an export into the shared cache. Files are still
  written atomically; the lock makes two processes' read-then-write sequences take turns, so
  neither overwrites what the other saved in between.
* ``measuring(home, resources)`` is held while a process times anything on a piece of
  hardware: this machine's CPU, its GPU, a phone (by serial). Two processes timing on one core
  at once would each measure the other's load, so the second one waits, with a message on
  stderr, and gives up after ``HWNAS_LOCK_TIMEOUT`` seconds (0: refuse at once).

The measuring locks live in ``$HWNAS_HOME/locks``: processes with different homes are not kept
apart (one home per machine is the intended use).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path
from typing import Iterator, Sequence

from filelock import FileLock, Timeout

from hwnas.errors import HwnasError, LockTimeout

log = logging.getLogger(__name__)
LOCK_NAME = ".hwnas.lock"
FILES_TIMEOUT_S = 120.0  # a read-merge-write takes milliseconds; minutes mean something is stuck
TIMEOUT_ENV = "HWNAS_LOCK_TIMEOUT"
MEASURING_TIMEOUT_S = 6 * 3600.0  # a phone profile takes half an hour; wait through one


@contextlib.contextmanager
def folder_lock(folder: str | Path, timeout: float = FILES_TIMEOUT_S) -> Iterator[None]:
    """Exclusive access to the files of one folder (a device's, or the export cache)."""
    path = Path(folder) / LOCK_NAME
    lock = FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise LockTimeout(f"{folder} has been locked by another hwnas process for over "
                          f"{timeout:g} s (lock file {path})") from None
    try:
        yield
    finally:
        lock.release()


def measuring_resources(cfg, serials: Sequence[str] = ()) -> list[str]:
    """What a device's profiler times on, as its kind declares (hwnas.devices): 'cpu'
    (onnxruntime and LiteRT here share the core they pin), 'gpu', a phone ('adb-SERIAL') or a
    board ('ssh-HOST_PORT')."""
    from hwnas.devices import kind_of

    return kind_of(cfg).resources(cfg, tuple(serials))


def describe(resource: str) -> str:
    return {"cpu": "this machine's CPU", "gpu": "this machine's GPU"}.get(
        resource, f"phone {resource[4:]}" if resource.startswith("adb-") else
        f"board {resource[4:]}" if resource.startswith("ssh-") else resource)


def lock_timeout_s(env: dict | None = None) -> float:
    env = os.environ if env is None else env
    text = env.get(TIMEOUT_ENV, "")
    if not text:
        return MEASURING_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:  # also refuses NaN
        raise HwnasError(f"{TIMEOUT_ENV} must be a number of seconds >= 0, got {text!r}")
    return value


def _owner(path: Path) -> str:
    try:
        o = json.loads(path.read_text())
        return f"pid {o['pid']} ('{o['command']}', since {o['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another hwnas process"


@contextlib.contextmanager
def measuring(home: str | Path, resources: Sequence[str], timeout: float | None = None,
              ) -> Iterator[None]:
    """Hold the measuring locks of ``resources`` (taken in sorted order: no deadlock)."""
    folder = Path(home) / "locks"
    timeout = lock_timeout_s() if timeout is None else timeout
    with contextlib.ExitStack() as stack:
        for res in sorted(set(resources)):
            lock = FileLock(str(folder / f"measure-{res}.lock"))
            owner = folder / f"measure-{res}.owner"
            try:
                lock.acquire(blocking=False)
            except Timeout:
                who = _owner(owner)
                if timeout <= 0:
                    raise LockTimeout(f"{who} is measuring on {describe(res)}; timings taken at "
                                      f"the same time would disturb each other (set "
                                      f"{TIMEOUT_ENV} to wait)") from None
                log.warning("waiting for %s to finish measuring on %s (timings taken at the "
                            "same time would disturb each other); up to %g s, see %s", who,
                            describe(res), timeout, TIMEOUT_ENV)
                try:
                    lock.acquire(timeout=timeout)
                except Timeout:
                    raise LockTimeout(f"gave up after {timeout:g} s waiting for {who} to finish "
                                      f"measuring on {describe(res)}") from None
            stack.callback(lock.release)
            try:
                owner.write_text(json.dumps({
                    "pid": os.getpid(), "command": " ".join(["hwnas", *sys.argv[1:]])[:200],
                    "since": dt.datetime.now().isoformat(timespec="seconds")}))
            except OSError:
                pass  # only used to name the holder in another process's message
        yield
