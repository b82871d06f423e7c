"""The server's login password: never on the server page; revealed only by a POST that goes
through allauth's reauthentication (the account password or a TOTP code again), once, on a
page of its own that is not cached, and audited; reset by a job that stores the new one
encrypted. Neither the old nor the new password reaches a log line."""

import logging
from datetime import timedelta
from urllib.parse import quote

import pytest
import time_machine
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.models import AuditEvent
from accounts.tests.factories import PASSWORD, UserFactory
from accounts.tests.helpers import totp_code
from hosting.testing import run_jobs
from servers.models import Server, ServerAction
from servers.tests.factories import ServerFactory

SECRET = "s3cret-root-password"  # ServerFactory's


@pytest.fixture
def customer(client):
    user = UserFactory()
    client.force_login(user)  # signed in, but not recently confirmed: allauth asks again
    return user


@pytest.fixture
def server(customer):
    return ServerFactory(user=customer, ssh_username="deploy", ip_address="203.0.113.40")


def reveal_url(server):
    return f"/servers/{server.uuid}/password/"


def reauthenticate_url(path):
    return f"/accounts/reauthenticate/?next={quote(path, safe='')}"


def reveals():
    return AuditEvent.objects.filter(action=AuditEvent.Action.SERVER_PASSWORD_REVEAL)


def reveal_with_password(client, server):
    """POST the reveal, then confirm the account password on allauth's page, which replays
    the POST and returns its response."""
    response = client.post(reveal_url(server))
    assert response.status_code == 302
    assert response.url == reauthenticate_url(reveal_url(server))
    return client.post(response.url, {"password": PASSWORD})


@pytest.mark.django_db
def test_the_server_page_never_holds_the_password(client, server):
    for suffix in ("", "status/"):
        content = client.get(f"/servers/{server.uuid}/{suffix}").content.decode()
        assert SECRET not in content
        assert "Reveal password" in content or suffix == "status/"
    assert SECRET not in client.get("/dashboard/").content.decode()


@pytest.mark.django_db
def test_a_reveal_without_a_recent_confirmation_goes_to_allauths_page(client, server):
    response = client.post(reveal_url(server))

    assert response.status_code == 302
    assert response.url == reauthenticate_url(reveal_url(server))
    assert not reveals().exists()
    page = client.get(response.url)
    assert page.status_code == 200
    assert SECRET not in page.content.decode()


@pytest.mark.django_db
def test_after_confirming_the_password_it_is_shown_once_and_audited(client, customer, server):
    response = reveal_with_password(client, server)

    assert response.status_code == 200
    content = response.content.decode()
    assert f'<code id="server-password" class="secret" data-testid="server-password">{SECRET}' in (
        content
    )
    assert "<code>deploy</code>" in content
    assert "no-store" in response["Cache-Control"]
    [event] = reveals()
    assert (event.actor, event.target_type, event.target_id, event.metadata) == (
        customer,
        "servers.server",
        str(server.pk),
        {"server": server.name},
    )
    assert event.ip_address == "127.0.0.1"
    assert SECRET not in repr(event.__dict__)
    # Shown on that response only: the server page still does not hold it.
    assert SECRET not in client.get(f"/servers/{server.uuid}/").content.decode()


@pytest.mark.django_db
def test_a_wrong_password_shows_nothing(client, server):
    response = client.post(reveal_url(server))

    again = client.post(response.url, {"password": PASSWORD + "-wrong"})

    assert again.status_code == 200  # allauth's form, with its error
    assert SECRET not in again.content.decode()
    assert not reveals().exists()


@pytest.mark.django_db
def test_a_totp_code_confirms_too(client, customer, server):
    secret = generate_totp_secret()
    TOTP.activate(customer, secret)
    response = client.post(reveal_url(server))
    assert response.status_code == 302

    confirmed = client.post(
        f"/accounts/2fa/reauthenticate/?next={quote(reveal_url(server), safe='')}",
        {"code": totp_code(secret)},
    )

    assert confirmed.status_code == 200
    assert SECRET in confirmed.content.decode()
    assert reveals().count() == 1


@pytest.mark.django_db
def test_the_confirmation_lasts_a_few_minutes_and_every_reveal_is_audited(client, server):
    assert reveal_with_password(client, server).status_code == 200

    again = client.post(reveal_url(server))
    assert again.status_code == 200 and SECRET in again.content.decode()
    assert reveals().count() == 2

    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        later = client.post(reveal_url(server))
    assert later.status_code == 302
    assert later.url.startswith("/accounts/reauthenticate/")
    assert reveals().count() == 2


@pytest.mark.django_db
def test_a_reveal_by_get_is_not_allowed(client, server):
    response = client.get(reveal_url(server))

    assert response.status_code == 405
    assert SECRET not in response.content.decode()
    assert not reveals().exists()


@pytest.mark.django_db
@pytest.mark.parametrize("suffix", ["password/", "password/reset/"])
def test_another_customers_server_is_404_even_after_confirming(client, customer, suffix):
    theirs = ServerFactory()
    path = f"/servers/{theirs.uuid}/{suffix}"

    assert client.post(path).status_code == 404  # not a request to confirm first
    # Confirmed for something of one's own, still a 404.
    reveal_with_password(client, ServerFactory(user=customer, status=Server.Status.STOPPED))
    response = client.post(path)
    assert response.status_code == 404
    assert SECRET not in response.content.decode()
    assert reveals().count() == 1
    assert not ServerAction.objects.exists()


@pytest.mark.django_db
def test_a_server_being_built_has_no_password_to_reveal(client, customer):
    building = ServerFactory(user=customer, status=Server.Status.PROVISIONING)

    response = reveal_with_password(client, building)

    assert response.status_code == 302
    assert response.url == f"/servers/{building.uuid}/"
    assert not reveals().exists()


@pytest.mark.django_db
def test_a_reset_asks_for_the_password_too_then_requests_the_job(client, customer, server):
    path = f"/servers/{server.uuid}/password/reset/"

    response = client.post(path)
    assert response.status_code == 302
    assert response.url == reauthenticate_url(path)
    assert not ServerAction.objects.exists()

    done = client.post(response.url, {"password": PASSWORD})

    assert done.status_code == 302
    assert done.url == f"/servers/{server.uuid}/"
    [action] = ServerAction.objects.all()
    assert (action.kind, action.requested_by) == ("password_reset", customer)
    [job] = ProcrastinateJob.objects.filter(task_name="servers.tasks.server_action_run")
    assert job.args == {"action_id": action.pk}


@pytest.mark.django_db(transaction=True)
def test_the_password_never_reaches_a_log_line(client, customer, settings, tmp_path, caplog):
    settings.DIGITALOCEAN_TOKEN = ""
    settings.SERVER_RUNNER = "local"
    settings.DEPLOY_WORKSPACE_DIR = tmp_path
    settings.POWER_POLL_SECONDS = 0
    server = ServerFactory(user=customer, ssh_username="deploy", ip_address="203.0.113.41")
    # Everything, the worker's own loggers included, at DEBUG.
    caplog.set_level(logging.DEBUG)
    for name in ("procrastinate", "django", "servers", "accounts", "allauth"):
        caplog.set_level(logging.DEBUG, logger=name)

    client.get(f"/servers/{server.uuid}/")
    assert SECRET in reveal_with_password(client, server).content.decode()
    client.post(f"/servers/{server.uuid}/password/reset/")  # confirmed a moment ago
    action = ServerAction.objects.get()
    run_jobs(until=lambda: not ServerAction.objects.filter(status="in_progress").exists())
    action.refresh_from_db()
    assert action.status == ServerAction.Status.SUCCEEDED
    server.refresh_from_db()
    new = server.ssh_password
    assert new != SECRET
    assert new in client.post(reveal_url(server)).content.decode()

    assert caplog.records  # the worker and the requests did log
    # The worker logs each job with its arguments: a password passed as one would show.
    assert any(f"action_id={action.pk}" in r.getMessage() for r in caplog.records)
    for secret in (SECRET, new):
        assert secret not in caplog.text
        for record in caplog.records:
            assert secret not in record.getMessage()
            assert secret not in repr(record.args)
        for event in AuditEvent.objects.all():
            assert secret not in repr(event.__dict__)
