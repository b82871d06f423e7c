"""Deployments over SSH to a real sshd (servers/tests/sshd.py), through the same service
and job as production: the host key pinned on the server row is the only one accepted;
the log streams; the commit is recorded; a cancel and the timeout kill the remote
processes and leave the deployment failed with the reason and the server's lock free."""

import os
import shutil
import time

import pytest

from hosting.testing import run_jobs
from servers.models import Deployment
from servers.tests.factories import ServerFactory
from servers.tests.test_deployments import (
    cancel_once_git_waits,
    deploy,
    finished,
    git_processes,
    log_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ssh_server(sshd, settings, repo, client):
    """A running server reached over SSH at the test sshd, its code going to a directory
    of the test user's, and its owner signed in. The repository is copied where the test
    user can read it (pytest's own directories are root's alone)."""
    server = sshd.point(ServerFactory(), settings)
    home = sshd.workdir()
    settings.DEPLOY_APP_DIR = str(home / "app")
    shutil.copytree(repo.path, home / "app.git")
    sshd.give(home / "app.git")
    repo.url = f"file://{home / 'app.git'}"
    client.force_login(server.user)
    return server


def test_a_deployment_over_ssh_streams_its_log_and_records_the_commit(client, ssh_server, repo):
    deployment = deploy(client, ssh_server, git_url=repo.url)
    run_jobs(until=finished(deployment))

    assert deployment.status == Deployment.Status.SUCCESS, log_of(deployment)
    assert deployment.commit == repo.head
    text = "\n".join(log_of(deployment))
    assert f"Checked out {repo.head[:7]}" in text
    # A real server builds; this repository has nothing to build.
    assert "Nothing to build: the repository has no compose file or Dockerfile" in text
    assert "Build skipped" not in text


def test_a_host_key_other_than_the_pinned_one_runs_nothing(client, ssh_server, repo, settings):
    from servers import credentials

    _, other_key = credentials.generate_host_key()
    ssh_server.ssh_host_key = other_key
    ssh_server.save(update_fields=["ssh_host_key"])
    deployment = deploy(client, ssh_server, git_url=repo.url)
    run_jobs(until=finished(deployment))

    assert deployment.status == Deployment.Status.FAILED
    assert deployment.failure_reason == (
        "The server's SSH host key is not the one pinned when it was built, so nothing was run."
    )
    assert log_of(deployment) == []
    assert not os.path.exists(settings.DEPLOY_APP_DIR), "a command ran on an unverified server"


def test_cancel_over_ssh_kills_the_remote_git_and_frees_the_lock(
    client, ssh_server, repo, stalled_remote
):
    deployment = deploy(client, ssh_server, git_url=stalled_remote)
    canceller = cancel_once_git_waits(deployment, stalled_remote)
    started = time.monotonic()
    run_jobs(until=finished(deployment), timeout=30)
    canceller.join()

    assert deployment.status == Deployment.Status.FAILED
    assert deployment.failure_reason.startswith("Cancelled while it ran")
    assert time.monotonic() - started < 15
    assert git_processes(stalled_remote) == []  # the remote git, killed

    following = deploy(client, ssh_server, git_url=repo.url)
    run_jobs(until=finished(following))
    assert following.status == Deployment.Status.SUCCESS


def test_the_timeout_over_ssh_stops_and_fails_the_deployment(
    client, ssh_server, settings, stalled_remote
):
    settings.DEPLOY_TIMEOUT = 2
    deployment = deploy(client, ssh_server, git_url=stalled_remote)
    run_jobs(until=finished(deployment), timeout=20)
    assert deployment.status == Deployment.Status.FAILED
    assert deployment.failure_reason.startswith("Stopped after 2 s")
    assert git_processes(stalled_remote) == []
