"""Helpers for the purchase tests: a customer's checkout and Stripe's events, delivered
signed through the real webhook view."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from billing.models import Payment
from billing.tests.stripe_fakes import signed, stripe_object

WEBHOOK = "/billing/webhooks/stripe/"


def deliver(client, event: dict, *, secret: str | None = None, timestamp: int | None = None):
    """POST `event` to the webhook as Stripe would, signed with STRIPE_WEBHOOK_SECRET."""
    body, header = signed(event, secret or settings.STRIPE_WEBHOOK_SECRET, timestamp=timestamp)
    return client.post(
        WEBHOOK, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )


def start_checkout(client, user, plan_slug: str = "basic") -> Payment:
    """The customer clicks a plan card; returns the pending payment."""
    client.force_login(user)
    response = client.post(reverse("billing:checkout", args=[plan_slug]))
    assert response.status_code == 303, response
    return Payment.objects.filter(user=user).latest("created_at")


def completed_event(session_id: str, payment_uuid: str) -> dict:
    """A `checkout.session.completed` event for a paid session of the payment."""
    session = stripe_object(
        "checkout.session",
        id=session_id,
        status="complete",
        payment_status="paid",
        client_reference_id=payment_uuid,
        metadata={"payment_uuid": payment_uuid},
    )
    return stripe_object("event", type="checkout.session.completed", data={"object": session})
