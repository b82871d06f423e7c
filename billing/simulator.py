"""The offline Stripe's deliveries. The checkout page's Pay and Decline post their events
over HTTP to this site's own webhook (SITE_URL); everything else the simulator does
(renewals, a declined card, a cancellation) is owed as `SimulatedEvent` rows and
delivered by `events_deliver`, signed with STRIPE_WEBHOOK_SECRET and verified by the
webhook's own code, so everything from the webhook on runs exactly as it does with
Stripe."""

import json
import logging

import requests
from django.conf import settings
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from billing import webhooks
from billing.gateways import simulated
from billing.gateways.simulated import SimulatedGateway, sign
from billing.models import SimulatedCheckoutSession, SimulatedEvent

logger = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """Said to the person testing: the webhook could not be reached or refused an event."""


def checkout_complete(*, session: SimulatedCheckoutSession, decline: bool = False) -> None:
    url = settings.SITE_URL.rstrip("/") + reverse("billing:stripe_webhook")
    for event in SimulatedGateway().complete(session.session_id, decline=decline):
        body = json.dumps(event).encode()
        try:
            response = requests.post(
                url,
                data=body,
                headers={"Content-Type": "application/json", "Stripe-Signature": sign(body)},
                timeout=30,
            )
        except requests.RequestException as exc:
            raise DeliveryFailed(
                f"The simulator could not reach this site's webhook at {url} "
                f"({type(exc).__name__}). Is SITE_URL this site's address?"
            ) from exc
        if response.status_code >= 300:
            raise DeliveryFailed(
                f"The webhook answered {response.status_code} to {event['type']}: "
                f"{response.text[:200]}"
            )


def events_deliver(*, raise_on_failure: bool = True) -> int:
    """Deliver the owed events, oldest first, each signed and handed to the webhook's
    verification and handling; stop at the first the webhook does not accept (it stays
    owed, and so do those after it). Two deliverers at once are harmless: the webhook
    stores each event id once. Returns how many were delivered."""
    delivered = 0
    pending = SimulatedEvent.objects.filter(delivered_at__isnull=True).order_by("pk")
    for event_pk, payload in pending.values_list("pk", "payload"):
        body = json.dumps(payload).encode()
        try:
            event = webhooks.stripe_event_verify(body=body, signature=sign(body))
            outcome = webhooks.stripe_event_receive(event=event)
            error = "" if outcome.http_status < 300 else f"the webhook answered {outcome.value}"
        except webhooks.WebhookRejected as exc:
            error = f"the webhook refused it: {exc}"
        owed = SimulatedEvent.objects.filter(pk=event_pk)
        if error:
            owed.update(attempts=F("attempts") + 1, error=error)
            logger.warning("Simulated event %s not delivered: %s", payload["id"], error)
            if raise_on_failure:
                raise DeliveryFailed(f"{payload['type']}: {error}")
            return delivered
        owed.update(delivered_at=timezone.now(), error="")
        delivered += 1
    return delivered


def subscriptions_renew() -> int:
    """The simulated subscriptions whose period has ended renew (or end, when set to),
    and the webhook hears of it. Returns how many renewed or ended."""
    renewed = sum(simulated.subscription_renew(pk) for pk in simulated.renewals_due())
    events_deliver()
    return renewed
