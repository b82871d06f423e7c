"""Deployments end to end on a simulated server: the form, the job under the server's lock
running the real deploy script (LocalRunner: real git, real bash) against a local bare
repository, the numbered log, the commit, the timeline and the mail; the queue, cancel,
the hard timeout and the recovery of a dead worker's deployment; redaction; and every URL
404 for another customer."""

import subprocess
import threading
import time

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from hosting import tenant
from hosting.jobs import defer
from hosting.testing import run_jobs
from servers import deployments
from servers.models import (
    Deployment,
    DeploymentLogLine,
    Server,
    ServerAction,
    ServerEvent,
    ServerEventKind,
)
from servers.tasks import deployment_run
from servers.tests.factories import DeploymentFactory, ServerFactory

TOKEN = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"


def finished(deployment):
    def check():
        deployment.refresh_from_db()
        return deployment.is_finished

    return check


def log_of(deployment) -> list[str]:
    return list(deployment.lines.order_by("number").values_list("text", flat=True))


def deploy(client, server, **data):
    data = {"branch": "main", "subdirectory": "", **data}
    response = client.post(f"/servers/{server.uuid}/deployments/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    return Deployment.objects.get(uuid=response["Location"].rstrip("/").rsplit("/", 1)[1])


# -- the whole flow ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_deployment_clones_records_the_commit_and_streams_a_numbered_log(client, repo):
    server = ServerFactory()
    client.force_login(server.user)
    deployment = deploy(client, server, git_url=repo.url, subdirectory="web")
    assert deployment.status == Deployment.Status.PENDING

    run_jobs(until=finished(deployment))

    assert deployment.status == Deployment.Status.SUCCESS, log_of(deployment)
    assert deployment.commit == repo.head
    assert deployment.started_at <= deployment.finished_at
    numbers = list(deployment.lines.order_by("number").values_list("number", flat=True))
    assert numbers == list(range(1, len(numbers) + 1))
    text = "\n".join(log_of(deployment))
    assert f"Checked out {repo.head[:7]}" in text
    assert "Build skipped: this server is simulated" in text
    assert "::" not in text  # markers are for us, not the log
    event = ServerEvent.objects.get(server=server, kind=ServerEventKind.DEPLOYED)
    assert event.message == f"Deployed {repo.head[:7]} from main."
    assert mail.outbox == []  # successes are not mailed

    page = client.get(f"/servers/{server.uuid}/deployments/{deployment.uuid}/").content.decode()
    assert "Succeeded" in page and repo.head in page and 'id="log-poller"' not in page
    history = client.get(f"/servers/{server.uuid}/deployments/").content.decode()
    assert repo.head[:7] in history and "Redeploy" in history


@pytest.mark.django_db(transaction=True)
def test_a_failed_clone_shows_gits_own_message_and_mails_a_link(client, repo):
    server = ServerFactory()
    client.force_login(server.user)
    # .invalid never resolves (RFC 6761): the same failure as an offline machine.
    deployment = deploy(client, server, git_url="https://git.example.invalid/owner/app.git")
    run_jobs(until=finished(deployment))

    assert deployment.status == Deployment.Status.FAILED
    assert "Could not resolve host: git.example.invalid" in "\n".join(log_of(deployment))
    assert deployment.failure_reason.startswith("The deployment script exited with status")
    assert ServerEvent.objects.filter(server=server, kind=ServerEventKind.DEPLOY_FAILED).exists()
    run_jobs()  # the mail job
    (message,) = mail.outbox
    assert message.to == [server.user.email]
    assert f"/servers/{server.uuid}/deployments/{deployment.uuid}/" in message.body
    assert deployment.failure_reason in message.body
    page = client.get(f"/servers/{server.uuid}/deployments/{deployment.uuid}/").content.decode()
    assert 'data-testid="failure-reason"' in page


@pytest.mark.django_db(transaction=True)
def test_a_missing_branch_fails_with_the_reason(client, repo):
    server = ServerFactory()
    client.force_login(server.user)
    deployment = deploy(client, server, git_url=repo.url, branch="no-such-branch")
    run_jobs(until=finished(deployment))
    assert deployment.status == Deployment.Status.FAILED
    assert "no-such-branch" in "\n".join(log_of(deployment))
    assert deployment.commit == ""


@pytest.mark.django_db(transaction=True)
def test_deployments_of_one_server_run_one_at_a_time_in_order(client, repo):
    server = ServerFactory()
    client.force_login(server.user)
    first = deploy(client, server, git_url=repo.url)
    second = deploy(client, server, git_url=repo.url)
    history = client.get(f"/servers/{server.uuid}/deployments/").content.decode()
    assert history.count("Queued") == 2 and "after 1 other" in history

    run_jobs(until=finished(second))
    first.refresh_from_db()
    assert first.status == second.status == Deployment.Status.SUCCESS
    assert first.finished_at <= second.started_at


@pytest.mark.django_db(transaction=True)
def test_redeploy_repeats_repository_branch_and_directory(client, repo):
    server = ServerFactory()
    client.force_login(server.user)
    first = deploy(client, server, git_url=repo.url, subdirectory="web")
    run_jobs(until=finished(first))
    response = client.post(f"/servers/{server.uuid}/deployments/{first.uuid}/redeploy/")
    again = Deployment.objects.exclude(pk=first.pk).get()
    assert response["Location"] == f"/servers/{server.uuid}/deployments/{again.uuid}/"
    assert (again.git_url, again.branch, again.subdirectory) == (repo.url, "main", "web")
    run_jobs(until=finished(again))
    assert again.status == Deployment.Status.SUCCESS


# -- never stuck -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_waiting_deployment_ends_it_at_once(client, repo):
    server = ServerFactory()
    client.force_login(server.user)
    deployment = deploy(client, server, git_url=repo.url)
    response = client.post(f"/servers/{server.uuid}/deployments/{deployment.uuid}/cancel/")
    assert response.status_code == 302
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.FAILED
    assert deployment.failure_reason == "Cancelled by you."
    run_jobs()
    assert deployment.lines.count() == 0  # its job found nothing to do
    again = client.post(f"/servers/{server.uuid}/deployments/{deployment.uuid}/cancel/")
    assert again.status_code == 302
    assert deployment.status == Deployment.Status.FAILED


def git_processes(url: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", url], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]


def cancel_once_git_waits(deployment, url) -> threading.Thread:
    """Cancel `deployment` (as its owner's button does) from another thread as soon as it
    runs and its git is waiting on `url`: run_jobs blocks while the job runs."""

    def cancel():
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                running = Deployment.objects.filter(pk=deployment.pk, status="in_progress")
                if running.exists() and git_processes(url):
                    deployments.deployment_cancel(deployment_id=deployment.pk)
                    return
                time.sleep(0.05)
        finally:
            connection.close()  # this thread's own

    thread = threading.Thread(target=cancel)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_running_deployment_kills_it_and_frees_the_lock(client, repo, stalled_remote):
    server = ServerFactory()
    client.force_login(server.user)
    deployment = deploy(client, server, git_url=stalled_remote)
    canceller = cancel_once_git_waits(deployment, stalled_remote)
    started = time.monotonic()
    run_jobs(until=finished(deployment), timeout=30)
    canceller.join()

    assert deployment.status == Deployment.Status.FAILED
    assert deployment.failure_reason.startswith("Cancelled while it ran")
    assert time.monotonic() - started < 15
    assert git_processes(stalled_remote) == []
    # The server's lock is free: the next deployment runs.
    following = deploy(client, server, git_url=repo.url)
    run_jobs(until=finished(following))
    assert following.status == Deployment.Status.SUCCESS


@pytest.mark.django_db(transaction=True)
def test_a_deployment_past_the_timeout_is_stopped_and_failed(
    client, repo, settings, stalled_remote
):
    settings.DEPLOY_TIMEOUT = 2
    server = ServerFactory()
    client.force_login(server.user)
    deployment = deploy(client, server, git_url=stalled_remote)
    run_jobs(until=finished(deployment), timeout=20)
    assert deployment.status == Deployment.Status.FAILED
    assert deployment.failure_reason.startswith("Stopped after 2 s")
    assert git_processes(stalled_remote) == []


@pytest.mark.django_db(transaction=True)
def test_recovery_fails_deployments_whose_worker_died_and_leaves_running_ones(client):
    server = ServerFactory()
    dead = DeploymentFactory(
        server=server, status="in_progress", started_at=timezone.now(), job_id=987654
    )
    lost = DeploymentFactory(server=server, status="pending")
    alive = DeploymentFactory(server=server, status="in_progress", started_at=timezone.now())
    job_id = defer(deployment_run, deployment_id=alive.pk)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", [job_id])
    Deployment.objects.filter(pk=alive.pk).update(job_id=job_id)
    waiting = DeploymentFactory(server=server, status="pending")
    defer(deployment_run, deployment_id=waiting.pk)

    assert deployments.deployments_recover() == 2

    for deployment in (dead, lost, alive, waiting):
        deployment.refresh_from_db()
    assert (dead.status, dead.failure_reason) == ("failed", deployments.WORKER_DIED_REASON)
    assert (lost.status, lost.failure_reason) == ("failed", deployments.JOB_LOST_REASON)
    assert alive.status == "in_progress" and waiting.status == "pending"
    assert deployments.deployments_recover() == 0  # run twice: nothing more


# -- refusals, redaction, isolation ------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Server.Status.STOPPED, Server.Status.PROVISIONING])
def test_a_server_that_is_not_running_takes_no_deployment(client, status):
    server = ServerFactory(status=status)
    client.force_login(server.user)
    response = client.post(
        f"/servers/{server.uuid}/deployments/",
        {"git_url": "https://github.com/o/r.git", "branch": "main"},
    )
    assert response.status_code == 400
    assert "Deployments need a running server" in response.content.decode()
    assert Deployment.objects.count() == 0


@pytest.mark.django_db
def test_no_deployment_while_a_power_action_runs(client):
    server = ServerFactory()
    ServerAction.objects.create(server=server, kind="reboot")
    client.force_login(server.user)
    response = client.post(
        f"/servers/{server.uuid}/deployments/",
        {"git_url": "https://github.com/o/r.git", "branch": "main"},
    )
    assert "The server is busy (reboot in progress)" in response.content.decode()
    assert Deployment.objects.count() == 0


@pytest.mark.django_db
def test_log_lines_are_redacted_before_they_are_stored():
    deployment = DeploymentFactory(status="in_progress")
    log = deployments._Log(deployment_id=deployment.pk, secrets=("user:hunter2",))
    log.add(
        [
            "remote: x-access-token:abc123def456 rejected",
            f"fatal: unable to access 'https://user:hunter2@github.com/o/r.git/': {TOKEN}",
            "::commit " + "a" * 40,
            "plain line",
        ]
    )
    stored = log_of(deployment)
    assert stored == [
        "remote: x-access-token:*** rejected",
        "fatal: unable to access 'https://***@github.com/o/r.git/': ***",
        "plain line",
    ]
    assert log.commit == "a" * 40


@pytest.mark.django_db(transaction=True)
def test_a_token_in_the_url_reaches_no_log_line_page_or_column(client, repo):
    server = ServerFactory()
    client.force_login(server.user)
    url = f"https://x-access-token:{TOKEN}@git.example.invalid/owner/private.git"
    deployment = deploy(client, server, git_url=url)
    run_jobs(until=finished(deployment))
    assert deployment.status == Deployment.Status.FAILED
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM servers_deploymentlogline WHERE text LIKE %s", [f"%{TOKEN}%"]
        )
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            "SELECT count(*) FROM servers_deployment WHERE concat_ws(' ', git_url, "
            "git_url_secret, failure_reason) LIKE %s",
            [f"%{TOKEN}%"],
        )
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            "SELECT count(*) FROM servers_serverevent WHERE message LIKE %s", [f"%{TOKEN}%"]
        )
        assert cursor.fetchone()[0] == 0
    for path in (
        f"/servers/{server.uuid}/deployments/",
        f"/servers/{server.uuid}/deployments/{deployment.uuid}/",
        f"/servers/{server.uuid}/deployments/{deployment.uuid}/log/?after=0",
        "/dashboard/",
    ):
        assert TOKEN not in client.get(path).content.decode()


@pytest.mark.django_db
def test_another_customers_deployments_are_404_on_every_url(client):
    theirs = DeploymentFactory()
    DeploymentLogLine.objects.create(deployment=theirs, number=1, text="their secret line")
    mine = ServerFactory()
    client.force_login(mine.user)
    base = f"/servers/{theirs.server.uuid}/deployments/"
    one = f"{base}{theirs.uuid}/"
    crossed = f"/servers/{mine.uuid}/deployments/{theirs.uuid}/"  # my server, their deployment
    for method, path in [
        ("get", base),
        ("post", base),
        ("get", one),
        ("get", f"{one}log/?after=0"),
        ("post", f"{one}cancel/"),
        ("post", f"{one}redeploy/"),
        ("get", crossed),
        ("get", f"{crossed}log/"),
        ("post", f"{crossed}cancel/"),
        ("post", f"{crossed}redeploy/"),
    ]:
        data = {"git_url": "https://github.com/o/r.git", "branch": "main"}
        response = getattr(client, method)(path, data if method == "post" else None)
        assert response.status_code == 404, (method, path)
        assert b"their secret line" not in response.content
    assert Deployment.objects.count() == 1
    theirs.refresh_from_db()
    assert theirs.cancel_requested_at is None and theirs.status == "success"


@pytest.mark.django_db
def test_logged_out_visitors_are_sent_to_log_in(client):
    deployment = DeploymentFactory()
    response = client.get(f"/servers/{deployment.server.uuid}/deployments/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# -- the log partial and query counts -----------------------------------------------------


@pytest.fixture
def running_deployment():
    deployment = DeploymentFactory(status="in_progress", started_at=timezone.now())
    DeploymentLogLine.objects.bulk_create(
        DeploymentLogLine(deployment=deployment, number=n, text=f"line {n}") for n in range(1, 31)
    )
    return deployment


@pytest.mark.django_db
def test_the_log_partial_sends_only_the_lines_after_the_last_one_shown(client, running_deployment):
    deployment = running_deployment
    client.force_login(deployment.user)
    url = f"/servers/{deployment.server.uuid}/deployments/{deployment.uuid}/log/"
    body = client.get(url, {"after": 28, "status": "in_progress"}).content.decode()
    assert '<li value="29">line 29</li><li value="30">line 30</li>' in body
    assert "line 28<" not in body
    assert 'hx-swap-oob="beforeend:#log-lines"' in body
    assert "after=30&amp;status=in_progress" in body  # the next poll asks for what follows
    assert 'id="deployment-status"' not in body  # unchanged status is not sent again

    nothing_new = client.get(url, {"after": 30, "status": "in_progress"}).content.decode()
    assert "<li" not in nothing_new and "after=30" in nothing_new

    Deployment.objects.filter(pk=deployment.pk).update(status="success", finished_at=timezone.now())
    last = client.get(url, {"after": 30, "status": "in_progress"}).content.decode()
    assert 'id="log-poller"' not in last  # ended: polling stops
    assert 'id="deployment-status"' in last and "Succeeded" in last


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path,queries",
    [
        # session, user, and one query: the server and its deployments
        ("deployments/", 3),
        # session, user, deployment with its server, its lines
        ("deployments/{uuid}/", 4),
        # session, user, and one query: the deployment, its server and its new lines
        ("deployments/{uuid}/log/?after=3", 3),
    ],
)
def test_pages_cost_a_fixed_number_of_queries(client, path, queries):
    server = ServerFactory()
    deployments_made = DeploymentFactory.create_batch(25, server=server)
    for deployment in deployments_made[:3]:
        DeploymentLogLine.objects.bulk_create(
            DeploymentLogLine(deployment=deployment, number=n, text="x") for n in range(1, 200)
        )
    client.force_login(server.user)
    url = f"/servers/{server.uuid}/" + path.format(uuid=deployments_made[0].uuid)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    # (and the tenant scope set and cleared)
    assert len(captured) == queries + tenant.SCOPE_QUERIES, [q["sql"][:120] for q in captured]
