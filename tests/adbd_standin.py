"""A stand-in for an Android phone's adbd, for tests. It is NOT a phone.

It listens on loopback and speaks the adb transport protocol to the real adb server
(``adb connect 127.0.0.1:PORT``): the CNXN handshake (no AUTH: like a phone with
ro.adb.secure=0), OPEN/OKAY/WRTE/CLSE streams with flow control, the ``shell:`` service (v1,
stdout and stderr merged, as adb's v1 shell does) and the ``sync:`` service (STAT, LIST, SEND,
RECV, QUIT). Every push and shell command of the adb profiler therefore travels through the real
adb client library, the real adb server and the real wire protocol; only the far end is this.

"The phone" is a directory (``--root``): device paths (/data, /sys, /proc, /system, ...) map
under it, shell commands run with /bin/sh on this machine with those paths rewritten, and
``getprop``/``taskset`` are small scripts in its /system/bin. Its /sys holds cpufreq and thermal
files the tests rewrite to make the phone run hot. ``taskset`` records the mask and runs the
command unpinned: this machine's cores are not the phone's.

Run: python adbd_standin.py --port PORT --root DIR --spec spec.json  (prints READY when up).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import stat
import struct
import subprocess
import sys
import threading
from pathlib import Path

A_CNXN, A_OPEN, A_OKAY = 0x4E584E43, 0x4E45504F, 0x59414B4F
A_CLSE, A_WRTE, A_AUTH = 0x45534C43, 0x45545257, 0x48545541
A_VERSION = 0x01000001  # Android 9+: checksums are not checked
MAX_DATA = 256 * 1024
CHUNK = 64 * 1024
DEVICE_DIRS = ("data", "sys", "proc", "system", "vendor", "sdcard")
_DEVICE_PATH = re.compile(r"(?<![\w./-])/(" + "|".join(DEVICE_DIRS) + r")(?=/|\s|$|;|\*)")

GETPROP = """#!/bin/sh
if [ $# -eq 0 ]; then cat "$STANDIN_ROOT/props.txt"
else sed -n "s/^\\[$1\\]: \\[\\(.*\\)\\]\\$/\\1/p" "$STANDIN_ROOT/props.txt"; fi
"""
TASKSET = """#!/bin/sh
# stand-in taskset: records the mask, runs the command unpinned (the host's cores are not the
# phone's)
echo "$1" >> "$STANDIN_ROOT/taskset.log"
shift
exec "$@"
"""


def packet(cmd: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    return struct.pack("<6I", cmd, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF,
                       cmd ^ 0xFFFFFFFF) + data


def write_phone(root: Path, spec: dict) -> None:
    """Lay out the phone's files from a spec: props, cpus [[gov, cur, max, peak], ...], zones."""
    (root / "data/local/tmp").mkdir(parents=True, exist_ok=True)
    props = "".join(f"[{k}]: [{v}]\n" for k, v in spec["props"].items())
    (root / "props.txt").write_text(props)
    bindir = root / "system/bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for name, text in (("getprop", GETPROP), ("taskset", TASKSET)):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    for i, cpu in enumerate(spec["cpus"]):
        set_cpu(root, i, *cpu)
    for i, (kind, temp_mc) in enumerate(spec["zones"]):
        z = root / f"sys/class/thermal/thermal_zone{i}"
        z.mkdir(parents=True, exist_ok=True)
        (z / "type").write_text(kind + "\n")
        (z / "temp").write_text(f"{temp_mc}\n")


def set_cpu(root: Path, cpu: int, governor: str, cur: int, cap: int, peak: int) -> None:
    f = Path(root) / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
    f.mkdir(parents=True, exist_ok=True)
    for name, value in (("scaling_governor", governor), ("scaling_cur_freq", cur),
                        ("scaling_max_freq", cap), ("cpuinfo_max_freq", peak)):
        (f / name).write_text(f"{value}\n")


def set_zone(root: Path, index: int, temp_mc: int) -> None:
    (Path(root) / f"sys/class/thermal/thermal_zone{index}/temp").write_text(f"{temp_mc}\n")


class Stream:
    """One adb stream: our id, the host's id, an inbox, and OKAY-based flow control."""

    def __init__(self, conn: "Connection", local_id: int, remote_id: int):
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id
        self.inbox = bytearray()
        self.cond = threading.Condition()
        self.okay = threading.Event()
        self.closed = False

    def deliver(self, data: bytes) -> None:
        with self.cond:
            self.inbox += data
            self.cond.notify_all()

    def read_exact(self, n: int) -> bytes:
        with self.cond:
            while len(self.inbox) < n and not self.closed:
                self.cond.wait(1.0)
            if len(self.inbox) < n:
                raise EOFError("stream closed")
            out = bytes(self.inbox[:n])
            del self.inbox[:n]
            return out

    def write(self, data: bytes) -> None:
        for i in range(0, len(data), min(CHUNK, self.conn.host_max)):
            if self.closed:
                raise EOFError("stream closed by the host")
            self.okay.clear()
            self.conn.send(A_WRTE, self.local_id, self.remote_id,
                           data[i:i + min(CHUNK, self.conn.host_max)])
            while not self.okay.wait(1.0):  # the host acknowledges each write
                if self.closed:
                    raise EOFError("stream closed by the host")

    def host_closed(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.okay.set()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.send(A_CLSE, self.local_id, self.remote_id)
        self.conn.streams.pop(self.local_id, None)


class Connection:
    def __init__(self, sock: socket.socket, phone: "Phone"):
        self.sock, self.phone = sock, phone
        self.lock = threading.Lock()
        self.streams: dict[int, Stream] = {}
        self.next_id = 1
        self.host_max = 4096

    def send(self, cmd: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        with self.lock:
            self.sock.sendall(packet(cmd, arg0, arg1, data))

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)

    def serve(self) -> None:
        try:
            while True:
                cmd, arg0, arg1, length, _, _ = struct.unpack("<6I", self._recv_exact(24))
                data = self._recv_exact(length) if length else b""
                self.dispatch(cmd, arg0, arg1, data)
        except (EOFError, OSError):
            pass
        finally:
            for s in list(self.streams.values()):
                s.host_closed()
            self.sock.close()

    def dispatch(self, cmd: int, arg0: int, arg1: int, data: bytes) -> None:
        if cmd == A_CNXN:
            self.host_max = min(arg1, MAX_DATA) or 4096
            self.send(A_CNXN, A_VERSION, MAX_DATA, self.phone.banner())
        elif cmd == A_OPEN:
            self.open(arg0, data.rstrip(b"\0").decode())
        elif cmd == A_WRTE and arg1 in self.streams:
            self.streams[arg1].deliver(data)
            self.send(A_OKAY, arg1, arg0)
        elif cmd == A_OKAY and arg1 in self.streams:
            self.streams[arg1].okay.set()
        elif cmd == A_CLSE and arg1 in self.streams:
            self.streams.pop(arg1).host_closed()

    def open(self, remote_id: int, service: str) -> None:
        handler = {"shell": self.phone.shell, "sync": self.phone.sync}.get(
            re.split(r"[:,]", service, 1)[0])
        if handler is None:
            self.send(A_CLSE, 0, remote_id)  # refuse services a phone would not have here
            return
        stream = Stream(self, self.next_id, remote_id)
        self.streams[stream.local_id] = stream
        self.next_id += 1
        self.send(A_OKAY, stream.local_id, remote_id)
        threading.Thread(target=self._run, args=(handler, stream, service), daemon=True).start()

    @staticmethod
    def _run(handler, stream: Stream, service: str) -> None:
        try:
            handler(stream, service.split(":", 1)[1] if ":" in service else "")
        except (EOFError, OSError):
            pass
        finally:
            stream.close()


class Phone:
    def __init__(self, root: Path, spec: dict):
        self.root, self.spec = Path(root).resolve(), spec

    def banner(self) -> bytes:
        p = self.spec["props"]
        return (f"device::ro.product.name={p['ro.product.name']};"
                f"ro.product.model={p['ro.product.model']};"
                f"ro.product.device={p['ro.product.device']};features=fixed_push_mkdir"
                ).encode()

    def path(self, device_path: str) -> Path:
        return self.root / device_path.lstrip("/")

    def shell(self, stream: Stream, cmd: str) -> None:
        cmd = _DEVICE_PATH.sub(lambda m: f"{self.root}/{m.group(1)}", cmd)
        env = {"PATH": f"{self.root}/system/bin:/usr/bin:/bin", "STANDIN_ROOT": str(self.root),
               "HOME": str(self.root), "LANG": "C"}
        proc = subprocess.Popen(["/bin/sh", "-c", cmd], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=self.root, env=env)
        try:
            while chunk := os.read(proc.stdout.fileno(), CHUNK):
                stream.write(chunk)
        finally:
            if proc.poll() is None and stream.closed:
                proc.kill()
            proc.wait()
            proc.stdout.close()

    def sync(self, stream: Stream, _: str) -> None:
        while True:
            req, n = struct.unpack("<4sI", stream.read_exact(8))
            if req == b"QUIT":
                return
            arg = stream.read_exact(n).decode()
            handler = {b"STAT": self._stat, b"LIST": self._list, b"SEND": self._send,
                       b"RECV": self._recv}.get(req)
            if handler is None:
                self._fail(stream, f"unknown sync request {req!r}")
                return
            handler(stream, arg)

    @staticmethod
    def _fail(stream: Stream, msg: str) -> None:
        stream.write(b"FAIL" + struct.pack("<I", len(msg)) + msg.encode())

    def _stat(self, stream: Stream, path: str) -> None:
        try:
            st = os.stat(self.path(path))
            stream.write(b"STAT" + struct.pack("<III", st.st_mode, st.st_size, int(st.st_mtime)))
        except OSError:
            stream.write(b"STAT" + struct.pack("<III", 0, 0, 0))

    def _list(self, stream: Stream, path: str) -> None:
        d = self.path(path)
        for entry in sorted(os.listdir(d)) if d.is_dir() else []:
            st = os.stat(d / entry)
            name = entry.encode()
            stream.write(b"DENT" + struct.pack("<IIII", st.st_mode, st.st_size,
                                               int(st.st_mtime), len(name)) + name)
        stream.write(b"DONE" + bytes(16))

    def _send(self, stream: Stream, spec: str) -> None:
        path, _, mode = spec.rpartition(",")
        target, chunks = self.path(path), []
        while True:
            kind, n = struct.unpack("<4sI", stream.read_exact(8))
            if kind == b"DATA":
                chunks.append(stream.read_exact(n))
            elif kind == b"DONE":
                break
            else:
                self._fail(stream, f"unexpected {kind!r} in SEND")
                return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            tmp.write_bytes(b"".join(chunks))
            tmp.chmod(stat.S_IMODE(int(mode or "420")) or 0o644)
            tmp.replace(target)
        except OSError as e:
            self._fail(stream, f"couldn't create file: {e.strerror}")
            return
        stream.write(b"OKAY" + bytes(4))

    def _recv(self, stream: Stream, path: str) -> None:
        try:
            data = self.path(path).read_bytes()
        except OSError as e:
            self._fail(stream, f"open failed: {e.strerror}")
            return
        for i in range(0, len(data), CHUNK):
            stream.write(b"DATA" + struct.pack("<I", len(data[i:i + CHUNK])) + data[i:i + CHUNK])
        stream.write(b"DONE" + bytes(4))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--spec", type=Path, required=True)
    args = ap.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    write_phone(args.root, spec)
    phone = Phone(args.root, spec)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", args.port))
    server.listen(8)
    print("READY", flush=True)
    while True:
        sock, _ = server.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=Connection(sock, phone).serve, daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
