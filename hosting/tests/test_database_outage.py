"""PostgreSQL stopped under a running app: a PostgreSQL cluster this test owns, the app
under gunicorn as the Procfile runs it, the cluster stopped and started again. Pages
answer the maintenance page within DB_CONNECT_TIMEOUT, the probes and the webhook say
what they should, and pages are served again without restarting anything."""

import subprocess
import sys
import time

import pytest
import requests

from hosting.database import programs
from hosting.testing import (
    PROJECT_DIR,
    cluster_owned,
    gunicorn_serving,
    process_end,
    run_python,
    subprocess_env,
)

CONNECT_TIMEOUT = 2
PAGES = ["/pricing/", "/accounts/login/", "/dashboard/"]


@pytest.fixture(scope="module")
def cluster():
    """A cluster of its own, migrated."""
    with cluster_owned() as owned:
        yield owned


@pytest.fixture(scope="module")
def site(cluster, tmp_path_factory):
    """gunicorn (one worker) on the owned cluster; its base URL."""
    env = subprocess_env(
        DATABASE_URL=cluster.url(),
        DB_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT),
        WEB_CONCURRENCY="1",
        ALLOWED_HOSTS="127.0.0.1",
        # Static files named without collectstatic's manifest (a fresh clone has none).
        DEBUG="true",
    )
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with gunicorn_serving(env, log_path=log, options=("--timeout", "30")) as base:
        yield base


def timed_get(url: str):
    started = time.monotonic()
    response = requests.get(url, timeout=30, allow_redirects=False)
    return response, time.monotonic() - started


def test_pages_answer_the_maintenance_page_while_postgresql_is_stopped_and_recover(cluster, site):
    assert requests.get(site + "/pricing/", timeout=10).status_code == 200

    assert cluster.stop()
    try:
        for path in PAGES:
            response, seconds = timed_get(site + path)
            assert response.status_code == 503, (path, response.text[:300])
            assert "Back in a moment" in response.text
            assert "Traceback" not in response.text
            assert seconds < CONNECT_TIMEOUT + 1, (path, seconds)
        assert requests.get(site + "/healthz", timeout=5).status_code == 200
        ready, seconds = timed_get(site + "/readyz")
        assert ready.status_code == 503 and seconds < CONNECT_TIMEOUT + 1, seconds
        webhook = requests.post(site + "/billing/webhooks/stripe/", data=b"{}", timeout=10)
        assert webhook.status_code == 503  # Stripe delivers the event again later
    finally:
        cluster.start()

    # Served again without restarting gunicorn: the pool reconnects by itself.
    deadline = time.monotonic() + 15
    while requests.get(site + "/pricing/", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "pages did not recover"
        time.sleep(0.5)
    assert requests.get(site + "/readyz", timeout=10).status_code == 200


def _psql_in(cluster, query: str) -> str:
    """`query`'s result in the cluster's app database."""
    result = subprocess.run(
        [programs.find("psql") or "psql", "-h", str(cluster.data), "-U", "postgres"]
        + ["-d", "hosting", "-tAc", query],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def test_the_worker_waits_for_the_database_and_carries_on(cluster, tmp_path):
    env = subprocess_env(DATABASE_URL=cluster.url(), DB_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT))
    log = tmp_path / "worker.log"
    with open(log, "wb") as output:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "worker", "--", "--fetch-job-polling-interval", "0.5"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(3)
        assert cluster.stop()
        try:
            # procrastinate's worker ends when its listener's connection fails for good;
            # end it now (as that would) rather than wait for it. SIGKILL, not SIGTERM:
            # a graceful stop waits for the jobs in flight, which with the database gone
            # once took more than 30 s on a loaded 2-core CI machine.
            subprocess.run(["pkill", "-KILL", "-P", str(worker.pid)], check=True)
            deadline = time.monotonic() + 30
            while "Waiting for the database" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
            assert worker.poll() is None, log.read_text()[-3000:]
        finally:
            cluster.start()
        deferred = run_python(
            "manage.py",
            "procrastinate",
            "defer",
            "hosting.tasks.jobs_delete_old",
            '{"timestamp": 0}',
            env=env,
        )
        assert deferred.returncode == 0, deferred.stderr
        job_id = int(_psql_in(cluster, "SELECT max(id) FROM procrastinate_jobs"))
        deadline = time.monotonic() + 60
        while _psql_in(cluster, f"SELECT status FROM procrastinate_jobs WHERE id = {job_id}") != (
            "succeeded"
        ):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            assert worker.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
    finally:
        assert process_end(worker, timeout=15) is not None
