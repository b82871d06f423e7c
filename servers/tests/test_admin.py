"""The servers' admin: staff change servers only through actions that call the services
(the fields with consequences are read-only, servers are neither added nor deleted by
hand, every action asks first and is audited), and no secret reaches a page."""

from datetime import UTC, datetime

import pytest
from django.contrib.messages import get_messages
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.models import AuditEvent
from billing.models import Payment
from billing.tests.factories import PaymentFactory
from billing.tests.stripe_fakes import stripe_object
from hosting.admin_links import admin_url
from servers.models import Deployment, DeploymentLogLine, Domain, Server, ServerAction
from servers.tests.factories import DeploymentFactory, DomainFactory, ServerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _admin_without_mfa(settings):
    settings.STAFF_REQUIRE_MFA = False


@pytest.fixture
def server():
    payment = PaymentFactory(stripe_payment_intent_id="pi_staff_1")
    return ServerFactory(user=payment.user, payment=payment, plan=payment.plan)


def act(client, action, *servers, confirm=False):
    data = {"action": action, "_selected_action": [s.pk for s in servers]}
    if confirm:
        data["confirm"] = "yes"
    return client.post(admin_url(Server, "changelist"), data)


def destroy_jobs():
    return ProcrastinateJob.objects.filter(task_name="servers.tasks.droplet_destroy")


def test_lifecycle_fields_are_read_only(client, staff, server):
    page = client.get(admin_url(server)).content.decode()
    for field in ("status", "user", "plan", "payment", "ip_address", "region"):
        assert f'name="{field}"' not in page, field
    # Posting them anyway changes nothing.
    client.post(admin_url(server), {"name": server.name, "status": "deleted", "ip_address": ""})
    server.refresh_from_db()
    assert server.status == Server.Status.RUNNING and server.ip_address


def test_servers_are_neither_added_nor_deleted_by_hand(client, staff, server):
    assert client.get(admin_url(Server, "add")).status_code == 403
    assert client.get(admin_url(server, "delete")).status_code == 403


def test_deployments_and_domains_are_read_only(client, staff):
    for obj in (DeploymentFactory(), DomainFactory()):
        assert client.get(admin_url(obj)).status_code == 200
        assert client.post(admin_url(obj), {}).status_code == 403
        assert client.get(admin_url(type(obj), "add")).status_code == 403


def test_a_payments_money_fields_are_read_only(client, staff, server):
    page = client.get(admin_url(server.payment)).content.decode()
    for field in ("amount_cents", "status", "user", "plan"):
        assert f'name="{field}"' not in page, field
    assert client.get(admin_url(server.payment, "delete")).status_code == 403


def test_delete_without_refund_asks_first(client, staff, server):
    response = act(client, "delete_without_refund", server)
    content = response.content.decode()
    assert "Delete server without refund?" in content
    assert f"{server.name} of {server.user.email} (Running)" in content
    assert "Yes, delete 1 server" in content
    server.refresh_from_db()
    assert server.status == Server.Status.RUNNING
    assert not destroy_jobs().exists()


def test_delete_without_refund_deletes_destroys_and_audits(client, staff, server):
    response = act(client, "delete_without_refund", server, confirm=True)

    assert response.status_code == 302
    server.refresh_from_db()
    assert server.status == Server.Status.DELETED
    assert server.payment.status == Payment.Status.SUCCEEDED  # nothing refunded
    assert list(destroy_jobs().values_list("args", flat=True)) == [{"server_id": server.pk}]
    event = AuditEvent.objects.get(action=AuditEvent.Action.STAFF_ACTION)
    assert (event.actor, event.target_type, event.target_id) == (
        staff,
        "servers.server",
        str(server.pk),
    )
    assert event.metadata == {"action": "server_delete", "refunded": False}

    again = act(client, "delete_without_refund", server, confirm=True)
    assert "had already ended" in " ".join(str(m) for m in get_messages(again.wsgi_request))
    assert destroy_jobs().count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.STAFF_ACTION).count() == 1


def test_provision_again_restarts_the_job_of_a_stuck_server_only(client, staff, server):
    stuck = ServerFactory(status=Server.Status.PROVISIONING, provider_id="")

    act(client, "provision_again", stuck, server)

    jobs = ProcrastinateJob.objects.filter(task_name="servers.tasks.server_provision")
    assert list(jobs.values_list("args", "lock")) == [
        ({"server_id": stuck.pk}, f"server:{stuck.pk}")
    ]
    event = AuditEvent.objects.get(action=AuditEvent.Action.STAFF_ACTION)
    assert (event.target_id, event.metadata) == (
        str(stuck.pk),
        {"action": "server_provision_retry"},
    )


def test_refund_and_delete_from_the_server_list(client, staff, server, stripe_api):
    stripe_api.reply("POST", "/v1/refunds", stripe_object("refund", id="re_staff_1"))

    act(client, "refund_and_delete", server, confirm=True)

    server.refresh_from_db()
    assert server.status == Server.Status.DELETED
    assert server.payment.status == Payment.Status.REFUNDED
    assert server.payment.stripe_refund_id == "re_staff_1"
    refund = AuditEvent.objects.get(action=AuditEvent.Action.PAYMENT_REFUND)
    assert refund.actor == staff


def test_server_page_never_shows_the_ssh_password(admin_client):
    payment = PaymentFactory()
    server = ServerFactory(user=payment.user, payment=payment)
    server.ssh_host_private_key = "-----BEGIN OPENSSH PRIVATE KEY-----secret"
    server.save(update_fields=["ssh_host_private_key"])
    content = admin_client.get(admin_url(server)).content.decode()
    assert server.ssh_password not in content
    assert "ssh_password" not in content
    assert "PRIVATE KEY" not in content and "ssh_host_private_key" not in content


# -- power actions and password resets --------------------------------------------------------


def action_jobs():
    return ProcrastinateJob.objects.filter(task_name="servers.tasks.server_action_run")


@pytest.mark.parametrize(
    ("action", "kind", "status", "title"),
    [
        ("start_servers", "start", Server.Status.STOPPED, "Start server?"),
        ("stop_servers", "stop", Server.Status.RUNNING, "Stop server?"),
        ("reboot_servers", "reboot", Server.Status.RUNNING, "Reboot server?"),
        ("reset_passwords", "password_reset", Server.Status.RUNNING, "Reset the login password?"),
    ],
)
def test_staff_power_actions_ask_first_then_go_through_the_service_audited(
    client, staff, action, kind, status, title
):
    server = ServerFactory(status=status)

    page = act(client, action, server).content.decode()
    assert title in page
    assert f"{server.name} of {server.user.email}" in page
    assert not ServerAction.objects.exists()

    response = act(client, action, server, confirm=True)

    assert response.status_code == 302
    [requested] = ServerAction.objects.all()
    assert (requested.server, requested.kind, requested.requested_by) == (server, kind, staff)
    [job] = action_jobs()
    assert (job.args, job.lock) == ({"action_id": requested.pk}, f"server:{server.pk}")
    audit = AuditEvent.objects.get(action=AuditEvent.Action.STAFF_ACTION)
    assert (audit.actor, audit.target_id, audit.metadata) == (
        staff,
        str(server.pk),
        {"action": f"server_{kind}"},
    )
    assert server.events.get().message.endswith("by our staff.")


def test_staff_are_refused_what_customers_are_refused(client, staff):
    stopped = ServerFactory(status=Server.Status.STOPPED)
    busy = ServerFactory()
    act(client, "reboot_servers", busy, confirm=True)

    page = act(client, "reboot_servers", stopped, busy).content.decode()
    assert f"{stopped.name}: stopped" in page  # left as it is, said before confirming
    response = act(client, "reboot_servers", stopped, busy, confirm=True)

    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert f"{stopped.name}: The server is stopped; start it before a reboot." in shown
    assert f"{busy.name}: A reboot is already in progress." in shown
    assert action_jobs().count() == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.STAFF_ACTION).count() == 1


def test_the_server_page_shows_its_actions_but_never_a_new_password(client, staff, server):
    ServerAction.objects.create(
        server=server, kind="password_reset", new_password="n3w-pa55word-in-flight"
    )
    ServerAction.objects.create(
        server=server, kind="reboot", status="failed", reason="The provider could not reboot."
    )

    content = client.get(admin_url(server)).content.decode()

    assert "The provider could not reboot." in content
    assert "Password reset" in content
    assert "n3w-pa55word-in-flight" not in content and "new_password" not in content


def test_server_actions_are_read_only_records(client, staff, server):
    action = ServerAction.objects.create(
        server=server, kind="password_reset", new_password="n3w-pa55word-in-flight"
    )

    content = client.get(admin_url(action)).content.decode()
    assert "n3w-pa55word-in-flight" not in content
    assert client.post(admin_url(action), {"status": "failed"}).status_code == 403
    assert client.get(admin_url(ServerAction, "add")).status_code == 403
    list_page = client.get(admin_url(ServerAction, "changelist")).content.decode()
    assert admin_url(action) in list_page


def act_on_deployments(client, action, *rows):
    data = {"action": action, "_selected_action": [row.pk for row in rows]}
    return client.post(admin_url(Deployment, "changelist"), data)


def test_a_deployment_page_shows_its_log_numbered(client, staff):
    deployment = DeploymentFactory(status="failed", failure_reason="The script exited with 1.")
    DeploymentLogLine.objects.bulk_create(
        DeploymentLogLine(deployment=deployment, number=n, text=f"step {n} <b>")
        for n in range(1, 4)
    )
    page = client.get(admin_url(deployment, "change")).content.decode()
    assert "    3  step 3 &lt;b&gt;" in page  # escaped, numbered
    assert "The script exited with 1." in page


def test_staff_cancel_a_waiting_deployment_through_the_service_audited(client, staff):
    waiting = DeploymentFactory(status="pending")
    done = DeploymentFactory(status="success")
    act_on_deployments(client, "cancel_deployments", waiting, done)
    waiting.refresh_from_db()
    done.refresh_from_db()
    assert (waiting.status, waiting.failure_reason) == ("failed", "Cancelled by our staff.")
    assert done.status == "success"
    audit = AuditEvent.objects.get(action="staff_action")
    assert audit.actor == staff and audit.metadata["action"] == "deployment_cancel"
    assert audit.target_id == str(waiting.pk)


def test_staff_redeploy_through_the_service_audited(client, staff):
    earlier = DeploymentFactory(status="failed", branch="release", subdirectory="web")
    act_on_deployments(client, "redeploy", earlier)
    again = Deployment.objects.exclude(pk=earlier.pk).get()
    assert (again.server, again.user, again.branch, again.subdirectory, again.status) == (
        earlier.server,
        earlier.server.user,
        "release",
        "web",
        "pending",
    )
    assert ProcrastinateJob.objects.filter(task_name="servers.tasks.deployment_run").count() == 1
    audit = AuditEvent.objects.get(action="staff_action")
    assert audit.metadata["action"] == "deployment_redeploy"


# -- domains ------------------------------------------------------------------------------


@pytest.fixture
def domains():
    """One domain in each state staff filter by."""
    server = ServerFactory(name="web-prod")
    return {
        "pending": DomainFactory(server=server, name="pending.example.com"),
        "dns_failed": DomainFactory(
            server=server,
            name="dns-failed.example.com",
            verification_status="failed",
            verification_reason="dns-failed.example.com does not exist (NXDOMAIN). " + "x" * 200,
            checked_at=datetime(2025, 3, 4, 10, 15, tzinfo=UTC),
            check_attempts=7,
        ),
        "https_failed": DomainFactory(
            server=server,
            name="https-failed.example.com",
            verification_status="verified",
            ssl_status="failed",
            ssl_error="The certificate served is for other.example.net.",
        ),
        "active": DomainFactory(
            server=server,
            name="active.example.com",
            verification_status="verified",
            ssl_status="active",
            ssl_expires_at=datetime(2025, 5, 31, 8, 0, tzinfo=UTC),
            ssl_checked_at=datetime(2025, 3, 2, 8, 30, tzinfo=UTC),
            expiry_warned_for=datetime(2025, 5, 31, 8, 0, tzinfo=UTC),
        ),
    }


def domain_names_listed(client, query: str = "") -> set[str]:
    response = client.get(admin_url(Domain, "changelist") + query)
    assert response.status_code == 200
    return {d.name for d in response.context["cl"].result_list}


def test_the_domain_list_shows_statuses_the_short_reason_and_expiry(client, staff, domains):
    response = client.get(admin_url(Domain, "changelist"))

    html = response.content.decode()
    for column in ("column-name", "column-server_link", "column-user_link"):
        assert column in html
    for column in ("verification_status", "ssl_status", "short_reason", "ssl_expires_at"):
        assert f"column-{column}" in html
    assert "dns-failed.example.com does not exist (NXDOMAIN). xxx" in html
    assert "x" * 100 not in html  # the reason is cut short in the list
    assert "The certificate served is for other.example.net." in html
    assert "May 31, 2025" in html
    assert "web-prod" in html and domains["active"].user.email in html


def test_the_failing_filter_keeps_dns_and_https_failures(client, staff, domains):
    assert "Failing (DNS or HTTPS)" in client.get(admin_url(Domain, "changelist")).content.decode()
    assert domain_names_listed(client, "?failing=yes") == {
        "dns-failed.example.com",
        "https-failed.example.com",
    }
    assert len(domain_names_listed(client)) == 4


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("?verification_status__exact=pending", {"pending.example.com"}),
        ("?verification_status__exact=failed", {"dns-failed.example.com"}),
        ("?ssl_status__exact=active", {"active.example.com"}),
        ("?ssl_status__exact=failed", {"https-failed.example.com"}),
    ],
)
def test_the_domain_status_filters(client, staff, domains, query, names):
    assert domain_names_listed(client, query) == names


def test_a_domain_page_shows_every_check_field_read_only(client, staff, domains):
    domain = domains["dns_failed"]

    response = client.get(admin_url(domain, "change"))

    assert response.status_code == 200
    html = response.content.decode()
    for label in (
        "Verification reason",
        "Checked at",
        "Check attempts",
        "Certificate expires",
        "HTTPS checked at",
        "Expiry warned for",
    ):
        assert label in html, label
    assert "x" * 200 in html  # the whole reason on the domain's own page
    assert "<textarea" not in html and 'name="name"' not in html


def test_the_server_page_lists_its_domains_with_status_and_expiry(client, staff, domains):
    server = domains["active"].server

    html = client.get(admin_url(server, "change")).content.decode()

    assert "active.example.com" in html and "May 31, 2025" in html
    assert "https-failed.example.com" in html
