"""The offline checkout's Pay and Decline buttons: the events Stripe would send, signed
with STRIPE_WEBHOOK_SECRET and delivered over HTTP to this site's own webhook (SITE_URL),
so everything from the webhook on runs exactly as it does with Stripe."""

import json

import requests
from django.conf import settings
from django.urls import reverse

from billing.gateways.simulated import SimulatedGateway, sign
from billing.models import SimulatedCheckoutSession


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
