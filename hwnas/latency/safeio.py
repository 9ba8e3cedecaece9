"""Atomic writes and a restricted unpickler.

A pickle can run arbitrary code when loaded. hwnas writes its tables as pickles of plain Python
containers only, and reads every pickle (its own or a downloaded one) through an unpickler that
accepts a short allow-list of classes. Anything else is refused before it can run.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import tempfile
from pathlib import Path

from hwnas.errors import TableError, UnsafePickleError

# (module, name) pairs a table or a TF-NAS LUT may need. Nothing here can run code.
SAFE_GLOBALS = frozenset({
    ("collections", "OrderedDict"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"),
    ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "float"), ("builtins", "int"), ("builtins", "str"), ("builtins", "bool"),
    ("builtins", "complex"),
})


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, allowed=SAFE_GLOBALS):
        super().__init__(file)
        self.allowed = allowed

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise UnsafePickleError(
                f"refusing to load {module}.{name} from an untrusted pickle "
                f"(only plain containers and numbers are allowed)"
            )
        return super().find_class(module, name)


def safe_loads(data: bytes, source: str = "pickle", allowed=SAFE_GLOBALS):
    try:
        return RestrictedUnpickler(io.BytesIO(data), allowed).load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{source}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError) as e:
        raise TableError(f"{source} is corrupt or truncated ({type(e).__name__}: {e})") from None


def safe_load(path: str | Path, allowed=SAFE_GLOBALS):
    return safe_loads(read_bytes(path), str(Path(path)), allowed)


def read_bytes(path: str | Path) -> bytes:
    """A file's bytes, or TableError naming the file and why it cannot be read."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TableError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise TableError(f"{path} is a directory, not a file") from None
    except OSError as e:
        raise TableError(f"cannot read {path}: {(e.strerror or str(e)).lower()}") from None


def _umask() -> int:
    """The process's umask. Linux reports it in /proc; elsewhere set-and-restore (racy only
    against another thread creating a file in the same microsecond)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def backup(path: str | Path) -> Path:
    """Move a file aside as ``{name}.{UTC timestamp}.bak`` (same folder) and return where."""
    import datetime as dt

    path = Path(path)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    dest = path.with_name(f"{path.name}.{stamp}.bak")
    os.replace(path, dest)
    return dest


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename over the target.

    A crash or Ctrl-C leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    if path.is_dir():  # os.replace would name the temp file; name the target instead
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp makes the file 0600; a written table or model should keep the mode of the file
    # it replaces, or get the user's usual one (0644 under umask 022)
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def dump_pickle(path: str | Path, obj) -> None:
    atomic_write_bytes(path, pickle.dumps(obj, protocol=4))
