"""Checkout race: a customer clicks Buy many times at once (tabs, double clicks), pays every
Checkout Session a click sent them to, and Stripe's events for each payment reach the
real webhook view (once or twice each) from all those threads; then the jobs run. In
even trials every click is for one plan (the double click: one payment, one session);
in odd trials the clicks spread over the plans (the tabs: a click for another plan
expires the earlier open session; should two sessions be paid anyway, the second payment
is refunded). "extra payments" counts the sessions Stripe took beyond one per customer.

Each trial must end with exactly one server, running, built by one droplet creation
(POST /v2/droplets counted per server tag); one payment kept; every other payment that
Stripe took refunded exactly once (POST /v1/refunds counted per payment intent) with its
subscription cancelled; nothing marked paid that Stripe did not take; no 500. The
README's "Buying a server": a second payment for a customer who already has a server is
refunded automatically. DRILL_SEED=<n> replays a run's random choices.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections import Counter

from django.test import Client

from bench.drills import Outcome, Timer
from bench.drills.purchases import (
    PAYING_EVENTS,
    Answers,
    StripeAccount,
    customers_create,
    droplet_creates_per_tag,
    faked_cloud,
    fulfilments_per_payment,
    in_threads,
    jobs_settled,
    percentile,
    seeded_random,
)
from billing.models import Payment, Plan
from hosting.testing import run_jobs
from servers.models import Server
from servers.services import droplet_tag

NAME = "checkout race"


class Tab:
    """One browser tab of the customer's, and Stripe's connection that delivers the events
    of what is paid in it. Made once and used in every trial: a test client's first
    request loads the middleware (WhiteNoise scans the static files)."""

    def __init__(self):
        self.browser = Client(raise_request_exception=False)
        self.stripe = Client(raise_request_exception=False)
        self.plan, self.copies, self.order = "", [], random.Random()  # noqa: S311

    def open(self, cookies, plan: str, copies: list[int], seed: int) -> Tab:
        """The tab for this trial: the customer's session (one login, shared by every tab
        as a browser shares it), the plan it buys, how many times Stripe delivers each
        paying event, and the order they arrive in."""
        self.browser.cookies = copy.deepcopy(cookies)
        self.plan = plan
        self.copies = copies
        self.order = random.Random(seed)  # noqa: S311 - reproducible, not secret
        return self


def run(*, short: bool) -> Outcome:
    seed, rng = seeded_random()
    trials, clicks = (8, 10) if short else (100, 50)
    outcome = Outcome(figures={"seed": seed, "trials": trials, "clicks per trial": clicks})
    answers = Answers()
    totals: Counter[str] = Counter()
    race_seconds, trial_seconds = 0.0, []

    with faked_cloud() as (stripe, do), Timer() as wall:
        slugs = list(Plan.objects.filter(is_active=True).values_list("slug", flat=True))
        tabs = [Tab() for _ in range(clicks)]
        login = Client()
        for number, customer in enumerate(customers_create(trials, f"race{seed}")):
            login.force_login(customer)
            one_plan = rng.choice(slugs)
            for tab in tabs:
                tab.open(
                    login.cookies,
                    one_plan if number % 2 == 0 else rng.choice(slugs),
                    [rng.randint(1, 2) for _ in PAYING_EVENTS],
                    rng.randrange(2**32),
                )
            creates_before, paid_before = len(do.creates), totals["sessions paid"]
            with Timer() as trial:
                with Timer() as race:
                    errors = _race(tabs, stripe, answers)
                run_jobs(until=jobs_settled, timeout=600)
            race_seconds += race.seconds
            trial_seconds.append(trial.seconds)
            totals["droplets created"] += len(do.creates) - creates_before
            outcome.violations += [f"trial {number}: {error}" for error in errors[:3]]
            if not short and (number + 1) % 10 == 0:
                print(
                    f"   {number + 1} trials in {time.monotonic() - wall.start:.0f} s", flush=True
                )
            _trial_check(outcome, number, customer, stripe, do, totals, creates_before)
            kind = "one-plan" if number % 2 == 0 else "several-plan"
            totals[f"extra payments in {kind} trials"] += totals["sessions paid"] - paid_before - 1

    deliveries = sum(answers.webhook.values())
    outcome.figures.update(
        {
            "clicks": trials * clicks,
            "clicks sent to Stripe": answers.checkout[303],
            "clicks refused (a server already)": answers.checkout[302],
            "checkout sessions": len(stripe.sessions),
            "sessions paid": totals["sessions paid"],
            "sessions expired before the customer paid": stripe.expired_pay_attempts,
            "extra payments": totals["sessions paid"] - trials,
            "extra payments in one-plan trials": totals["extra payments in one-plan trials"],
            "extra payments in several-plan trials": totals[
                "extra payments in several-plan trials"
            ],
            "refunds": len(stripe.refunds),
            "refund requests": len(stripe.refund_requests),
            "subscriptions cancelled": len(set(stripe.subscription_cancels)),
            "servers": totals["servers"],
            "droplets created": totals["droplets created"],
            "deliveries": deliveries,
            "webhook answers": dict(sorted(answers.webhook.items())),
            "checkout answers": dict(sorted(answers.checkout.items())),
            "500s": answers.errors_500,
            "seconds per trial p50": round(percentile(trial_seconds, 0.5), 2),
            "seconds per trial max": round(max(trial_seconds), 2),
            "wall seconds": round(wall.seconds, 1),
            "events/s": round(deliveries / race_seconds, 1),
        }
    )
    outcome.expect("500s", answers.errors_500, 0)
    unexpected = {s: n for s, n in answers.checkout.items() if s not in (302, 303)}
    outcome.expect("checkout answers other than 303 (to Stripe) or 302 (refused)", unexpected, {})
    outcome.expect("webhook answers other than 200", deliveries - answers.webhook[200], 0)
    return outcome


def _race(tabs: list[Tab], stripe: StripeAccount, answers: Answers) -> list[str]:
    """Every tab clicks at once; each one sent to a Checkout Session pays it there, and
    Stripe delivers that payment's events (a session paid already: the same events again;
    one expired meanwhile: nothing to pay)."""
    start = threading.Barrier(len(tabs))

    def click_and_pay(tab: Tab):
        start.wait(timeout=60)
        session = answers.checkout_click(tab.browser, tab.plan)
        if session is None:
            return
        events = [e for e in stripe.pay(session) if e["type"] in PAYING_EVENTS]
        if not events:
            return  # a later click expired this session before it was paid
        deliveries = [
            e for e, copies in zip(events, tab.copies, strict=True) for _ in range(copies)
        ]
        tab.order.shuffle(deliveries)
        for event in deliveries:
            answers.deliver(tab.stripe, event)

    return in_threads(click_and_pay, tabs, threads=len(tabs))


def _trial_check(outcome, number, customer, stripe, do, totals, creates_before) -> None:
    def expect(what, got, want):
        outcome.expect(f"trial {number}: {what}", got, want)

    payments = {str(p.uuid): p for p in Payment.objects.filter(user=customer)}
    paid_at_stripe = [s for s in stripe.paid_sessions() if s["customer_email"] == customer.email]
    servers = list(Server.objects.filter(user=customer))
    refund_requests = Counter(intent for intent, _ in stripe.refund_requests)
    fulfilled = fulfilments_per_payment()
    totals["sessions paid"] += len(paid_at_stripe)
    totals["servers"] += len(servers)

    expect("servers", len(servers), 1)
    expect("servers not running", sum(s.status != Server.Status.RUNNING for s in servers), 0)
    expect(
        "payments kept (paid, not refunded)",
        sum(p.status == Payment.Status.SUCCEEDED for p in payments.values()),
        1,
    )
    creates = droplet_creates_per_tag(do)
    for server in servers:
        expect("droplets created for the server", creates[droplet_tag(server)], 1)
    expect("droplets created", len(do.creates) - creates_before, len(servers))
    expect(
        "payments fulfilled more than once", sum(fulfilled[p.pk] > 1 for p in payments.values()), 0
    )

    taken = {s["client_reference_id"]: s for s in paid_at_stripe}
    for reference, payment in payments.items():
        if reference not in taken and payment.status not in (
            Payment.Status.PENDING,
            Payment.Status.FAILED,
        ):
            outcome.violations.append(
                f"trial {number}: payment {payment.pk} is {payment.status}, "
                "but Stripe never took it"
            )
    kept_id = servers[0].payment_id if len(servers) == 1 else None
    for reference, session in taken.items():
        payment = payments.get(reference)
        if payment is None:
            outcome.violations.append(f"trial {number}: Stripe took {session['id']} for no payment")
            continue
        intent, subscription = session["ids"]["pi"], stripe.subscriptions[session["ids"]["sub"]]
        if payment.pk == kept_id:
            expect("the kept payment", payment.status, Payment.Status.SUCCEEDED)
            expect("refund requests for the kept payment", refund_requests[intent], 0)
            expect("the kept payment's subscription", subscription["status"], "active")
            continue
        expect(f"extra payment {payment.pk}", payment.status, Payment.Status.REFUNDED)
        expect(f"refund requests for extra payment {payment.pk}", refund_requests[intent], 1)
        if intent in stripe.refunds:
            refund = stripe.refunds[intent]["id"]
            expect(f"extra payment {payment.pk}'s refund id", payment.stripe_refund_id, refund)
        expect(f"extra payment {payment.pk}'s subscription", subscription["status"], "canceled")
