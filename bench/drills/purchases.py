"""What the purchase drills share: Stripe's side of a purchase kept as state behind the
HTTP layer, so the real stripe SDK talks to it through `responses` as in the purchase
tests (billing/tests/stripe_fakes.py); DigitalOcean faked the same way
(servers/tests/do_fakes.py); customers made in bulk; the webhook's deliveries counted;
threads that each have their own test client and database connection; and the counts a
drill checks afterwards, read from the fakes' records and the database."""

from __future__ import annotations

import copy
import itertools
import logging
import os
import queue
import random
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.test import Client
from django.test.utils import override_settings
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.models import User
from billing.models import Plan
from billing.tests.flow import deliver
from billing.tests.stripe_fakes import (
    FakeStripe,
    fake_stripe,
    form,
    invoice_payment,
    query,
    stripe_list,
    stripe_object,
)
from hosting.testing import run_jobs
from servers.tests.do_fakes import FakeDigitalOcean, write_panel_key

CHECKOUT_PAGE = "https://checkout.stripe.com/c/pay/"
MONTH_SECONDS = 30 * 24 * 3600
# What Stripe sends when a subscription-mode Checkout Session is paid, in its usual order.
# The webhook acts on checkout.session.completed, invoice.paid and
# customer.subscription.updated; it stores the others and ignores them.
PURCHASE_EVENTS = (
    "customer.subscription.created",
    "payment_intent.succeeded",
    "charge.succeeded",
    "invoice.paid",
    "invoice.payment_succeeded",
    "checkout.session.completed",
    "customer.subscription.updated",
)
# Either of these alone makes the payment paid.
PAYING_EVENTS = ("checkout.session.completed", "invoice.paid")
# The SDKs log every request at INFO: thousands of lines that say nothing here.
_CHATTY_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy", "stripe")
_NOT_OPEN = 'Only Checkout Sessions with a status in ["open"] can be expired.'


def _error(status: int, message: str, *, code: str | None = None) -> tuple[int, dict]:
    return status, {"error": {"type": "invalid_request_error", "code": code, "message": message}}


class StripeAccount:
    """Stripe as a purchase meets it, answering the SDK's requests from state:

    - Checkout Sessions, one per idempotency key; open until paid or expired, never both
      (expiring a paid session is refused, paying an expired one is impossible); a
      repeated idempotency key gets the first answer back;
    - what a paid session makes: a customer, a subscription, its first invoice, paid by
      a payment intent and its charge;
    - refunds: one per payment intent; a repeated idempotency key gets the same refund
      back, as Stripe's replay does, and another key is refused (charge_already_refunded);
    - subscriptions cancelled.

    `pay()` is the customer paying on Stripe's page; it returns the events Stripe sends.
    Every refund request is kept in `refund_requests` as (payment intent, idempotency key).
    """

    def __init__(self, api: FakeStripe, *, prices: dict[str, int]):
        self.api = api
        self.prices = prices  # price id -> amount in cents
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self.sessions: dict[str, dict] = {}  # session id -> the session as Stripe has it
        self._created_for_key: dict[str, dict] = {}
        self._paid: dict[str, dict] = {}  # session id -> ids and events of its payment
        self.subscriptions: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}  # payment intent -> its refund
        self._refund_for_key: dict[str, dict] = {}
        self.refund_requests: list[tuple[str, str]] = []
        self.subscription_cancels: list[str] = []
        self.expired_pay_attempts = 0  # a customer at a session expired meanwhile

        sessions = "/v1/checkout/sessions"
        api.handle("POST", sessions, self._session_create)
        api.handle("GET", sessions, self._sessions_list)
        api.handle("POST", re.compile(sessions + r"/(cs_[^/?]+)/expire"), self._session_expire)
        api.handle("GET", re.compile(sessions + r"/(cs_[^/?]+)"), self._session_retrieve)
        api.handle("GET", "/v1/invoice_payments", self._invoice_payments)
        api.handle("POST", "/v1/refunds", self._refund_create)
        api.handle("GET", "/v1/refunds", self._refunds_list)
        subscription = re.compile(r"/v1/subscriptions/(sub_[^/?]+)(\?.*)?")
        api.handle("GET", subscription, self._subscription_retrieve)
        api.handle("DELETE", subscription, self._subscription_cancel)

    # -- the customer at Stripe ---------------------------------------------------------

    def pay(self, session_id: str) -> list[dict]:
        """The customer pays the session: the events Stripe sends, in its order. Paying
        a paid session again gives the same events (a redelivery); an expired session
        cannot be paid (no events)."""
        with self._lock:
            session = self.sessions[session_id]
            if session["status"] == "expired":
                self.expired_pay_attempts += 1
                return []
            if session["status"] == "open":
                self._paid[session_id] = self._payment_make(session)
            return list(self._paid[session_id]["events"])

    def paid_sessions(self) -> list[dict]:
        """Every paid session, with `ids` (customer, subscription, invoice, payment
        intent, charge) beside the session fields."""
        with self._lock:
            return [
                {**copy.deepcopy(self.sessions[sid]), "ids": dict(paid["ids"])}
                for sid, paid in self._paid.items()
            ]

    def _payment_make(self, session: dict) -> dict:
        number = session["_number"]
        ids = {prefix: f"{prefix}_drill{number:06d}" for prefix in ("cus", "sub", "in", "pi", "ch")}
        now = int(time.time())
        amount = session["amount_total"]
        reference = {"payment_uuid": session["client_reference_id"]}
        session.update(
            status="complete",
            payment_status="paid",
            url=None,
            customer=ids["cus"],
            subscription=ids["sub"],
            invoice=ids["in"],
        )
        subscription = stripe_object(
            "subscription",
            id=ids["sub"],
            customer=ids["cus"],
            status="incomplete",
            cancel_at_period_end=False,
            metadata=reference,
            items={
                "object": "list",
                "data": [
                    {"object": "subscription_item", "current_period_end": now + MONTH_SECONDS}
                ],
            },
        )
        created = copy.deepcopy(subscription)
        subscription["status"] = "active"
        self.subscriptions[ids["sub"]] = subscription
        invoice = stripe_object(
            "invoice",
            id=ids["in"],
            billing_reason="subscription_create",
            status="paid",
            amount_paid=amount,
            customer=ids["cus"],
            parent={
                "type": "subscription_details",
                "subscription_details": {"subscription": ids["sub"], "metadata": reference},
            },
            lines={
                "object": "list",
                "data": [{"period": {"start": now, "end": now + MONTH_SECONDS}}],
            },
        )
        intent = stripe_object(
            "payment_intent",
            id=ids["pi"],
            status="succeeded",
            amount=amount,
            customer=ids["cus"],
            latest_charge=ids["ch"],
        )
        charge = stripe_object(
            "charge",
            id=ids["ch"],
            paid=True,
            refunded=False,
            amount=amount,
            payment_intent=ids["pi"],
            customer=ids["cus"],
        )
        objects = {
            "customer.subscription.created": created,
            "payment_intent.succeeded": intent,
            "charge.succeeded": charge,
            "invoice.paid": invoice,
            "invoice.payment_succeeded": invoice,
            "checkout.session.completed": self._public(session),
            "customer.subscription.updated": subscription,
        }
        events = [
            stripe_object("event", type=kind, data={"object": copy.deepcopy(objects[kind])})
            for kind in PURCHASE_EVENTS
        ]
        return {"ids": ids, "events": events}

    @staticmethod
    def _public(session: dict) -> dict:
        return copy.deepcopy({k: v for k, v in session.items() if not k.startswith("_")})

    # -- the API ------------------------------------------------------------------------

    def _session_create(self, request):
        key = request.headers["Idempotency-Key"]
        params = form(request)
        with self._lock:
            if key not in self._created_for_key:
                number = next(self._numbers)
                session_id = f"cs_test_drill{number:06d}"
                (price,) = params["line_items[0][price]"]
                (reference,) = params["client_reference_id"]
                self.sessions[session_id] = stripe_object(
                    "checkout.session",
                    id=session_id,
                    _number=number,
                    mode="subscription",
                    status="open",
                    payment_status="unpaid",
                    url=CHECKOUT_PAGE + session_id,
                    client_reference_id=reference,
                    metadata={"payment_uuid": reference},
                    customer_email=params["customer_email"][0],
                    _price=price,
                    amount_total=self.prices[price],
                    customer=None,
                    subscription=None,
                    invoice=None,
                )
                # Stripe answers a repeated idempotency key with the first answer, as it
                # was then (open, with its URL), whatever the session is now.
                self._created_for_key[key] = self._public(self.sessions[session_id])
            return copy.deepcopy(self._created_for_key[key])

    def _session_id(self, request) -> str:
        return re.search(r"/(cs_[^/?]+)", request.url).group(1)

    def _session_expire(self, request):
        with self._lock:
            session = self.sessions.get(self._session_id(request))
            if session is None:
                return _error(404, "No such checkout session", code="resource_missing")
            if session["status"] != "open":
                return _error(400, _NOT_OPEN)
            session.update(status="expired", url=None)
            return self._public(session)

    def _session_retrieve(self, request):
        with self._lock:
            session = self.sessions.get(self._session_id(request))
            if session is None:
                return _error(404, "No such checkout session", code="resource_missing")
            return self._public(session)

    def _sessions_list(self, request):
        status = query(request).get("status", [None])[0]
        with self._lock:
            found = [
                self._public(s)
                for s in self.sessions.values()
                if status is None or s["status"] == status
            ]
        return stripe_list(found, "/v1/checkout/sessions")

    def _invoice_payments(self, request):
        (invoice_id,) = query(request)["invoice"]
        with self._lock:
            paid = [p["ids"] for p in self._paid.values() if p["ids"]["in"] == invoice_id]
        found = [invoice_payment(invoice_id, ids["pi"], ids["ch"]) for ids in paid]
        return stripe_list(found, "/v1/invoice_payments")

    def _refund_create(self, request):
        key = request.headers.get("Idempotency-Key", "")
        intent = form(request).get("payment_intent", [""])[0]
        with self._lock:
            self.refund_requests.append((intent, key))
            if key and key in self._refund_for_key:
                return copy.deepcopy(self._refund_for_key[key])
            if intent in self.refunds:
                return _error(
                    400, "Charge has already been refunded.", code="charge_already_refunded"
                )
            if not any(p["ids"]["pi"] == intent for p in self._paid.values()):
                return _error(404, f"No such payment_intent: '{intent}'", code="resource_missing")
            refund = stripe_object(
                "refund", id=f"re_drill{len(self.refunds) + 1:06d}", payment_intent=intent
            )
            refund["status"] = "succeeded"
            self.refunds[intent] = refund
            if key:
                self._refund_for_key[key] = refund
            return copy.deepcopy(refund)

    def _refunds_list(self, request):
        intent = query(request).get("payment_intent", [""])[0]
        with self._lock:
            found = [copy.deepcopy(self.refunds[intent])] if intent in self.refunds else []
        return stripe_list(found, "/v1/refunds")

    def _subscription_id(self, request) -> str:
        return re.search(r"/(sub_[^/?]+)", request.url).group(1)

    def _subscription_retrieve(self, request):
        with self._lock:
            subscription = self.subscriptions.get(self._subscription_id(request))
            if subscription is None:
                return _error(404, "No such subscription", code="resource_missing")
            return copy.deepcopy(subscription)

    def _subscription_cancel(self, request):
        subscription_id = self._subscription_id(request)
        with self._lock:
            self.subscription_cancels.append(subscription_id)
            subscription = self.subscriptions.get(subscription_id)
            if subscription is None:
                return _error(404, "No such subscription", code="resource_missing")
            if subscription["status"] == "canceled":
                return _error(400, "This subscription has already been canceled.")
            subscription["status"] = "canceled"
            return copy.deepcopy(subscription)


@contextmanager
def faked_cloud() -> Iterator[tuple[StripeAccount, FakeDigitalOcean]]:
    """Stripe (`StripeAccount`) and DigitalOcean (`FakeDigitalOcean`) faked at the HTTP
    layer on one `responses` mock, the settings pointing the gateway and the provider at
    them, provisioning without waits, and the plans priced as stripe_sync_plans leaves
    them. Nothing leaves the process."""
    quieted = {name: logging.getLogger(name).level for name in _CHATTY_LOGGERS}
    for name in quieted:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with tempfile.TemporaryDirectory() as directory:
            panel_key, _ = write_panel_key(Path(directory))
            with (
                override_settings(
                    DIGITALOCEAN_TOKEN="dop_v1_drill_token",
                    PANEL_SSH_KEY_FILE=str(panel_key),
                    PROVISION_POLL_SECONDS=0,
                    PROVISION_RETRY_SECONDS=0,
                ),
                fake_stripe(settings) as api,
            ):
                prices = {}
                for plan in Plan.objects.all():
                    plan.stripe_price_id = f"price_{plan.slug}"
                    plan.save(update_fields=["stripe_price_id"])
                    prices[plan.stripe_price_id] = plan.price_cents
                yield StripeAccount(api, prices=prices), FakeDigitalOcean(api.mock)
    finally:
        for name, level in quieted.items():
            logging.getLogger(name).setLevel(level)


def customers_create(count: int, label: str) -> list[User]:
    """`count` new customers in one INSERT (no password: they are logged in directly)."""
    users = [
        User(email=f"{label}-{n:05d}@drills.example", name=f"{label} {n}") for n in range(count)
    ]
    for user in users:
        user.set_unusable_password()
    return User.objects.bulk_create(users)


# Requests served at once, as by that many gunicorn workers: more clients than this wait
# their turn as in a listen queue, instead of all waiting for one of the pool's database
# connections (DB_POOL_MAX_SIZE, 10 by default; the jobs use one or two) and being
# answered 503 after DB_CONNECT_TIMEOUT.
SERVER_WORKERS = 8


class Answers:
    """The drill's requests, served SERVER_WORKERS at a time, and their HTTP statuses
    counted across threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._workers = threading.BoundedSemaphore(SERVER_WORKERS)
        self.webhook: Counter[int] = Counter()
        self.checkout: Counter[int] = Counter()

    def deliver(self, client: Client, event: dict) -> int:
        """`event` signed and POSTed to the webhook, as Stripe delivers it."""
        with self._workers:
            status = deliver(client, event).status_code
        with self._lock:
            self.webhook[status] += 1
        return status

    def checkout_click(self, client: Client, plan_slug: str) -> str | None:
        """The logged-in customer's click on a plan: the Checkout Session it sent them
        to, or None (refused, or an error)."""
        with self._workers:
            response = client.post(f"/billing/checkout/{plan_slug}/")
        with self._lock:
            self.checkout[response.status_code] += 1
        location = response.headers.get("Location", "")
        if response.status_code == 303 and location.startswith(CHECKOUT_PAGE):
            return location.removeprefix(CHECKOUT_PAGE)
        return None

    @property
    def errors_500(self) -> int:
        return self.webhook[500] + self.checkout[500]


_thread = threading.local()


def thread_client(role: str = "stripe") -> Client:
    """This thread's test client for `role` ("stripe": anonymous, as Stripe's requests
    are; "customer": for the drill to log in). Made once per thread: a client's first
    request loads the middleware, WhiteNoise's scan of the static files included. A 500
    comes back as a response to count, not as an exception."""
    clients = _thread.__dict__.setdefault("clients", {})
    if role not in clients:
        clients[role] = Client(raise_request_exception=False)
    return clients[role]


def in_threads(work: Callable[[object], None], items: Iterable, *, threads: int) -> list[str]:
    """`work(item)` for every item, on `threads` threads taking items in order, each with
    its own database connection, closed as the thread ends. Returns what any call
    raised, as sentences."""
    pending: queue.SimpleQueue = queue.SimpleQueue()
    for item in items:
        pending.put(item)
    errors: list[str] = []

    def worker():
        try:
            while True:
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    work(item)
                except Exception as exc:  # counted by the drill; the other items go on
                    errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connections.close_all()

    # The caller's own connection goes back to the pool meanwhile: the pool is sized for
    # the server's requests and the jobs.
    connections.close_all()
    running = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    return errors


def jobs_settled() -> bool:
    return not ProcrastinateJob.objects.filter(status__in=["todo", "doing"]).exists()


@contextmanager
def worker_alongside(*, timeout: float) -> Iterator[None]:
    """The jobs run while the block runs, as the worker runs beside the web process, and
    after it until none is left (`run_jobs`: procrastinate's worker in this process, so
    the HTTP fakes answer the jobs too)."""
    finished = threading.Event()
    failures: list[BaseException] = []

    def done() -> bool:
        try:
            return finished.is_set() and jobs_settled()
        finally:
            connections.close_all()  # not held between looks: the pool is the server's

    def work():
        try:
            run_jobs(until=done, timeout=timeout)
        except BaseException as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    try:
        yield
    finally:
        finished.set()
        thread.join()
    if failures:
        raise failures[0]


def jobs_for(task_name: str, **args) -> list[dict]:
    """The arguments of every job of `task_name` (whatever its status) whose arguments
    include `args`."""
    return list(
        ProcrastinateJob.objects.filter(task_name=task_name, args__contains=args).values_list(
            "args", flat=True
        )
    )


def fulfilments_per_payment() -> Counter[int]:
    """How many times each payment was fulfilled (marked paid with a server made or a
    refund queued): payment_fulfil queues exactly one job each time it does either."""
    counts: Counter[int] = Counter()
    for args in jobs_for("billing.tasks.payment_notify", kind="received"):
        counts[args["payment_id"]] += 1
    for args in jobs_for("billing.tasks.payment_refund", kind="duplicate"):
        counts[args["payment_id"]] += 1
    return counts


def droplet_creates_per_tag(do: FakeDigitalOcean) -> Counter[str]:
    """POST /v2/droplets requests, per `server-<uuid>` tag."""
    return Counter(tag for body in do.creates for tag in body.get("tags", []))


def seeded_random() -> tuple[int, random.Random]:
    """The drill's random choices, from DRILL_SEED when set (to replay a failed run) or a
    fresh seed, printed either way."""
    seed = int(os.environ.get("DRILL_SEED") or random.SystemRandom().randrange(2**32))
    print(f"   seed {seed} (DRILL_SEED={seed} replays these choices)", flush=True)
    return seed, random.Random(seed)  # noqa: S311 - reproducible, not secret


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0
