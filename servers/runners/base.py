"""The contract of a runner: run a bash script on a server, streaming its output line by
line to the caller, and stop it (killing the remote processes) when the caller says so;
set the login user's password.

Callers are synchronous jobs that write to the database; a runner does its own I/O in a
thread of its own (asyncssh needs an event loop, and Django's ORM refuses to run inside
one), and calls `on_lines` and `should_stop` from the caller's thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings


class RunnerError(Exception):
    """Nothing could be run: the server is unreachable, refused our key, or its host key is
    not the one pinned at provisioning. The message is one sentence a customer may read."""


@dataclass(frozen=True)
class RunResult:
    exit_status: int | None  # the script's exit status; None when it was stopped
    stopped: str = ""  # the reason `should_stop` gave, when it stopped the script


class Runner(Protocol):
    simulated: bool

    def run_script(
        self,
        script: str,
        *,
        on_lines: Callable[[list[str]], None],
        should_stop: Callable[[], str | None],
    ) -> RunResult:
        """Run `script` with bash on the server. Output (stdout and stderr merged) goes to
        `on_lines` in batches of whole lines, without their line endings, as it arrives.
        `should_stop` is asked about once a second; a reason (a non-empty string) stops
        the script: its whole process group is killed and the result carries the reason.
        Raises RunnerError when the script could not be started at all."""

    def set_password(self, *, username: str, current_password: str, new_password: str) -> None:
        """Make `new_password` the login password of `username` (sudo with the current
        one; the key alone is not root). Raises RunnerError with the reason."""


def runner_for(server) -> Runner:
    """SSH to real servers, the local workspace for simulated ones. SERVER_RUNNER="ssh"
    sends even simulated servers through SSH (the tests point one at a real sshd)."""
    from servers.providers import get_provider

    if settings.SERVER_RUNNER == "ssh" or (
        settings.SERVER_RUNNER != "local" and not get_provider().simulated
    ):
        from .ssh import SSHRunner

        return SSHRunner.for_server(server)
    from .local import LocalRunner

    return LocalRunner.for_server(server)
