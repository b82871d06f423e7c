"""Helpers for tests that start a second process against the test database."""

import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

PROJECT_DIR = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """A DATABASE_URL naming the database the current test uses."""
    db = connection.settings_dict
    user = db["USER"] or "postgres"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    host = db["HOST"] or ""
    if host.startswith("/"):  # a Unix socket directory
        return f"postgresql://{user}{password}@/{host}/{db['NAME']}"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgresql://{user}{password}@{host}{port}/{db['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url(), **extra}


def run_python(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run this project's Python (`manage.py ...` or `-c code`) in a separate process, from
    the project directory, with `env` as its whole environment; output is captured."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
