"""Power actions and password resets (servers/actions.py and the job that runs them): what a
request writes, what it refuses, and each action end to end through the real worker,
against the simulator and against DigitalOcean faked at the HTTP layer (pydo runs)."""

import threading
from datetime import timedelta

import pytest
import responses
from django.db import connection
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory
from hosting.testing import run_jobs
from servers import actions
from servers.actions import ActionRefused, server_action_request, server_action_step
from servers.models import (
    Deployment,
    Server,
    ServerAction,
    ServerEvent,
    ServerEventKind,
    SimulatedAction,
    SimulatedDroplet,
)
from servers.providers import DropletSpec
from servers.providers.simulated import SimulatedProvider
from servers.runners import RunnerError
from servers.tests.do_fakes import FakeDigitalOcean
from servers.tests.factories import DeploymentFactory, ServerFactory

RUN = "servers.tasks.server_action_run"
START, STOP, REBOOT, RESET = "start", "stop", "reboot", "password_reset"


def jobs():
    return ProcrastinateJob.objects.filter(task_name=RUN)


def events(server):
    return list(ServerEvent.objects.filter(server=server).values_list("kind", "message"))


def request(server, kind, **kwargs):
    return server_action_request(server_id=server.pk, kind=kind, actor=server.user, **kwargs)


def finished(action):
    def check():
        action.refresh_from_db()
        return action.status != ServerAction.Status.IN_PROGRESS

    return check


@pytest.fixture(autouse=True)
def _quick(settings):
    settings.POWER_POLL_SECONDS = 0
    settings.STOP_GRACE_SECONDS = 60
    settings.SERVER_ACTION_TIMEOUT = 600


# -- the request -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_request_writes_the_action_an_event_and_one_job_under_the_server_lock():
    server = ServerFactory()

    action = request(server, REBOOT)

    assert (action.kind, action.status, action.requested_by) == (
        REBOOT,
        ServerAction.Status.IN_PROGRESS,
        server.user,
    )
    assert events(server) == [(ServerEventKind.ACTION_REQUESTED, "Reboot requested.")]
    [job] = jobs()
    assert (job.args, job.lock, job.status) == (
        {"action_id": action.pk},
        f"server:{server.pk}",
        "todo",
    )
    assert not AuditEvent.objects.exists()  # a customer's own action is on their timeline


@pytest.mark.django_db
def test_a_second_click_is_refused_and_defers_nothing():
    server = ServerFactory()
    request(server, REBOOT)

    with pytest.raises(ActionRefused, match=r"^A reboot is already in progress\.$"):
        request(server, REBOOT)
    # Another kind is refused by the same rule, naming the one that runs.
    with pytest.raises(ActionRefused, match=r"^A reboot is already in progress\.$"):
        request(server, STOP)

    assert ServerAction.objects.count() == 1
    assert jobs().count() == 1
    assert len(events(server)) == 1


@pytest.mark.django_db(transaction=True)
def test_two_requests_at_the_same_moment_make_one_action():
    server = ServerFactory()
    barrier = threading.Barrier(2)
    outcomes = []

    def click():
        try:
            barrier.wait()
            outcomes.append(request(server, REBOOT))
        except ActionRefused as refusal:
            outcomes.append(str(refusal))
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(type(o).__name__ for o in outcomes) == ["ServerAction", "str"]
    assert "A reboot is already in progress." in outcomes
    assert ServerAction.objects.count() == 1
    assert jobs().count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "kind", "message"),
    [
        ("running", START, "The server is already running."),
        ("stopped", STOP, "The server is already stopped."),
        ("stopped", REBOOT, "The server is stopped; start it before a reboot."),
        ("stopped", RESET, "The server is stopped; start it before a password reset."),
        ("provisioning", START, "The server is still being built."),
        ("provisioning", REBOOT, "The server is still being built."),
        ("failed", START, "This server no longer exists."),
        ("deleted", REBOOT, "This server no longer exists."),
    ],
)
def test_an_action_the_state_does_not_allow_is_refused_and_changes_nothing(status, kind, message):
    server = ServerFactory(status=status)

    with pytest.raises(ActionRefused) as refusal:
        request(server, kind)

    assert str(refusal.value) == message
    assert not ServerAction.objects.exists()
    assert not ServerEvent.objects.exists()
    assert not jobs().exists()
    server.refresh_from_db()
    assert server.status == status


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Deployment.Status.PENDING, Deployment.Status.IN_PROGRESS])
def test_a_running_deployment_refuses_an_action(status):
    server = ServerFactory()
    DeploymentFactory(server=server, status=status)

    with pytest.raises(ActionRefused, match="A deployment is running; wait for it"):
        request(server, REBOOT)

    assert not ServerAction.objects.exists()
    assert not jobs().exists()


@pytest.mark.django_db
def test_a_finished_deployment_does_not():
    server = ServerFactory()
    DeploymentFactory(server=server, status=Deployment.Status.FAILED)
    DeploymentFactory(server=server, status=Deployment.Status.SUCCESS)

    assert request(server, REBOOT).pk


@pytest.mark.django_db
def test_a_staff_request_is_audited_and_named_on_the_timeline():
    server = ServerFactory()
    member = StaffFactory()

    action = server_action_request(server_id=server.pk, kind=STOP, actor=member, staff=True)

    assert action.requested_by == member
    assert events(server) == [
        (ServerEventKind.ACTION_REQUESTED, "Stop requested (a graceful shutdown) by our staff.")
    ]
    audit = AuditEvent.objects.get()
    assert (audit.action, audit.actor, audit.target_type, audit.target_id, audit.metadata) == (
        AuditEvent.Action.STAFF_ACTION,
        member,
        "servers.server",
        str(server.pk),
        {"action": "server_stop"},
    )


# -- end to end with the simulator ---------------------------------------------------------


@pytest.fixture
def simulated(settings, tmp_path):
    settings.DIGITALOCEAN_TOKEN = ""
    settings.SIMULATED_PROVIDER_BOOT_SECONDS = 0.0
    settings.SIMULATED_PROVIDER_ACTION_SECONDS = 0.0
    settings.SIMULATED_PROVIDER_FAILURES = []
    settings.SERVER_RUNNER = "local"
    settings.DEPLOY_WORKSPACE_DIR = tmp_path / "workspaces"

    def server(status=Server.Status.RUNNING, **fields):
        droplet = SimulatedProvider().create(
            DropletSpec(name="web", tag="t", size="s", region="nyc3", image="i", user_data="")
        )
        # The droplet's power follows the server's state.
        power = "active" if status == Server.Status.RUNNING else "off"
        SimulatedDroplet.objects.filter(pk=int(droplet.id)).update(power=power)
        return ServerFactory(status=status, provider_id=droplet.id, **fields)

    return server


def droplet_power(server):
    return SimulatedProvider().get(server.provider_id).status


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("before", "kind", "after", "event", "message", "power"),
    [
        ("running", REBOOT, "running", ServerEventKind.REBOOTED, "The server restarted.", "active"),
        ("running", STOP, "stopped", ServerEventKind.STOPPED, "The server shut down.", "off"),
        ("stopped", START, "running", ServerEventKind.STARTED, "The server is running.", "active"),
    ],
)
def test_power_actions_with_the_simulator(simulated, before, kind, after, event, message, power):
    server = simulated(status=before)

    action = request(server, kind)
    run_jobs(until=finished(action))

    assert action.status == ServerAction.Status.SUCCEEDED
    assert action.finished_at is not None and action.provider_action_id
    server.refresh_from_db()
    assert server.status == after
    assert droplet_power(server) == power
    assert events(server)[-1] == (event, message)
    assert SimulatedAction.objects.get().status == "completed"


@pytest.mark.django_db(transaction=True)
def test_a_shutdown_that_does_not_finish_in_time_is_followed_by_a_power_cut(simulated, settings):
    settings.SIMULATED_PROVIDER_FAILURES = ["shutdown"]
    settings.STOP_GRACE_SECONDS = 0
    server = simulated()

    action = request(server, STOP)
    run_jobs(until=finished(action))

    assert (action.status, action.forced) == (ServerAction.Status.SUCCEEDED, True)
    assert list(SimulatedAction.objects.order_by("pk").values_list("type", "status")) == [
        ("shutdown", "in-progress"),
        ("power_off", "completed"),
    ]
    server.refresh_from_db()
    assert server.status == Server.Status.STOPPED
    assert events(server) == [
        (ServerEventKind.ACTION_REQUESTED, "Stop requested (a graceful shutdown)."),
        (
            ServerEventKind.ACTION_REQUESTED,
            "The graceful shutdown did not finish within 0 s. Powering the server off instead.",
        ),
        (ServerEventKind.STOPPED, "The server was powered off."),
    ]


@pytest.mark.django_db
def test_a_shutdown_still_within_its_grace_is_waited_for(simulated, settings):
    settings.SIMULATED_PROVIDER_FAILURES = ["shutdown"]
    settings.POWER_POLL_SECONDS = 2.0
    server = simulated()
    action = request(server, STOP)

    assert server_action_step(action_id=action.pk) == 2.0  # sent
    assert server_action_step(action_id=action.pk) == 2.0  # in progress, within the grace

    action.refresh_from_db()
    assert (action.status, action.forced) == (ServerAction.Status.IN_PROGRESS, False)
    assert SimulatedAction.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_provider_failure_fails_the_action_with_its_reason(simulated, settings):
    settings.SIMULATED_PROVIDER_FAILURES = ["power"]
    server = simulated()

    action = request(server, REBOOT)
    run_jobs(until=finished(action))

    assert (action.status, action.reason) == (
        ServerAction.Status.FAILED,
        "Simulated failure: power",
    )
    assert events(server)[-1] == (
        ServerEventKind.ACTION_FAILED,
        "The reboot failed: Simulated failure: power",
    )
    server.refresh_from_db()
    assert server.status == Server.Status.RUNNING
    # The next click is accepted: the failed action no longer holds the server.
    settings.SIMULATED_PROVIDER_FAILURES = []
    assert request(server, REBOOT).pk


@pytest.mark.django_db
def test_a_job_run_again_after_the_end_changes_nothing(simulated):
    server = simulated()
    action = request(server, REBOOT)
    assert server_action_step(action_id=action.pk) == 0
    assert server_action_step(action_id=action.pk) is None
    count = len(events(server))

    assert server_action_step(action_id=action.pk) is None

    assert len(events(server)) == count
    assert SimulatedAction.objects.count() == 1


@pytest.mark.django_db
def test_an_action_on_a_server_deleted_meanwhile_fails(simulated):
    server = simulated()
    action = request(server, REBOOT)
    Server.objects.filter(pk=server.pk).update(status=Server.Status.DELETED)

    assert server_action_step(action_id=action.pk) is None

    action.refresh_from_db()
    assert (action.status, action.reason) == (ServerAction.Status.FAILED, "The server was deleted.")
    assert not SimulatedAction.objects.exists()


# -- end to end against DigitalOcean (faked at the HTTP layer) -----------------------------


@pytest.fixture
def do(settings):
    settings.DIGITALOCEAN_TOKEN = "dop_v1_test_token"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeDigitalOcean(mock)


def do_server(do, status=Server.Status.RUNNING):
    droplet_id = do.add_droplet(status="active" if status == Server.Status.RUNNING else "off")
    return ServerFactory(status=status, provider_id=str(droplet_id)), droplet_id


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("before", "kind", "request_type", "after", "power"),
    [
        ("running", REBOOT, "reboot", "running", "active"),
        ("running", STOP, "shutdown", "stopped", "off"),
        ("stopped", START, "power_on", "running", "active"),
    ],
)
def test_power_actions_with_digitalocean(do, before, kind, request_type, after, power):
    do.action_polls = 3
    server, droplet_id = do_server(do, before)

    action = request(server, kind)
    run_jobs(until=finished(action))

    assert action.status == ServerAction.Status.SUCCEEDED
    assert do.action_requests == [(droplet_id, request_type)]
    assert action.provider_action_id == str(next(iter(do.actions)))
    assert do.action_reads == 3  # looked at until it completed, then no more
    assert do.power(droplet_id) == power
    server.refresh_from_db()
    assert server.status == after


@pytest.mark.django_db(transaction=True)
def test_digitalocean_shutdown_that_hangs_is_powered_off(do, settings):
    settings.STOP_GRACE_SECONDS = 0
    do.hang("shutdown")
    server, droplet_id = do_server(do)

    action = request(server, STOP)
    run_jobs(until=finished(action))

    assert (action.status, action.forced) == (ServerAction.Status.SUCCEEDED, True)
    assert do.action_requests == [(droplet_id, "shutdown"), (droplet_id, "power_off")]
    server.refresh_from_db()
    assert server.status == Server.Status.STOPPED


@pytest.mark.django_db(transaction=True)
def test_digitalocean_shutdown_that_errors_is_powered_off(do):
    do.error("shutdown")
    server, droplet_id = do_server(do)

    action = request(server, STOP)
    run_jobs(until=finished(action))

    assert (action.status, action.forced) == (ServerAction.Status.SUCCEEDED, True)
    assert do.action_requests == [(droplet_id, "shutdown"), (droplet_id, "power_off")]
    assert "The graceful shutdown failed. Powering the server off instead." in [
        message for _, message in events(server)
    ]


@pytest.mark.django_db(transaction=True)
def test_an_errored_reboot_fails(do):
    do.error("reboot")
    server, _ = do_server(do)

    action = request(server, REBOOT)
    run_jobs(until=finished(action))

    assert (action.status, action.reason) == (
        ServerAction.Status.FAILED,
        "The provider could not reboot the server.",
    )
    assert events(server)[-1][0] == ServerEventKind.ACTION_FAILED


@pytest.mark.django_db(transaction=True)
def test_a_droplet_digitalocean_does_not_know_fails_the_action(do):
    # pydo returns DigitalOcean's 404 error body instead of raising.
    server = ServerFactory(provider_id="999")

    action = request(server, REBOOT)
    run_jobs(until=finished(action))

    assert action.status == ServerAction.Status.FAILED
    assert action.reason == "Could not reboot the server: droplet not found."
    assert do.action_requests == [(999, "reboot")]


@pytest.mark.django_db(transaction=True)
def test_an_action_digitalocean_no_longer_knows_fails(do):
    server, _ = do_server(do)
    do.fail_next("GET", 404)

    action = request(server, REBOOT)
    run_jobs(until=finished(action))

    assert action.status == ServerAction.Status.FAILED
    assert action.reason == "Could not follow the server's action: not found."


@pytest.mark.django_db
def test_a_rate_limited_request_waits_as_long_as_digitalocean_asks(do):
    server, droplet_id = do_server(do)
    do.fail_next("POST", 429, retry_after=7)
    action = request(server, REBOOT)

    assert server_action_step(action_id=action.pk) == 7

    action.refresh_from_db()
    assert (action.status, action.provider_action_id) == (ServerAction.Status.IN_PROGRESS, "")
    # Asked again after the wait, it goes through.
    assert server_action_step(action_id=action.pk) == 0
    assert server_action_step(action_id=action.pk) is None
    assert do.action_requests == [(droplet_id, "reboot")] * 2
    action.refresh_from_db()
    assert action.status == ServerAction.Status.SUCCEEDED


@pytest.mark.django_db
def test_a_rate_limited_status_read_waits_too(do):
    server, _ = do_server(do)
    action = request(server, REBOOT)
    server_action_step(action_id=action.pk)
    do.fail_next("GET", 429, retry_after=5)

    assert server_action_step(action_id=action.pk) == 5
    assert server_action_step(action_id=action.pk) is None
    action.refresh_from_db()
    assert action.status == ServerAction.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_a_rate_limit_through_the_worker_re_defers_the_job_with_the_lock(do):
    server, droplet_id = do_server(do)
    do.fail_next("POST", 429, retry_after=1)

    action = request(server, REBOOT)
    run_jobs(until=finished(action), timeout=15)

    assert action.status == ServerAction.Status.SUCCEEDED
    assert do.action_requests == [(droplet_id, "reboot")] * 2
    locks = set(ProcrastinateJob.objects.filter(task_name=RUN).values_list("lock", flat=True))
    assert locks == {f"server:{server.pk}"}
    assert jobs().count() >= 3  # sent (rate limited), sent, looked at


@pytest.mark.django_db
def test_a_server_error_while_following_an_action_is_looked_at_again(do, settings):
    settings.POWER_POLL_SECONDS = 3.0
    server, _ = do_server(do)
    action = request(server, REBOOT)
    server_action_step(action_id=action.pk)
    do.fail_next("GET", 503)
    reads = do.action_reads

    assert server_action_step(action_id=action.pk) == 3.0

    assert do.action_reads == reads + 1  # no retry (and no sleep) inside the worker
    action.refresh_from_db()
    assert action.status == ServerAction.Status.IN_PROGRESS
    assert server_action_step(action_id=action.pk) is None
    action.refresh_from_db()
    assert action.status == ServerAction.Status.SUCCEEDED


@pytest.mark.django_db
def test_a_server_error_on_sending_is_not_sent_again(do):
    # The provider may have started a reboot it answered 500 for: a second could follow.
    server, droplet_id = do_server(do)
    do.fail_next("POST", 500)
    action = request(server, REBOOT)

    assert server_action_step(action_id=action.pk) is None

    action.refresh_from_db()
    assert action.status == ServerAction.Status.FAILED
    assert "HTTP 500" in action.reason
    assert do.action_requests == [(droplet_id, "reboot")]


# -- the timeout watch ------------------------------------------------------------------------


@pytest.mark.django_db
def test_actions_open_too_long_are_failed_by_the_watch(settings):
    settings.SERVER_ACTION_TIMEOUT = 600
    stuck_server, young_server = ServerFactory(), ServerFactory()
    stuck = request(stuck_server, REBOOT)
    young = request(young_server, STOP)
    ServerAction.objects.filter(pk=stuck.pk).update(
        created_at=timezone.now() - timedelta(minutes=11)
    )

    from servers.tasks import server_actions_watch

    assert server_actions_watch(timestamp=0) == 1
    assert server_actions_watch(timestamp=0) == 0

    stuck.refresh_from_db()
    assert (stuck.status, stuck.reason) == (
        ServerAction.Status.FAILED,
        "The reboot did not finish within 10 minutes.",
    )
    assert events(stuck_server)[-1] == (
        ServerEventKind.ACTION_FAILED,
        "The reboot failed: The reboot did not finish within 10 minutes.",
    )
    young.refresh_from_db()
    assert young.status == ServerAction.Status.IN_PROGRESS
    # The server takes actions again; the old job, should it run, finds its action ended.
    assert request(stuck_server, REBOOT).pk
    assert server_action_step(action_id=stuck.pk) is None


@pytest.mark.django_db
def test_the_watch_is_a_periodic_job():
    from procrastinate.contrib.django import app

    periodic = {task.task.name for task in app.periodic_registry.periodic_tasks.values()}
    assert "servers.tasks.server_actions_watch" in periodic


# -- password reset -----------------------------------------------------------------------------


class RecordingRunner:
    simulated = True

    def __init__(self, *outcomes):
        self.calls = []
        self.outcomes = list(outcomes)

    def set_password(self, *, username, current_password, new_password):
        self.calls.append((username, current_password, new_password))
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome


@pytest.fixture
def runner(monkeypatch):
    def install(*outcomes):
        fake = RecordingRunner(*outcomes)
        monkeypatch.setattr("servers.runners.runner_for", lambda server: fake)
        return fake

    return install


@pytest.mark.django_db(transaction=True)
def test_a_password_reset_sets_and_stores_a_new_password(simulated):
    server = simulated(ssh_password="old-password-0123456789")

    action = request(server, RESET)
    run_jobs(until=finished(action))

    assert (action.status, action.new_password) == (ServerAction.Status.SUCCEEDED, "")
    server.refresh_from_db()
    assert server.ssh_password != "old-password-0123456789"
    assert len(server.ssh_password) == 24
    assert events(server)[-1] == (
        ServerEventKind.PASSWORD_RESET,
        "A new login password was set for root.",
    )
    # Stored encrypted, and nowhere else: not in the job's arguments, not on the timeline.
    with connection.cursor() as cursor:
        cursor.execute("SELECT ssh_password FROM servers_server WHERE id = %s", [server.pk])
        assert server.ssh_password not in cursor.fetchone()[0]
    assert server.ssh_password not in str(list(ProcrastinateJob.objects.values_list("args")))
    assert server.ssh_password not in str(events(server))


@pytest.mark.django_db
def test_the_runner_is_given_the_current_and_the_new_password(simulated, runner):
    fake = runner()
    server = simulated(ssh_password="old-password-0123456789")
    action = request(server, RESET)

    assert server_action_step(action_id=action.pk) is None

    server.refresh_from_db()
    assert fake.calls == [("root", "old-password-0123456789", server.ssh_password)]


@pytest.mark.django_db
def test_a_runner_error_fails_the_reset_and_keeps_the_old_password(simulated, runner):
    runner(RunnerError("The server did not answer on port 22."))
    server = simulated(ssh_password="old-password-0123456789")
    action = request(server, RESET)

    assert server_action_step(action_id=action.pk) is None

    action.refresh_from_db()
    assert (action.status, action.reason, action.new_password) == (
        ServerAction.Status.FAILED,
        "The server did not answer on port 22.",
        "",
    )
    assert events(server)[-1] == (
        ServerEventKind.ACTION_FAILED,
        "The password reset failed: The server did not answer on port 22.",
    )
    server.refresh_from_db()
    assert server.ssh_password == "old-password-0123456789"


@pytest.mark.django_db
def test_a_retried_reset_sets_the_same_password(simulated, runner):
    fake = runner(RuntimeError("the worker died here"))
    server = simulated(ssh_password="old-password-0123456789")
    action = request(server, RESET)

    with pytest.raises(RuntimeError):
        server_action_step(action_id=action.pk)
    action.refresh_from_db()
    first = action.new_password
    assert first and action.status == ServerAction.Status.IN_PROGRESS

    assert server_action_step(action_id=action.pk) is None

    server.refresh_from_db()
    assert server.ssh_password == first
    assert [call[2] for call in fake.calls] == [first, first]


@pytest.mark.django_db
def test_a_retried_reset_tries_the_new_password_when_the_old_no_longer_works(simulated, runner):
    # The last run set the password on the server, then died before storing it.
    fake = runner(RuntimeError("died"), RunnerError("sudo: incorrect password"))
    server = simulated(ssh_password="old-password-0123456789")
    action = request(server, RESET)
    with pytest.raises(RuntimeError):
        server_action_step(action_id=action.pk)

    assert server_action_step(action_id=action.pk) is None

    server.refresh_from_db()
    new = server.ssh_password
    assert fake.calls[1:] == [
        ("root", "old-password-0123456789", new),
        ("root", new, new),
    ]
    action.refresh_from_db()
    assert action.status == ServerAction.Status.SUCCEEDED


def test_progress_labels_cover_every_kind():
    assert set(actions.PROGRESS_LABELS) == set(ServerAction.Kind)
    assert set(actions.NOUNS) == set(ServerAction.Kind)
