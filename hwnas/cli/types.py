"""Click parameter types that range-check every numeric option and path in one place.

click's own FloatRange lets NaN through (every comparison with NaN is False) and accepts
infinity when a side is open, so a finite-float type is needed; output paths are checked
before a command does any work, so that a wrong ``--out`` fails in a second, not after a
ten-minute search.
"""

from __future__ import annotations

import math
from pathlib import Path

import click


class Finite(click.FloatRange):
    """A finite float, optionally in a range (NaN and +/-inf are refused)."""

    name = "number"

    def convert(self, value, param, ctx):
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        low = self.min is not None and (v <= self.min if self.min_open else v < self.min)
        high = self.max is not None and (v >= self.max if self.max_open else v > self.max)
        if low or high:
            self.fail(f"{v:g} is out of range ({self.rule()})", param, ctx)
        return v

    def rule(self) -> str:
        parts = []
        if self.min is not None:
            parts.append("must be positive" if (self.min, self.min_open) == (0, True) else
                         f"must be {'>' if self.min_open else '>='} {self.min:g}")
        if self.max is not None:
            parts.append(f"{'below' if self.max_open else 'at most'} {self.max:g}")
        return " and ".join(parts)


class FloatList(click.ParamType):
    """Comma-separated finite numbers in a range, distinct and ascending (latency levels)."""

    name = "numbers"

    def __init__(self, item: Finite, ascending: bool = True, max_items: int = 1000):
        self.item, self.ascending, self.max_items = item, ascending, max_items

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        if not parts or any(p == "" for p in parts):
            self.fail(f"expected comma-separated numbers, got {value!r}", param, ctx)
        if len(parts) > self.max_items:
            self.fail(f"at most {self.max_items} values, got {len(parts)}", param, ctx)
        out = tuple(self.item.convert(p, param, ctx) for p in parts)
        if self.ascending and any(b <= a for a, b in zip(out, out[1:])):
            self.fail(f"values must be distinct and ascending, got {value!r}", param, ctx)
        return out


def check_output(value: str, folder: bool = False, param=None, ctx=None,
                 param_hint: str | None = None) -> str:
    """Raise click.BadParameter now if ``value`` cannot be written later: a file where a
    folder should be, a folder where the file should be, an empty name, or a read-only place.
    Missing parent folders are fine: they are created when the file is written.

    A file is written where the user pointed (hwnas.latency.safeio.atomic_write_bytes): ``-``
    and /dev/stdout are standard output, a FIFO or character device is written directly (it
    must be writable itself, not its folder: /dev is not), a symlink's target is replaced in
    the target's folder (so that folder must be writable)."""
    import os
    import stat

    from hwnas.home import nearest_existing, writable
    from hwnas.latency.safeio import STDIO, descriptor_path, file_kind

    def fail(msg):
        raise click.BadParameter(msg, ctx=ctx, param=param, param_hint=param_hint)

    if not str(value).strip():
        fail("an empty path")
    if value == STDIO:  # standard output is one stream: a file's worth, never a folder
        if folder:
            fail("'-' (standard output) is not a folder")
        return value
    if not folder and descriptor_path(value) is not None:
        return value
    p = Path(value).expanduser()
    if folder and p.exists() and not p.is_dir():
        fail(f"{value} exists and is not a folder")
    if not folder and p.is_dir():
        fail(f"{value} is a folder; give a file name")
    if not folder:
        try:
            mode = p.stat().st_mode
        except OSError:
            mode = None
        if mode is not None and (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
            if not os.access(p, os.W_OK):
                fail(f"cannot write {value}: permission denied")
            return value
        if mode is not None and not stat.S_ISREG(mode):
            fail(f"{value} is {file_kind(mode)}; give a regular file, a FIFO or a character "
                 f"device")
        p = Path(os.path.realpath(p))  # a symlink: its target is what gets replaced
    anchor = nearest_existing(p if folder else p.parent)
    if not anchor.is_dir():
        fail(f"cannot create {value}: {anchor} is a file, not a folder")
    if not writable(anchor):
        fail(f"cannot write {value}: {anchor} is not writable")
    return value


class OutputPath(click.Path):
    """A file (or folder) hwnas will write, checked by ``check_output`` before any work; a
    file may be ``-`` (standard output)."""

    def __init__(self, folder: bool = False):
        super().__init__(dir_okay=folder, file_okay=not folder, path_type=str,
                         allow_dash=not folder)
        self.folder = folder

    def convert(self, value, param, ctx):
        return check_output(super().convert(value, param, ctx), self.folder, param, ctx)


# The shared numeric ranges. Upper bounds are "absurd" limits, not tuning advice.
SEED = click.IntRange(0, 2**63 - 1)
POSITIVE_MS = Finite(min=0, min_open=True, max=1e6)  # a latency target or level: up to 1000 s
FRACTION_OPEN = Finite(min=0, max=1, min_open=True)  # (0, 1]
POSITIVE = Finite(min=0, min_open=True, max=1e9)  # a fraction or a count, checked by its command
TEST_FRACTION = Finite(min=0, max=1, max_open=True)  # [0, 1)


def to_stdout(path) -> bool:
    """Whether an output file is standard output: the command's own report lines then go to
    stderr, so that what is piped on is the file alone."""
    from hwnas.latency.safeio import is_stdout

    return bool(path) and is_stdout(path)
