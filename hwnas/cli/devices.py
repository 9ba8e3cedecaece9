"""``hwnas devices``: list the named devices (built-in and the user's own), add one, check
whether one can be reached. The yamls and kinds live in hwnas.device_configs / hwnas.devices."""

from __future__ import annotations

import json

import click


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


@click.group(name="devices", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--adb", is_flag=True, help="List the Android phones attached over adb instead.")
@click.pass_context
def devices_group(ctx, as_json: bool, adb: bool) -> None:
    """List named devices: their kind, whether a table or records exist, and where each comes
    from (built-in, or a yaml in $HWNAS_HOME/devices)."""
    if ctx.invoked_subcommand is not None:
        return
    if adb:
        from hwnas.cli.adb import devices_adb, format_devices_adb

        rows = devices_adb()
        return _echo_json(rows) if as_json else click.echo(format_devices_adb(rows))
    from hwnas.device_configs import device_sources, load_device
    from hwnas.home import device_paths

    rows = []
    for name, src in sorted(device_sources().items()):
        cfg = load_device(name)
        paths = device_paths(name, batch=cfg.batch, precision=cfg.precision)
        rows.append({"device": name, "kind": cfg.kind, "table": paths.table.is_file(),
                     "records": paths.records.is_file(), "from": src.origin,
                     "description": cfg.description})
    if as_json:
        return _echo_json(rows)
    for r in rows:
        have = "+".join(w for w in ("table", "records") if r[w]) or "-"
        origin = "" if r["from"] == "built-in" else f"  [{r['from']}]"
        click.echo(f"{r['device']:<16} {r['kind']:<12} {have:<14} {r['description']}{origin}")


@devices_group.command(name="add")
@click.argument("name")
@click.option("--kind", default=None, help="The device kind: onnxruntime, tflite, adb, cuda, "
                                           "ssh, imported (or one a plug-in registers).")
@click.option("--extends", default=None, metavar="DEVICE",
              help="Start from another device's settings (e.g. pixel6).")
@click.option("--force", is_flag=True, help="Replace a yaml of that name that exists.")
@click.argument("values", nargs=-1, metavar="[KEY=VALUE]...")
def devices_add(name, kind, extends, force, values) -> None:
    """Write $HWNAS_HOME/devices/NAME.yaml, validated: e.g. 'hwnas devices add pi5 --kind ssh
    host=pi5.local user=pi runtime=tflite'."""
    from hwnas.devices.user import add_device, parse_assignments

    path = add_device(name, kind, extends, parse_assignments(values), force=force)
    click.echo(f"wrote {path}; 'hwnas devices' lists it")


@devices_group.command(name="check")
@click.argument("name")
def devices_check(name) -> None:
    """Load NAME's yaml and say whether the device can be reached now (exit 1 if not)."""
    from hwnas.device_configs import device_origin, load_device
    from hwnas.devices import kind_of
    from hwnas.errors import DeviceError

    cfg = load_device(name)
    kind = kind_of(cfg)
    if not kind.live:
        click.echo(f"{name}: {kind.description}; nothing to reach ({device_origin(name)})")
        return
    why = kind.reachable(cfg)
    if why:
        raise DeviceError(f"{name} cannot be reached: {why}")
    click.echo(f"{name}: reachable ({kind.name}, {device_origin(name)})")


COMMANDS = [devices_group]
