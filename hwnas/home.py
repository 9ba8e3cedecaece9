"""Where hwnas keeps its files: $HWNAS_HOME, else a per-user data directory.

One folder per device holds its latency table, its end-to-end records and its predictors, so
``--device NAME`` is all a command needs to find them. Paths are computed, never global state.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from hwnas.errors import DeviceError

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def hwnas_home(env: dict | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("HWNAS_HOME"):
        return Path(env["HWNAS_HOME"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("hwnas", appauthor=False))


@dataclass(frozen=True)
class DevicePaths:
    root: Path
    # "" for batch 1 fp32; "-b32-fp16" otherwise, so that one GPU keeps a table per setting
    variant: str = ""

    @property
    def table(self) -> Path:
        return self.root / f"table{self.variant}.pkl"

    @property
    def records(self) -> Path:
        return self.root / f"records{self.variant}.json"

    def predictor(self, kind: str) -> Path:
        return self.root / "predictors" / f"{kind}{self.variant}.pkl"

    @property
    def plots(self) -> Path:
        return self.root / "plots"


def device_paths(device: str, home: Path | None = None, batch: int = 1,
                 precision: str = "fp32") -> DevicePaths:
    if not _SAFE_NAME.fullmatch(device):
        raise DeviceError(f"bad device name {device!r}: use letters, digits, '.', '_' and '-'")
    variant = "" if (batch, precision) == (1, "fp32") else f"-b{batch}-{precision}"
    return DevicePaths((home or hwnas_home()) / "devices" / device, variant)


def export_cache(home: Path | None = None) -> Path:
    """Exported models, cached by op key and format (keys are stable, so the cache is shared)."""
    return (home or hwnas_home()) / "cache"


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def writable(folder: Path) -> bool:
    """Whether this process may create files in an existing folder. Effective ids: root may
    write anywhere except on a read-only file system, an unprivileged user only where allowed."""
    if os.access in os.supports_effective_ids:
        return os.access(folder, os.W_OK | os.X_OK, effective_ids=True)
    return os.access(folder, os.W_OK | os.X_OK)


def check_folder(folder: Path, write: bool = False) -> None:
    """Raise DeviceError, naming the culprit, when ``folder`` cannot be a folder (a file sits
    where it or one of its parents should be), or, with ``write``, cannot be written into."""
    folder = Path(folder)
    anchor = nearest_existing(folder)
    if not anchor.is_dir():
        raise DeviceError(f"cannot use {folder}: {anchor} is a file, not a folder"
                          + (" (HWNAS_HOME)" if anchor == hwnas_home() else ""))
    if write and not writable(anchor):
        raise DeviceError(f"cannot write into {folder}: {anchor} is read-only "
                          f"(HWNAS_HOME is {hwnas_home()})")
