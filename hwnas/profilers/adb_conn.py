"""Talking to a phone through the real adb server (adbutils' client; its bundled adb or the
system's starts the server when none is running).

Every call goes through ``AdbLink``, which turns a vanished phone (cable pulled, adb server
restarted, device offline) into ``ProfileError``: the profiling driver then saves the table and
the CLI prints one line. Problems the user must fix before measuring anything (no phone, several
phones, an unauthorized phone, no adb) are ``DeviceError``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hwnas.errors import DeviceError, ProfileError

log = logging.getLogger(__name__)
ADB_HINT = "adb support needs adbutils: pip install 'hwnas[adb]'"
DEFAULT_SERVER_PORT = 5037
SHELL_TIMEOUT_S = 600.0


def _adbutils():
    try:
        import adbutils
    except ImportError:
        raise DeviceError(ADB_HINT) from None
    return adbutils


def server_port(env: dict | None = None) -> int:
    """The adb server port: $ANDROID_ADB_SERVER_PORT (adb's own variable), else 5037."""
    env = os.environ if env is None else env
    try:
        return int(env.get("ANDROID_ADB_SERVER_PORT") or DEFAULT_SERVER_PORT)
    except ValueError:
        raise DeviceError("ANDROID_ADB_SERVER_PORT must be a port number") from None


def _server_up(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def adb_client(port: int | None = None):
    """An adbutils client of the adb server on ``port``, starting the server if needed."""
    adbutils = _adbutils()
    port = server_port() if port is None else port
    if not _server_up(port):
        try:
            exe = adbutils.adb_path()
        except adbutils.AdbError as e:
            raise DeviceError(f"no adb executable found ({e}); install platform-tools or "
                              f"adbutils' bundled adb") from None
        log.info("starting the adb server on port %d (%s)", port, exe)
        try:
            subprocess.run([exe, "-P", str(port), "start-server"], check=True, timeout=30,
                           capture_output=True)
        except (OSError, subprocess.SubprocessError) as e:
            raise DeviceError(f"could not start the adb server on port {port}: {e}") from None
    return adbutils.AdbClient(host="127.0.0.1", port=port)


@dataclass(frozen=True)
class Attached:
    serial: str
    state: str  # "device", "offline", "unauthorized", ...


def attached(client) -> list[Attached]:
    try:
        return [Attached(d.serial, d.state) for d in client.list()]
    except (_adbutils().AdbError, OSError) as e:
        raise DeviceError(f"cannot list devices from the adb server: {e}") from None


def pick_serial(devices: list[Attached], wanted: str = "", env: dict | None = None) -> str:
    """The phone to use: ``wanted`` (--serial or the config), else $ANDROID_SERIAL, else the only
    attached phone. Pure: the errors say exactly what to do."""
    env = os.environ if env is None else env
    wanted = wanted or env.get("ANDROID_SERIAL", "")
    listing = ", ".join(f"{d.serial} ({d.state})" for d in devices) or "none"
    if wanted:
        match = [d for d in devices if d.serial == wanted]
        if not match:
            raise DeviceError(f"phone {wanted} is not attached; attached: {listing}")
        chosen = match[0]
    else:
        ready = [d for d in devices if d.state == "device"]
        if not devices:
            raise DeviceError("no Android device attached (adb devices lists none): plug in a "
                              "phone with USB debugging on, or 'adb connect HOST:PORT'")
        if len(ready) > 1:
            raise DeviceError(f"several devices attached ({listing}); pick one with --serial "
                              f"(or serial: in the device config)")
        chosen = ready[0] if ready else devices[0]
    if chosen.state == "unauthorized":
        raise DeviceError(f"{chosen.serial} is unauthorized: unlock the phone and accept the "
                          f"USB debugging prompt")
    if chosen.state != "device":
        raise DeviceError(f"{chosen.serial} is {chosen.state}, not ready; replug it or run "
                          f"'adb reconnect'")
    return chosen.serial


class AdbLink:
    """One attached phone. Methods raise ProfileError when the phone stops answering."""

    def __init__(self, client, serial: str):
        self.client, self.serial = client, serial
        self.device = client.device(serial=serial)
        self._errors = (_adbutils().AdbError, OSError, EOFError, ValueError)

    @contextlib.contextmanager
    def _guard(self, what: str):
        try:
            yield
        except self._errors as e:
            detail = str(e.args[0]) if e.args else type(e).__name__  # not the whole command
            raise ProfileError(f"phone {self.serial} stopped answering during {what} "
                               f"(unplugged?): {detail}; what was measured is saved, run "
                               f"the same command again to resume") from None

    def shell(self, cmd: str, timeout: float = SHELL_TIMEOUT_S) -> tuple[int, str]:
        """(exit code, stdout+stderr) of a shell command on the phone."""
        with self._guard(f"'{cmd[:60]}'"):
            r = self.device.shell2(cmd, timeout=timeout)
        return r.returncode, r.output

    def check(self, cmd: str, timeout: float = SHELL_TIMEOUT_S) -> str:
        rc, out = self.shell(cmd, timeout)
        if rc != 0:
            raise ProfileError(f"on {self.serial}, '{cmd[:80]}' failed ({rc}): {out.strip()[-300:]}")
        return out

    def remote_size(self, remote: str) -> int | None:
        """Size of a file on the phone, None when it is absent."""
        with self._guard(f"stat {remote}"):
            info = self.device.sync.stat(remote)
        return info.size if info.mode else None

    def push(self, local: Path, remote: str, mode: int = 0o644) -> None:
        """Copy a file unless the phone already has it at that size (names carry a hash)."""
        size = Path(local).stat().st_size
        if self.remote_size(remote) == size:
            return
        self.check(f"mkdir -p {shlex.quote(os.path.dirname(remote))}")
        with self._guard(f"push of {Path(local).name}"):
            pushed = self.device.sync.push(Path(local), remote, mode=mode)
        if pushed != size or self.remote_size(remote) != size:
            raise ProfileError(f"push of {local} to {self.serial}:{remote} was incomplete")


def connect(serial: str = "", port: int | None = None) -> AdbLink:
    client = adb_client(port)
    return AdbLink(client, pick_serial(attached(client), serial))
