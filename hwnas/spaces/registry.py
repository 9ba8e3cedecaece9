"""The registry of search spaces: hwnas's own families, other packages' spaces, and a user's
``module:Class``.

A space is registered three ways, none of which edits hwnas:

* ``@register_space("name")`` on a SearchSpace class or on a function returning one (what the
  built-in families do, each in its own ``hwnas/spaces/<family>/space.py``);
* an entry point in the group ``hwnas.spaces`` of another installed package
  (``my-space = my_pkg.my_module:MySpace``), loaded with the built-in families;
* ``--space my_pkg.my_module:MySpace`` (or ``path/to/file.py:MySpace``) on the command line,
  or the same string given to ``get_space``: the module is imported on demand.

Core modules (hwnas.arch, hwnas.ops) hold registries that families fill when they are imported
(ARCH_TYPES, OP_KINDS). They call ``load_families`` on first use instead of importing the
families at module level, which would be an import cycle: every family imports the core. The
families are imported here by name (importlib), for the same reason.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from hwnas.errors import HwnasError, SpaceError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hwnas.spaces"
# hwnas's own families, in the order their spaces are listed
BUILTIN_FAMILIES = ("hwnas.spaces.elasticvit.space", "hwnas.spaces.vit.space",
                    "hwnas.spaces.vitres.space", "hwnas.spaces.tfnas.space",
                    "hwnas.spaces.edgevit.space", "hwnas.spaces.nb201.space",
                    "hwnas.spaces.fbnet.space")

# name -> a SearchSpace class or a function returning a SearchSpace (called with no argument)
SPACES: dict[str, Callable[[], Any]] = {}
_loaded = False


def _where(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def register_space(name: str, factory: Callable[[], Any] | None = None):
    """Register a space under ``name``: ``@register_space("name")`` on a SearchSpace class or a
    function that returns one, or ``register_space("name", factory)``."""
    if not isinstance(name, str) or not name or ":" in name:
        raise SpaceError(f"a search space name is a non-empty string without ':', got {name!r}")

    def add(obj):
        if not callable(obj):
            raise SpaceError(f"search space {name!r}: {obj!r} is not a class or a function")
        old = SPACES.get(name)
        # the same definition imported again (a module loaded by path, then by name) replaces
        # itself; two different definitions under one name is a mistake worth one clear line
        if old is not None and old is not obj and _where(old) != _where(obj):
            raise SpaceError(f"search space {name!r} is registered twice: {_where(old)} and "
                             f"{_where(obj)}")
        SPACES[name] = obj
        return obj

    return add if factory is None else add(factory)


def load_families() -> None:
    """Import the built-in families, then the spaces of other packages' entry points (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True  # first: the families' own imports call back here
    for module in BUILTIN_FAMILIES:
        importlib.import_module(module)
    for ep in _entry_points():
        try:
            obj = ep.load()
        except Exception as e:  # another package's bug must not take hwnas down with it
            log.warning("search space entry point %s = %s does not load (%s: %s); skipped",
                        ep.name, ep.value, type(e).__name__, e)
            continue
        # an entry point names a module (whose decorators register it) or a class / function
        if callable(obj) and ep.name not in SPACES:
            register_space(ep.name, obj)


def _entry_points():
    from importlib.metadata import entry_points

    try:
        return list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception as e:  # a broken installed distribution's metadata
        log.warning("cannot read %s entry points: %s", ENTRY_POINT_GROUP, e)
        return []


def space_factory(name: str, register: bool = True) -> Callable[[], Any]:
    """The class or function registered as ``name``, or the one ``module:attr`` names
    (imported now and, with ``register``, registered so that the name resolves again;
    ``get_space`` registers it only once it has made a space)."""
    load_families()
    if name in SPACES:
        return SPACES[name]
    if not isinstance(name, str) or ":" not in name:
        raise SpaceError(f"unknown search space {name!r}; known: {', '.join(sorted(SPACES))} "
                         f"(or module:Class for a space of your own)")
    module_name, _, attr = name.rpartition(":")
    if not module_name or not attr:
        raise SpaceError(f"--space {name!r}: expected module:Class, e.g. my_space:MySpace")
    module = _import(module_name, name)
    obj = getattr(module, attr, None)
    if obj is None:
        raise SpaceError(f"{module_name} has no {attr!r} (from --space {name})")
    _check_user_factory(obj, name, _origin(module, module_name))
    if register:
        _register_spec(name, obj)
    return obj


def _register_spec(name: str, obj) -> None:
    # registered by its own decorator: that name; otherwise the spec itself names it
    if not any(v is obj for v in SPACES.values()):
        SPACES[name] = obj


NOT_A_SPACE = ("is not a search space: --space names a class deriving hwnas.spaces.SearchSpace, "
               "or a Python function returning one")


def _origin(module, module_name: str) -> str:
    """Where a user's space comes from, for messages: its file, else its module's name."""
    return getattr(module, "__file__", None) or module_name


def _check_user_factory(obj, spec: str, origin: str) -> None:
    """A ``module:attr`` the user named is a SearchSpace class or a Python function (called
    with no argument). A class of anything else, a builtin (``os:system``) or another object is
    their mistake, said in one line naming their file; nothing is called to find out."""
    import inspect

    from hwnas.spaces.base import SearchSpace

    attr = spec.rpartition(":")[2]
    if inspect.isclass(obj):
        if not issubclass(obj, SearchSpace):
            raise SpaceError(f"--space {spec}: class {attr} in {origin} {NOT_A_SPACE}")
        return
    if not (inspect.isfunction(obj) or isinstance(obj, functools.partial)):
        raise SpaceError(f"--space {spec}: {attr} in {origin} is {_a_kind(obj)}, and {NOT_A_SPACE}")


def _a_kind(obj) -> str:
    import inspect

    if inspect.isbuiltin(obj) or inspect.ismethoddescriptor(obj):
        return "a built-in function"
    if inspect.ismodule(obj):
        return "a module"
    kind = type(obj).__name__
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} object"


def _user_spec(factory) -> str | None:
    """The ``module:attr`` or file a space not of hwnas itself comes from (None: hwnas's own,
    whose failure is a bug in hwnas)."""
    module = getattr(factory, "__module__", None) or ""
    if module == "hwnas" or module.startswith("hwnas."):
        return None
    where = getattr(sys.modules.get(module), "__file__", None) or module or "?"
    return f"{getattr(factory, '__qualname__', repr(factory))} in {where}"


def _import(module_name: str, spec: str | None = None):
    """A module by dotted name, or a .py file by path. A dotted name is also looked up in the
    current directory: the ``hwnas`` console script, unlike ``python -m``, does not put it on
    sys.path, and ``--space my_space:MySpace`` beside my_space.py should just work."""
    try:
        if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
            return _import_file(Path(module_name))
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            top, here = module_name.split(".")[0], os.getcwd()
            if e.name != top or here in sys.path:
                raise
            sys.path.append(here)
            try:
                return importlib.import_module(module_name)
            finally:
                sys.path.remove(here)
    except SpaceError:
        raise
    except SystemExit as e:  # the module calls sys.exit (a script, not a module)
        raise SpaceError(f"{'--space ' + spec + ': ' if spec else ''}importing search space "
                         f"module {module_name!r} exited (sys.exit({e.code!r})); a space's "
                         f"module defines the space and returns") from None
    except ModuleNotFoundError as e:
        raise SpaceError(f"cannot import search space module {module_name!r}: {e}") from None
    except Exception as e:  # the user's module failed while importing: say where, in one line
        raise SpaceError(f"importing search space module {module_name!r} failed: "
                         f"{type(e).__name__}: {e}") from None


def _same_source(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b or a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _import_file(path: Path):
    import os
    import stat

    from hwnas.latency.safeio import file_kind

    try:
        mode = os.stat(path).st_mode  # stat never blocks; Python's import opens a FIFO and waits
    except FileNotFoundError:
        raise SpaceError(f"no such search space file: {path}") from None
    except OSError as e:  # a symlink loop, a folder without permission
        raise SpaceError(f"cannot read search space file {path}: "
                         f"{(e.strerror or str(e)).lower()}") from None
    if not stat.S_ISREG(mode):
        raise SpaceError(f"search space file {path} is {file_kind(mode)}, not a regular file")
    path = path.resolve()
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) \
            and _same_source(Path(loaded.__file__), path):
        # the same file, or a copy of it (the example copied beside a user): executing it again
        # would register a second set of classes under the same names, and the registries
        # would then mix the two (an arch of one is not an instance of the other's space)
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpaceError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickles look their module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def space_named_by_file(name: object, where: str, resolutions=None):
    """The space a file's *contents* name (an arch, records or pools file): registered spaces
    only. A file is data: a ``module:attr`` in it is never imported, or opening an arch file
    someone sent would run their code. The user who trusts it names it with --space."""
    load_families()
    if isinstance(name, str) and name in SPACES:
        return get_space(name, resolutions)
    shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
    raise SpaceError(f"{where} names search space {shown}, which is not registered (known: "
                     f"{', '.join(sorted(SPACES))}); a file's contents never import code: "
                     f"pass --space yourself if you trust that module")


def get_space(name: str, resolutions=None):
    """A registered space by name (or ``module:Class``), optionally narrowed to some
    resolutions."""
    from hwnas.spaces.base import SearchSpace

    factory = space_factory(name, register=False)
    user = _user_spec(factory)
    if user is None:  # hwnas's own families: whatever they raise is a bug in hwnas
        space = factory()
    else:
        try:
            space = factory()
        except HwnasError:
            raise
        except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's code, said as theirs
            what = f"sys.exit({e.code!r})" if isinstance(e, SystemExit) else \
                f"{type(e).__name__}: {e}"
            raise SpaceError(f"search space {name!r}: making {user} failed: {what}") from None
        if not isinstance(space, SearchSpace):
            raise SpaceError(f"search space {name!r}: {user} returned {_a_kind(space)}, and "
                             f"{NOT_A_SPACE}")
    if name not in SPACES:  # a module:attr that made a space: the name resolves again
        _register_spec(name, factory)
    return space.with_resolutions(resolutions) if resolutions else space
