"""A user's own devices: yamls in ``$HWNAS_HOME/devices``, written by ``hwnas devices add`` and
by imports that name a device hwnas does not know yet.

A yaml is validated in full (its kind's keys, their types, what it extends) before it is
written, and written atomically, so a device that ``hwnas devices`` lists always loads.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from hwnas.errors import DeviceError


def parse_assignments(pairs) -> dict:
    """``key=value`` words of the command line. A value is read as yaml (``8`` is an integer,
    ``true`` a boolean, ``[160, 224]`` a list), except for keys whose values are text
    (``affinity=0x8`` stays the mask "0x8", not the number 8; ``host=1.2.3.4`` a name)."""
    from dataclasses import MISSING, fields

    from hwnas.device_configs import DeviceConfig

    text_keys = {f.name for f in fields(DeviceConfig)
                 if f.default is not MISSING and isinstance(f.default, str)}
    out = {}
    for pair in pairs:
        key, sep, text = str(pair).partition("=")
        key = key.strip()
        if not sep or not key:
            raise DeviceError(f"{pair!r}: expected key=value")
        if key in text_keys:
            out[key] = text
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        out[key] = value
    return out


def add_device(name: str, kind: str | None, extends: str | None = None, values: dict | None = None,
               home: Path | None = None, force: bool = False) -> Path:
    """Write ``$HWNAS_HOME/devices/NAME.yaml`` after checking that it loads; its path."""
    from hwnas.device_configs import (DeviceSource, _builtin_sources, _resolve, _where,
                                      config_from_raw, device_sources, user_devices_dir)
    from hwnas.home import _SAFE_NAME, check_folder
    from hwnas.latency.safeio import atomic_write_text

    if not _SAFE_NAME.fullmatch(name or ""):
        raise DeviceError(f"bad device name {name!r}: use letters, digits, '.', '_' and '-'")
    doc: dict = {}
    if extends:
        doc["extends"] = extends
    if kind:
        doc["kind"] = kind
    doc.update(values or {})
    for key in ("name", "extends", "kind"):
        if key in (values or {}):
            raise DeviceError(f"give {key} with its option, not as {key}=...")
    if not kind and not extends:
        raise DeviceError("give --kind K (or --extends DEVICE to start from another device)")
    if name in _builtin_sources() and doc.get("override") is not True:
        raise DeviceError(f"{name!r} is a built-in device; pick another name, or add "
                          f"override=true to replace it")
    folder = user_devices_dir(home)
    path = folder / f"{name}.yaml"
    if path.exists() and not force:
        raise DeviceError(f"{path} already exists; edit it, or pass --force to replace it")
    text = (f"# {name}: written by 'hwnas devices add'; edit freely (see docs/devices.md)\n"
            + yaml.safe_dump(doc, sort_keys=False))
    # validated exactly as it will be read back: beside every other device it may extend
    sources = dict(device_sources(home))
    sources[name] = DeviceSource(name, text, str(path))
    config_from_raw(name, _resolve(name, sources), _where(sources[name]))
    check_folder(folder, write=True)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path


def ensure_imported_device(name: str, source: str, description: str,
                           home: Path | None = None) -> str:
    """Make ``name`` a device when it is not one yet: an ``imported`` device described by where
    its numbers come from. Returns "" when it already existed, else the yaml's path."""
    from hwnas.device_configs import device_sources

    if name in device_sources(home):
        return ""
    return str(add_device(name, "imported", values={"description": description,
                                                    "source": source}, home=home))
