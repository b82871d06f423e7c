"""Webhook storm: many customers each check out (the real checkout view), pay at Stripe,
and Stripe's events for each purchase reach the real webhook view signed, each one 1 to
3 times, shuffled, from 8 threads at once, while the worker's jobs run beside them and
provision the servers against DigitalOcean faked at the HTTP layer. Then reconciliation
runs (as the worker runs it every 10 minutes, for the events that came before what they
name) and the jobs run until none is left.

Each purchase must end with one paid payment, fulfilled once, one server running, one
droplet created (POST /v2/droplets counted per server tag), and no refund
(POST /v1/refunds counted); the webhook never answers 500. DRILL_SEED=<n> replays a run's
random choices (the threads' timing is the machine's).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from django.utils import timezone

from bench.drills import Outcome, Timer
from bench.drills.purchases import (
    PURCHASE_EVENTS,
    SERVER_WORKERS,
    Answers,
    customers_create,
    droplet_creates_per_tag,
    faked_cloud,
    fulfilments_per_payment,
    in_threads,
    seeded_random,
    thread_client,
    worker_alongside,
)
from billing.models import Payment, Plan, StripeEvent, Subscription
from billing.reconcile import SETTLE, billing_reconcile
from servers.models import Server

NAME = "webhook storm"
THREADS = SERVER_WORKERS
# Deliveries are shuffled across this many purchases at a time, so a purchase's events and
# their copies arrive close together, on different threads, while other purchases' do too.
WINDOW = 8


def run(*, short: bool) -> Outcome:
    seed, rng = seeded_random()
    count = 40 if short else 1000
    outcome = Outcome(figures={"seed": seed, "sequences": count})
    answers = Answers()

    with faked_cloud() as (stripe, do), Timer() as wall:
        slugs = list(Plan.objects.filter(is_active=True).values_list("slug", flat=True))
        purchases = [
            {"customer": customer, "plan": rng.choice(slugs)}
            for customer in customers_create(count, f"storm{seed}")
        ]

        def checkout(purchase):
            client = thread_client("customer")
            client.force_login(purchase["customer"])
            purchase["session"] = answers.checkout_click(client, purchase["plan"])

        with Timer() as checkouts:
            errors = in_threads(checkout, purchases, threads=THREADS)
        paying = [p for p in purchases if p["session"]]
        print(f"   {len(paying)} checkouts in {checkouts.seconds:.1f} s", flush=True)
        outcome.expect("checkouts not sent to Stripe", count - len(paying), 0)

        deliveries = []
        for start in range(0, len(paying), WINDOW):
            window = []
            for purchase in paying[start : start + WINDOW]:
                for event in stripe.pay(purchase["session"]):
                    window += [event] * rng.randint(1, 3)
            rng.shuffle(window)
            deliveries += window
        with Timer() as storm_and_jobs, worker_alongside(timeout=3600):
            with Timer() as storm:
                errors += in_threads(
                    lambda event: answers.deliver(thread_client(), event),
                    deliveries,
                    threads=THREADS,
                )
            print(f"   {len(deliveries)} deliveries in {storm.seconds:.1f} s", flush=True)
            waiting = StripeEvent.objects.filter(processed_at__isnull=True).count()
            # Reconciliation as the worker runs it, late enough to take every waiting event.
            report = billing_reconcile(now=timezone.now() + SETTLE + timedelta(seconds=1))

    events = len(paying) * len(PURCHASE_EVENTS)
    outcome.figures.update(
        {
            "events": events,
            "deliveries": len(deliveries),
            "duplicates": len(deliveries) - events,
            "webhook answers": dict(sorted(answers.webhook.items())),
            "500s": answers.errors_500,
            "events kept waiting (what they name not there yet)": waiting,
            "processed by reconciliation": len(report.events_retried),
        }
    )
    outcome.expect("exceptions in the drill's threads", errors[:3], [])
    outcome.expect("500s", answers.errors_500, 0)
    outcome.expect(
        "webhook answers other than 200", sum(answers.webhook.values()) - answers.webhook[200], 0
    )
    outcome.expect(
        "events still unprocessed after reconciliation",
        StripeEvent.objects.filter(processed_at__isnull=True).count(),
        0,
    )
    outcome.expect("events stored", StripeEvent.objects.count(), events)
    _count_purchases(outcome, purchases, stripe, do)
    outcome.figures.update(
        {
            "checkout seconds": round(checkouts.seconds, 1),
            "storm seconds": round(storm.seconds, 1),
            "jobs seconds after the storm": round(storm_and_jobs.seconds - storm.seconds, 1),
            "wall seconds": round(wall.seconds, 1),
            "events/s": round(len(deliveries) / storm.seconds, 1),
        }
    )
    return outcome


def _count_purchases(outcome: Outcome, purchases, stripe, do) -> None:
    customers = [p["customer"].pk for p in purchases]
    payments = list(Payment.objects.filter(user_id__in=customers))
    paid = [p for p in payments if p.status == Payment.Status.SUCCEEDED]
    paid_per_customer = Counter(p.user_id for p in paid)
    fulfilled = fulfilments_per_payment()
    double = sum(n - 1 for n in paid_per_customer.values() if n > 1) + sum(
        fulfilled[p.pk] - 1 for p in payments if fulfilled[p.pk] > 1
    )
    servers = list(Server.objects.filter(user_id__in=customers))
    servers_per_payment = Counter(s.payment_id for s in servers)
    creates = droplet_creates_per_tag(do)
    refund_requests = len(stripe.refund_requests)
    outcome.figures.update(
        {
            "payments": len(payments),
            "payments paid": len(paid),
            "double payments": double,
            "servers": len(servers),
            "servers running": sum(s.status == Server.Status.RUNNING for s in servers),
            "droplets created": len(do.creates),
            "refunds": refund_requests,
        }
    )
    outcome.expect("checkouts without a paid payment", len(purchases) - len(paid_per_customer), 0)
    outcome.expect("double payments", double, 0)
    outcome.expect(
        "paid payments without exactly one server",
        sum(servers_per_payment[p.pk] != 1 for p in paid),
        0,
    )
    outcome.expect("servers", len(servers), len(paid))
    outcome.expect(
        "servers not running", sum(s.status != Server.Status.RUNNING for s in servers), 0
    )
    subscriptions = Subscription.objects.filter(user_id__in=customers)
    outcome.expect(
        "paid payments without their subscription",
        len(paid) - subscriptions.filter(server__payment__in=paid).count(),
        0,
    )
    outcome.expect("droplets created", len(do.creates), len(servers))
    outcome.expect(
        "servers with more than one droplet created", sum(n > 1 for n in creates.values()), 0
    )
    outcome.expect("refund requests to Stripe", refund_requests, 0)
    outcome.expect(
        "payments refunded", sum(p.status == Payment.Status.REFUNDED for p in payments), 0
    )
