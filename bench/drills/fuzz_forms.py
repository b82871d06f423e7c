"""The fuzz drill's catalogue: every customer-facing form, where it posts, the plausible
value of each of its fields (hypothesis mixes them with junk: fuzz_inputs.py), whose
browser sends it, and the world they act on (a customer who owns a server, a deployment,
a domain, a ticket and a subscription; another whose checkout the webhook's events are
about)."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from allauth.account.forms import default_token_generator
from allauth.account.utils import user_pk_to_url_str
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import strategies as st
from hypothesis.provisional import domains

from bench.drills.customers import PASSWORD, Customer
from bench.drills.fuzz_inputs import form_bodies, short_text, webhook_bodies
from billing.gateways import simulated_shapes as shapes
from billing.models import Plan, SimulatedCheckoutSession
from billing.simulator_views import ACTIONS as SIMULATOR_ACTIONS
from servers import actions
from servers import deployments as deployment_services
from servers import domains as domain_services
from servers.models import Deployment, Domain, ServerAction
from support.models import TicketPriority

STRONG_PASSWORDS = st.sampled_from(["Correct-horse-battery-42", "Another-long-Passw0rd"])


@dataclass
class World:
    owner: Customer  # owns a server, a deployment, a domain, a ticket, a subscription
    payer: Customer  # the customer the webhook's events are about


@dataclass
class Ctx:
    world: World
    subject: Customer  # whose form it is: the owner, or a customer of the form's own


@dataclass
class Form:
    name: str
    path: Callable[[Ctx, Client], str]
    fields: Callable[[Ctx], dict[str, st.SearchStrategy]] = lambda ctx: {}
    # "owner": the world's owner, logged in; "own": a customer made for this form alone,
    # logged in; "visitor": a new anonymous browser for each input (the form's customer
    # is the one whose email or reset link it uses).
    visitor: str = "owner"
    method: str = "POST"
    bodies: Callable[[Ctx], st.SearchStrategy] | None = None
    # Answers that mean "not now, ask again" rather than a crash: the webhook's 503.
    deferred: frozenset[int] = frozenset()


# -- the forms ------------------------------------------------------------------------


def _server(ctx: Ctx, path: str = "") -> str:
    return f"/servers/{ctx.world.owner.server.uuid}/{path}"


def _deployment(ctx: Ctx, action: str) -> str:
    latest = Deployment.objects.filter(server=ctx.world.owner.server).latest("created_at")
    return _server(ctx, f"deployments/{latest.uuid}/{action}/")


def _waiting_deployment(ctx: Ctx, action: str) -> str:
    """The owner's waiting deployment; one is queued first when a cancel ended the last."""
    server = ctx.world.owner.server
    waiting = Deployment.objects.filter(
        server=server, status__in=deployment_services.ACTIVE_STATUSES
    ).first()
    if waiting is None:
        waiting = deployment_services.deployment_create(
            server_id=server.pk, git_url="https://github.com/example/app.git", branch="main"
        )
    return _server(ctx, f"deployments/{waiting.uuid}/{action}/")


def _domain(ctx: Ctx, action: str) -> str:
    """The owner's first domain; one is attached first when a removal took the last."""
    server = ctx.world.owner.server
    domain = Domain.objects.filter(server=server).order_by("pk").first()
    if domain is None:
        domain = domain_services.domain_add(
            server_id=server.pk, name=f"again-{secrets.token_hex(4)}.example.org"
        )
    return _server(ctx, f"domains/{domain.uuid}/{action}/")


def _ticket(ctx: Ctx, action: str = "") -> str:
    ticket = ctx.world.owner.ticket
    return f"/support/tickets/{ticket.uuid}/{action + '/' if action else ''}"


def _reset_form(ctx: Ctx, client: Client) -> str:
    """Opens the customer's emailed reset link, as they would; allauth then sends the
    browser on to the form's own URL, with the key kept in the session."""
    user = ctx.subject.user
    user.refresh_from_db()  # the key is made from the current password
    link = reverse(
        "account_reset_password_from_key",
        kwargs={
            "uidb36": user_pk_to_url_str(user),
            "key": default_token_generator.make_token(user),
        },
    )
    response = client.get(link)
    if response.status_code != 302:
        raise RuntimeError(f"the reset link answered {response.status_code}")
    return response["Location"]


def _checkout(ctx: Ctx) -> st.SearchStrategy:
    """Any body, to the checkout of a plan on sale, or of a slug that is none."""
    slugs = st.one_of(
        st.sampled_from(list(Plan.objects.values_list("slug", flat=True))),
        st.from_regex(r"[-a-zA-Z0-9_]{1,40}", fullmatch=True),
    )
    return st.builds(
        lambda slug, body: dataclasses.replace(body, path=f"/billing/checkout/{slug}/"),
        slugs,
        form_bodies({}),
    )


def _simulator_session(ctx: Ctx, client: Client) -> str:
    return f"/billing/simulator/checkout/{ctx.world.owner.payment.stripe_checkout_session_id}/"


def _simulator_subscription(ctx: Ctx, client: Client) -> str:
    subscription = ctx.world.owner.subscription.stripe_subscription_id
    return f"/billing/simulator/subscriptions/{subscription}/"


def _webhook_events(ctx: Ctx) -> st.SearchStrategy:
    return webhook_bodies(webhook_templates(ctx.world.payer))


def _emails(ctx: Ctx) -> st.SearchStrategy:
    return st.one_of(st.emails(), st.just(ctx.subject.email), st.just(ctx.subject.email.upper()))


FORMS = [
    # allauth, for a visitor
    Form(
        "login",
        lambda ctx, client: "/accounts/login/",
        lambda ctx: {
            "login": _emails(ctx),
            "password": st.one_of(st.just(PASSWORD), short_text),
            "remember": st.sampled_from(["on", ""]),
        },
        visitor="visitor",
    ),
    Form(
        "signup",
        lambda ctx, client: "/accounts/signup/",
        lambda ctx: {
            "email": _emails(ctx),
            "password1": STRONG_PASSWORDS,
            "password2": STRONG_PASSWORDS,
        },
        visitor="visitor",
    ),
    Form(
        "password reset",
        lambda ctx, client: "/accounts/password/reset/",
        lambda ctx: {"email": _emails(ctx)},
        visitor="visitor",
    ),
    Form(
        "new password from a reset link",
        _reset_form,
        lambda ctx: {"password1": STRONG_PASSWORDS, "password2": STRONG_PASSWORDS},
        visitor="visitor",
    ),
    # the customer's account
    Form("profile", lambda ctx, client: "/accounts/", lambda ctx: {"name": short_text}),
    Form(
        "email addresses",
        lambda ctx, client: "/accounts/email/",
        lambda ctx: {
            "email": _emails(ctx),
            "action_add": st.just(""),
            "action_primary": st.just(""),
            "action_send": st.just(""),
            "action_remove": st.just(""),
        },
        visitor="own",
    ),
    Form(
        "password change",
        lambda ctx, client: "/accounts/password/change/",
        lambda ctx: {
            "oldpassword": st.one_of(st.just(PASSWORD), short_text),
            "password1": STRONG_PASSWORDS,
            "password2": STRONG_PASSWORDS,
        },
        visitor="own",
    ),
    Form(
        "reauthenticate",
        lambda ctx, client: "/accounts/reauthenticate/",
        lambda ctx: {"password": st.one_of(st.just(PASSWORD), short_text)},
        visitor="own",
    ),
    Form(
        "two-factor activation",
        lambda ctx, client: "/accounts/2fa/totp/activate/",
        lambda ctx: {"code": st.from_regex(r"\d{6}", fullmatch=True)},
        visitor="own",
    ),
    # the server
    Form(
        "power",
        lambda ctx, client: _server(ctx, "power/"),
        lambda ctx: {"action": st.sampled_from(["start", "stop", "reboot"])},
    ),
    Form("password reveal", lambda ctx, client: _server(ctx, "password/")),
    Form("server password reset", lambda ctx, client: _server(ctx, "password/reset/")),
    Form(
        "deploy",
        lambda ctx, client: _server(ctx, "deployments/"),
        lambda ctx: {
            "git_url": st.sampled_from(
                [
                    "https://github.com/example/app.git",
                    "git@github.com:example/app.git",
                    "ssh://git@git.example.org/team/app.git",
                ]
            ),
            "branch": st.sampled_from(["main", "release/2.0", "feature-x"]),
            "subdirectory": st.sampled_from(["", "app", "services/web"]),
        },
    ),
    Form("deployment cancel", lambda ctx, client: _waiting_deployment(ctx, "cancel")),
    Form("deployment redeploy", lambda ctx, client: _deployment(ctx, "redeploy")),
    Form(
        "domain",
        lambda ctx, client: _server(ctx, "domains/"),
        lambda ctx: {
            "name": st.one_of(
                domains(), st.from_regex(r"[a-z0-9]{1,12}\.example\.org", fullmatch=True)
            )
        },
    ),
    Form("domain check", lambda ctx, client: _domain(ctx, "check")),
    Form("domain remove", lambda ctx, client: _domain(ctx, "remove")),
    # support
    Form(
        "new ticket",
        lambda ctx, client: "/support/tickets/new/",
        lambda ctx: {
            "subject": st.sampled_from(["Site down", "Billing question"]),
            "description": st.sampled_from(["It stopped this morning.", "Why was I charged?"]),
            "priority": st.sampled_from(TicketPriority.values),
            # none, or the owner's server, which is not this customer's: a form error
            "server": st.sampled_from(["", str(ctx.world.owner.server.pk)]),
        },
        visitor="own",  # the owner's hourly allowance of tickets and replies is for replies
    ),
    Form(
        "ticket reply",
        lambda ctx, client: _ticket(ctx),
        lambda ctx: {"body": st.sampled_from(["Any news?", "Thanks, it works."])},
    ),
    Form("ticket close", lambda ctx, client: _ticket(ctx, "close")),
    Form("ticket reopen", lambda ctx, client: _ticket(ctx, "reopen")),
    Form(
        "ticket search",
        lambda ctx, client: "/support/",
        lambda ctx: {"status": st.sampled_from(["", "open", "closed"]), "q": short_text},
        method="GET",
    ),
    Form(
        "activity page",
        lambda ctx, client: "/activity/",
        lambda ctx: {"page": st.integers(-5, 50).map(str)},
        method="GET",
    ),
    Form(
        "deployment log",
        lambda ctx, client: _deployment(ctx, "log"),
        lambda ctx: {
            "after": st.integers(-5, 50).map(str),
            "status": st.sampled_from(Deployment.Status.values),
        },
        method="GET",
    ),
    # billing
    Form("checkout", lambda ctx, client: "/billing/checkout/basic/", bodies=_checkout),  # drawn
    Form(
        "subscription renewal",
        lambda ctx, client: f"/billing/subscriptions/{ctx.world.owner.subscription.pk}/renewal/",
        lambda ctx: {"cancel": st.sampled_from(["0", "1"])},
    ),
    Form("payment method", lambda ctx, client: "/billing/payment-method/"),
    Form(
        "simulated checkout",
        _simulator_session,
        lambda ctx: {"action": st.sampled_from(["pay", "decline", "cancel"])},
    ),
    Form(
        "simulated subscription",
        _simulator_subscription,
        lambda ctx: {"action": st.sampled_from(sorted(SIMULATOR_ACTIONS))},
    ),
    # Last: its accepted events may refund the payer, who is no one else's concern.
    Form(
        "Stripe webhook",
        lambda ctx, client: "/billing/webhooks/stripe/",
        visitor="visitor",
        bodies=_webhook_events,
        deferred=frozenset({503}),
    ),
]


def webhook_templates(payer: Customer) -> list[dict]:
    """One genuine event of each type the webhook handles (and one it ignores), about the
    payer's checkout, shaped as the simulator shapes Stripe's."""
    row = SimulatedCheckoutSession.objects.select_related("plan").get(
        session_id=payer.payment.stripe_checkout_session_id
    )
    session = shapes.session_object(row)
    invoice = shapes.invoice_object(row)
    subscription = shapes.subscription_object(row)
    charge = shapes.charge_object(row)
    refunded = {**charge, "refunded": True, "amount_refunded": charge.get("amount")}
    dispute = {
        "id": "dp_fuzz",
        "object": "dispute",
        "charge": charge["id"],
        "payment_intent": charge.get("payment_intent"),
        "reason": "fraudulent",
        "status": "needs_response",
    }
    objects = [
        ("checkout.session.completed", session),
        ("checkout.session.async_payment_succeeded", session),
        ("checkout.session.async_payment_failed", session),
        ("invoice.paid", invoice),
        ("invoice.payment_failed", invoice),
        ("charge.refunded", refunded),
        ("customer.subscription.updated", subscription),
        ("customer.subscription.deleted", subscription),
        ("charge.dispute.created", dispute),
        ("customer.created", {"id": "cus_fuzz", "object": "customer"}),
    ]
    created = shapes.unix(timezone.now())
    return [shapes.event(kind, obj, created=created) for kind, obj in objects]


NO_WORKER = "Not run: the fuzz drill runs no worker."


def settle(owner: Customer) -> None:
    """Between two forms, what a worker would have finished by then: the owner's waiting
    deployments and open actions end (failed: none was run), so each form finds the
    server idle, and its accepted path open, rather than "a deployment is running"."""
    server = owner.server
    for deployment_id in Deployment.objects.filter(
        server=server, status__in=deployment_services.ACTIVE_STATUSES
    ).values_list("pk", flat=True):
        deployment_services.deployment_fail(deployment_id=deployment_id, reason=NO_WORKER)
    for action_id in ServerAction.objects.filter(
        server=server, status=ServerAction.Status.IN_PROGRESS
    ).values_list("pk", flat=True):
        actions.server_action_fail(action_id=action_id, reason=NO_WORKER)
