"""What one customer of the scale data looks like (`manage.py seed_scale`,
hosting/scale_data.py): a year of a hosting customer's life as unsaved model instances,
linked to each other, so the caller saves them with bulk inserts in foreign-key order.

Customer n is built from `random.Random(n)` and the time the seed runs: the same n gets
the same shape (plan, server state, counts, names, uuids) on every machine. The server's
state goes round STATE_CYCLE by n, so any 20 consecutive customers hold every state.
Rows follow the app's own flows: a paid purchase, a server built from it with its
timeline, monthly renewals, deployments with the events they write, domains with their
checks, tickets with their replies, and the audit trail of the account.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from allauth.account.models import EmailAddress

from accounts.models import AuditAction, User
from billing.models import Payment, PaymentKind, PaymentStatus, Plan, Subscription
from billing.models import SubscriptionStatus as SubStatus
from hosting.scale_texts import (
    CUSTOMER_REPLIES,
    FAILURE_REASONS,
    FIRST_NAMES,
    INTERNAL_NOTES,
    LAST_NAMES,
    STACKS,
    STAFF_REPLIES,
    TICKET_TOPICS,
    WORDS,
)
from servers.models import (
    DeploymentStatus,
    Domain,
    Server,
    ServerAction,
    ServerActionKind,
    ServerActionStatus,
    ServerEventKind,
    ServerStatus,
    SSLStatus,
    VerificationStatus,
)
from servers.services import LOGIN_USERNAME
from support.models import Ticket, TicketMessage, TicketPriority, TicketStatus

EMAIL = "scale{n}@example.com"
EMAIL_PATTERN = r"^scale([0-9]+)@example\.com$"
STAFF_EMAILS = [f"scale-staff{k}@example.com" for k in range(3)]

R, STOP, SUSP, PROV, FAIL, DEL = (
    ServerStatus.RUNNING,
    ServerStatus.STOPPED,
    ServerStatus.SUSPENDED,
    ServerStatus.PROVISIONING,
    ServerStatus.FAILED,
    ServerStatus.DELETED,
)
# 40 customers: 30 running, 4 stopped, 2 suspended, 2 deleted, 1 provisioning, 1 failed;
# every state within the first 20.
STATE_CYCLE = [R, R, STOP, R, SUSP, R, FAIL, R, DEL, R, R, PROV, R, STOP, R, R, R, R, R, R]
STATE_CYCLE += [R, R, STOP, R, R, SUSP, R, R, DEL, R, R, R, STOP, R, R, R, R, R, R, R]

PLAN_WEIGHTS = {"basic": 6, "pro": 3, "premium": 1}
REGIONS = ["nyc3", "fra1", "ams3", "sgp1", "lon1", "sfo3", "tor1", "blr1"]
# The most numerous rows are plain tuples in these fields' order rather than model
# instances: a model instance per row cost more than everything else in Python. A
# tuple's model instances (its server, its user) stand for their primary keys.
DEPLOYMENT_FIELDS = (
    "uuid", "server", "user", "git_url", "branch", "commit", "status", "failure_reason",
    "created_at", "started_at", "finished_at",
)  # fmt: skip
SERVER_EVENT_FIELDS = ("server", "kind", "message", "created_at")
AUDIT_EVENT_FIELDS = (
    "actor", "actor_email", "action", "target_type", "target_id", "ip_address", "metadata",
    "created_at",
)  # fmt: skip


@dataclass
class Batch:
    """Unsaved rows of many customers, in the order they must be saved."""

    users: list[User] = field(default_factory=list)
    email_addresses: list[EmailAddress] = field(default_factory=list)
    purchases: list[Payment] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    renewals: list[Payment] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    deployments: list[tuple] = field(default_factory=list)  # DEPLOYMENT_FIELDS
    # The stack each server's app is built with: which log lines its deployments get.
    server_stacks: list[tuple[Server, int]] = field(default_factory=list)
    server_events: list[tuple] = field(default_factory=list)  # SERVER_EVENT_FIELDS
    server_actions: list[ServerAction] = field(default_factory=list)
    domains: list[Domain] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    ticket_messages: list[TicketMessage] = field(default_factory=list)
    # AUDIT_EVENT_FIELDS; a target (a model instance) stands for its id as text.
    audit_events: list[tuple] = field(default_factory=list)


@dataclass
class Context:
    now: datetime
    plans: dict[str, Plan]
    staff: list[User]
    password: str  # unusable: these customers never log in by form
    grace: timedelta


class CustomerBuilder:
    """Adds customer n's rows to a Batch."""

    def __init__(self, context: Context, batch: Batch, n: int):
        self.c, self.b, self.n = context, batch, n
        # Reproducible on purpose: the same customer n everywhere. Its "secrets" (server
        # passwords, tokens) guard nothing: these servers do not exist.
        self.rng = random.Random(n)  # noqa: S311
        self.now = context.now

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def hex(self, chars: int) -> str:
        return f"{self.rng.getrandbits(chars * 4):0{chars}x}"

    def ip(self) -> str:
        return (
            f"{self.rng.choice(['198.51.100', '192.0.2', '203.0.113'])}.{self.rng.randint(1, 254)}"
        )

    def build(self) -> None:
        rng, n = self.rng, self.n
        state = STATE_CYCLE[n % len(STATE_CYCLE)]
        # A server suspended for an unpaid renewal, or deleted after a cancellation, was
        # bought at least two months ago.
        youngest = 60 if state in (SUSP, DEL) else 3
        joined = self.now - timedelta(days=rng.uniform(youngest, 365))
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        self.user = User(
            email=EMAIL.format(n=n),
            name=f"{first} {last}",
            password=self.c.password,
            date_joined=joined,
            last_login=joined + (self.now - joined) * rng.uniform(0.8, 1),
        )
        self.joined = joined
        self.b.users.append(self.user)
        self.b.email_addresses.append(
            EmailAddress(user=self.user, email=self.user.email, verified=True, primary=True)
        )
        self.handle = f"{first.lower()}{n}"
        self.plan = self.c.plans[rng.choices(*zip(*PLAN_WEIGHTS.items(), strict=True))[0]]
        self.stack = rng.randrange(STACKS)
        self.servers: list[Server] = []

        bought = joined + timedelta(hours=rng.uniform(0.05, 48))
        if rng.random() < 0.06:  # a declined card or an expired checkout first
            self.checkout_failed(joined + timedelta(minutes=2))
        if state not in (FAIL, PROV) and rng.random() < 0.08:
            # Like the demo's Alice: a first server that could not be built, refunded,
            # then another bought that works.
            self.server(FAIL, bought)
            bought += timedelta(hours=rng.uniform(1, 30))
        if state == PROV:
            bought = self.now - timedelta(minutes=rng.uniform(1, 50))
        self.server(state, bought)
        if state in (R, STOP) and rng.random() < 0.04:  # an abandoned upgrade checkout
            self.checkout_pending()
        self.tickets()
        self.audit_trail()

    # Billing

    def payment(self, *, created: datetime, **fields) -> Payment:
        return Payment(
            uuid=self.uuid(),
            user=self.user,
            plan=self.plan,
            amount_cents=self.plan.price_cents,
            currency=self.plan.currency,
            stripe_customer_id=f"cus_scale{self.n}",
            created_at=created,
            **fields,
        )

    def checkout_failed(self, at: datetime) -> None:
        reason = self.rng.choice(["Your card was declined.", "The checkout expired unpaid."])
        self.b.purchases.append(
            self.payment(
                created=at,
                status=PaymentStatus.FAILED,
                failure_reason=reason,
                stripe_checkout_session_id=f"cs_scale{self.n}_failed",
            )
        )

    def checkout_pending(self) -> None:
        self.b.purchases.append(
            self.payment(
                created=self.now - timedelta(hours=self.rng.uniform(1, 72)),
                stripe_checkout_session_id=f"cs_scale{self.n}_pending",
            )
        )

    # Servers

    def server(self, state: str, bought: datetime) -> None:
        rng, n, k = self.rng, self.n, len(self.servers)
        ids = f"scale{n}_{k}"
        purchase = self.payment(
            created=bought - timedelta(minutes=2),
            status=PaymentStatus.SUCCEEDED,
            paid_at=bought,
            stripe_checkout_session_id=f"cs_{ids}",
            stripe_subscription_id=f"sub_{ids}",
            stripe_invoice_id=f"in_{ids}_1",
            stripe_payment_intent_id=f"pi_{ids}_1",
            stripe_charge_id=f"ch_{ids}_1",
        )
        self.b.purchases.append(purchase)
        ran = state not in (PROV, FAIL)
        built = bought + timedelta(seconds=rng.uniform(40, 90))
        server = Server(
            uuid=self.uuid(),
            user=self.user,
            plan=self.plan,
            payment=purchase,
            status=state,
            name=f"{self.plan.slug}-{purchase.uuid.hex[:8]}",
            region=rng.choice(REGIONS),
            # No droplet yet for half the servers being built, nor for one that failed
            # to be created.
            provider_id=""
            if state == FAIL or (state == PROV and rng.random() < 0.5)
            else str(400_000_000 + n * 4 + k),
            ip_address=self.ip() if ran else None,
            ssh_username=LOGIN_USERNAME,
            ssh_password=self.hex(24),
            ssh_host_key=f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA{self.hex(43)}",
            tls_token_hash=hashlib.sha256(f"scale-{ids}".encode()).hexdigest(),
            # The build secrets stay only until the server runs.
            tls_token="" if ran else self.hex(32),
            created_at=bought,
        )
        self.servers.append(server)
        self.b.servers.append(server)
        event = self.timeline(server)
        event(
            ServerEventKind.PAYMENT_CONFIRMED,
            bought,
            f"Payment of {purchase.amount_display} for {self.plan.name} received.",
        )
        if server.provider_id:
            event(
                ServerEventKind.DROPLET_REQUESTED,
                bought + timedelta(seconds=4),
                f"Requested a {self.plan.name} server in {server.region}.",
            )
        if state == PROV:
            self.subscription(server, purchase, SubStatus.ACTIVE, bought + timedelta(days=30))
            return
        if state == FAIL:
            self.provisioning_failed(server, purchase, bought, event)
            return
        event(ServerEventKind.DROPLET_ACTIVE, built, f"Booted at {server.ip_address}.")
        event(
            ServerEventKind.READY,
            built + timedelta(seconds=5),
            f"Log in with ssh {server.ssh_username}@{server.ip_address}.",
        )

        # Until when it ran: deleted some time ago, suspended when the grace period of
        # its declined renewal ran out, stopped by its owner (and still paid for).
        end = self.now
        if state == DEL:
            end = bought + (self.now - bought) * rng.uniform(0.3, 0.9)
        elif state == SUSP:
            end = self.now - timedelta(days=rng.uniform(0.1, 5))
        elif state == STOP:
            end = built + (self.now - built) * rng.uniform(0.6, 0.99)
        self.renewals(server, bought, self.now if state == STOP else end, state)
        self.deployments(server, built + timedelta(minutes=10), end, live=state == R)
        if state in (R, STOP, SUSP):
            self.domains(server, built, end, event)
        self.power_history(server, state, built, end, event)

    def timeline(self, server: Server):
        def event(kind: str, at: datetime, message: str) -> None:
            self.b.server_events.append((server, kind, message, at))

        return event

    def provisioning_failed(self, server, purchase, bought, event) -> None:
        reason = "DigitalOcean could not create the server: region is unavailable."
        for attempt in (1, 2):
            event(
                ServerEventKind.RETRYING,
                bought + timedelta(minutes=attempt),
                f"Attempt {attempt} failed ({reason}); trying again.",
            )
        failed_at = bought + timedelta(minutes=5)
        event(ServerEventKind.FAILED, failed_at, reason)
        event(
            ServerEventKind.REFUND_ISSUED,
            failed_at + timedelta(seconds=3),
            f"Refunded {purchase.amount_display}.",
        )
        purchase.status = PaymentStatus.REFUNDED
        purchase.refunded_at = failed_at + timedelta(seconds=3)
        purchase.refund_reason = "The server could not be built."
        purchase.stripe_refund_id = f"re_scale{self.n}_{len(self.servers) - 1}_1"
        sub = self.subscription(server, purchase, SubStatus.CANCELED, bought + timedelta(days=30))
        sub.canceled_at = purchase.refunded_at

    def renewals(self, server: Server, bought: datetime, end: datetime, state: str) -> None:
        """Monthly renewal payments up to `end`, and the subscription as it stands. A
        suspended server's last renewal was declined `grace` before `end`: it has no
        payment row (only paid invoices are payments) and the subscription is past due."""
        rng, purchase = self.rng, server.payment
        due_dates = []
        due = bought + timedelta(days=30)
        while due < (end - self.c.grace if state == SUSP else end):
            due_dates.append(due)
            due += timedelta(days=30)
        # (Only a grace period longer than the customer's life leaves none to decline.)
        declined = due_dates.pop() if state == SUSP and due_dates else due
        for month, paid_at in enumerate(due_dates, start=2):
            ids = f"scale{self.n}_{len(self.servers) - 1}_{month}"
            payment = self.payment(
                created=paid_at,
                kind=PaymentKind.RENEWAL,
                renews=server,
                status=PaymentStatus.SUCCEEDED,
                paid_at=paid_at + timedelta(seconds=rng.uniform(1, 30)),
                stripe_subscription_id=purchase.stripe_subscription_id,
                stripe_invoice_id=f"in_{ids}",
                stripe_payment_intent_id=f"pi_{ids}",
                stripe_charge_id=f"ch_{ids}",
            )
            if rng.random() < 0.02:  # staff refunded a month (the server stays)
                payment.status = PaymentStatus.REFUNDED
                payment.refunded_at = payment.paid_at + timedelta(days=rng.uniform(0.1, 5))
                payment.refund_reason = "Refunded by staff: the server was down for a day."
                payment.stripe_refund_id = f"re_{ids}"
                self.audit(
                    AuditAction.PAYMENT_REFUND,
                    payment.refunded_at,
                    actor=rng.choice(self.c.staff),
                    target=payment,
                    metadata={"amount_cents": payment.amount_cents},
                )
            self.b.renewals.append(payment)
        period_end = bought + timedelta(days=30 * (len(due_dates) + 1))
        if state == DEL:
            sub = self.subscription(server, purchase, SubStatus.CANCELED, period_end)
            sub.canceled_at = max(end - timedelta(days=14), bought + timedelta(days=1))
        elif state == SUSP:
            sub = self.subscription(server, purchase, SubStatus.PAST_DUE, declined)
            sub.past_due_since = declined
            sub.failure_reason = (
                f"Your renewal payment of {purchase.amount_display} did not go through."
            )
            sub.suspended_at = end
            self.user.payment_overdue_since = declined
        else:
            sub = self.subscription(server, purchase, SubStatus.ACTIVE, period_end)
            sub.cancel_at_period_end = rng.random() < 0.03

    def subscription(self, server, purchase, status, period_end) -> Subscription:
        sub = Subscription(
            server=server,
            user=self.user,
            plan=self.plan,
            stripe_subscription_id=purchase.stripe_subscription_id,
            stripe_customer_id=purchase.stripe_customer_id,
            status=status,
            current_period_end=period_end,
            # Stripe last spoke when the current period started.
            synced_at=min(self.now, period_end - timedelta(days=30, minutes=-1)),
            created_at=purchase.paid_at,
            updated_at=self.now,
        )
        self.b.subscriptions.append(sub)
        return sub

    def power_history(self, server, state, built, end, event) -> None:
        rng = self.rng
        staff_or_customer = None if state == SUSP else self.user
        if state in (STOP, SUSP):
            at = end
            if state == SUSP:
                event(ServerEventKind.SUSPENDED, at, "Renewal unpaid: the server is powered off.")
            else:
                event(ServerEventKind.ACTION_REQUESTED, at, "Stop requested (a graceful shutdown)")
            self.action(server, ServerActionKind.STOP, at, staff_or_customer)
            event(ServerEventKind.STOPPED, at + timedelta(seconds=20), "The server is off.")
        if state == DEL:
            event(ServerEventKind.DELETED, end, "The subscription ended.")
            event(
                ServerEventKind.DESTROYED,
                end + timedelta(minutes=1),
                f"Droplet {server.provider_id}.",
            )
        for _ in range(rng.choice([0, 0, 1, 2])):
            at = built + (end - built) * rng.random()
            event(ServerEventKind.ACTION_REQUESTED, at, "Reboot requested")
            self.action(server, ServerActionKind.REBOOT, at, self.user)
            event(ServerEventKind.REBOOTED, at + timedelta(seconds=30), "The server restarted.")
        if rng.random() < 0.1:
            at = built + (end - built) * rng.random()
            self.action(server, ServerActionKind.PASSWORD_RESET, at, self.user)
            event(
                ServerEventKind.PASSWORD_RESET,
                at + timedelta(seconds=8),
                "A new login password is set.",
            )

    def action(self, server, kind, at, by) -> None:
        self.b.server_actions.append(
            ServerAction(
                server=server,
                kind=kind,
                status=ServerActionStatus.SUCCEEDED,
                requested_by=by,
                provider_action_id=str(self.rng.getrandbits(40)),
                created_at=at,
                finished_at=at + timedelta(seconds=self.rng.uniform(5, 40)),
            )
        )

    # Deployments and domains

    def deployments(self, server: Server, start: datetime, end: datetime, *, live: bool) -> None:
        """About 20 deployments between `start` and `end`: mostly successes, some failed,
        and on a few live servers the newest still running (or waiting to)."""
        rng = self.rng
        count = rng.randint(15, 25)
        repo = f"https://github.com/{self.handle}/{rng.choice(WORDS)}.git"
        branch = rng.choice(["main", "main", "main", "production"])
        times = sorted(start + (end - start) * rng.random() for _ in range(count))
        self.b.server_stacks.append((server, self.stack))
        for position, created in enumerate(times, start=1):
            status = DeploymentStatus.FAILED if rng.random() < 0.15 else DeploymentStatus.SUCCESS
            started = created + timedelta(seconds=rng.uniform(1, 4))
            finished = started + timedelta(seconds=rng.uniform(20, 180))
            if live and position == count and rng.random() < 0.15:
                status = rng.choice([DeploymentStatus.IN_PROGRESS] * 3 + [DeploymentStatus.PENDING])
                created = self.now - timedelta(seconds=rng.uniform(5, 90))
                started = created + timedelta(seconds=2)
                finished = None
                if status == DeploymentStatus.PENDING:
                    started = None
            reason = FAILURE_REASONS[self.stack] if status == DeploymentStatus.FAILED else ""
            self.b.deployments.append(
                (self.uuid(), server, self.user, repo, branch, self.hex(40), str(status), reason,
                 created, started, finished)
            )  # fmt: skip

    def domains(self, server: Server, built: datetime, end: datetime, event) -> None:
        rng, n = self.rng, self.n
        word = rng.choice(WORDS)
        names = [
            f"{word}-{n}.example.com",
            f"www.{word}-{n}.example.com",
            f"api.{word}-{n}.example.org",
        ]
        for name in names[: rng.choice([2, 2, 3]) if server.status == R else rng.choice([1, 2])]:
            added = built + (end - built) * rng.uniform(0.05, 1) ** 3
            domain = Domain(
                uuid=self.uuid(),
                server=server,
                user=self.user,
                name=name,
                verification_token=self.hex(32),
                created_at=added,
                checked_at=added + timedelta(minutes=rng.uniform(1, 30)),
            )
            event(ServerEventKind.DOMAIN_ADDED, added, name)
            roll = rng.random()
            if roll < 0.08:
                domain.verification_reason = (
                    f"No TXT record at _hosting-challenge.{name} yet (found none)."
                )
                domain.check_attempts = rng.randint(1, 6)
            elif roll < 0.11:
                domain.verification_status = VerificationStatus.FAILED
                domain.verification_reason = (
                    f"{name} points at 192.0.2.10, not at this server ({server.ip_address})."
                )
            else:
                domain.verification_status = VerificationStatus.VERIFIED
                domain.verified_at = domain.checked_at
                event(ServerEventKind.DOMAIN_VERIFIED, domain.verified_at, name)
                domain.ssl_checked_at = domain.verified_at + timedelta(minutes=2)
                if roll < 0.16:
                    domain.ssl_status = SSLStatus.FAILED
                    domain.ssl_error = (
                        f"Let's Encrypt HTTP-01 challenge failed: {server.ip_address} refused "
                        "the connection on port 80 (is the server running?)."
                    )
                    event(ServerEventKind.HTTPS_FAILED, domain.ssl_checked_at, name)
                elif roll < 0.2:
                    pass  # no HTTPS visit yet: Caddy asks for the certificate on the first
                else:
                    domain.ssl_status = SSLStatus.ACTIVE
                    domain.ssl_expires_at = self.now + timedelta(days=rng.uniform(10, 89))
                    event(ServerEventKind.HTTPS_ACTIVE, domain.ssl_checked_at, name)
            self.b.domains.append(domain)

    # Support and the audit trail

    def tickets(self) -> None:
        rng = self.rng
        for _ in range(rng.choice([0, 0, 1, 1, 1, 2, 2, 3])):
            subject, description = rng.choice(TICKET_TOPICS)
            server = rng.choice(self.servers) if rng.random() < 0.6 else None
            since = server.created_at if server is not None else self.joined
            opened = since + (self.now - since) * rng.uniform(0.02, 1)
            age = self.now - opened
            if age > timedelta(days=14):
                status = rng.choice([TicketStatus.CLOSED] * 8 + [TicketStatus.RESOLVED])
            else:
                status = rng.choice(list(TicketStatus))
            ticket = Ticket(
                uuid=self.uuid(),
                user=self.user,
                server=server,
                subject=subject,
                description=description,
                priority=rng.choice(
                    [
                        TicketPriority.LOW,
                        *[TicketPriority.MEDIUM] * 3,
                        TicketPriority.HIGH,
                        TicketPriority.CRITICAL,
                    ]
                ),
                status=status,
                assignee=None if status == TicketStatus.OPEN else rng.choice(self.c.staff),
                created_at=opened,
                reply_token=self.hex(24),
                staff_mailed_at=opened + timedelta(seconds=rng.uniform(5, 60)),
            )
            if server is not None:
                self.b.server_events.append(
                    (server, ServerEventKind.TICKET_OPENED, subject, opened)
                )
            replies = 0 if status == TicketStatus.OPEN else rng.choice([1, 2, 2, 3])
            last_visible, last_author, at = opened, self.user, opened
            for position in range(replies):
                at += timedelta(hours=rng.uniform(0.2, 20))
                staff_turn = position % 2 == 0
                if staff_turn and rng.random() < 0.2:
                    self.message(
                        ticket,
                        rng.choice(self.c.staff),
                        rng.choice(INTERNAL_NOTES),
                        at,
                        internal=True,
                    )
                    at += timedelta(minutes=rng.uniform(5, 60))
                author = rng.choice(self.c.staff) if staff_turn else self.user
                body = rng.choice(STAFF_REPLIES if staff_turn else CUSTOMER_REPLIES)
                self.message(ticket, author, body, at)
                last_visible, last_author = at, author
                if staff_turn and server is not None:
                    self.b.server_events.append(
                        (server, ServerEventKind.TICKET_ANSWERED, subject, at)
                    )
            ticket.last_activity_at = ticket.updated_at = last_visible
            ticket.waiting_on_staff = last_author == self.user and status != TicketStatus.CLOSED
            ticket.customer_seen_at = last_visible if rng.random() < 0.8 else None
            ticket.status_changed_at = last_visible if status != TicketStatus.OPEN else opened
            self.b.tickets.append(ticket)

    def message(self, ticket, author, body, at, *, internal=False) -> None:
        self.b.ticket_messages.append(
            TicketMessage(
                ticket=ticket,
                author=author,
                body=body,
                internal=internal,
                created_at=at,
                mailed_at=None if internal else at + timedelta(seconds=30),
            )
        )

    def audit(self, action, at, *, actor=None, target=None, metadata=None, ip=None) -> None:
        actor = actor or self.user
        self.b.audit_events.append(
            (actor, actor.email, action, target._meta.label_lower if target is not None else "",
             target, ip or self.ip(), json.dumps(metadata or {}), at)
        )  # fmt: skip

    def audit_trail(self) -> None:
        rng, joined = self.rng, self.joined
        home = self.ip()
        self.audit(AuditAction.SIGNUP, joined, ip=home)
        self.audit(
            AuditAction.EMAIL_CONFIRM,
            joined + timedelta(minutes=3),
            ip=home,
            metadata={"email": self.user.email},
        )
        for _ in range(rng.randint(2, 8)):
            at = joined + (self.now - joined) * rng.random()
            if rng.random() < 0.15:
                self.audit(
                    AuditAction.LOGIN_FAILED,
                    at - timedelta(seconds=20),
                    metadata={"reason": "wrong password"},
                )
            self.audit(AuditAction.LOGIN, at, ip=home)
            if rng.random() < 0.3:
                self.audit(AuditAction.LOGOUT, at + timedelta(minutes=rng.uniform(2, 90)), ip=home)
        if rng.random() < 0.15:
            at = joined + timedelta(days=rng.uniform(0, 10))
            self.audit(AuditAction.MFA_ENABLE, at, ip=home)
            self.audit(AuditAction.RECOVERY_CODES, at + timedelta(seconds=40), ip=home)
        if rng.random() < 0.1:
            self.audit(AuditAction.PASSWORD_CHANGE, joined + (self.now - joined) * rng.random())
        live = [server for server in self.servers if server.status not in (PROV, FAIL)]
        if live and rng.random() < 0.4:
            at = live[-1].created_at + timedelta(minutes=rng.uniform(2, 600))
            self.audit(
                AuditAction.SERVER_PASSWORD_REVEAL, min(at, self.now), ip=home, target=live[-1]
            )


def batch_build(context: Context, numbers: list[int]) -> Batch:
    """The unsaved rows of customers `numbers`."""
    batch = Batch()
    for n in numbers:
        CustomerBuilder(context, batch, n).build()
    return batch
