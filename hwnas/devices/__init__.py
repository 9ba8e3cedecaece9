"""Devices: the registry of device kinds (``kinds``, ``builtin``) and the user's own devices
(``user``: yamls in ``$HWNAS_HOME/devices``). The yamls are read by ``hwnas.device_configs``."""

from hwnas.devices.kinds import (Capabilities, DeviceKind, get_kind, kind_of, load_kinds,
                                 register_kind)

__all__ = ["Capabilities", "DeviceKind", "get_kind", "kind_of", "load_kinds", "register_kind"]
