"""Commands for a simulated server: there is no machine, so the script runs with local bash
in a workspace of the server's own (`DEPLOY_WORKSPACE_DIR/<server uuid>`), streamed and
stopped exactly as over SSH. The deploy script skips the build there (`build=False`).

bash starts in a new session, so its process group is the script's; a stop kills it.
The environment is a clean one: the panel's own (its secrets) is not the script's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from .base import RunnerError, RunResult
from .stream import (
    KILL_GRACE_SECONDS,
    Sink,
    read_lines,
    run_streaming,
    self_deleting,
    unless_stopped,
)

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass
class LocalRunner:
    workspace: Path
    simulated: bool = True

    @property
    def app_dir(self) -> str:
        return str(self.workspace)

    @classmethod
    def for_server(cls, server) -> LocalRunner:
        workspace = Path(settings.DEPLOY_WORKSPACE_DIR) / str(server.uuid)
        workspace.mkdir(parents=True, exist_ok=True)
        return cls(workspace=workspace)

    def run_script(
        self,
        script: str,
        *,
        on_lines: Callable[[list[str]], None],
        should_stop: Callable[[], str | None],
    ) -> RunResult:
        self.workspace.mkdir(parents=True, exist_ok=True)

        async def work(sink: Sink, stop: asyncio.Event) -> int | None:
            fd, path = tempfile.mkstemp(prefix="hosting-script.", suffix=".sh")  # 0600
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self_deleting(script))
            try:
                return await self._run(path, sink, stop)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

        return run_streaming(work, on_lines=on_lines, should_stop=should_stop)

    def set_password(self, *, username: str, current_password: str, new_password: str) -> None:
        """A simulated server has no operating system: the caller stores the new password."""

    def _environment(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", DEFAULT_PATH),
            "HOME": os.environ.get("HOME", str(self.workspace)),
            "LANG": "C.UTF-8",
        }
        if "TMPDIR" in os.environ:
            env["TMPDIR"] = os.environ["TMPDIR"]
        return env

    async def _run(self, path: str, sink: Sink, stop: asyncio.Event) -> int | None:
        try:
            process = await asyncio.create_subprocess_exec(
                "bash",
                "--",
                path,
                cwd=self.workspace,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise RunnerError(f"bash could not be started: {exc.strerror or exc}.") from None
        stopped, _ = await unless_stopped(read_lines(process.stdout.read, sink), stop)
        if not stopped:
            return _status(await process.wait())
        await asyncio.to_thread(_kill_group, process.pid)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        # Bounded: a process that left the group may still hold the output pipe open.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), timeout=KILL_GRACE_SECONDS)
        return None


def _status(returncode: int) -> int:
    # A negative return code is the signal that killed bash, as a shell would report it.
    return returncode if returncode >= 0 else 128 - returncode


def _kill_group(pgid: int) -> None:
    """TERM to the group, KILL to what still runs after the grace time."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.05)
    if _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies, which nothing may ever reap
    where pid 1 does not, do not count). Without /proc, any process of the group counts."""
    if not os.path.isdir("/proc/self"):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False
