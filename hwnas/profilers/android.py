"""What a phone is and what state it is in: properties, cores, clocks, temperatures.

The shell commands are plain POSIX sh (Android's mksh and toybox run them); their outputs are
parsed by pure functions, and ``throttle_reason`` decides, also purely, whether the phone must
cool down before the next measurement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hwnas.device_configs import DeviceConfig
from hwnas.errors import DeviceError
from hwnas.profilers.affinity import parse_affinity

CPU_CMD = (
    'for c in /sys/devices/system/cpu/cpu[0-9]*; do f=$c/cpufreq; '
    'echo "${c##*/} $(cat $f/scaling_governor 2>/dev/null || echo -) '
    '$(cat $f/scaling_cur_freq 2>/dev/null || echo 0) '
    '$(cat $f/scaling_max_freq 2>/dev/null || echo 0) '
    '$(cat $f/cpuinfo_max_freq 2>/dev/null || echo 0)"; done')
THERMAL_CMD = (
    'for z in /sys/class/thermal/thermal_zone*; do '
    'echo "${z##*/} $(cat $z/type 2>/dev/null || echo -) $(cat $z/temp 2>/dev/null || echo -)"; '
    'done')
# Fixed-clock governors: only under these does a lower scaling_cur_freq between runs mean heat.
# Under schedutil/interactive the clock follows the load and drops whenever the phone idles.
FIXED_GOVERNORS = frozenset({"performance", "userspace"})


@dataclass(frozen=True)
class Core:
    cpu: int
    governor: str
    cur_khz: int
    max_khz: int  # scaling_max_freq: the cap, which thermal throttling lowers
    peak_khz: int  # cpuinfo_max_freq: what the silicon can do


@dataclass(frozen=True)
class Zone:
    name: str
    type: str
    temp_c: float


def parse_getprop(text: str) -> dict[str, str]:
    """``[ro.product.model]: [Pixel 6]`` lines -> {name: value}."""
    return dict(re.findall(r"^\[([^\]]+)\]:\s*\[(.*)\]\s*$", text, flags=re.M))


def parse_cores(text: str) -> dict[int, Core]:
    cores = {}
    for line in text.splitlines():
        parts = line.split()
        m = re.fullmatch(r"cpu(\d+)", parts[0]) if len(parts) == 5 else None
        if m:
            try:
                cur, cap, peak = (int(p) for p in parts[2:])
            except ValueError:
                continue
            cores[int(m.group(1))] = Core(int(m.group(1)), parts[1], cur, cap, peak)
    return cores


def parse_zones(text: str) -> list[Zone]:
    """Thermal zones; kernels report millidegrees (most) or degrees (a few old ones)."""
    zones = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        try:
            raw = float(parts[-1])
        except ValueError:
            continue
        zones.append(Zone(parts[0], " ".join(parts[1:-1]), raw / 1000 if abs(raw) >= 200 else raw))
    return zones


def phone_cpus(spec: str, threads: int, cores: dict[int, Core]) -> list[int] | None:
    """CPUs to pin to on the phone. "auto": the ``threads`` cores with the highest peak clock
    (the big cores of a big.LITTLE SoC; ties go to the higher id, as SoCs number big cores last)."""
    if not cores:
        raise DeviceError("the phone reports no CPUs under /sys/devices/system/cpu")
    if str(spec).strip().lower() == "auto":
        fastest = sorted(cores.values(), key=lambda c: (c.peak_khz, c.cpu), reverse=True)
        return sorted(c.cpu for c in fastest[:threads])
    cpus = parse_affinity(spec, threads, set(cores))
    return sorted(cpus) if cpus is not None else None


def mask_hex(cpus: list[int]) -> str:
    """The taskset mask for ``cpus``, in hex without 0x (what toybox taskset takes)."""
    return format(sum(1 << c for c in cpus), "x")


def throttle_reason(cores: dict[int, Core], zones: list[Zone], cpus: list[int] | None,
                    reference_khz: dict[int, int], cfg: DeviceConfig) -> str | None:
    """Why the phone is too hot to measure now, or None.

    * a watched thermal zone above ``thermal_limit_c``;
    * a pinned core whose cap (scaling_max_freq) is ``freq_drop`` under its peak: Android's
      thermal framework throttles by lowering the cap;
    * under a fixed-clock governor, a pinned core running ``freq_drop`` under its clock at the
      start of the run (scaling_cur_freq).
    """
    reasons = []
    watch = re.compile(cfg.thermal_zones, re.I)
    hot = [z for z in zones if watch.search(z.type) and z.temp_c > cfg.thermal_limit_c > 0]
    reasons += [f"{z.type} at {z.temp_c:.1f} C (limit {cfg.thermal_limit_c:g})" for z in hot]
    for cpu in cpus if cpus is not None else sorted(cores):
        c = cores.get(cpu)
        if c is None:
            continue
        if c.peak_khz and c.max_khz < c.peak_khz * (1 - cfg.freq_drop):
            reasons.append(f"cpu{cpu} capped at {c.max_khz // 1000} of {c.peak_khz // 1000} MHz")
        ref = reference_khz.get(cpu, 0)
        if c.governor in FIXED_GOVERNORS and ref and c.cur_khz < ref * (1 - cfg.freq_drop):
            reasons.append(f"cpu{cpu} at {c.cur_khz // 1000} of {ref // 1000} MHz")
    return "; ".join(reasons) or None


def summarize(props: dict[str, str], cores: dict[int, Core], zones: list[Zone]) -> dict:
    """The facts a table's meta and ``hwnas devices --adb`` show (plain containers only)."""
    soc = " ".join(p for p in (props.get("ro.soc.manufacturer", ""),
                               props.get("ro.soc.model", "")) if p)
    return {
        "model": props.get("ro.product.model", "?"),
        "manufacturer": props.get("ro.product.manufacturer", "?"),
        "device": props.get("ro.product.device", "?"),
        "soc": soc or props.get("ro.board.platform") or props.get("ro.hardware", "?"),
        "android": props.get("ro.build.version.release", "?"),
        "sdk": props.get("ro.build.version.sdk", "?"),
        "build": props.get("ro.build.fingerprint", "?"),
        "abi": props.get("ro.product.cpu.abi", "?"),
        "cores": len(cores),
        "governors": {f"cpu{c.cpu}": c.governor for c in cores.values()},
        "cur_khz": {f"cpu{c.cpu}": c.cur_khz for c in cores.values()},
        "max_khz": {f"cpu{c.cpu}": c.max_khz for c in cores.values()},
        "peak_khz": {f"cpu{c.cpu}": c.peak_khz for c in cores.values()},
        "temps_c": {z.type: round(z.temp_c, 1) for z in zones},
    }


def read_state(link) -> tuple[dict[int, Core], list[Zone]]:
    """Clocks and temperatures now (two short shell commands)."""
    return parse_cores(link.check(CPU_CMD)), parse_zones(link.check(THERMAL_CMD))


def read_facts(link) -> dict:
    cores, zones = read_state(link)
    return dict(summarize(parse_getprop(link.check("getprop")), cores, zones),
                serial=link.serial)
