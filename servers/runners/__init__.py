"""How commands reach a server: `SSHRunner` (asyncssh, host key pinned at provisioning)
for real servers, `LocalRunner` (a local workspace) for simulated ones. `runner_for()`
picks one for a server. See base.py for the contract both keep."""

from __future__ import annotations

from .base import Runner, RunnerError, RunResult, runner_for

__all__ = ["RunResult", "Runner", "RunnerError", "runner_for"]
