"""Test (and benchmark) harness for the stand-in phone: a private adb server, stand-in phones
(adbd_standin.py processes joined with ``adb connect``), and the stand-in benchmark binary.

Everything here stands in for a phone; see adbd_standin.py and benchmark_model_standin.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEAKS = [1803000] * 4 + [2253000] * 2 + [2802000] * 2  # Google Tensor's three clusters
PIXEL6 = {
    "props": {"ro.product.name": "oriole", "ro.product.model": "Pixel 6",
              "ro.product.device": "oriole", "ro.product.manufacturer": "Google",
              "ro.soc.manufacturer": "Google", "ro.soc.model": "Tensor",
              "ro.build.version.release": "14", "ro.build.version.sdk": "34",
              "ro.product.cpu.abi": "arm64-v8a",
              "ro.build.fingerprint": "hwnas/standin/oriole:14/STANDIN/1:user/test-keys"},
    "cpus": [["schedutil", k, k, k] for k in PEAKS],
    "zones": [["BIG", 38000], ["MID", 36000], ["LITTLE", 35000], ["battery", 31000]],
}


def free_port() -> int:
    """A loopback port outside 5555-5585 (adb scans those for emulators) and not 5037."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not 5037 <= port <= 5585:
            return port


class AdbServer:
    """An adb server of our own: its own port (outside 5555-5585) and HOME."""

    def __init__(self, port: int, env: dict):
        self.port, self.env = port, env
        import adbutils

        self.exe = adbutils.adb_path()

    def adb(self, *args, timeout: float = 30) -> str:
        r = subprocess.run([self.exe, "-P", str(self.port), *args], env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        return r.stdout + r.stderr

    @classmethod
    def start(cls, home: Path) -> "AdbServer":
        port = free_port()
        home.mkdir(parents=True, exist_ok=True)
        server = cls(port, dict(os.environ, HOME=str(home), ANDROID_ADB_SERVER_PORT=str(port)))
        server.adb("start-server", timeout=60)
        return server

    def stop(self) -> None:
        self.adb("kill-server")


class StandinPhone:
    """A stand-in phone process; ``kill`` is pulling the cable, ``start`` plugging it back."""

    def __init__(self, server: AdbServer, root: Path, spec: dict = PIXEL6):
        self.server, self.root, self.port = server, root, free_port()
        self.spec_path = root.parent / f"{root.name}-spec.json"
        self.spec_path.write_text(json.dumps(spec))
        self.proc = None

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "StandinPhone":
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "adbd_standin.py"), "--port", str(self.port),
             "--root", str(self.root), "--spec", str(self.spec_path)],
            stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            assert self.proc.stdout.readline().strip() == "READY"
            said = self.server.adb("connect", self.serial)
            assert "connected" in said, said
            deadline = time.monotonic() + 20
            while f"{self.serial}\tdevice" not in self.server.adb("devices"):
                assert time.monotonic() < deadline, self.server.adb("devices")
                time.sleep(0.1)
        except BaseException:
            self.kill()  # never leave a stand-in behind
            raise
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the daemon and whatever it runs
            self.proc.wait()
        self.server.adb("disconnect", self.serial)  # as adb forgets an unplugged phone

    def runs(self) -> int:
        """Benchmark runs started on this phone (its taskset logs one line per run)."""
        log = self.root / "taskset.log"
        return len(log.read_text().splitlines()) if log.exists() else 0

    def kill_when(self, runs: int) -> threading.Thread:
        def watch():
            while self.proc.poll() is None and self.runs() < runs:
                time.sleep(0.02)
            self.kill()

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        return t


def standin_bin(tmp_path: Path, generation: str = "new") -> Path:
    """The 'benchmark_bin' a user would download, here a wrapper around the stand-in."""
    path = tmp_path / f"benchmark_model_{generation}"
    path.write_text(f'#!/bin/sh\nexec {sys.executable} {HERE / "benchmark_model_standin.py"} '
                    f'--standin_generation={generation} "$@"\n')
    path.chmod(0o755)
    return path
