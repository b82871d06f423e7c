"""Register the panel's webhook URL with Stripe, subscribed to the events the webhook view
handles, at the API version the SDK is pinned to."""

import hashlib

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator

from billing.gateways.stripe import API_VERSION, WEBHOOK_EVENTS, as_gateway_error, make_client


class Command(BaseCommand):
    help = "Create the Stripe webhook endpoint for URL and print its signing secret once."

    def add_arguments(self, parser):
        parser.add_argument("url", help="e.g. https://panel.example.com/billing/webhooks/stripe/")

    def handle(self, *args, url: str, **options):
        if not settings.STRIPE_SECRET_KEY:
            raise CommandError(
                "STRIPE_SECRET_KEY is not set; the simulator signs its own events and needs "
                "no webhook endpoint."
            )
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            raise CommandError(f"Not a URL: {url!r}") from None
        client = make_client(settings.STRIPE_SECRET_KEY)
        try:
            existing = self.find(client, url)
            if existing is not None:
                self.report_existing(existing)
                return
            endpoint = client.v1.webhook_endpoints.create(
                {
                    "url": url,
                    "enabled_events": list(WEBHOOK_EVENTS),
                    "api_version": API_VERSION,
                    "description": "Hosting panel",
                },
                # A retried run within Stripe's idempotency window gets the same endpoint.
                {"idempotency_key": f"webhook-endpoint-{hashlib.sha256(url.encode()).hexdigest()}"},
            )
        except stripe.StripeError as exc:
            raise CommandError(str(as_gateway_error(exc, "set up the webhook endpoint"))) from exc
        self.stdout.write(self.style.SUCCESS(f"Created webhook endpoint {endpoint.id} for {url}"))
        self.stdout.write(f"Signing secret: {endpoint.secret}")
        self.stdout.write(
            "Put it in STRIPE_WEBHOOK_SECRET now: Stripe shows it only this once "
            "(the dashboard can reveal or roll it later)."
        )

    @staticmethod
    def find(client: stripe.StripeClient, url: str):
        listing = client.v1.webhook_endpoints.list({"limit": 100})
        return next((e for e in listing.auto_paging_iter() if e.url == url), None)

    def report_existing(self, endpoint) -> None:
        self.stdout.write(
            f"A webhook endpoint for {endpoint.url} already exists: {endpoint.id}. "
            "No second one was created."
        )
        self.stdout.write(
            "Stripe shows a signing secret only at creation; if STRIPE_WEBHOOK_SECRET does not "
            "hold it, reveal it in the Stripe dashboard."
        )
        enabled = getattr(endpoint, "enabled_events", None) or []
        missing = sorted(set(WEBHOOK_EVENTS) - set(enabled))
        if missing and "*" not in enabled:
            self.stdout.write(self.style.WARNING(f"It is not subscribed to: {', '.join(missing)}"))
        version = getattr(endpoint, "api_version", None)
        if version and version != API_VERSION:
            self.stdout.write(
                self.style.WARNING(
                    f"It uses API version {version}; this panel expects {API_VERSION}."
                )
            )
