"""Named devices, one strict yaml file each: the package's own, then the user's in
``$HWNAS_HOME/devices`` (which may ``extends:`` another device, and replace a built-in only with
``override: true``).

A key the device's kind does not take is an error naming the file and the key, not silently
ignored: a typo in ``warmup`` must not fall back to a default and quietly change what a number
means. What each kind takes is declared by the kind (``hwnas.devices``).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from importlib import resources

import yaml

from hwnas.errors import DeviceError

# kept here for the code that imported them from this module
from hwnas.devices.builtin import CUDA_BACKENDS, CUDA_PRECISIONS  # noqa: E402,F401


@dataclass(frozen=True)
class DeviceConfig:
    name: str
    description: str
    kind: str  # a registered device kind (hwnas.devices): onnxruntime, tflite, adb, cuda, ssh,
    # imported (tables or records made elsewhere; nothing is measured here)
    threads: int = 1
    affinity: str = "auto"  # "auto" (last allowed core), "none", a CPU list "0,2", or a hex mask
    warmup: int = 10
    runs: int = 30
    batch: int = 1
    precision: str = "fp32"
    context: str = "flush"  # "flush": time blocks after a cache-evicting predecessor; "isolated"
    flush_mb: int = 24
    sentinel_every: int = 50  # re-time the sentinel op every N ops to catch drift
    drift_tolerance: float = 0.10
    # The drift-free protocol (profilers/drift.py): time every op and network in rounds between
    # runs of a fixed reference network, and keep the ratio to it beside the milliseconds.
    reference: bool = True
    reference_rounds: int = 10  # an op's timed runs are split into this many rounds
    reference_runs: int = 1  # reference calls before each round and after the last
    # whole networks: while the median ratio's relative standard error is above this, time
    # another batch of `runs`, up to `reference_batches` batches in all
    reference_precision: float = 0.004
    reference_batches: int = 4
    resolutions: tuple[int, ...] = ()  # resolutions the main job profiles by default
    source: str = ""  # where an imported table comes from
    notes: str = ""
    # --- the cuda kind (a yaml of another kind refuses these keys) ---
    backend: str = "torch"  # one of CUDA_BACKENDS
    include_copies: bool = False  # time host->device input and device->host output copies too
    cudnn_benchmark: bool = True  # let cuDNN (or ORT's conv search) pick the fastest algorithms
    warmup_max: int = 1000  # warm up at least `warmup` calls, until stable, at most this many
    warmup_tolerance: float = 0.02  # stable: the median of the last window moved less than this
    energy: bool = True  # also measure energy per call from NVML's total-energy counter
    energy_min_s: float = 1.0  # the counter ticks coarsely: integrate over at least this long
    # --- TFLite (local-tflite and adb devices) ---------------------------------------------
    use_xnnpack: bool = True  # the XNNPACK delegate (TFLite's default CPU path since 2.3)
    # --- adb (Android phones) ----------------------------------------------------------------
    serial: str = ""  # pick this phone when several are attached (--serial overrides)
    benchmark_bin: str = ""  # host path of TFLite's android_aarch64 benchmark_model
    remote_dir: str = "/data/local/tmp/hwnas"  # where models and the binary go on the phone
    thermal_zones: str = "cpu|big|mid|little|soc|tsens"  # regex on thermal zone types to watch
    thermal_limit_c: float = 50.0  # cool down before measuring when a watched zone is hotter
    freq_drop: float = 0.10  # cool down when a pinned core's clock is this far under its peak
    cool_poll_s: float = 5.0  # how often to re-read the phone while cooling down
    cool_max_s: float = 300.0  # give up waiting (and record it) after this long
    # --- ssh (Linux boards: a Raspberry Pi, a Jetson, a remote Xeon) -------------------------
    host: str = ""  # the board's name or address
    port: int = 22
    user: str = ""  # "" = this machine's user name
    identity_file: str = ""  # a private key; "" = the SSH agent and the default keys
    known_hosts: str = ""  # host keys to check against; "" = ~/.ssh/known_hosts. Always checked
    python: str = "python3"  # the board's interpreter, which runs hwnas's timing runner
    runtime: str = "onnxruntime"  # on the board: onnxruntime, tflite or benchmark_model
    workdir: str = "~/.cache/hwnas"  # models, the runner and its resumable state go here

    def __post_init__(self):
        from hwnas.devices.kinds import get_kind

        if not isinstance(self.kind, str):
            raise DeviceError(f"device {self.name}: kind must be a string")
        kind = get_kind(self.kind)  # an unknown kind: one line listing the known ones
        if self.context not in ("flush", "isolated"):
            raise DeviceError(f"device {self.name}: context must be 'flush' or 'isolated'")
        for name in ("threads", "warmup", "runs", "batch"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < (
                    0 if name == "warmup" else 1):
                raise DeviceError(f"device {self.name}: {name} must be a positive integer")
        object.__setattr__(self, "resolutions", tuple(self.resolutions))
        if not isinstance(self.reference, bool):
            raise DeviceError(f"device {self.name}: reference must be true or false")
        if isinstance(self.reference_precision, bool) or not isinstance(
                self.reference_precision, (int, float)) or not 0 < self.reference_precision < 1:
            raise DeviceError(f"device {self.name}: reference_precision must be in (0, 1)")
        for name in ("reference_rounds", "reference_runs", "reference_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DeviceError(f"device {self.name}: {name} must be a positive integer")
        if not isinstance(self.use_xnnpack, bool):
            raise DeviceError(f"device {self.name}: use_xnnpack must be true or false")
        for name in ("thermal_limit_c", "freq_drop", "cool_poll_s", "cool_max_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise DeviceError(f"device {self.name}: {name} must be a non-negative number")
        if not 0 <= self.freq_drop < 1:
            raise DeviceError(f"device {self.name}: freq_drop must be a fraction in [0, 1)")
        _check_types(self)
        kind.validate(self)

    def with_overrides(self, **changes) -> "DeviceConfig":
        """A copy with some fields changed (from the command line), re-validated."""
        known = {f.name for f in fields(self)}
        bad = set(changes) - known
        if bad:
            raise DeviceError(f"unknown device option(s): {sorted(bad)}")
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update({k: v for k, v in changes.items() if v is not None})
        return DeviceConfig(**d)


def _check_types(cfg: DeviceConfig) -> None:
    """Every value has its field's type (a yaml's ``runs: "30"`` or ``port: 22.5`` is refused
    here, in one line, rather than failing somewhere inside a profiler)."""
    for f in fields(cfg):
        if f.default is MISSING or f.name == "resolutions":
            continue
        value, want = getattr(cfg, f.name), type(f.default)
        if want is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif want is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, want)
        if not ok:
            what = {bool: "true or false", int: "an integer", float: "a number",
                    str: "a string"}.get(want, want.__name__)
            raise DeviceError(f"device {cfg.name}: {f.name} must be {what}, got {value!r}")
    if not all(isinstance(r, int) and not isinstance(r, bool) and r > 0
               for r in cfg.resolutions):
        raise DeviceError(f"device {cfg.name}: resolutions must be a list of positive integers")


# --- where device yamls come from: the package, then $HWNAS_HOME/devices ----------------------
YAML_MAX_BYTES = 256 * 1024  # a device yaml is a few hundred bytes; this is not one


@dataclass(frozen=True)
class DeviceSource:
    """One device yaml: its name, its text, and where it comes from (for ``hwnas devices``)."""

    name: str
    text: str
    origin: str  # "built-in", or the user yaml's path


def _builtin_sources() -> dict[str, DeviceSource]:
    root = resources.files(__name__)
    return {p.name[:-5]: DeviceSource(p.name[:-5], p.read_text(), "built-in")
            for p in root.iterdir() if p.name.endswith(".yaml")}


def user_devices_dir(home=None):
    """``$HWNAS_HOME/devices``: a user's yamls sit beside the devices' data folders."""
    from hwnas.home import hwnas_home

    return (home or hwnas_home()) / "devices"


def _read_user_yaml(path) -> str:
    import stat

    try:
        st = path.stat()
    except OSError as e:
        raise DeviceError(f"device config {path}: cannot read it ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise DeviceError(f"device config {path}: not a regular file")
    if st.st_size > YAML_MAX_BYTES:
        raise DeviceError(f"device config {path}: {st.st_size} bytes, over the "
                          f"{YAML_MAX_BYTES // 1024} KiB a device yaml may have")
    try:
        return path.read_bytes().decode()
    except (OSError, UnicodeDecodeError) as e:
        raise DeviceError(f"device config {path}: cannot read it as text ({e})") from None


def _user_sources(home=None) -> dict[str, DeviceSource]:
    from hwnas.home import _SAFE_NAME

    folder = user_devices_dir(home)
    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.glob("*.yaml")):
        name = path.name[:-5]
        if not _SAFE_NAME.fullmatch(name):
            raise DeviceError(f"device config {path}: bad device name {name!r}: use letters, "
                              f"digits, '.', '_' and '-'")
        out[name] = DeviceSource(name, _read_user_yaml(path), str(path))
    return out


def device_sources(home=None) -> dict[str, DeviceSource]:
    """Every named device's yaml: the built-ins, then the user's (which may override one)."""
    found = _builtin_sources()
    for name, src in _user_sources(home).items():
        if name in found:
            raw = _raw(src)
            if raw.get("override") is not True:
                raise DeviceError(f"device config {src.origin}: {name!r} is a built-in device; "
                                  f"pick another name, or add 'override: true' to replace it")
        found[name] = src
    return found


def device_names(home=None) -> list[str]:
    return sorted(device_sources(home))


def _raw(src: DeviceSource) -> dict:
    try:
        raw = yaml.safe_load(src.text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise DeviceError(f"device config {src.origin if src.origin != 'built-in' else src.name}"
                          f": not valid yaml{at}") from None
    if not isinstance(raw, dict):
        raise DeviceError(f"device config {_where(src)}: expected a mapping of keys to values")
    if "profiler" in raw:  # the older spelling of `kind`
        if "kind" in raw:
            raise DeviceError(f"device config {_where(src)}: give kind or profiler, not both")
        raw["kind"] = raw.pop("profiler")
    return raw


def _where(src: DeviceSource) -> str:
    return src.name if src.origin == "built-in" else src.origin


def _resolve(name: str, sources: dict[str, DeviceSource], seen: tuple = ()) -> dict:
    """The yaml's keys, with those of the device it ``extends`` underneath."""
    src = sources[name]
    raw = _raw(src)
    base = raw.pop("extends", None)
    raw.pop("override", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise DeviceError(f"device config {_where(src)}: extends must be a device name")
    if base == name or base in seen:
        raise DeviceError(f"device config {_where(src)}: extends {base!r}, which extends "
                          f"{name!r} back" if base != name else
                          f"device config {_where(src)}: extends itself")
    if base not in sources:
        raise DeviceError(f"device config {_where(src)}: extends unknown device {base!r}; known: "
                          f"{', '.join(sorted(sources))}")
    merged = _resolve(base, sources, seen + (name,))
    merged.pop("name", None)
    if "kind" in raw and raw["kind"] != merged.get("kind"):
        # another kind's keys do not carry over: a board extending a phone keeps nothing
        # the board's kind does not take
        raise DeviceError(f"device config {_where(src)}: kind {raw['kind']!r} differs from "
                          f"{base}'s {merged.get('kind')!r}; a device extends one of its kind")
    merged.update(raw)
    return merged


def parse_config(name: str, text: str, origin: str = "built-in") -> DeviceConfig:
    """A DeviceConfig from one yaml's text (no ``extends``)."""
    src = DeviceSource(name, text, origin)
    return config_from_raw(name, _resolve(name, {name: src}), _where(src))


def config_from_raw(name: str, raw: dict, where: str) -> DeviceConfig:
    """A DeviceConfig from a yaml's keys as ``_resolve`` gives them (``extends`` and
    ``override`` already taken out), checked against its kind."""
    from hwnas.devices.kinds import get_kind

    kind_name = raw.get("kind")
    if kind_name is None:
        raise DeviceError(f"device config {where}: no kind (one of "
                          f"{', '.join(sorted(_kinds()))})")
    if not isinstance(kind_name, str):
        raise DeviceError(f"device config {where}: kind must be a string")
    try:
        kind = get_kind(kind_name)
    except DeviceError as e:
        raise DeviceError(f"device config {where}: {e}") from None
    unknown = sorted(k for k in raw if k not in kind.allowed_keys)
    if unknown:
        import difflib

        close = {k: difflib.get_close_matches(k, kind.allowed_keys, 1) for k in unknown}
        hint = "; ".join(f"{k!r}: did you mean {m[0]!r}?" for k, m in close.items() if m)
        raise DeviceError(f"device config {where}: unknown key(s) {unknown} for a {kind_name} "
                          f"device" + (f" ({hint})" if hint else
                                       f"; allowed: {sorted(kind.allowed_keys - {'name'})}"))
    raw.setdefault("name", name)
    raw.setdefault("description", f"{name} ({kind_name})")
    try:
        return DeviceConfig(**raw)
    except TypeError as e:
        raise DeviceError(f"device config {where}: {e}") from None
    except DeviceError as e:
        raise DeviceError(f"device config {where}: {e}") from None


def _kinds():
    from hwnas.devices.kinds import load_kinds

    return load_kinds()


def load_device(name: str, home=None) -> DeviceConfig:
    sources = device_sources(home)
    if name not in sources:
        raise DeviceError(f"unknown device {name!r}; known devices: {', '.join(sorted(sources))}"
                          f" (add your own: 'hwnas devices add NAME --kind K')")
    return config_from_raw(name, _resolve(name, sources), _where(sources[name]))


def device_origin(name: str, home=None) -> str:
    return device_sources(home)[name].origin
