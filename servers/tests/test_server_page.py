"""The server page as a console: the actions its state allows, power buttons that say when
one is running, POST /power/ with its refusals, the login card, and every URL of a server a
404 for anyone but its owner (GET and POST) at a pinned cost in queries."""

import re
import threading
import uuid

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from playwright.sync_api import expect
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.models import AuditEvent
from accounts.tests.factories import PASSWORD, UserFactory
from accounts.tests.helpers import verified_user
from hosting import tenant
from hosting.testing import PROJECT_DIR, run_jobs
from hosting.tests.markup import Page
from servers.actions import server_action_complete, server_action_request
from servers.models import Server, ServerAction, ServerEvent, ServerEventKind
from servers.providers import DropletSpec
from servers.providers.simulated import SimulatedProvider
from servers.tests.factories import DeploymentFactory, ServerFactory

pytestmark = pytest.mark.django_db

# session, user, then one query (servers.selectors.SERVER_PAGE_SQL): the server with its
# plan, payment, the kind of its open action and its events, whatever the number of events
# and with or without an action in progress. (and the tenant scope set and cleared)
PAGE_QUERIES = 3 + tenant.SCOPE_QUERIES
SUFFIXES = ["", "status/", "power/", "password/", "password/reset/"]


@pytest.fixture
def customer(client):
    user = UserFactory()
    client.force_login(user)
    return user


def jobs():
    return ProcrastinateJob.objects.filter(task_name="servers.tasks.server_action_run")


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def power(client, server, action):
    return client.post(f"/servers/{server.uuid}/power/", {"action": action})


def buttons(content):
    """(value, text, disabled) of each power button."""
    page = Page(content)
    found = []
    for tag, attrs in page.tags:
        if tag == "button" and attrs.get("name") == "action":
            found.append((attrs["value"], "disabled" in attrs))
    return found


def get(client, server, suffix=""):
    response = client.get(f"/servers/{server.uuid}/{suffix}")
    assert response.status_code == 200
    return response.content.decode()


# -- what the page offers ---------------------------------------------------------------------


def test_a_running_server_offers_reboot_stop_and_its_login(client, customer):
    server = ServerFactory(user=customer, ip_address="203.0.113.9", ssh_username="deploy")

    content = get(client, server)

    assert buttons(content) == [("reboot", False), ("stop", False)]
    assert f'action="/servers/{server.uuid}/power/"' in content
    assert '<code data-testid="ssh-username">deploy</code>' in content
    assert '<code data-testid="ssh-port">22</code>' in content
    assert '<code id="ssh-command" data-testid="ssh-command">ssh deploy@203.0.113.9</code>' in (
        content
    )
    assert f'action="/servers/{server.uuid}/password/"' in content
    assert f'action="/servers/{server.uuid}/password/reset/"' in content
    assert f'href="/servers/{server.uuid}/deployments/"' in content
    assert "every 2s" not in content


def test_the_ssh_line_names_a_port_other_than_22(client, customer, settings):
    settings.SERVER_SSH_PORT = 2222
    server = ServerFactory(user=customer, ip_address="203.0.113.9", ssh_username="deploy")

    content = get(client, server)

    assert '<code data-testid="ssh-port">2222</code>' in content
    assert ">ssh -p 2222 deploy@203.0.113.9</code>" in content


def test_a_stopped_server_offers_start_only(client, customer):
    server = ServerFactory(user=customer, status=Server.Status.STOPPED)

    content = get(client, server)

    assert buttons(content) == [("start", False)]
    # Reset needs the server running; revealing the stored password does not.
    reset = Page(content).find("form", action=f"/servers/{server.uuid}/password/reset/")
    assert reset
    assert "start it first" in content


@pytest.mark.parametrize("status", ["provisioning", "failed", "deleted"])
def test_a_server_not_running_or_stopped_offers_no_action(client, customer, status):
    server = ServerFactory(user=customer, status=status)

    content = get(client, server)

    assert buttons(content) == []
    assert "/password/" not in content
    assert "Reveal password" not in content


@pytest.mark.parametrize(
    ("status", "kind", "label"),
    [
        ("running", "reboot", "Rebooting… (in progress)"),
        ("running", "stop", "Stopping… (in progress)"),
        ("stopped", "start", "Starting… (in progress)"),
        ("running", "password_reset", "Resetting the password… (in progress)"),
    ],
)
def test_while_an_action_runs_the_buttons_are_disabled_and_the_page_polls(
    client, customer, status, kind, label
):
    server = ServerFactory(user=customer, status=status)
    server_action_request(server_id=server.pk, kind=kind, actor=customer)

    for suffix in ("", "status/"):
        content = get(client, server, suffix)
        assert buttons(content) and all(disabled for _, disabled in buttons(content))
        assert f">{label}</button>" in content
        assert f'hx-get="/servers/{server.uuid}/status/"' in content
        assert 'hx-trigger="every 2s"' in content
        assert f'data-action="{kind}"' in content


def test_when_the_action_completes_the_partial_shows_it_and_stops_polling(client, customer):
    server = ServerFactory(user=customer)
    action = server_action_request(server_id=server.pk, kind="stop", actor=customer)
    assert "every 2s" in get(client, server, "status/")

    server_action_complete(action_id=action.pk)

    content = get(client, server, "status/")
    assert 'data-status="stopped"' in content
    assert '<span class="badge badge-stopped" data-testid="server-status">Stopped</span>' in content
    assert "<strong>Stopped</strong> <span>The server shut down.</span>" in content
    assert buttons(content) == [("start", False)]
    assert "every 2s" not in content


def test_the_page_runs_no_inline_script_and_loads_the_copy_button(client, customer):
    server = ServerFactory(user=customer)

    page = Page(get(client, server))

    assert page.inline_scripts == []
    [script] = page.find("script", src="/static/js/copy.js")
    assert "defer" in script
    assert page.find("button", type="button", **{"data-copy": "ssh-command"})


# -- POST /power/ -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "action", "message"),
    [
        ("running", "reboot", "Rebooting the server; this page updates when it is done."),
        ("running", "stop", "Shutting the server down; this page updates when it is done."),
        ("stopped", "start", "Starting the server; this page updates when it is done."),
    ],
)
def test_power_requests_the_action_and_returns_to_the_page(
    client, customer, status, action, message
):
    server = ServerFactory(user=customer, status=status)

    response = power(client, server, action)

    assert response.status_code == 302
    assert response.url == f"/servers/{server.uuid}/"
    assert messages_of(response) == [message]
    [requested] = ServerAction.objects.all()
    assert (requested.kind, requested.requested_by) == (action, customer)
    assert jobs().count() == 1


def test_a_double_click_defers_one_job_and_says_why(client, customer):
    server = ServerFactory(user=customer)

    first = power(client, server, "reboot")
    second = power(client, server, "reboot")

    assert messages_of(first) == ["Rebooting the server; this page updates when it is done."]
    # Both clicks before the first page came back: both messages wait for the next page.
    assert messages_of(second)[-1] == "A reboot is already in progress."
    assert jobs().count() == 1
    assert ServerAction.objects.count() == 1
    # The message reaches the page the redirect leads to.
    content = client.get(second.url).content.decode()
    assert "A reboot is already in progress." in content


@pytest.mark.parametrize(
    ("status", "action", "message"),
    [
        ("stopped", "reboot", "The server is stopped; start it before a reboot."),
        ("running", "start", "The server is already running."),
        ("provisioning", "stop", "The server is still being built."),
    ],
)
def test_a_refused_power_action_changes_nothing(client, customer, status, action, message):
    server = ServerFactory(user=customer, status=status)

    response = power(client, server, action)

    assert response.status_code == 302
    assert messages_of(response) == [message]
    assert not ServerAction.objects.exists()
    assert not ServerEvent.objects.exists()
    assert not jobs().exists()


def test_a_running_deployment_refuses_a_power_action(client, customer):
    server = ServerFactory(user=customer)
    DeploymentFactory(server=server, status="in_progress")

    response = power(client, server, "stop")

    assert messages_of(response) == [
        "A deployment is running; wait for it to finish or cancel it first."
    ]
    assert not jobs().exists()


@pytest.mark.parametrize("action", ["", "password_reset", "destroy", "START"])
def test_anything_but_start_stop_or_reboot_is_refused(client, customer, action):
    server = ServerFactory(user=customer)

    response = power(client, server, action)

    assert messages_of(response) == ["Choose Start, Stop or Reboot."]
    assert not ServerAction.objects.exists()


def test_power_by_get_is_not_allowed(client, customer):
    server = ServerFactory(user=customer)

    response = client.get(f"/servers/{server.uuid}/power/", {"action": "reboot"})

    assert response.status_code == 405
    assert not ServerAction.objects.exists()


# -- other people's servers -------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("method", ["get", "post"])
def test_another_customers_server_is_404_on_every_url(client, customer, suffix, method):
    theirs = ServerFactory(status=Server.Status.RUNNING)
    data = {"action": "reboot"} if method == "post" else {}

    for server_uuid in (theirs.uuid, uuid.uuid4()):
        response = getattr(client, method)(f"/servers/{server_uuid}/{suffix}", data)
        assert response.status_code == 404, (server_uuid, suffix)
        assert theirs.ssh_password not in response.content.decode()

    assert not ServerAction.objects.exists()
    assert not ProcrastinateJob.objects.exists()
    assert not AuditEvent.objects.exclude(action=AuditEvent.Action.LOGIN).exists()


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("method", ["get", "post"])
def test_logged_out_goes_to_login_on_every_url(client, suffix, method):
    server = ServerFactory()

    response = getattr(client, method)(f"/servers/{server.uuid}/{suffix}")

    assert response.status_code == 302
    assert response.url == f"/accounts/login/?next=/servers/{server.uuid}/{suffix}"
    assert not ServerAction.objects.exists()


# -- the cost of the page ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "status/"])
@pytest.mark.parametrize("open_action", [None, "reboot"])
def test_the_page_and_partial_cost_a_pinned_number_of_queries(
    client, customer, django_assert_num_queries, suffix, open_action
):
    server = ServerFactory(user=customer)
    if open_action:
        server_action_request(server_id=server.pk, kind=open_action, actor=customer)
    url = f"/servers/{server.uuid}/{suffix}"

    with django_assert_num_queries(PAGE_QUERIES):
        assert client.get(url).status_code == 200
    for n in range(25):
        ServerEvent.objects.create(server=server, kind=ServerEventKind.RETRYING, message=f"{n}")
    with django_assert_num_queries(PAGE_QUERIES):
        content = client.get(url).content.decode()
    assert content.count("timeline-item") >= 25


# -- in a real browser ------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_in_a_browser_a_reboot_shows_progress_and_the_page_follows_it_to_the_end(
    page, settings, tmp_path
):
    settings.DIGITALOCEAN_TOKEN = ""
    settings.SIMULATED_PROVIDER_BOOT_SECONDS = 0.0
    settings.SIMULATED_PROVIDER_ACTION_SECONDS = 2.0
    settings.POWER_POLL_SECONDS = 0.5
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    user = verified_user()
    droplet = SimulatedProvider().create(
        DropletSpec(name="web", tag="t", size="s", region="nyc3", image="i", user_data="")
    )
    server = ServerFactory(user=user, provider_id=droplet.id, ssh_username="deploy")
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))

    page.goto(f"/servers/{server.uuid}/")
    page.get_by_role("button", name="Reboot").click()
    expect(
        page.get_by_text("Rebooting the server; this page updates when it is done.")
    ).to_be_visible()
    expect(page.get_by_role("button", name="Rebooting… (in progress)")).to_be_disabled()
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()
    page.evaluate("window.__marker = 1")  # lost if the page reloads

    action = ServerAction.objects.get(server=server)

    def work():
        try:
            run_jobs(
                until=lambda: ServerAction.objects.get(pk=action.pk).status != "in_progress",
                timeout=30,
            )
        finally:
            connection.close()  # this thread's own, or the test database outlives the test

    worker = threading.Thread(target=work)
    worker.start()
    try:
        expect(page.get_by_test_id("timeline")).to_contain_text(
            "The server restarted.", timeout=20_000
        )
    finally:
        worker.join()
    expect(page.get_by_role("button", name="Reboot")).to_be_enabled()
    assert page.evaluate("window.__marker") == 1, "the page reloaded instead of polling"
    results = PROJECT_DIR / "test-results"
    results.mkdir(exist_ok=True)
    page.screenshot(path=str(results / "server-rebooted.png"), full_page=True)

    # The copy button copies the ssh line.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy = page.locator('button[data-copy="ssh-command"]')
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == f"ssh deploy@{server.ip_address}"

    # Reveal: allauth asks for the password, then the password page.
    page.get_by_role("button", name="Reveal password").click()
    expect(page).to_have_url(re.compile(r"/accounts/reauthenticate/"))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_test_id("server-password")).to_have_text(server.ssh_password)
    assert errors == []
