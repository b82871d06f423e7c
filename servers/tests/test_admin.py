"""The servers' admin: staff change servers only through actions that call the services
(the fields with consequences are read-only, servers are neither added nor deleted by
hand, every action asks first and is audited), and no secret reaches a page."""

import pytest
from django.contrib.messages import get_messages
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.models import AuditEvent
from billing.models import Payment
from billing.tests.factories import PaymentFactory
from billing.tests.stripe_fakes import stripe_object
from hosting.admin_links import admin_url
from servers.models import Server
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
