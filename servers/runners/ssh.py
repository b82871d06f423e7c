"""Commands on a real server over SSH (asyncssh), as its login user with the panel's key.

The server's host key is verified against the key pinned when it was built, and only
that key: there is no trust on first use and no known_hosts file.

A script is sent over the session's stdin into a 0600 temporary file, which deletes
itself as bash starts reading it (see `self_deleting`), and bash runs it with stdin from
/dev/null: commands inside it (ssh, docker, git) cannot eat the script, and nothing of it
stays on disk by name or shows in `ps`. The session's shell is made a session and process
group leader by sshd; it prints `::pid <pid>` first, so a stop kills the whole group over
a second channel of the same connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass

import asyncssh
from django.conf import settings

from .base import RunnerError, RunResult
from .stream import (
    KILL_GRACE_SECONDS,
    Sink,
    read_lines,
    run_async,
    run_streaming,
    self_deleting,
    unless_stopped,
)

HOST_KEY_MISMATCH = (
    "The server's SSH host key is not the one pinned when it was built, so nothing was run."
)
KEY_REFUSED = "The server refused the panel's SSH key."
SUDO_REFUSED = "sudo refused the stored password; was it changed on the server?"
PID_MARKER = "::pid "
KEEPALIVE_SECONDS = 15
SET_PASSWORD_TIMEOUT = 60

# Run by the login shell (`$SHELL -c`), so plain POSIX sh. Output of both streams goes
# out in order on one; the exit status is the script's.
WRAPPER = (
    'exec 2>&1; echo "::pid $$"; umask 077; '
    'f=$(mktemp "${TMPDIR:-/tmp}/hosting-script.XXXXXXXXXX") || exit 125; '
    'cat >"$f" || { rm -f -- "$f"; exit 125; }; '
    'bash -- "$f" </dev/null; s=$?; rm -f -- "$f"; exit "$s"'
)

# TERM to the group, KILL to what is still running after the grace time. Zombies do not
# count: where nothing reaps orphans they stay in the group forever.
KILL_GROUP = """g={pgid}
alive() {{
  ps -e -o pgid=,stat= | awk -v g="$g" '$1 == g && $2 !~ /^Z/ {{ f = 1 }} END {{ exit !f }}'
}}
kill -TERM -- "-$g" 2>/dev/null || exit 0
i=0
while [ "$i" -lt {ticks} ] && alive; do sleep 0.1; i=$((i + 1)); done
if alive; then kill -KILL -- "-$g" 2>/dev/null; fi
exit 0
"""

# Run by the login shell with "<current>\n<user>:<new>\n" on stdin. `sudo -S` reads its
# password from stdin and, refused, tries the next line: the user:new line would be sent
# to PAM as a guess (and cost another failure delay). So the current password is checked
# on its own first; `-k` everywhere, so a cached sudo timestamp never lets the first line
# go to chpasswd. The passwords pass only through shell builtins, never `ps`.
SET_PASSWORD = (
    "IFS= read -r p || exit 125; "
    "printf '%s\\n' \"$p\" | sudo -k -S -p '' -v || exit \"$?\"; "
    "{ printf '%s\\n' \"$p\"; cat; } | sudo -k -S -p '' chpasswd"
)


@dataclass
class SSHRunner:
    host: str
    port: int
    username: str
    host_public_key: str
    client_key_path: str
    connect_timeout: float = 15.0
    app_dir: str = "/srv/app"
    simulated: bool = False

    @classmethod
    def for_server(cls, server) -> SSHRunner:
        return cls(
            host=str(server.ip_address or ""),
            port=int(settings.SERVER_SSH_PORT),
            username=server.ssh_username,
            host_public_key=(server.ssh_host_key or "").strip(),
            client_key_path=str(settings.PANEL_SSH_KEY_FILE or ""),
            connect_timeout=float(settings.SSH_CONNECT_TIMEOUT),
            app_dir=settings.DEPLOY_APP_DIR,
        )

    # -- the contract -----------------------------------------------------------------

    def run_script(
        self,
        script: str,
        *,
        on_lines: Callable[[list[str]], None],
        should_stop: Callable[[], str | None],
    ) -> RunResult:
        self._check_ready()
        payload = self_deleting(script).encode()

        async def work(sink: Sink, stop: asyncio.Event) -> int | None:
            stopped, conn = await unless_stopped(self._connect(), stop)
            if stopped:
                return None
            async with conn:
                return await self._run(conn, payload, sink, stop)

        return run_streaming(work, on_lines=on_lines, should_stop=should_stop)

    def set_password(self, *, username: str, current_password: str, new_password: str) -> None:
        self._check_ready()
        for value in (username, current_password, new_password):
            if "\n" in value or "\r" in value:
                raise RunnerError("A password or user name with a line break cannot be set.")
        if not username or ":" in username:
            raise RunnerError("The user name is not one chpasswd can take.")
        secrets = (current_password, new_password)

        async def work() -> None:
            conn = await self._connect()
            async with conn:
                try:
                    result = await conn.run(
                        SET_PASSWORD,
                        input=f"{current_password}\n{username}:{new_password}\n",
                        stderr=asyncssh.STDOUT,
                        check=False,
                        timeout=SET_PASSWORD_TIMEOUT,
                    )
                except (TimeoutError, asyncssh.Error, OSError):
                    raise RunnerError(self._lost()) from None
            if result.exit_status == 0:
                return
            raise RunnerError(_set_password_failure(result, secrets))

        run_async(work)

    # -- connecting -------------------------------------------------------------------

    def _check_ready(self) -> None:
        if not self.host:
            raise RunnerError("The server has no IP address yet, so nothing was run.")
        if not self.host_public_key:
            raise RunnerError("The server has no pinned SSH host key, so nothing was run.")
        if not self.client_key_path:
            raise RunnerError("The panel has no SSH key (PANEL_SSH_KEY_FILE is not set).")

    def _host_spec(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    async def _connect(self) -> asyncssh.SSHClientConnection:
        try:
            known_hosts = asyncssh.import_known_hosts(
                f"{self._host_spec()} {self.host_public_key}\n"
            )
        except (ValueError, asyncssh.Error):
            raise RunnerError(
                "The server's pinned SSH host key is not a valid key, so nothing was run."
            ) from None
        try:
            client_key = asyncssh.read_private_key(self.client_key_path)
        except (OSError, ValueError, asyncssh.Error):
            raise RunnerError(
                "The panel's SSH key (PANEL_SSH_KEY_FILE) cannot be read, so nothing was run."
            ) from None
        try:
            return await asyncssh.connect(
                self.host,
                self.port,
                username=self.username,
                known_hosts=known_hosts,
                client_keys=[client_key],
                preferred_auth="publickey",
                agent_path=None,
                config=[],
                x509_trusted_certs=None,
                connect_timeout=self.connect_timeout,
                login_timeout=self.connect_timeout,
                keepalive_interval=KEEPALIVE_SECONDS,
                keepalive_count_max=4,
            )
        except asyncssh.HostKeyNotVerifiable:
            raise RunnerError(HOST_KEY_MISMATCH) from None
        except asyncssh.PermissionDenied:
            raise RunnerError(KEY_REFUSED) from None
        except TimeoutError:
            raise RunnerError(self._cannot_connect("timed out")) from None
        except ConnectionRefusedError:
            raise RunnerError(self._cannot_connect("connection refused")) from None
        except OSError as exc:
            raise RunnerError(self._cannot_connect(_plain(exc.strerror or str(exc)))) from None
        except asyncssh.Error as exc:
            raise RunnerError(self._cannot_connect(_plain(exc.reason))) from None

    def _cannot_connect(self, reason: str) -> str:
        return f"Could not connect to {self.host} port {self.port}: {reason or 'unknown error'}."

    def _lost(self) -> str:
        return f"The connection to {self.host} was lost while the script was running."

    # -- running ----------------------------------------------------------------------

    async def _run(
        self, conn: asyncssh.SSHClientConnection, payload: bytes, sink: Sink, stop: asyncio.Event
    ) -> int | None:
        try:
            process = await conn.create_process(WRAPPER, stderr=asyncssh.STDOUT, encoding=None)
        except (asyncssh.Error, OSError) as exc:
            reason = getattr(exc, "reason", "") or getattr(exc, "strerror", "") or ""
            raise RunnerError(
                f"The server refused to start a session{': ' + _plain(reason) if reason else ''}."
            ) from None
        pgid: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def deliver(lines: list[str]) -> None:
            if not pgid.done():
                # Whatever comes before the marker (a noisy login file) is output too.
                for i, line in enumerate(lines):
                    if line.startswith(PID_MARKER):
                        try:
                            pgid.set_result(int(line[len(PID_MARKER) :]))
                        except ValueError:
                            continue
                        lines = lines[:i] + lines[i + 1 :]
                        break
            if lines:
                sink(lines)

        async def read_all() -> None:
            process.stdin.write(payload)
            process.stdin.write_eof()
            await read_lines(process.stdout.read, deliver)
            await process.wait_closed()

        reader = asyncio.ensure_future(read_all())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if reader.done():
            try:
                reader.result()
            except (asyncssh.Error, OSError):
                raise RunnerError(self._lost()) from None
            return self._exit_status(process)
        await self._kill(conn, pgid)
        process.close()
        # Let the last lines in before the channel goes.
        with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
            await asyncio.wait_for(reader, timeout=1.0)
        return None

    async def _kill(self, conn: asyncssh.SSHClientConnection, pgid: asyncio.Future) -> None:
        try:
            # The marker comes first of all; without it there is no group to kill yet.
            group = await asyncio.wait_for(asyncio.shield(pgid), timeout=KILL_GRACE_SECONDS)
        except TimeoutError:
            return
        if group <= 1:
            return
        command = KILL_GROUP.format(pgid=group, ticks=int(KILL_GRACE_SECONDS * 10))
        # When this fails, closing the connection is all that is left.
        with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
            await asyncio.wait_for(conn.run(command, check=False), timeout=KILL_GRACE_SECONDS + 10)

    def _exit_status(self, process: asyncssh.SSHClientProcess) -> int:
        if process.exit_status is not None and process.exit_status >= 0:
            return process.exit_status
        if process.exit_signal:
            name = process.exit_signal[0]
            try:
                return 128 + signal.Signals[f"SIG{name}"].value
            except KeyError:
                return 255
        raise RunnerError(self._lost())


def _plain(reason: str) -> str:
    """A library's reason as the end of our sentence: lower-case start, no final period."""
    reason = (reason or "").strip().rstrip(".")
    if reason[:1].isupper() and not reason[1:2].isupper():
        reason = reason[0].lower() + reason[1:]
    return reason


def _set_password_failure(result, secrets: tuple[str, ...]) -> str:
    output = result.stdout if isinstance(result.stdout, str) else ""
    for secret in secrets:
        if secret:
            output = output.replace(secret, "[redacted]")
    lowered = output.lower()
    if "incorrect password" in lowered or "try again" in lowered or "no password" in lowered:
        return SUDO_REFUSED
    if "not in the sudoers" in lowered or "may not run sudo" in lowered:
        return "The login user may not use sudo on the server, so the password was not changed."
    last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "")
    last = re.sub(r"\s+", " ", last)[:300]
    return f"The server did not change the password (exit status {result.exit_status})" + (
        f": {last.rstrip('.')}." if last else "."
    )
