from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.formats import date_format
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from billing import selectors, services, simulator, subscriptions, webhooks
from billing.gateways import GatewayError, get_gateway


@login_required
@require_http_methods(["GET", "POST"])
def checkout(request, plan_slug):
    """GET (after logging in from a plan card) asks to confirm; POST starts paying."""
    plan = selectors.plan_on_sale(plan_slug)
    if request.method == "GET":
        if refusal := services.checkout_refusal(user=request.user):
            messages.warning(request, refusal)
            return redirect("dashboard")
        return render(request, "billing/checkout_confirm.html", {"plan": plan})
    try:
        payment = services.checkout_start(user=request.user, plan=plan)
    except services.CheckoutRefused as exc:
        messages.warning(request, str(exc))
        return redirect("dashboard")
    except GatewayError:
        messages.error(
            request, "We could not reach our payment provider. Nothing was charged; try again."
        )
        return redirect("pricing")
    # 303: the browser follows with a GET, whatever it POSTed here.
    response = HttpResponseRedirect(payment.checkout_url)
    response.status_code = 303
    return response


@login_required
def checkout_done(request, payment_uuid):
    """Where Stripe sends the customer after paying: on to the server once it exists.
    htmx polls this page until then."""
    payment = selectors.payment_for(request.user, payment_uuid)
    server = getattr(payment, "server", None)
    if server is not None:
        url = reverse("servers:detail", args=[server.uuid])
        if request.headers.get("HX-Request") == "true":
            response = HttpResponse(status=204)
            response["HX-Redirect"] = url
            return response
        return redirect(url)
    return render(request, "billing/checkout_done.html", {"payment": payment})


@login_required
def checkout_cancelled(request, payment_uuid):
    payment = selectors.payment_for(request.user, payment_uuid)
    return render(request, "billing/checkout_cancelled.html", {"payment": payment})


@login_required
def payments(request):
    """The billing page: the subscription, what can be done about it, and every invoice."""
    return render(request, "billing/payments.html", selectors.billing_page_for(request.user))


@login_required
def payment_detail(request, payment_uuid):
    payment = selectors.payment_for(request.user, payment_uuid)
    return render(request, "billing/payment_detail.html", {"payment": payment})


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """Stripe's events. 400 with a short reason for anything not genuine or not shaped
    like an event (nothing is stored); 200 once stored; 5xx asks Stripe to redeliver."""
    try:
        event = webhooks.stripe_event_verify(
            body=request.body, signature=request.headers.get("Stripe-Signature", "")
        )
    except webhooks.WebhookRejected as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    outcome = webhooks.stripe_event_receive(event=event)
    return JsonResponse({"status": outcome.value}, status=outcome.http_status)


@login_required
@require_http_methods(["GET", "POST"])
def simulator_checkout(request, session_id):
    """The offline stand-in for Stripe Checkout (only without STRIPE_SECRET_KEY)."""
    if settings.STRIPE_SECRET_KEY:
        raise Http404("The checkout simulator is off when Stripe is configured.")
    session = selectors.simulated_session_for(request.user, session_id)
    if request.method == "GET":
        return render(request, "billing/simulator_checkout.html", {"session": session})
    action = request.POST.get("action")
    if action == "cancel":
        return redirect(session.cancel_url)
    if action not in ("pay", "decline"):
        messages.error(request, "Choose Pay or Decline.")
        return redirect(request.path)
    if session.status != "open":
        messages.info(request, "This checkout is already finished.")
        return redirect(session.success_url)
    try:
        simulator.checkout_complete(session=session, decline=action == "decline")
    except simulator.DeliveryFailed as exc:
        messages.error(request, str(exc))
        return redirect(request.path)
    return redirect(session.success_url)


@login_required
@require_POST
def billing_portal(request):
    """To Stripe's billing portal (the simulator's page offline) to update the card."""
    subscription = selectors.current_subscription_for(request.user)
    if subscription is None:
        messages.info(
            request, "You have no subscription yet, so there is no payment method to update."
        )
        return redirect("billing:payments")
    try:
        url = get_gateway().billing_portal_url(
            customer_id=subscription.stripe_customer_id,
            subscription_id=subscription.stripe_subscription_id,
            return_url=settings.SITE_URL.rstrip("/") + reverse("billing:payments"),
        )
    except GatewayError:
        messages.error(
            request,
            "We could not reach our payment provider, so nothing was changed. "
            "Try again in a few minutes.",
        )
        return redirect("billing:payments")
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


@login_required
@require_http_methods(["GET", "POST"])
def subscription_renewal(request, subscription_pk):
    """GET asks to confirm what will happen; POST sets cancel at period end (`cancel=1`),
    or resumes (`cancel=0`)."""
    subscription = selectors.subscription_for(request.user, subscription_pk)
    if selectors.subscription_ended(subscription):
        messages.info(request, "This subscription has already ended: nothing to change.")
        return redirect("billing:payments")
    if request.method == "GET":
        return render(
            request,
            "billing/subscription_renewal_confirm.html",
            {
                "subscription": subscription,
                "cancel": not subscription.cancel_at_period_end,
                "deletion_grace_days": settings.DELETION_GRACE_DAYS,
            },
        )
    choice = request.POST.get("cancel")
    if choice not in ("0", "1"):
        messages.error(request, "Choose to cancel at the end of the period or to resume.")
        return redirect("billing:payments")
    cancel = choice == "1"
    try:
        changed = subscriptions.subscription_renewal_set(
            subscription=subscription, cancel=cancel, actor=request.user, request=request
        )
    except subscriptions.SubscriptionRefused as exc:
        messages.error(request, f"{exc} Nothing was changed.")
        return redirect("billing:payments")
    except GatewayError:
        messages.error(
            request,
            "We could not change your subscription at our payment provider, so nothing was "
            "changed. Try again in a few minutes.",
        )
        return redirect("billing:payments")
    subscription.refresh_from_db()
    ends = (
        date_format(subscription.current_period_end, "M j, Y")
        if subscription.current_period_end
        else "the end of the current period"
    )
    if not changed:
        messages.info(request, "Your subscription was already set that way: nothing changed.")
    elif cancel:
        messages.success(
            request,
            f"Your subscription will end on {ends}. Your server keeps running until then, "
            "and you can resume the subscription before that.",
        )
    else:
        messages.success(
            request,
            f"Your subscription renews again on {ends} for {subscription.plan.price_display}.",
        )
    return redirect("billing:payments")
