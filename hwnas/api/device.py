"""A device as a command sees it: its Context (config, space, paths), its table and records,
and the measuring Session that keeps one profiler open for a whole command."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Sequence


from hwnas.device_configs import DeviceConfig, load_device
from hwnas.errors import (DeviceError, TableError)
from hwnas.home import DevicePaths, check_folder, device_paths, export_cache, hwnas_home
from hwnas.latency.records import Records
from hwnas.latency.table import LatencyTable
from hwnas.profilers.reference import REFERENCE_KEY, same_reference
from hwnas.spaces import SearchSpace, get_space


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """Everything a command needs about one device, resolved once."""

    cfg: DeviceConfig
    space: SearchSpace
    paths: DevicePaths
    home: Path | None = None
    # the command's measuring session (``api.session``): one open profiler for every
    # measurement it makes; None = each measuring call opens and closes its own
    session: "Session | None" = field(default=None, compare=False, repr=False)
    # use a table measured on another CPU model than this machine's (--accept-host)
    accept_host: bool = False

    def predictor_path(self, kind: str) -> Path:
        """Where the device's fitted ``kind`` predictor is saved. A few-shot predictor is fitted
        per space (a device adapted to nb201 and to fbnet keeps both)."""
        return self.paths.predictor(f"fewshot-{self.space.name}" if kind == "fewshot" else kind)

    @cached_property  # reading a phone's table is not free; a command asks this many times
    def live(self) -> bool:
        """Whether hwnas measures this device itself. Phones are live (adb), but a phone whose
        table came from elsewhere (nn-Meter's, imported: no measuring protocol in its meta) is
        used as imported: nothing is profiled or measured on the phone behind the user's back.
        """
        from hwnas.devices import kind_of

        if not kind_of(self.cfg).live:
            return False
        if self.paths.table.exists():  # a table someone else measured has no protocol of ours
            return bool(LatencyTable.load(self.paths.table, self.cfg.name).meta.get("protocol"))
        return True


def context(device: str, space: str | None = "elasticvit",
            resolutions: Sequence[int] | None = None, home: Path | None = None,
            accept_host: bool = False, **overrides) -> Context:
    space = space or "elasticvit"
    cfg = load_device(device, home)
    if overrides:
        cfg = cfg.with_overrides(**overrides)
    res = tuple(resolutions or ()) or (cfg.resolutions if space == "elasticvit" else ())
    paths = device_paths(device, home, cfg.batch, cfg.precision)
    check_folder(paths.root)  # HWNAS_HOME or the device's folder being a file: say so now
    return Context(cfg, get_space(space, res or None), paths, home, accept_host=accept_host)


def load_table(ctx: Context) -> LatencyTable:
    if not ctx.paths.table.exists():
        hint = ("run 'hwnas profile --device %s'" % ctx.cfg.name if ctx.live
                else "import one with 'hwnas import'")
        if ctx.live and ctx.cfg.source:  # a phone nn-Meter measured: its table can be imported
            hint += f", or import one with 'hwnas import' ({ctx.cfg.source})"
        raise TableError(f"no latency table for {ctx.cfg.name} at {ctx.paths.table}; {hint}")
    if ctx.session is not None:
        table = ctx.session.table(ctx.paths.table, ctx.cfg.name)
    else:
        table = LatencyTable.load(ctx.paths.table, ctx.cfg.name)
    check_host(ctx, table)
    return table


def check_host(ctx: Context, table: LatencyTable) -> None:
    """A table measured on another CPU model is not this machine's latency (a home copied to
    another machine): refused, naming both, unless the user accepts it (``--accept-host``).
    Only kinds that measure on this host can tell (a board's CPU is checked when it is
    reached: its table's protocol names it)."""
    from hwnas.devices import kind_of

    here = kind_of(ctx.cfg).host_cpu(ctx.cfg)
    there = table.meta.get("cpu")
    if not here or not there or here == there:
        return
    if ctx.accept_host:
        log.warning("%s's table was measured on %s, not this machine's %s (--accept-host)",
                    ctx.cfg.name, there, here)
        return
    raise TableError(f"{ctx.paths.table} was measured on a {there}, but this machine is a "
                     f"{here}: its latencies are not this machine's; profile again (--fresh), "
                     f"or pass --accept-host to use them anyway")


# --- the measuring session --------------------------------------------------------------------
class Session:
    """One command's measuring session: the device's profiler, opened on first use (the
    measuring lock taken, the call overhead timed, the reference network loaded) and kept open
    until the command ends, so that profiling, measuring, the landing's rounds and the final
    check of one ``hwnas search`` share it instead of opening one each.

    ``opened`` counts the profilers it opened (0 or 1): what BENCHMARKS.md reports beside the
    main job's wall time."""

    def __init__(self, ctx: "Context", serials: tuple[str, ...] = ()):
        self.ctx, self.serials = ctx, tuple(serials)
        self._stack = contextlib.ExitStack()
        self._prof = None
        self._table: tuple | None = None  # (the file's (mtime_ns, size), the table)
        self.opened = 0
        # subnets exported to ONNX in this session, by arch key: the landing measures a
        # candidate again to confirm it, and the final check measures the pick again, so each
        # is exported once (2-3 s each of torch.onnx.export) for the whole command
        self.exported: dict[str, Path] = {}
        self._exports: str | None = None

    def export_path(self, key: str) -> Path:
        """Where the subnet of arch key ``key`` is (or is to be) exported in this session."""
        if self._exports is None:
            import tempfile

            self._exports = self._stack.enter_context(
                tempfile.TemporaryDirectory(prefix="hwnas-subnets-"))
        return self.exported.setdefault(key, Path(self._exports) / f"{len(self.exported)}.onnx")

    def profiler(self):
        if self._prof is None:
            self._prof = self._stack.enter_context(_open_profiler(self.ctx, self.serials))
            self.opened += 1
        return self._prof

    def table(self, path: Path, device: str) -> LatencyTable:
        """The device's table, read again only when the file changed (profiling saves it)."""
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        if self._table is None or self._table[0] != stamp:
            self._table = (stamp, LatencyTable.load(path, device))
        return self._table[1]

    def close(self) -> None:
        self._prof = None
        self._stack.close()
        self.exported, self._exports = {}, None


@contextlib.contextmanager
def session(ctx: "Context", serials: tuple[str, ...] = ()):
    """``with api.session(ctx) as ctx:``: every measuring call made with the yielded context
    uses one profiler, opened when first needed and closed at the end."""
    if ctx.session is not None:  # already in one: share it
        yield ctx
        return
    s = Session(ctx, serials)
    try:
        yield replace(ctx, session=s)
    finally:
        s.close()


# --- profiling and measuring -----------------------------------------------------------------
@contextlib.contextmanager
def _open_profiler(ctx: "Context", serials: tuple[str, ...] = ()):
    """The device's profiler, entered, while this process holds the measuring lock of the
    hardware it times on (another process measuring there makes this one wait)."""
    from hwnas.locks import measuring, measuring_resources
    from hwnas.profilers import make_profiler

    check_folder(export_cache(ctx.home), write=True)  # exports go there: say so before timing
    prof = make_profiler(ctx.cfg, export_cache(ctx.home), serials=serials)
    with measuring(ctx.home or hwnas_home(),
                   measuring_resources(ctx.cfg, serials)), prof as p:
        yield p


@contextlib.contextmanager
def _profiler(ctx: "Context", serials: tuple[str, ...] = ()):
    """The command's open profiler when it runs in a session (``api.session``), else one
    opened for this call."""
    if ctx.session is not None and tuple(serials) in ((), ctx.session.serials):
        yield ctx.session.profiler()
        return
    with _open_profiler(ctx, serials) as p:
        yield p


def reference_scale_ms(ctx: Context, table: LatencyTable | None = None,
                       key: str | None = None) -> float | None:
    """The device's one machine speed: the reference network's ms in its table.

    Drift-free numbers are ratios to the reference; this turns them into ms. The table's is the
    device's scale, so records, tables and predictions agree; a device with records but no
    table yet uses the records' own. ``key`` is the reference the ratios to convert are to
    (default: the one this hwnas times against): a table timed against another reference has
    another unit, so then None (the ratios' own reference speed), with a warning."""
    if table is None and ctx.paths.table.exists():
        table = load_table(ctx)
    if table is None or not table.reference_ms:
        return None
    table_key = table.reference.get("key")
    if not same_reference(table_key, key or REFERENCE_KEY):
        log.warning("%s: the table was timed against reference %s, not %s: measurements are "
                    "put in ms at their own reference speed; re-profile the table (--fresh) "
                    "for one drift-free scale", ctx.cfg.name, table_key, key or REFERENCE_KEY)
        return None
    return table.reference_ms


def load_records(ctx: Context, path: str | Path | None = None,
                 table: LatencyTable | None = None, missing_ok: bool = False) -> Records:
    """The device's records (or those at ``path``), drift-free passes at the device's scale."""
    path = Path(path or ctx.paths.records)
    recs = (Records.load_or_new(path, ctx.cfg.name) if missing_ok
            else Records.load(path, ctx.cfg.name))
    return recs.rescale(reference_scale_ms(ctx, table, recs.reference_key))


def model_context(device: str, model: str, home: Path | None = None):
    """A Context whose space is the named model's own (hwnas.models), plus the model."""
    from hwnas.models import named_model

    m = named_model(model)
    cfg = load_device(device, home)
    paths = device_paths(device, home, cfg.batch, cfg.precision)
    check_folder(paths.root)
    return Context(cfg, m.space, paths, home), m


def _imported(table: LatencyTable | None) -> bool:
    return bool(table.meta.get("source_format"))


def _can_save(ctx: Context) -> bool:
    try:
        check_folder(ctx.paths.root, write=True)
    except DeviceError:
        return False
    return True


def _plot_or_warn(make, what: str):
    """A plot must never cost a result: on any failure, warn and go on without it."""
    try:
        return make()
    except Exception as e:  # noqa: BLE001 - a figure is never worth the result it illustrates
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        log.warning("could not write %s (%s: %s); the result is unaffected", what,
                    getattr(e, "filename", None) or type(e).__name__, reason)
        return None


