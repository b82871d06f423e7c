"""The server flows that reach a real sshd (servers/tests/sshd.py), through the same
services and jobs as production: the host key pinned on the server row is the only one
accepted; a deployment streams its log and records the commit; a cancel and the timeout
kill the remote processes and leave the deployment failed with the reason and the
server's lock free; a password reset sets the password on the server."""

import os
import shutil
import time

import asyncssh
import pytest

from accounts.tests.factories import PASSWORD
from hosting.testing import run_jobs
from servers import credentials
from servers.models import Deployment, Server, ServerAction
from servers.tests.factories import ServerFactory
from servers.tests.test_deployments import (
    cancel_once_git_waits,
    deploy,
    finished,
    git_processes,
    log_of,
)
from servers.tests.test_runners import password_login

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


def test_reset_password_from_the_page_sets_it_on_the_server_over_ssh(client, ssh_server, sshd):
    """The customer's "Reset password" (after reauthentication) runs the action job, which
    sets the new password over SSH and then stores it: it logs in, the old one does not."""
    with sshd.password_held() as old:
        Server.objects.filter(pk=ssh_server.pk).update(ssh_password=old)
        ssh_server.user.set_password(PASSWORD)
        ssh_server.user.save()
        client.force_login(ssh_server.user)
        response = client.post(f"/servers/{ssh_server.uuid}/password/reset/")
        assert "/accounts/reauthenticate/" in response["Location"]
        client.post(response["Location"], {"password": PASSWORD})  # replays the reset
        action = ServerAction.objects.get(server=ssh_server)

        run_jobs(until=lambda: ServerAction.objects.get(pk=action.pk).status != "in_progress")

        action.refresh_from_db()
        ssh_server.refresh_from_db()
        assert action.status == "succeeded", action.reason
        new = ssh_server.ssh_password
        sshd.password = new
        assert new != old and action.new_password == ""
        assert password_login(sshd, new) == sshd.username
        with pytest.raises(asyncssh.PermissionDenied):
            password_login(sshd, old)
