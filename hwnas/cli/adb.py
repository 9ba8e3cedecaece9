"""Command-line pieces for phones, for hwnas/cli.py to wire in (no logic lives in the CLI).

* ``serial_option`` / ``benchmark_bin_option``: options of ``hwnas profile``. ``--serial``
  gives the ``serials`` tuple of ``api.profile`` / ``make_profiler``; ``--benchmark-bin`` is a
  device-config override (``api.context(..., benchmark_bin=...)``; None keeps the config's).
* ``devices_adb()``: the rows of ``hwnas devices --adb`` (every attached phone and the facts a
  table records about it); ``format_devices_adb(rows)`` renders them.
"""

from __future__ import annotations

import click

from hwnas.errors import DeviceError, ProfileError

serial_option = click.option(
    "--serial", "serials", multiple=True, metavar="SERIAL",
    help="Phone(s) to profile on (adb serial; repeat to share the op list among several "
         "phones of one model). Default: the config's serial, $ANDROID_SERIAL, or the only "
         "phone attached.")
benchmark_bin_option = click.option(
    "--benchmark-bin", type=click.Path(exists=True, dir_okay=False), default=None,
    help="TFLite's android_aarch64_benchmark_model on this machine (overrides the config).")


def _row(link) -> dict:
    from hwnas.profilers import android

    facts = android.read_facts(link)
    peak = facts["peak_khz"]
    fastest = max(peak.values(), default=0)
    big = sorted((c for c, k in peak.items() if k == fastest), key=lambda c: int(c[3:]))
    mhz = sorted({k // 1000 for k in peak.values()})
    return {"serial": link.serial, "state": "device", "model": facts["model"],
            "soc": facts["soc"], "android": f"{facts['android']} (sdk {facts['sdk']})",
            "abi": facts["abi"], "cores": facts["cores"],
            "core_mhz": "/".join(map(str, mhz)), "fastest": ",".join(big),
            "governor": ",".join(sorted(set(facts["governors"].values()))),
            "max_temp_c": max(facts["temps_c"].values(), default=float("nan"))}


def devices_adb(port: int | None = None) -> list[dict]:
    """One row per phone the adb server sees (started if needed). Phones that are not ready
    (unauthorized, offline) get a row with their state only."""
    from hwnas.profilers.adb_conn import AdbLink, adb_client, attached

    client = adb_client(port)
    rows = []
    for dev in attached(client):
        if dev.state != "device":
            rows.append({"serial": dev.serial, "state": dev.state})
            continue
        try:
            rows.append(_row(AdbLink(client, dev.serial)))
        except (ProfileError, DeviceError) as e:
            rows.append({"serial": dev.serial, "state": f"error: {e}"})
    return rows


COLUMNS = ("serial", "state", "model", "soc", "android", "abi", "cores", "core_mhz", "fastest",
           "governor", "max_temp_c")


def format_devices_adb(rows: list[dict]) -> str:
    """A plain-text table (the fastest cores are what ``affinity: auto`` pins to)."""
    if not rows:
        return "no Android device attached (plug one in with USB debugging on, or adb connect)"
    table = [list(COLUMNS)] + [[str(r.get(c, "")) for c in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip()
                     for line in table)
