"""Atomic writes, capped reads and a restricted unpickler.

A pickle can run arbitrary code when loaded. hwnas writes its tables as pickles of plain Python
containers only, and reads every pickle (its own or a downloaded one) through an unpickler that
accepts a short allow-list of classes. Anything else is refused before it can run.

Every file hwnas reads is a regular file under a size cap (``read_capped``): a FIFO would block
and /dev/zero would never end. Every JSON a user gives is parsed by ``load_json``, under limits
on size, nesting depth and integer length: 100,000 nested ``[`` or a 5,000-digit integer is one
line naming the file, never a RecursionError. Every file it writes goes to what the user named
(``atomic_write_bytes``): a regular file is replaced atomically, a symlink's target is, and a
FIFO, a character device or /dev/stdout is written directly; nothing else is renamed over.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import re
import stat
import sys
import tempfile
from pathlib import Path

from hwnas.errors import HwnasError, TableError, UnsafePickleError

# Size caps per kind of file, far above any real one (the largest table seen is ~20 MB) and low
# enough that parsing the biggest allowed file stays within a few GB of memory.
MiB = 2**20
MAX_TABLE_BYTES = 512 * MiB  # a latency or kernel table (pickle)
MAX_PICKLE_BYTES = 1024 * MiB  # any other hwnas pickle (a fitted predictor)
MAX_RECORDS_BYTES = 256 * MiB  # a records file (JSON)
MAX_ARCH_BYTES = 256 * MiB  # an --arch file: it may be a records or pools file
MAX_IMPORT_BYTES = 64 * MiB  # someone else's table (nn-Meter JSON, TF-NAS pickle): < 1 MB each
MAX_JSON_DEPTH = 128  # hwnas's own files nest < 10 deep; json's C parser recurses per level
MAX_JSON_INT_DIGITS = 64  # no count, seed or size hwnas reads has more digits
STDIO = "-"  # standard output (or input) where a command writes (or reads) one file

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


def safe_load(path: str | Path, allowed=SAFE_GLOBALS, cap: int = MAX_PICKLE_BYTES,
              what: str = "pickle"):
    return safe_loads(read_capped(path, cap, what), str(Path(path)), allowed)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words, for messages."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _size(n: int) -> str:
    return f"{n / MiB:.0f} MB" if n >= MiB else f"{n} bytes"


def read_capped(path: str | Path, cap: int = MAX_IMPORT_BYTES, what: str = "latency file",
                stdin: bool = False) -> bytes:
    """A regular file's bytes, refused at once when it is not one (a FIFO would block, /dev/zero
    would never end) or is larger than ``cap``. With ``stdin``, ``-`` reads standard input, at
    most ``cap`` bytes of it."""
    if stdin and str(path) == STDIO:
        data = sys.stdin.buffer.read(cap + 1)
        if len(data) > cap:
            raise TableError(f"standard input is over the {_size(cap)} cap for {_a(what)}")
        return data
    path = Path(path)
    try:
        st = os.stat(path)  # stat never blocks, even on a FIFO; open would
    except FileNotFoundError:
        raise TableError(f"no such file: {path}") from None
    except OSError as e:
        raise TableError(f"cannot read {path}: {(e.strerror or str(e)).lower()}") from None
    if stat.S_ISDIR(st.st_mode):
        raise TableError(f"{path} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise TableError(f"{path} is {file_kind(st.st_mode)}, not a regular file; refusing to "
                         f"read it ({what}s are regular files up to {_size(cap)})")
    if st.st_size > cap:
        raise TableError(f"{path} is {st.st_size / MiB:.1f} MB, over the {_size(cap)} cap for "
                         f"{_a(what)}")
    try:
        with open(path, "rb") as f:
            data = f.read(cap + 1)  # the file may have grown since stat
    except OSError as e:
        raise TableError(f"cannot read {path}: {(e.strerror or str(e)).lower()}") from None
    if len(data) > cap:
        raise TableError(f"{path} is over the {_size(cap)} cap for {_a(what)}")
    return data


def _a(what: str) -> str:
    return f"an {what}" if what[:1] in "aeiou" else f"a {what}"


class JSONLimitError(TableError):
    """A JSON text over one of ``load_json``'s limits (size, depth, integer length)."""


# a JSON string, unrolled so that it matches in linear time; what is left are the brackets
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _json_depth(text: str) -> int:
    """How deep ``text``'s arrays and objects nest (brackets inside strings not counted)."""
    import numpy as np

    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if not brackets:
        return 0
    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def load_json(data: bytes | str, source: str, cap: int = MAX_ARCH_BYTES,
              max_depth: int = MAX_JSON_DEPTH, max_digits: int = MAX_JSON_INT_DIGITS):
    """Parse a user's JSON (bytes are UTF-8, a BOM allowed) under limits on size, nesting depth
    and integer length. A text over a limit is one JSONLimitError naming ``source``; a text that
    is not JSON raises json.JSONDecodeError (or UnicodeDecodeError) as ``json.loads`` does, so
    that a caller may read it another way."""
    import json

    if len(data) > cap:
        raise JSONLimitError(f"{source} is {len(data) / MiB:.1f} MB of JSON, over the "
                             f"{_size(cap)} cap")
    text = data.decode("utf-8-sig") if isinstance(data, (bytes, bytearray)) else data
    # a text with fewer opening brackets than the limit cannot nest deeper; skip the scan
    if text.count("[") + text.count("{") > max_depth:
        depth = _json_depth(text)
        if depth > max_depth:
            raise JSONLimitError(f"{source} nests JSON {depth} levels deep; hwnas reads at most "
                                 f"{max_depth}")

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > max_digits:
            raise JSONLimitError(f"{source} holds an integer of {len(digits.lstrip('-'))} "
                                 f"digits; hwnas reads integers of at most {max_digits}")
        return int(digits)

    # the hook costs a Python call per integer: only where a long run of digits is at all
    long_run = re.search(r"\d{%d}" % (max_digits + 1), text) is not None
    try:
        return json.loads(text, parse_int=parse_int) if long_run else json.loads(text)
    except RecursionError:  # a deeper stack than the depth scan saw: never a bug report
        raise JSONLimitError(f"{source} nests JSON too deeply to parse") from None


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


# /dev/stdout, /dev/fd/N, /proc/self/fd/N: a name for one of this process's open descriptors
_FD_PATH = re.compile(r"^/(?:dev/fd|proc/(?:self|thread-self|\d+)/fd)/(\d+)$")
_STD_PATHS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


def descriptor_path(path: str | Path) -> int | None:
    """The descriptor a path names (/dev/stdout, /dev/fd/N, ..., directly or by a chain of
    symlinks of its last part), or None. Such a path is written directly: renaming a file over
    the place it resolves to would replace the file a shell redirected into, not write to it."""
    p = os.path.abspath(str(path))
    for _ in range(40):  # the kernel's own limit on a chain of links
        m = _FD_PATH.match(p)
        if p in _STD_PATHS or m:
            return _STD_PATHS[p] if p in _STD_PATHS else int(m.group(1))
        if not os.path.islink(p):
            return None
        try:
            p = os.path.normpath(os.path.join(os.path.dirname(p), os.readlink(p)))
        except OSError:
            return None
    return None


def is_stdout(path: str | Path) -> bool:
    """Whether writing ``path`` writes this process's standard output."""
    return str(path) == STDIO or descriptor_path(path) == 1


def _write_stdio(fd: int, data: bytes) -> None:
    """Through Python's streams, not the raw descriptor: what the user sees (and what a test's
    captured streams see) keeps its order with the command's other output."""
    stream = sys.stdout if fd == 1 else sys.stderr
    stream.flush()
    raw = getattr(stream, "buffer", None)
    if raw is None:  # a text-only stream (a test's, an IDE's): as text, undecodable bytes kept
        stream.write(data.decode("utf-8", errors="surrogateescape"))
        stream.flush()
        return
    raw.write(data)
    raw.flush()


def _write_direct(path: Path, data: bytes) -> None:
    """Open and write, no temp file: a FIFO, a character device, an open descriptor."""
    try:
        with open(path, "wb") as f:  # O_TRUNC is ignored by pipes and devices
            f.write(data)
    except OSError as e:  # a write error carries no file name; name the one the user gave
        raise OSError(e.errno, e.strerror, str(path)) from None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to what ``path`` names, never replacing anything but a regular file.

    A regular file (or a new one) is written as a temp file in the same directory, fsynced and
    renamed over the target: a crash or Ctrl-C leaves either the old file or the new one, never
    half of one. A symlink is followed: its target is replaced that way, in the target's own
    folder (a rename is atomic only within one file system). A FIFO, a character device
    (/dev/null) or a descriptor (/dev/stdout) is written directly; ``-`` is standard output.
    Anything else (a directory, a socket, a block device) is refused.
    """
    if str(path) == STDIO:
        return _write_stdio(1, data)
    path = Path(path)
    fd = descriptor_path(path)
    if fd in (1, 2):
        return _write_stdio(fd, data)
    if fd is not None:
        return _write_direct(path, data)
    try:
        st = os.stat(path)  # follows symlinks: what the name really is
    except FileNotFoundError:
        st = None  # a new file, or a symlink whose target does not exist yet
    except OSError as e:  # a loop of links, a file where a folder should be, no permission
        raise OSError(e.errno, e.strerror, str(path)) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        # os.replace would name the temp file; name the target instead
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if st is not None and (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        return _write_direct(path, data)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise HwnasError(f"{path} is {file_kind(st.st_mode)}; hwnas writes only regular files, "
                         f"FIFOs and character devices")
    target = Path(os.path.realpath(path))  # a symlink's target; the path itself otherwise
    _replace_file(target, data, shown=path)


def _human(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"


def _room(folder: Path, need: int) -> str:
    """'N free in FOLDER, the file is M': what a full disk's message adds."""
    try:
        st = os.statvfs(folder)
        free = f"{_human(st.f_bavail * st.f_frsize)} free in {folder}"
    except OSError:
        free = f"free space in {folder} unknown"
    return f"{free}; the file is {_human(need)}"


def _replace_file(path: Path, data: bytes, shown: Path) -> None:
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
    except OSError as e:  # a full disk names the temp file; name the file the user gave
        Path(tmp).unlink(missing_ok=True)
        reason = e.strerror
        if e.errno in (errno.ENOSPC, errno.EDQUOT):  # and say how much room there was
            reason = f"{e.strerror} ({_room(path.parent, len(data))})"
        raise OSError(e.errno, reason, str(shown)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def dump_pickle(path: str | Path, obj) -> None:
    atomic_write_bytes(path, pickle.dumps(obj, protocol=4))
