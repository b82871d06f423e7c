from django.db.models import Case, IntegerField, Value, When
from django.shortcuts import get_object_or_404

from billing.models import (
    OVERDUE_STATUSES,
    Payment,
    Plan,
    SimulatedCheckoutSession,
    Subscription,
)
from billing.subscriptions import ENDED_STATUSES
from hosting.db import instances, json_document
from servers.models import ENDED_SERVER_STATUSES, Server, joined_server_secrets


def active_plans():
    """The plans on sale, cheapest first: one query."""
    return list(Plan.objects.filter(is_active=True).order_by("sort_order", "price_cents"))


def plan_on_sale(slug: str) -> Plan:
    return get_object_or_404(Plan, slug=slug, is_active=True)


# A payment is shown with its plan, the server it bought and the server it renews: their
# secrets are never loaded (each would be decrypted, for every row).
_NOT_SHOWN = joined_server_secrets("server") + joined_server_secrets("renews")


def payment_for(user, payment_uuid) -> Payment:
    """One of the customer's payments, or 404 (another customer's too: no existence leak)."""
    return get_object_or_404(
        Payment.objects.select_related("plan", "server", "renews").defer(*_NOT_SHOWN),
        uuid=payment_uuid,
        user=user,
    )


def current_subscription_for(user) -> Subscription | None:
    """The subscription the billing page is about: the one whose server is not ended, else
    the newest; with plan and server: one query."""
    server_ended = Case(
        When(server__status__in=ENDED_SERVER_STATUSES, then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )
    return (
        Subscription.objects.filter(user=user)
        .select_related("plan", "server")
        .defer(*joined_server_secrets("server"))
        .order_by(server_ended, "-created_at", "-pk")
        .first()
    )


def subscription_for(user, subscription_pk: int) -> Subscription:
    """One of the customer's subscriptions, or 404 (another customer's too: no existence
    leak)."""
    return get_object_or_404(
        Subscription.objects.select_related("plan", "server").defer(
            *joined_server_secrets("server")
        ),
        pk=subscription_pk,
        user=user,
    )


def subscription_ended(subscription: Subscription) -> bool:
    """Over for good: Stripe ended it, or we acted on its end. Nothing to cancel or resume."""
    return subscription.status in ENDED_STATUSES or subscription.canceled_at is not None


# The billing page in one query: the subscription the page is about (the one whose
# server is not ended, else the newest) with its plan and server, and every payment,
# newest first, with its plan's name and the server it bought or renews. Only the columns
# shown: no server secret is read.
BILLING_PAGE_SQL = """
WITH subscription AS (
    SELECT b.id, b.status, b.current_period_end, b.cancel_at_period_end, b.failure_reason,
           b.pay_url, b.past_due_since, b.suspended_at, b.suspended_by_staff, b.canceled_at,
           b.delete_after, b.created_at, b.plan_id, b.server_id
    FROM billing_subscription b JOIN servers_server s ON s.id = b.server_id
    WHERE b.user_id = %(user)s
    ORDER BY s.status = ANY(%(ended)s), b.created_at DESC, b.id DESC LIMIT 1
)
SELECT json_build_object(
    'subscription', (SELECT row_to_json(subscription) FROM subscription),
    'plan', (
        SELECT row_to_json(p) FROM (
            SELECT id, name, price_cents, currency FROM billing_plan
            WHERE id = (SELECT plan_id FROM subscription)
        ) p
    ),
    'server', (
        SELECT row_to_json(s) FROM (
            SELECT id, uuid, name, status FROM servers_server
            WHERE id = (SELECT server_id FROM subscription)
        ) s
    ),
    'payments', (
        SELECT coalesce(json_agg(json_build_object(
            'payment', json_build_object(
                'id', pay.id, 'uuid', pay.uuid, 'kind', pay.kind, 'status', pay.status,
                'amount_cents', pay.amount_cents, 'currency', pay.currency,
                'created_at', pay.created_at, 'refunded_at', pay.refunded_at,
                'disputed_at', pay.disputed_at, 'plan_id', pay.plan_id,
                'renews_id', pay.renews_id
            ),
            'plan', json_build_object('id', plan.id, 'name', plan.name),
            'server', CASE WHEN bought.id IS NOT NULL THEN
                json_build_object('id', bought.id, 'uuid', bought.uuid, 'name', bought.name) END,
            'renews', CASE WHEN renews.id IS NOT NULL THEN
                json_build_object('id', renews.id, 'uuid', renews.uuid, 'name', renews.name) END
        ) ORDER BY pay.created_at DESC, pay.id DESC), '[]')
        FROM billing_payment pay
        JOIN billing_plan plan ON plan.id = pay.plan_id
        LEFT JOIN servers_server bought ON bought.payment_id = pay.id
        LEFT JOIN servers_server renews ON renews.id = pay.renews_id
        WHERE pay.user_id = %(user)s
    )
)::text
"""


def _payment_row(row: dict) -> Payment:
    """A payment of BILLING_PAGE_SQL with its plan (name only) and servers attached."""
    (payment,) = instances(Payment, [row["payment"]])
    (payment.plan,) = instances(Plan, [row["plan"]])
    payment.renews = instances(Server, [row["renews"]])[0] if row["renews"] else None
    if row["server"]:
        (payment.server,) = instances(Server, [row["server"]])
    else:
        # Known to have none: reading payment.server must not ask the database again.
        Payment.server.related.set_cached_value(payment, None)
    return payment


def billing_page_for(user) -> dict:
    """The /billing/ page: the current subscription and every payment, one query
    (BILLING_PAGE_SQL) whatever the numbers."""
    document = json_document(BILLING_PAGE_SQL, {"user": user.pk, "ended": ENDED_SERVER_STATUSES})
    page = {"subscription": None, "payments": [_payment_row(row) for row in document["payments"]]}
    if document["subscription"] is not None:
        (subscription,) = instances(Subscription, [document["subscription"]])
        (subscription.plan,) = instances(Plan, [document["plan"]])
        (subscription.server,) = instances(Server, [document["server"]])
        page["subscription"] = subscription
        page["subscription_ended"] = subscription_ended(subscription)
        page["subscription_overdue"] = subscription.status in OVERDUE_STATUSES
        # Stripe's invoice page (or the simulator's): shown as a link only when it is one.
        pay_url = subscription.pay_url
        page["pay_url"] = pay_url if pay_url.startswith(("https://", "http://")) else ""
    return page


def simulated_session_for(user, session_id: str) -> SimulatedCheckoutSession:
    return get_object_or_404(
        SimulatedCheckoutSession.objects.select_related("plan"),
        session_id=session_id,
        customer_email__iexact=user.email,
    )
