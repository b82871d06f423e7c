"""The simulator's stand-in for Stripe's billing portal and hosted invoice page: the
customer pays a declined renewal here, and whoever is trying the app out makes the next
renewal fail, or ends the period now instead of waiting for it."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from billing import simulator
from billing.gateways import GatewayError
from billing.gateways import simulated as simulated_stripe

ACTIONS = {
    "pay": "Paid. The webhook has been told.",
    "fail_next": "The next renewal will be declined.",
    "succeed_next": "The next renewal will be paid.",
    "renew_now": "The period ended now.",
}


@login_required
@require_http_methods(["GET", "POST"])
def subscription(request, subscription_id):
    if settings.STRIPE_SECRET_KEY:
        raise Http404("The billing simulator is off when Stripe is configured.")
    row = simulated_stripe.subscription_page_row(subscription_id)
    if row is None or row.customer_email.lower() != request.user.email.lower():
        raise Http404("No such subscription.")
    if request.method == "GET":
        invoices = list(row.renewal_invoices.order_by("-number"))
        return render(
            request,
            "billing/simulator_subscription.html",
            {
                "session": row,
                "subscription_id": subscription_id,
                "invoices": invoices,
                "open_invoices": [invoice for invoice in invoices if not invoice.paid],
                "period_seconds": settings.SIMULATED_BILLING_PERIOD_SECONDS,
            },
        )
    action = request.POST.get("action")
    if action not in ACTIONS:
        messages.error(request, "Choose one of the buttons.")
        return redirect(request.path)
    try:
        if action == "pay":
            done = simulated_stripe.invoices_open_pay(subscription_id) > 0
        elif action == "renew_now":
            done = simulated_stripe.subscription_renew_now(subscription_id)
        else:
            simulated_stripe.renewal_fail_next_set(subscription_id, fail=action == "fail_next")
            done = True
        simulator.events_deliver()
    except (GatewayError, simulator.DeliveryFailed) as exc:
        messages.error(request, f"The simulator could not do that: {exc}")
        return redirect(request.path)
    if done:
        messages.success(request, ACTIONS[action])
    else:
        messages.info(request, "Nothing to do: there was no open invoice, or it has ended.")
    return redirect(request.path)
