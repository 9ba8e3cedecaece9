"""One SSH connection to a board (asyncssh), used from synchronous code.

asyncssh is asyncio; hwnas's profilers are not. ``SshLink`` runs a private event loop in a
daemon thread and hands it coroutines, so one connection serves a whole profiling session (a
connection per measurement would cost a key exchange each).

Errors, in one line each:

* before anything is measured (``open``): an unknown or changed host key, a refused login, a
  host that cannot be reached are ``DeviceError`` naming host:port (and the known_hosts file);
* afterwards, a dropped connection is ``ProfileError``: the profiling driver saves the ops
  measured so far and the CLI says to rerun, which resumes.

Host keys are always checked, against the device's ``known_hosts`` or ~/.ssh/known_hosts;
there is no way to switch that off from a yaml.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path

from hwnas.errors import DeviceError, ProfileError

log = logging.getLogger(__name__)
SSH_HINT = "ssh devices need asyncssh: pip install 'hwnas[ssh]'"
CONNECT_TIMEOUT_S = 15.0
COMMAND_TIMEOUT_S = 600.0
REQUEST_TIMEOUT_S = 3600.0  # a big network on a slow board, several batches of runs


def _asyncssh():
    import warnings

    try:
        # its import warns about DSA keys (cryptography's deprecation), ten lines on stderr of
        # every hwnas command on a board: not the user's concern
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import asyncssh
    except ImportError:
        raise DeviceError(SSH_HINT) from None
    return asyncssh


@dataclass(frozen=True)
class Target:
    """Where and how to log in, from a device config."""

    host: str
    port: int
    user: str
    identity_file: str
    known_hosts: Path

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def of(cls, cfg) -> "Target":
        known = Path(cfg.known_hosts or "~/.ssh/known_hosts").expanduser()
        return cls(cfg.host, cfg.port, cfg.user, cfg.identity_file, known)


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


class SshLink:
    """A connection to one board. ``open()`` connects; ``close()`` ends it and its thread."""

    def __init__(self, target: Target):
        self.target = target
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._conn = None
        self._sftp = None

    # --- the private loop -----------------------------------------------------------------
    def _start_loop(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hwnas-ssh",
                                        daemon=True)
        self._thread.start()

    def _call(self, coro, timeout: float | None = COMMAND_TIMEOUT_S):
        async def awaited():  # asyncssh returns awaitables that are not coroutines
            return await coro

        fut = asyncio.run_coroutine_threadsafe(awaited(), self._loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise

    def _lost(self, e: BaseException, doing: str) -> ProfileError:
        return ProfileError(f"board {self.target.where} stopped answering while {doing} "
                            f"({_first_line(e)}); what was measured is kept: rerun to resume")

    # --- connecting -------------------------------------------------------------------------
    def open(self) -> "SshLink":
        asyncssh = _asyncssh()
        t = self.target
        if not t.known_hosts.is_file():
            raise DeviceError(f"cannot check the host key of {t.where}: no known_hosts file at "
                              f"{t.known_hosts} (add the board's key: ssh-keyscan -p {t.port} "
                              f"{t.host} >> {t.known_hosts}, after checking it)")
        options = dict(port=t.port, known_hosts=str(t.known_hosts),
                       connect_timeout=CONNECT_TIMEOUT_S)
        if t.user:
            options["username"] = t.user
        if t.identity_file:
            key = Path(t.identity_file).expanduser()
            if not key.is_file():
                raise DeviceError(f"identity_file {key} does not exist")
            options["client_keys"] = [str(key)]
        self._start_loop()
        try:
            self._conn = self._call(asyncssh.connect(t.host, **options), CONNECT_TIMEOUT_S + 5)
        except asyncssh.HostKeyNotVerifiable as e:
            self.close()
            raise DeviceError(f"host key of {t.where} refused: it is not the one {t.known_hosts} "
                              f"holds for it, or that file has none ({_first_line(e)})") from None
        except asyncssh.PermissionDenied:
            self.close()
            who = t.user or "this machine's user"
            raise DeviceError(f"{t.where} refused the login of {who}"
                              + (f" with {t.identity_file}" if t.identity_file else
                                 " (set identity_file, or load a key into the SSH agent)")
                              ) from None
        except (OSError, TimeoutError, asyncio.TimeoutError, asyncssh.Error) as e:
            self.close()
            raise DeviceError(f"cannot reach {t.where}: {_first_line(e)}") from None
        return self

    def close(self) -> None:
        if self._loop is None:
            return
        if self._conn is not None:
            conn, self._conn = self._conn, None

            async def shut():
                conn.close()
                try:
                    await asyncio.wait_for(conn.wait_closed(), 5)
                except Exception:  # already gone: nothing to wait for
                    pass

            try:
                self._call(shut(), 10)
            except Exception as e:  # closing a dead connection must not hide why it died
                log.debug("closing %s: %s", self.target.where, e)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._loop = self._thread = None

    # --- commands -----------------------------------------------------------------------------
    def shell(self, argv: list[str] | str, timeout: float = COMMAND_TIMEOUT_S
              ) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of a command on the board; every argument quoted."""
        cmd = argv if isinstance(argv, str) else " ".join(shlex.quote(a) for a in argv)
        try:
            r = self._call(self._conn.run(cmd, check=False), timeout)
        except (OSError, TimeoutError, _asyncssh().Error) as e:
            raise self._lost(e, f"running {cmd.split()[0]}") from None
        return (r.exit_status if r.exit_status is not None else -1), str(r.stdout or ""), \
            str(r.stderr or "")

    def check(self, cmd: str) -> str:
        """stdout of a shell command that must succeed (hwnas.anymodel reads /proc/meminfo)."""
        rc, out, err = self.shell(cmd)
        if rc != 0:
            raise ProfileError(f"{self.target.where}: {cmd!r} failed (exit {rc}): "
                               f"{(err or out).strip()[-200:]}")
        return out

    # --- files --------------------------------------------------------------------------------
    async def _sftp_client(self):
        if self._sftp is None:
            self._sftp = await self._conn.start_sftp_client()
        return self._sftp

    def remote_size(self, remote: str) -> int | None:
        async def size():
            sftp = await self._sftp_client()
            try:
                return (await sftp.stat(remote)).size
            except _asyncssh().SFTPNoSuchFile:
                return None

        try:
            return self._call(size())
        except (OSError, TimeoutError, _asyncssh().Error) as e:
            raise self._lost(e, "looking at its files") from None

    def put(self, local: Path, remote: str) -> None:
        """Upload under a temporary name, then rename: a dropped upload never leaves a
        truncated file under the name the cache trusts."""
        tmp = f"{remote}.part{os.getpid()}"

        async def put():
            sftp = await self._sftp_client()
            await sftp.put(str(local), tmp)
            await sftp.posix_rename(tmp, remote)

        try:
            self._call(put())
        except (OSError, TimeoutError, _asyncssh().Error) as e:
            raise self._lost(e, f"copying {Path(local).name} to it") from None

    def remove(self, remote: str) -> None:
        async def rm():
            sftp = await self._sftp_client()
            try:
                await sftp.remove(remote)
            except _asyncssh().SFTPNoSuchFile:
                pass

        try:
            self._call(rm())
        except (OSError, TimeoutError, _asyncssh().Error) as e:
            raise self._lost(e, "removing a model") from None

    # --- a long-running process -----------------------------------------------------------
    def start(self, cmd: str) -> "RemoteProcess":
        try:
            proc = self._call(self._conn.create_process(cmd, encoding="utf-8"))
        except (OSError, TimeoutError, _asyncssh().Error) as e:
            raise self._lost(e, "starting the runner") from None
        return RemoteProcess(self, proc)


class RemoteProcess:
    """The runner's process on the board: a JSON request a line in, a JSON answer a line out."""

    def __init__(self, link: SshLink, proc):
        self.link, self.proc = link, proc

    def read(self, timeout: float = REQUEST_TIMEOUT_S) -> str:
        """The next line of stdout; "" when the process or the connection ended."""
        try:
            return self.link._call(self.proc.stdout.readline(), timeout)
        except (OSError, TimeoutError, _asyncssh().Error) as e:
            raise self.link._lost(e, "timing") from None

    def write(self, line: str) -> None:
        async def send():
            self.proc.stdin.write(line + "\n")
            await self.proc.stdin.drain()

        try:
            self.link._call(send())
        except (OSError, TimeoutError, _asyncssh().Error) as e:
            raise self.link._lost(e, "sending a request") from None

    def stderr_tail(self, timeout: float = 5.0) -> str:
        """What the process wrote on stderr (after it ended), its last lines."""
        async def tail():
            return await self.proc.stderr.read()

        try:
            text = self.link._call(tail(), timeout) or ""
        except Exception:  # the connection is gone too: nothing more to say
            return ""
        return " | ".join(text.strip().splitlines()[-3:])

    def exit_status(self, timeout: float = 5.0) -> int | None:
        async def wait():
            await self.proc.wait_closed()
            return self.proc.exit_status

        try:
            return self.link._call(wait(), timeout)
        except Exception:  # never reported: the connection went first
            return None

    def close(self) -> None:
        async def end():
            self.proc.stdin.write_eof()  # the runner ends at EOF and drops the board lock
            try:
                await asyncio.wait_for(self.proc.wait_closed(), 5)
            except Exception:  # it did not: closing the channel ends it
                self.proc.close()

        try:
            self.link._call(end(), 10)
        except Exception as e:  # the connection is gone: so is the process
            log.debug("closing the runner: %s", e)
