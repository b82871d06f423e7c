"""Helpers for tests that start a second process against the test database, or a
PostgreSQL cluster and a gunicorn of their own."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from django.db import connection

PROJECT_DIR = Path(__file__).resolve().parent.parent


def local_superuser() -> str | None:
    """The local cluster's superuser when the tests run on it: the app's own role is none,
    so that row-level security binds it (hosting/database/localdb.py)."""
    from hosting.database import localdb

    return (
        localdb.SUPERUSER if connection.settings_dict["HOST"] == str(localdb.data_dir()) else None
    )


def database_url(name: str | None = None, *, superuser: bool = False) -> str:
    """A DATABASE_URL for database `name` (default: the one the current test uses) on the
    server, and as the user, of the test database, with its sslmode. `superuser`: as the
    local cluster's superuser; elsewhere the test database's user, who must then be one."""
    db = connection.settings_dict
    user = (superuser and local_superuser()) or db["USER"]
    auth = quote(user or "", safe="")
    if db["PASSWORD"] and user == db["USER"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    name = name or db["NAME"]
    host = db["HOST"] or ""
    if host.startswith("/"):
        # django-environ reads an absolute path right after "@/" as the socket directory.
        return f"postgresql://{auth}@/{host}/{name}"
    port = f":{db['PORT']}" if db["PORT"] else ""
    sslmode = (db["OPTIONS"] or {}).get("sslmode")
    query = f"?sslmode={sslmode}" if sslmode else ""
    return f"postgresql://{auth}@{host}{port}/{name}{query}"


def superuser_conninfo(name: str | None = None) -> str:
    """A libpq connection string for database `name` (default: the test's) as a
    superuser, like `database_url(superuser=True)`."""
    from psycopg.conninfo import make_conninfo

    db = connection.settings_dict
    params = {
        "host": db["HOST"],
        "port": db["PORT"],
        "dbname": name or db["NAME"],
        "user": db["USER"],
        "password": db["PASSWORD"],
        "sslmode": (db["OPTIONS"] or {}).get("sslmode"),
    }
    if superuser := local_superuser():
        params.update(user=superuser, password="")
    return make_conninfo(**{key: str(value) for key, value in params.items() if value})


def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url(), **extra}


def process_end(process: subprocess.Popen, *, timeout: float = 5.0) -> int | None:
    """Stop a test's server process: SIGTERM (a graceful stop), then SIGKILL after
    `timeout` seconds. Returns its exit status; None when it was never started."""
    if process is None:
        return None
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def cluster_owned(name: str = "outage"):
    """A PostgreSQL cluster of the caller's own, started and migrated, to stop and start
    at will (`hosting.database.localdb.Cluster`); removed afterwards. In /var/tmp, so
    `postgres` can reach it when we are root."""
    from hosting.database.localdb import Cluster

    owned = Cluster(Path("/var/tmp") / f"hosting-{name}-{uuid.uuid4().hex[:8]}")  # noqa: S108
    try:
        owned.start()
        migrated = run_python(
            "manage.py", "migrate", "--noinput", env=subprocess_env(DATABASE_URL=owned.url())
        )
        if migrated.returncode != 0:
            raise RuntimeError("migrate failed on the owned cluster:\n" + migrated.stderr)
        yield owned
    finally:
        owned.stop()
        shutil.rmtree(owned.directory, ignore_errors=True)


@contextlib.contextmanager
def gunicorn_serving(
    env: dict[str, str], *, log_path: Path, options: tuple[str, ...] = ()
) -> Iterator[str]:
    """gunicorn as the Procfile runs it (`-c python:hosting.gunicorn_conf hosting.wsgi`),
    with `env` as its whole environment, on a free port of its own; yields its base URL
    once /healthz answers, and stops it afterwards. Its output goes to `log_path`."""
    import requests

    port = free_port()
    with open(log_path, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:hosting.gunicorn_conf"]
            + [*options, "hosting.wsgi"],
            cwd=PROJECT_DIR,
            env={**env, "PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, "gunicorn exited:\n" + log_path.read_text()
            with contextlib.suppress(requests.RequestException):  # not up yet
                if requests.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("gunicorn did not start:\n" + log_path.read_text())
        yield base
    finally:
        process_end(process)


def run_python(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run this project's Python (`manage.py ...` or `-c code`) in a separate process, from
    the project directory, with `env` as its whole environment; output is captured."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# Run with `run_python("-c", PAGES_PROBE, env=...)` against another database: a verified
# user (made once), the login page, a login, the dashboard and /readyz, printed as one
# JSON line with the role the process connected as. Give the environment DEBUG=true and
# ALLOWED_HOSTS=testserver: pages then name their static files without collectstatic.
PAGES_PROBE = """
import json
import django
django.setup()
from allauth.account.models import EmailAddress
from django.db import connection
from django.test import Client
from accounts.models import User

email, password = "probe@example.com", "a-Long-passw0rd!"
if not User.objects.filter(email=email).exists():
    user = User.objects.create_user(email=email, password=password)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
client = Client()
page = client.get("/accounts/login/")
login = client.post("/accounts/login/", {"login": email, "password": password})
ready = client.get("/readyz")
with connection.cursor() as cursor:
    cursor.execute("SELECT current_user")
    (role,) = cursor.fetchone()
print(json.dumps({
    "role": role,
    "page": page.status_code,
    "login": login.status_code,
    "login_to": login.headers.get("Location"),
    "dashboard": client.get("/dashboard/").status_code,
    "readyz": ready.status_code,
    "reason": ready.json().get("reason", ""),
}))
"""


def run_jobs(*, until=None, timeout: float = 30.0) -> None:
    """Run procrastinate's worker in this process, as `manage.py procrastinate worker`
    would, until no job is ready, or (with `until`) until `until()` is true, running again
    as scheduled jobs fall due. In this process, so `responses` fakes apply to the jobs.
    Needs `django_db(transaction=True)`: the worker has its own connections."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from procrastinate.contrib.django import app

    deadline = time.monotonic() + timeout
    with app.replace_connector(app.connector.get_worker_connector()) as worker_app:
        while True:
            # In a thread of its own: the browser tests' Playwright keeps an event loop
            # running in this one, and the worker needs its own.
            with ThreadPoolExecutor(max_workers=1) as pool:
                pool.submit(
                    worker_app.run_worker,
                    # One job at a time: with several, a slot that finds the queue empty
                    # can end the pass while another slot's job is deferring the next one.
                    concurrency=1,
                    wait=False,
                    install_signal_handlers=False,
                    listen_notify=False,
                ).result()
            if until is None or until():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"jobs did not get there within {timeout} s")
            time.sleep(0.05)
