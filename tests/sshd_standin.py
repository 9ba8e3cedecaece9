"""A stand-in for a Linux board's sshd, for tests. It is NOT a board.

A real SSH server (asyncssh's) on loopback, in a thread of the test process: a host key
generated for the test, one client key authorised, every requested command run with /bin/sh
on this machine (so "the board" is this machine: its python, its /proc/cpuinfo, its cores) and
SFTP serving this machine's files. Every connection, key check, login, command and file copy
of the ssh profiler therefore goes through the real asyncssh client and the real SSH
protocol; only the far end is this.

``drop_after_uploads(n)`` makes it cut the connection (as a pulled cable or a rebooting board
does) when the n-th model file is being copied to it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import asyncssh


class _Sftp(asyncssh.SFTPServer):
    def __init__(self, chan, board: "StandinBoard"):
        super().__init__(chan)
        self.board = board

    def open(self, path, pflags, attrs):
        if pflags & asyncssh.FXF_WRITE and b"/models/" in path:
            self.board.uploads += 1
            if self.board.uploads == self.board.drop_at:
                self.board.drop(self.channel.get_connection())
                raise asyncssh.SFTPConnectionLost("dropped by the stand-in")
        return super().open(path, pflags, attrs)


class StandinBoard:
    """The server, its keys and what the tests ask of it. ``start()`` / ``stop()``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.identity = self.root / "id_ed25519"
        client_key.write_private_key(self.identity)
        self.identity.chmod(0o600)
        self.authorized = self.root / "authorized_keys"
        client_key.write_public_key(self.authorized)
        self.commands: list[str] = []
        self.uploads = 0
        self.drop_at = 0
        self.drops = 0
        self.port = 0
        self._procs: set = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server = None

    def known_hosts(self, path: Path, key=None) -> Path:
        """A known_hosts file holding ``key`` (default: this server's) for 127.0.0.1:port."""
        key = key or self.host_key
        Path(path).write_text(f"[127.0.0.1]:{self.port} "
                              f"{key.export_public_key().decode().strip()}\n")
        return Path(path)

    def start(self) -> "StandinBoard":
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(30)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _listen(self):
        return await asyncssh.create_server(
            asyncssh.SSHServer, "127.0.0.1", 0, server_host_keys=[self.host_key],
            authorized_client_keys=str(self.authorized), process_factory=self._run,
            sftp_factory=lambda chan: _Sftp(chan, self), allow_scp=False,
            encoding=None)

    async def _run(self, process) -> None:
        """One command, run by /bin/sh here, its stdin/stdout/stderr piped through."""
        cmd = process.command or ""
        self.commands.append(cmd)
        proc = await asyncio.create_subprocess_shell(
            cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=dict(os.environ, SSH_CLIENT="127.0.0.1"))
        self._procs.add(proc)
        try:
            await process.redirect(stdin=proc.stdin, stdout=proc.stdout, stderr=proc.stderr)
            rc = await proc.wait()
            await process.stdout.drain()
            await process.stderr.drain()
            process.exit(rc if rc >= 0 else 255)
        except (asyncssh.Error, OSError, BrokenPipeError):
            pass
        finally:
            if proc.returncode is None:  # the connection went: so does what it ran
                proc.kill()
                await proc.wait()
            self._procs.discard(proc)

    def drop(self, conn) -> None:
        """Cut the connection now, and kill what it ran (as a rebooting board would)."""
        self.drops += 1
        conn.abort()
        for p in list(self._procs):
            if p.returncode is None:
                p.kill()

    def stop(self) -> None:
        async def shut():
            self._server.close()
            for p in list(self._procs):
                if p.returncode is None:
                    p.kill()
                    await p.wait()

        if self._server is not None:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
