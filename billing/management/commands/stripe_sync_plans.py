"""Give every plan a monthly Stripe Price (and its Product) and store the price id on the
plan. Prices are found again by lookup key, so the command is safe to run any number of
times: a run with nothing to change changes nothing."""

import hashlib

import stripe
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from billing.gateways.stripe import as_gateway_error, make_client
from billing.models import Plan


def lookup_key(plan: Plan) -> str:
    return f"hosting-{plan.slug}-monthly"


class Command(BaseCommand):
    help = "Create or update the Stripe Product and monthly Price of every plan."

    def handle(self, *args, **options):
        if not settings.STRIPE_SECRET_KEY:
            raise CommandError(
                "STRIPE_SECRET_KEY is not set; the simulator needs no prices, so there is "
                "nothing to sync."
            )
        client = make_client(settings.STRIPE_SECRET_KEY)
        changed = 0  # plans
        for plan in Plan.objects.order_by("sort_order", "pk"):
            try:
                changed += self.sync(client, plan)
            except stripe.StripeError as exc:
                raise CommandError(
                    f"{plan.slug}: {as_gateway_error(exc, 'sync the plan')}"
                ) from exc
        if changed:
            self.stdout.write(self.style.SUCCESS(f"{changed} plan(s) changed."))
        else:
            self.stdout.write("Every plan is already in sync; nothing changed.")

    def sync(self, client: stripe.StripeClient, plan: Plan) -> bool:
        """Bring one plan's Product and Price in line; True when anything changed."""
        key = lookup_key(plan)
        found = client.v1.prices.list({"lookup_keys": [key], "expand": ["data.product"]}).data
        price = found[0] if found else None
        changes = 0

        if price is None:
            # The product is created with the price, in one call, so a failure can never
            # leave a product with no price behind.
            price = client.v1.prices.create(
                {
                    **self.price_params(plan),
                    "product_data": {"name": plan.name, "metadata": {"plan": plan.slug}},
                },
                {"idempotency_key": f"price-{plan.slug}-{plan.price_cents}{plan.currency}-new"},
            )
            self.stdout.write(f"{plan.slug}: created product and price {price.id}")
            changes += 1
        else:
            product = price.product
            if product.name != plan.name:
                name_digest = hashlib.sha256(plan.name.encode()).hexdigest()[:12]
                client.v1.products.update(
                    product.id,
                    {"name": plan.name},
                    {"idempotency_key": f"product-{plan.slug}-name-{name_digest}"},
                )
                self.stdout.write(f"{plan.slug}: renamed product {product.id} to {plan.name!r}")
                changes += 1
            if not self.matches(price, plan):
                # A price's amount is immutable: make a new one and move the lookup key to it.
                # The old price's id is in the key, so going back to an earlier amount later
                # is a new request, not a replay of the first one.
                old_id = price.id
                price = client.v1.prices.create(
                    {**self.price_params(plan), "product": product.id, "transfer_lookup_key": True},
                    {
                        "idempotency_key": (
                            f"price-{plan.slug}-{plan.price_cents}{plan.currency}-from-{old_id}"
                        )
                    },
                )
                self.stdout.write(
                    f"{plan.slug}: new price {price.id} for {plan.price_display} "
                    f"(replaces {old_id})"
                )
                changes += 1

        if plan.stripe_price_id != price.id:
            plan.stripe_price_id = price.id
            plan.save(update_fields=["stripe_price_id"])
            self.stdout.write(f"{plan.slug}: plan now uses {price.id}")
            changes += 1
        if not changes:
            self.stdout.write(f"{plan.slug}: unchanged ({price.id})")
        return changes > 0

    @staticmethod
    def price_params(plan: Plan) -> dict:
        return {
            "currency": plan.currency,
            "unit_amount": plan.price_cents,
            "recurring": {"interval": "month"},
            "lookup_key": lookup_key(plan),
            "nickname": f"{plan.name} monthly",
        }

    @staticmethod
    def matches(price, plan: Plan) -> bool:
        recurring = price.recurring
        return (
            price.active
            and price.unit_amount == plan.price_cents
            and price.currency == plan.currency
            and recurring is not None
            and recurring.interval == "month"
            and recurring.interval_count == 1
        )
