"""A real `manage.py procrastinate worker` process against the current test's database, for
tests that watch a flow end to end: a browser on the live server, this worker behind it.

The test database exists only while a test runs, so the worker is started per test; keep
the tests that need one few."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

from hosting.testing import PROJECT_DIR, process_end, subprocess_env


class Worker:
    """One worker process; its output goes to `log_path` (appended to), read with
    `output()`. `supervised`: `manage.py worker` as the Procfile runs it (a supervisor and
    procrastinate's worker under it), in a process group of its own that `kill()` ends."""

    def __init__(self, *, log_path: Path, env: dict[str, str], supervised: bool = False):
        self.log_path = log_path
        self.env = env
        self.supervised = supervised
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        # A job re-deferred to run in half a second is found by polling, not by a
        # notification; poll often so the test does not wait the default 5 s.
        polling = ["--fetch-job-polling-interval", "0.2"]
        if self.supervised:
            command = ["manage.py", "worker", "--", *polling]
        else:
            command = ["manage.py", "procrastinate", "worker", *polling]
        with open(self.log_path, "ab") as log:
            # The child keeps its own copy of the descriptor; ours can close.
            self.process = subprocess.Popen(
                [sys.executable, *command],
                cwd=PROJECT_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.supervised,
            )
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (a graceful stop), then SIGKILL after `timeout` seconds."""
        return process_end(self.process, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, with no warning, as a lost host or the OOM killer would: the whole
        process group when supervised, so procrastinate's worker dies with its supervisor."""
        if self.supervised:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        else:
            self.process.kill()
        self.process.wait()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def assert_alive(self) -> None:
        assert self.process is not None and self.process.poll() is None, (
            f"the worker exited with {self.process and self.process.returncode}:\n" + self.output()
        )

    @contextlib.contextmanager
    def explained(self):
        """On a failure inside the block, print what the worker logged, so pytest shows it
        beside the failure."""
        try:
            yield self
        except (pytest.skip.Exception, pytest.xfail.Exception):
            raise
        except BaseException:
            code = self.process.poll() if self.process else None
            state = "still running" if code is None else f"exited with {code}"
            print(f"--- worker ({state}) output, {self.log_path} ---\n{self.output()}")
            raise


def worker_env(**extra: str) -> dict[str, str]:
    """This process's environment aimed at the test database, with the secrets the test's
    settings use (so the worker starts with DEBUG off, as in production, even where no
    `.env` supplies them), both simulators on, fast timings and mail to the console."""
    keys = [key for key in settings.FIELD_ENCRYPTION_KEYS if key]
    defaults = {
        "SECRET_KEY": settings.SECRET_KEY,
        "FIELD_ENCRYPTION_KEYS": ",".join(keys) or Fernet.generate_key().decode(),
        "SITE_URL": settings.SITE_URL,
        "STRIPE_SECRET_KEY": "",
        "DIGITALOCEAN_TOKEN": "",
        "EMAIL_URL": "consolemail://",
        "SIMULATED_PROVIDER_BOOT_SECONDS": "1",
        "SIMULATED_PROVIDER_FAILURES": "",
        "PROVISION_POLL_SECONDS": "0.5",
        "PROCRASTINATE_LOG_LEVEL": "INFO",
    }
    return subprocess_env(**{**defaults, **extra})
